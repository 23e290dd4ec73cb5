"""Property search over a prompt set's templates and pools for a prompt that breaks a
per-prompt claim. First `limit` prompts are drawn (seeded) and measured together, in shared
batched passes; only when one fails does hypothesis search again, one prompt at a time, to
shrink a counterexample to a minimal prompt (first template, earliest pool values)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Found

from sadlang.claims import kind_of
from sadlang.evidence.records import PromptEvidence
from sadlang.evidence.store import PromptSetEvidence
from sadlang.lang import ast as A
from sadlang.settings import Settings
from sadlang.strategies import prompt_strategy
from sadlang.trace.options import TraceOptions

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel
    from sadlang.prompts.build import BuiltPrompt


class _Counterexample(AssertionError):
    pass


def drawn_prompts(model: LoadedModel, spec: A.Spec, decl: A.PromptSetDecl, n: int, seed: int) -> list:
    """n prompts of the set drawn with `seed` (values that are not single tokens are skipped)."""
    from sadlang.prompts.build import PromptError, build_prompt, sample_assignments

    groups = [(g.slots, spec.pools[g.pool].rows(), g.distinct) for g in decl.slots]
    out = []
    for t, assignment in sample_assignments(groups, n, seed, len(decl.templates)):
        try:
            out.append(build_prompt(model, decl.templates[t][0], assignment, t, decl.answer, decl.against))
        except PromptError:
            continue
    return out


def search(model: LoadedModel, spec: A.Spec, decl: A.PromptSetDecl, claim: A.Claim, opts: TraceOptions,
           config: Settings, limit: int) -> tuple[int, PromptEvidence | None]:
    """Try up to `limit` drawn prompts in shared passes; on a failure, shrink with hypothesis.
    Returns (prompts tried, minimal counterexample or None)."""
    kind = kind_of(claim.body)
    prompts = drawn_prompts(model, spec, decl, limit, config.seed + 1)
    batch = PromptSetEvidence(model, prompts, opts, config.batch_size)
    failing = [e for e in kind.measure(batch, claim.body, list(range(len(prompts))), config) if not e.passed]
    if not failing:
        return len(prompts), None
    tried, counter = _shrinking_search(model, spec, decl, claim, opts, config, limit)
    if counter is None:        # hypothesis drew no failing prompt: report the drawn one, unshrunk
        counter = failing[0]
        counter.detail = _with_tokens(model, prompts[counter.index], counter.detail)
        counter.index = 0
    return len(prompts) + tried, counter


def _with_tokens(model: LoadedModel, prompt: BuiltPrompt, detail: str) -> str:
    roles = ", ".join(f"{k}={v}" for k, v in sorted(prompt.roles.items()))
    return f"{detail}; tokens {model.decode(prompt.tokens)}; roles {roles}"


def _shrinking_search(model: LoadedModel, spec: A.Spec, decl: A.PromptSetDecl, claim: A.Claim, opts: TraceOptions,
                      config: Settings, limit: int) -> tuple[int, PromptEvidence | None]:
    """Hypothesis over the templates, one prompt per example, shrinking the first failure."""
    kind = kind_of(claim.body)
    tried = 0
    last_fail: dict[str, PromptEvidence] = {}

    def check(prompt: BuiltPrompt) -> None:
        nonlocal tried
        tried += 1
        ev = kind.measure(PromptSetEvidence(model, [prompt], opts), claim.body, [0], config)[0]
        if not ev.passed:
            ev.detail = _with_tokens(model, prompt, ev.detail)
            last_fail["ev"] = ev
            raise _Counterexample(ev.detail)

    runner = settings(max_examples=limit, derandomize=False, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink])(
        seed(config.seed)(given(prompt_strategy(spec, decl, model))(check)))
    try:
        runner()
    except _Counterexample:
        return tried, last_fail.get("ev")
    except Found:  # pragma: no cover
        return tried, last_fail.get("ev")
    return tried, None
