"""The Python API: check a spec from a script or a notebook and get a report object back.

    import sadlang
    report = sadlang.check("specs/ioi.sad")                 # a file
    report = sadlang.check(SPEC_TEXT, model=hf_model)       # text, against a model already loaded
    report.verdicts, report["io_mover"].interval, report.to_json(), report.to_junit(), report.html()

In Jupyter a report displays as the HTML report's cards (`_repr_html_`); `%load_ext sadlang`
adds the `%%sad` cell magic (sadlang/notebook.py).

`model` may be a model reference (as in `model NAME`), a `LoadedModel`, a transformers
`PreTrainedModel` or a TransformerLens `TransformerBridge`: a model loaded in the session is
used without reloading it (sadlang folds a copy when the bridge must change its weights, and
says so). Keyword options override the spec's `option` lines (`confidence=None` gives point
verdicts); a bad value is the same SpecError a spec line gets.
"""

from __future__ import annotations

import html as html_lib
import time
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from sadlang.errors import SpecError
from sadlang.lang import ast as A
from sadlang.language import parse_file, parse_spec
from sadlang.runner import report as R
from sadlang.runner import verdict as V


class Report(V.Report):
    """One spec's verdicts, with the pictures of the HTML report.

    verdicts      every claim's Verdict (status, claimed, measured, value, interval, prompts)
    report[name]  the verdict of claim `name`
    held          whether every claim held (the CLI's exit code 0)
    """

    _views: dict[str, Any] = PrivateAttr(default_factory=dict)
    _meta: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __getitem__(self, name: str) -> V.Verdict:
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(f"no claim {name!r}; claims: {', '.join(v.name for v in self.verdicts)}")

    @property
    def held(self) -> bool:
        return self.exit_code == 0

    def to_text(self, verbose: bool = False) -> str:
        """The report `sadlang check` prints."""
        return R.to_text(self, verbose)

    def to_json(self, allow_inconclusive: bool = False) -> str:
        """The JSON report (`--format json`, schema in docs/report.md)."""
        return R.to_json(self, allow_inconclusive)

    def to_junit(self) -> str:
        """The JUnit XML report (`--junit`)."""
        return R.to_junit(self)

    def html(self) -> str:
        """The standalone HTML report page (`--html`): summary, cards, heatmaps, circuit graphs."""
        from sadlang.html import check_page

        return check_page([self], [self._views], [self._meta])

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the HTML report in a sandboxed frame (its scripts run there)."""
        page = html_lib.escape(self.html(), quote=True)
        return (f'<iframe srcdoc="{page}" style="width:100%;height:640px;border:1px solid #ddd" '
                f'sandbox="allow-scripts" title="sadlang report: {html_lib.escape(self.spec)}"></iframe>')

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<sadlang Report {self.spec} on {self.model}: {R.counts_text(R.summary_counts(self))}>"


def _spec_of(spec: str | Path | A.Spec) -> A.Spec:
    """A parsed spec from a Spec, a path, or spec text (a string with a newline, or one that does
    not name a .sad file)."""
    if isinstance(spec, A.Spec):
        return spec
    if isinstance(spec, Path) or ("\n" not in spec and spec.strip().endswith(".sad")):
        return parse_file(spec)
    return parse_spec(spec, "<python>")


def with_options(spec: A.Spec, options: dict[str, Any]) -> A.Spec:
    """`spec` with `option NAME = VALUE` lines replaced or added from keyword options (None
    writes `none`)."""
    if not options:
        return spec
    merged = dict(spec.options)
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
            raise SpecError(f"option {name} = {value!r}: a number, a name or None")
        # constructed as given: an int stays an int (messages show what the caller wrote)
        merged[name] = A.Option.model_construct(name=name, value="none" if value is None else value, loc=None)
    return spec.model_copy(update={"options": merged})


def check(spec: str | Path | A.Spec, model: Any = None, *, tokenizer: Any = None, explore: int = 0,
          progress: bool = False, **options: Any) -> Report:
    """Check every claim of `spec` (a path, spec text or a parsed Spec) and return the report.

    model:    None (the spec's `model` line), a reference, a LoadedModel, a transformers model
              or a TransformerLens bridge already loaded in the session
    tokenizer: the tokenizer of a transformers `model` (default: the one saved beside it)
    explore:  hypothesis examples per claim for the property search (`--explore`)
    progress: a progress bar per claim
    options:  override the spec's options, e.g. `confidence=None`, `batch_size=8`
    """
    from sadlang.html.views import collector
    from sadlang.models.loader import as_model
    from sadlang.plan.compile import compile_spec
    from sadlang.plan.validate import validate
    from sadlang.runner.executor import prepare, run_plan

    start = time.perf_counter()
    parsed = with_options(_spec_of(spec), options)
    if model is None or isinstance(model, (str, Path)):
        loaded, plan = prepare(parsed, None if model is None else str(model))
    else:
        checked = validate(parsed)                      # spec errors before any model work
        loaded = as_model(model, checked.settings.device, tokenizer, checked.settings.dtype)
        plan = compile_spec(parsed, loaded, checked=checked)
    views, observe = collector(parsed)
    base = run_plan(plan, loaded, explore=explore, progress=progress, observe=observe)
    out = Report(**dict(base))
    out._views = views
    out._meta = {"seconds": round(time.perf_counter() - start, 2),
                 "seeds": {name: ps.decl.seed for name, ps in plan.prompt_sets.items()}}
    return out
