"""Run a compiled plan: evidence per claim, verdicts, a report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadlang.check.evaluate import error_verdict, evaluate
from sadlang.check.search import search
from sadlang.check.verdict import Report, Verdict
from sadlang.claims import kind_of
from sadlang.decomp.activations import ForwardCounter
from sadlang.errors import InternalError, SadError
from sadlang.evidence.store import PromptSetEvidence, Workspace
from sadlang.lang import ast as A
from sadlang.lang.parser import parse_file
from sadlang.models import LoadedModel
from sadlang.plan.compile import Plan, compile_spec
from sadlang.plan.model import load_spec_model
from sadlang.plan.validate import validate
from sadlang.trace.methods import DecomposeCounter


def prepare(spec: A.Spec, model_override: str | None = None, device_override: str | None = None,
            lenient: bool = False) -> tuple[LoadedModel, Plan]:
    """Validate the spec (once), load its model and compile the spec against it."""
    checked = validate(spec, lenient)
    model = load_spec_model(spec, model_override, device_override, lenient, checked)
    return model, compile_spec(spec, model, lenient, checked)


def load_and_compile(path: str | Path, model_override: str | None = None,
                     device: str | None = None) -> tuple[A.Spec, LoadedModel, Plan]:
    """Parse, check and compile a spec file. Returns (spec, model, plan)."""
    spec = parse_file(path)
    model, plan = prepare(spec, model_override, device)
    return spec, model, plan


@dataclass
class ClaimCost:
    """What one claim cost: wall seconds, forward passes, firing decompositions, searched prompts."""

    name: str
    kind: str
    work: str
    seconds: float
    passes: int
    decompositions: int
    searched: int


def run_plan(plan: Plan, model: LoadedModel, explore: int = 0, progress: bool = False,
             only: set[str] | None = None, costs: list[ClaimCost] | None = None,
             observe: Callable[[PromptSetEvidence, A.Claim, Verdict], None] | None = None) -> Report:
    """Evaluate every claim (or those named in `only`). `explore` > 0 also searches each
    per-prompt claim for counterexamples with that many hypothesis examples. When `costs` is a
    list, each claim's cost is appended to it (evidence shared with earlier claims is free).
    `observe(evidence, claim, verdict)`, when given, is called after each claim with the
    evidence it was measured on (the HTML report reads its pictures from there)."""
    spec, settings = plan.spec, plan.settings
    stores = {name: PromptSetEvidence(model, ps.prompts, plan.options, settings.batch_size, progress,
                                      name, decl=ps.decl)
              for name, ps in plan.prompt_sets.items()}
    workspace = Workspace(stores, spec)
    for store in stores.values():
        store.workspace = workspace
    verdicts: list[Verdict] = []
    items = [(c, cp) for c, cp in plan.claims if only is None or c.name in only]
    bar = _progress(len(items), progress)
    for claim, cp in items:
        if bar is not None:
            bar.set_description(f"claim {claim.name}")
        start = (time.perf_counter(), ForwardCounter.calls, DecomposeCounter.calls)
        try:
            v = evaluate(stores[cp.prompt_set], claim, spec, settings)
            limit = claim.quantifier.limit if claim.quantifier.kind == "forall" else explore
            kind = kind_of(claim.body)
            if (limit and kind.per_prompt(claim.body) and kind.searchable
                    and plan.prompt_sets[cp.prompt_set].decl.templates):
                v = _with_search(v, model, plan, claim, cp.prompt_set, limit)
        except SadError as exc:
            v = error_verdict(spec, claim, str(exc))
        except Exception as exc:  # an engine bug must not hide the other claims
            v = error_verdict(spec, claim, f"internal error: {InternalError(f'{type(exc).__name__}: {exc}')}")
        verdicts.append(v)
        if observe is not None:
            observe(stores[cp.prompt_set], claim, v)
        if costs is not None:
            costs.append(ClaimCost(claim.name, cp.kind, cp.work, time.perf_counter() - start[0],
                                   ForwardCounter.calls - start[1], DecomposeCounter.calls - start[2],
                                   int(v.details.get("searched", 0))))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Report(spec=spec.file, model=model.info.name, model_fingerprint=model.info.fingerprint,
                  method=plan.options.method, verdicts=verdicts)


def _with_search(v: Verdict, model: LoadedModel, plan: Plan, claim: A.Claim, pset: str, limit: int) -> Verdict:
    decl = plan.prompt_sets[pset].decl
    tried, counter = search(model, plan.spec, decl, claim, plan.options, plan.settings, limit)
    v.details["searched"] = tried
    if counter is not None:
        v.counterexample = counter
        if claim.quantifier.kind in ("all", "forall"):
            v.status = "failed"
        v.measured += f"; search found a counterexample after {tried} prompts: {counter.text!r}"
    else:
        v.measured += f"; search found no counterexample in {tried} prompts"
    return v


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="claim", leave=False)


def check_file(path: str | Path, model_override: str | None = None, explore: int = 0,
               progress: bool = False, only: set[str] | None = None) -> Report:
    """Parse, compile and check one spec file."""
    _, model, plan = load_and_compile(path, model_override)
    return run_plan(plan, model, explore, progress, only)
