"""pytest plugin: every claim of every collected .sad file is a test item.

    pytest specs/                 # collects specs/*.sad
    pytest specs/ioi.sad -k movers

Items are named `file.sad::claim_name` and carry the marker `sad` plus one marker per claim
kind (`sad_attends`, `sad_edge`, ...). The model of a spec is loaded once per process and
each spec is evaluated once (lazily, on its first item); failures print the same evidence as
`sadlang check`. A spec error fails collection with its file:line:col message. A spec whose
model cannot be loaded here (no weights offline) skips its items with the reason, unless
`--sad-strict`. Nothing is shared between processes, so pytest-xdist works.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from sadlang.errors import SadError, SpecError
from sadlang.runtime import calm_openmp

calm_openmp()      # the plugin loads with pytest, before test modules import torch (sadlang/runtime.py)

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle

    from sadlang.lang import ast as A
    from sadlang.runner.verdict import Verdict


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sadlang")
    group.addoption("--sad-explore", type=int, default=0, metavar="N",
                    help="search up to N generated prompts per per-prompt claim")
    group.addoption("--sad-model", default=None, help="override the model of every collected spec")
    group.addoption("--sad-strict", action="store_true",
                    help="a spec whose model cannot be loaded here fails instead of skipping")
    group.addoption("--sad-device", default=None, choices=["auto", "cpu", "cuda"],
                    help="override the device of every collected spec (default: its `option device`)")
    group.addoption("--sad-allow-inconclusive", action="store_true",
                    help="a claim its data cannot decide (inconclusive) is skipped with the reason instead of failing")
    group.addoption("--sad-ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="evaluate every collected spec on Ray actors (ADDRESS, else RAY_ADDRESS, else a local "
                         "instance); specs with `option executor = ray` do so anyway")


def pytest_configure(config: pytest.Config) -> None:
    import os

    from sadlang.claims import KINDS

    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("SADLANG_THREADS"):
        from sadlang.models.loader import use_default_threads
        use_default_threads()         # xdist workers split the cores (docs/benchmarks.md)

    config.addinivalue_line("markers", "sad: a claim collected from a .sad spec file")
    for name, kind in KINDS.items():
        config.addinivalue_line("markers", f"sad_{name}: a .sad claim of kind {name}: {kind.summary}")


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> SadFile | None:
    if file_path.suffix == ".sad":
        return SadFile.from_parent(parent, path=file_path)
    return None


class SpecCollectError(Exception):
    pass


class SadFile(pytest.File):
    def collect(self) -> Iterator[SadItem]:
        from sadlang.language import parse_file
        from sadlang.plan.validate import validate

        try:
            spec = parse_file(self.path)
            validate(spec)
        except SpecError as exc:
            raise pytest.Collector.CollectError(exc.render()) from None
        self._spec = spec
        self._report: dict[str, Verdict] | None = None
        self._failure: SadError | None = None
        for claim in spec.claims:
            item = SadItem.from_parent(self, name=claim.name, claim=claim)
            item.add_marker(pytest.mark.sad)
            item.add_marker(getattr(pytest.mark, f"sad_{claim.body.kind}"))
            yield item

    def report(self) -> dict[str, Verdict]:
        """Evaluate all claims of this spec once (model loads are memoized per process); a
        failure to load or compile is remembered too, so every item reports it at once."""
        if self._failure is not None:
            raise self._failure
        if self._report is None:
            from sadlang.runner.executor import prepare, run_plan

            cfg = self.config
            try:
                model, plan = prepare(self._spec, cfg.getoption("--sad-model"), cfg.getoption("--sad-device"))
            except SadError as exc:
                self._failure = exc
                raise
            from sadlang.runner.ray_executor import RayConfig, run_plan_ray

            explore = cfg.getoption("--sad-explore")
            ray = RayConfig.wanted(plan.settings, cfg.getoption("--sad-ray"))
            if ray is not None:
                try:
                    report = run_plan_ray(plan, model, ray, explore=explore,
                                          model_override=cfg.getoption("--sad-model"),
                                          device_override=cfg.getoption("--sad-device"))
                except SadError as exc:
                    self._failure = exc
                    raise
            else:
                report = run_plan(plan, model, explore=explore)
            self._report = {v.name: v for v in report.verdicts}
        return self._report


class SadClaimFailed(Exception):
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.measured)


class SadItem(pytest.Item):
    def __init__(self, *, claim: A.Claim, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim

    def runtest(self) -> None:
        from sadlang.errors import ModelLoadError

        try:
            verdict = cast(SadFile, self.parent).report()[self.claim.name]
        except ModelLoadError as exc:
            if self.config.getoption("--sad-strict"):
                raise SpecCollectError(f"error: {exc}") from None
            pytest.skip(f"model not loadable here: {str(exc).splitlines()[0]}")
        except SpecError as exc:
            raise SpecCollectError(exc.render()) from None
        except SadError as exc:
            raise SpecCollectError(f"error: {exc}") from None
        self.user_properties.append(("measured", verdict.measured))
        if verdict.status == "inconclusive" and self.config.getoption("--sad-allow-inconclusive"):
            pytest.skip(f"inconclusive: claimed {verdict.claimed}; measured {verdict.measured}")
        if verdict.status != "held":
            raise SadClaimFailed(verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: TracebackStyle | None = None) -> str | TerminalRepr:
        from sadlang.runner.report import format_verdict

        if isinstance(excinfo.value, SadClaimFailed):
            return format_verdict(excinfo.value.verdict)
        if isinstance(excinfo.value, SpecCollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        line = self.claim.loc.line - 1 if self.claim.loc else 0
        return self.path, line, self.name
