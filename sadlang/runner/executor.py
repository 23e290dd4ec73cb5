"""Run a compiled plan: evidence per claim, verdicts, a report."""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadlang.claims import kind_of
from sadlang.decomp.activations import ForwardCounter
from sadlang.errors import InternalError, SadError
from sadlang.evidence.records import Counterexample
from sadlang.evidence.store import PromptSetEvidence, Workspace
from sadlang.lang import ast as A
from sadlang.language import parse_file
from sadlang.models import LoadedModel
from sadlang.models.planning import planning_model
from sadlang.plan.compile import ClaimPlan, Plan, compile_spec
from sadlang.plan.model import load_spec_model
from sadlang.plan.validate import undrawable, validate
from sadlang.runner.evaluate import error_verdict, evaluate
from sadlang.runner.search import search
from sadlang.runner.verdict import Report, Verdict
from sadlang.runtime import between_work
from sadlang.trace.methods import DecomposeCounter


def prepare(spec: A.Spec, model_override: str | None = None, device_override: str | None = None,
            lenient: bool = False, phases: dict[str, float] | None = None) -> tuple[LoadedModel, Plan]:
    """Validate the spec (once), load its model and compile the spec against it. With a
    `phases` dict, also compute the model's QK forms up front and record the seconds of
    validate, load, QK forms and compile in it (`sadlang check --profile`)."""
    def timed(name: str, step: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = step()
        if phases is not None:
            phases[name] = time.perf_counter() - start
        return value

    checked = timed("validate", lambda: validate(spec, lenient))
    # model-dependent spec errors (heads out of range, multi-token names) from the config and
    # tokenizer alone, before any weight loads; the plan itself is compiled against the model
    light = planning_model(model_override or spec.model)
    if light is not None:
        timed("check against config", lambda: compile_spec(spec, light, lenient, checked))
    model = timed("load", lambda: load_spec_model(spec, model_override, device_override, lenient, checked))
    if phases is not None:        # otherwise the forms are read on first use, within a claim
        from sadlang.trace.tracer import forms_for

        timed("QK forms", lambda: forms_for(model))
    return model, timed("compile", lambda: compile_spec(spec, model, lenient, checked))


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
    pass_seconds: float = 0.0     # of `seconds`, in forward passes


def evidence_stores(plan: Plan, model: LoadedModel, progress: bool = False) -> dict[str, PromptSetEvidence]:
    """Fresh, lazy evidence for every prompt set of the plan, sharing one workspace."""
    stores = {name: PromptSetEvidence(model, ps.prompts, plan.options, plan.settings.batch_size, progress,
                                      name, decl=ps.decl)
              for name, ps in plan.prompt_sets.items()}
    workspace = Workspace(stores, plan.spec)
    for store in stores.values():
        store.workspace = workspace
    return stores


def search_limit(plan: Plan, claim: A.Claim, prompt_set: str, explore: int) -> int:
    """How many prompts to search for a counterexample to the claim (0: no search)."""
    limit = claim.quantifier.limit if claim.quantifier.kind == "forall" else explore
    kind = kind_of(claim.body)
    if limit and kind.per_prompt(claim.body) and kind.searchable and plan.prompt_sets[prompt_set].decl.templates:
        return limit
    return 0


def failure_message(exc: Exception) -> str:
    """What an error verdict says: a SadError's message; anything else is an engine bug that
    must not hide the other claims."""
    if isinstance(exc, SadError):
        return str(exc)
    return f"internal error: {InternalError(f'{type(exc).__name__}: {exc}')}"


def check_claim(plan: Plan, model: LoadedModel, stores: dict[str, PromptSetEvidence], claim: A.Claim,
                prompt_set: str, explore: int = 0) -> Verdict:
    """One claim's verdict (with its counterexample search); errors become error verdicts."""
    try:
        v = evaluate(stores[prompt_set], claim, plan.spec, plan.settings)
        limit = search_limit(plan, claim, prompt_set, explore)
        if limit:
            tried, counter = search_claim(model, plan, claim, prompt_set, limit)
            v = with_search(v, claim, tried, counter)
        elif explore and kind_of(claim.body).per_prompt(claim.body):
            why = undrawable(plan.spec, prompt_set) or (None if kind_of(claim.body).searchable else
                                                         f"a {claim.body.kind} claim is measured on its whole set")
            if why:
                v.details["searched"] = 0
                v.measured += f"; --explore searched nothing: {why}"
    except Exception as exc:
        v = error_verdict(plan.spec, claim, failure_message(exc))
    return v


def run_plan(plan: Plan, model: LoadedModel, explore: int = 0, progress: bool = False,
             only: set[str] | None = None, costs: list[ClaimCost] | None = None,
             observe: Callable[[PromptSetEvidence, A.Claim, Verdict], None] | None = None) -> Report:
    """Evaluate every claim (or those named in `only`). `explore` > 0 also searches each
    per-prompt claim for counterexamples with that many hypothesis examples. When `costs` is a
    list, each claim's cost is appended to it (evidence shared with earlier claims is free).
    `observe(evidence, claim, verdict)`, when given, is called after each claim with the
    evidence it was measured on (the HTML report reads its pictures from there). Claims on a set
    sampled `up to` a cap are measured look by look until decided (runner/sequential.py)."""
    from sadlang.runner import sequential as S

    stores = evidence_stores(plan, model, progress)
    verdicts: dict[str, Verdict] = {}
    spent: dict[str, ClaimCost] = {}
    items = [(c, cp) for c, cp in plan.claims if only is None or c.name in only]
    growing = S.capped(plan)
    bar = _progress(len(items), progress)

    def run(p: Plan, st: dict[str, PromptSetEvidence], claim: A.Claim, cp: ClaimPlan,
            look: tuple[int, list[int]] | None = None) -> Verdict:
        if bar is not None:
            bar.set_description(f"claim {claim.name}")
        between_work()             # torch threads for the cores other processes leave (runtime.py)
        start = (time.perf_counter(), ForwardCounter.calls, DecomposeCounter.calls, ForwardCounter.seconds)
        v = check_claim(p, model, st, claim, cp.prompt_set, explore)
        if look is not None:
            S.mark_look(v, *look)
        if observe is not None:
            observe(st[cp.prompt_set], claim, v)
        cost = ClaimCost(claim.name, cp.kind, cp.work, time.perf_counter() - start[0],
                         ForwardCounter.calls - start[1], DecomposeCounter.calls - start[2],
                         int(v.details.get("searched", 0)), ForwardCounter.seconds - start[3])
        before = spent.get(claim.name)
        if before is not None:       # an earlier look of the same claim
            cost = dataclasses.replace(cost, seconds=cost.seconds + before.seconds, passes=cost.passes + before.passes,
                                       decompositions=cost.decompositions + before.decompositions,
                                       pass_seconds=cost.pass_seconds + before.pass_seconds)
        spent[claim.name] = cost
        return v

    for claim, cp in items:
        base = S.base_of(plan, cp.prompt_set)
        if base in growing:
            continue
        verdicts[claim.name] = run(plan, stores, claim, cp)
        if bar is not None:
            bar.update(1)
    if growing:                   # no look reads the unsampled sets' evidence: let it go first
        stores.clear()
        gc.collect()
    for base, sizes in growing.items():
        pending = [(c, cp) for c, cp in items if S.base_of(plan, cp.prompt_set) == base]
        for k, size in enumerate(sizes):
            if not pending:
                break
            look = S.look_plan(plan, model, base, size, len(sizes))
            look_stores = evidence_stores(look, model, progress)
            left = []
            for claim, cp in pending:
                v = run(look, look_stores, claim, cp, (k, sizes))
                verdicts[claim.name] = v
                if v.status == "inconclusive":
                    left.append((claim, cp))
                elif bar is not None:
                    bar.update(1)
            pending = left
            del look_stores
            gc.collect()              # the stores reference each other through their workspace
    if bar is not None:
        bar.close()
    if costs is not None:
        costs.extend(spent[c.name] for c, _ in items)
    return report_of(plan, model, [verdicts[c.name] for c, _ in items])


def report_of(plan: Plan, model: LoadedModel, verdicts: list[Verdict]) -> Report:
    return Report(spec=plan.spec.file, model=model.info.name, model_fingerprint=model.info.fingerprint,
                  method=plan.options.method, verdicts=verdicts)


def search_claim(model: LoadedModel, plan: Plan, claim: A.Claim, prompt_set: str,
                 limit: int) -> tuple[int, Counterexample | None]:
    """(prompts tried, counterexample or None) of the property search over the set's templates."""
    decl = plan.prompt_sets[prompt_set].decl
    return search(model, plan.spec, decl, claim, plan.options, plan.settings, limit)


def with_search(v: Verdict, claim: A.Claim, tried: int, counter: Counterexample | None) -> Verdict:
    """The verdict with the search's outcome: a counterexample fails `all`/`forall` claims."""
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
