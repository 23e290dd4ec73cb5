"""Run a compiled plan: evidence per claim, verdicts, a report."""

from __future__ import annotations

from pathlib import Path

from sadlang.check.batch import PromptBatch
from sadlang.check.evaluate import claimed_text, evaluate, is_per_prompt
from sadlang.check.search import search
from sadlang.check.verdict import Report, Verdict
from sadlang.errors import SadError
from sadlang.lang import ast as A
from sadlang.lang.parser import parse_file
from sadlang.models import load_model
from sadlang.plan.compile import Plan, check_declarations, compile_spec, spec_settings


def load_and_compile(path: str | Path, model_override: str | None = None, device: str | None = None):
    """Parse, check and compile a spec file. Returns (spec, model, plan)."""
    spec = parse_file(path)
    _, settings = spec_settings(spec)
    check_declarations(spec)
    model = load_model(model_override or spec.model, device or str(settings["device"]))
    return spec, model, compile_spec(spec, model)


def run_plan(plan: Plan, model, explore: int = 0, progress: bool = False,
             only: set[str] | None = None) -> Report:
    """Evaluate every claim (or those named in `only`). `explore` > 0 also searches each
    per-prompt claim for counterexamples with that many hypothesis examples."""
    spec = plan.spec
    batches = {name: PromptBatch(model, ps.prompts, plan.options, int(plan.settings["batch_size"]), progress,
                                 name)
               for name, ps in plan.prompt_sets.items()}
    swaps: dict[str, PromptBatch | None] = {}

    def swapped(name: str) -> PromptBatch | None:
        if name not in swaps:
            swaps[name] = swapped_batch(model, plan, name)
        return swaps[name]

    ctx = {"settings": plan.settings, "swapped": swapped}
    verdicts: list[Verdict] = []
    items = [(c, cp) for c, cp in plan.claims if only is None or c.name in only]
    bar = _progress(len(items), progress)
    for claim, cp in items:
        if bar is not None:
            bar.set_description(f"claim {claim.name}")
        try:
            v = evaluate(batches[cp.prompt_set], claim, spec, ctx)
            limit = claim.quantifier.limit if claim.quantifier.kind == "forall" else explore
            if limit and is_per_prompt(claim) and plan.prompt_sets[cp.prompt_set].decl.templates:
                v = _with_search(v, model, plan, claim, cp.prompt_set, ctx, limit)
        except SadError as exc:
            v = _error(spec, claim, str(exc))
        except Exception as exc:  # an engine bug must not hide the other claims
            v = _error(spec, claim, f"internal error: {type(exc).__name__}: {exc}")
        verdicts.append(v)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Report(spec=spec.file, model=model.info.name, model_fingerprint=model.info.fingerprint,
                  method=plan.options.method, verdicts=verdicts)


def swapped_batch(model, plan: Plan, name: str) -> PromptBatch | None:
    """The prompt set with the values of its first multi-slot group rotated (IO <-> S), same
    templates and positions: what stays put under it does not depend on slot content."""
    from sadlang.prompts.build import PromptError, build_prompt

    ps = plan.prompt_sets[name]
    group = next((g for g in ps.decl.slots if len(g.slots) >= 2), None)
    if group is None:
        return None
    prompts, origin = [], []
    for i, p in enumerate(ps.prompts):
        if not all(slot in p.assignment for slot in group.slots):
            continue
        values = [p.assignment[slot] for slot in group.slots]
        assignment = dict(p.assignment)
        assignment.update(zip(group.slots, values[1:] + values[:1]))
        template, _ = ps.decl.templates[p.template_index]
        try:
            q = build_prompt(model, template, assignment, p.template_index, ps.decl.answer, ps.decl.against)
        except PromptError:
            continue
        if len(q.tokens) == len(p.tokens):
            prompts.append(q)
            origin.append(i)
    if not prompts:
        return None
    batch = PromptBatch(model, prompts, plan.options, int(plan.settings["batch_size"]), name=f"{name} (swapped)")
    batch.origin = origin
    return batch


def _with_search(v: Verdict, model, plan: Plan, claim: A.Claim, pset: str, ctx, limit: int) -> Verdict:
    decl = plan.prompt_sets[pset].decl
    tried, counter = search(model, plan.spec, decl, claim, plan.options, ctx, limit,
                            int(plan.settings["seed"]))
    v.details["searched"] = tried
    if counter is not None:
        v.counterexample = counter
        if claim.quantifier.kind in ("all", "forall"):
            v.status = "failed"
        v.measured += f"; search found a counterexample after {tried} prompts: {counter.text!r}"
    else:
        v.measured += f"; search found no counterexample in {tried} prompts"
    return v


def _error(spec, claim: A.Claim, message: str) -> Verdict:
    loc = claim.loc
    return Verdict(name=claim.name, kind=claim.body.kind, claim=claim.source_line,
                   location=f"{spec.file}:{loc.line}:{loc.column}" if loc else spec.file, status="error",
                   claimed=claimed_text(claim), measured=message)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="claim", leave=False)


def check_file(path: str | Path, model_override: str | None = None, explore: int = 0,
               progress: bool = False, only: set[str] | None = None) -> Report:
    """Parse, compile and check one spec file."""
    _, model, plan = load_and_compile(path, model_override)
    return run_plan(plan, model, explore, progress, only)
