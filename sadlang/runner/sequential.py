"""Sampling until decided: `sample N up to M`. A set with a cap is measured at the looks N, 2N,
4N, ... M (stats/sequential.py); each look draws the set afresh at that size (the same seed, so
a look's prompts begin with the previous look's), with its counterfactual and reference sets, and
re-measures only the claims the previous look left inconclusive. Every look of such a set is
judged at the per-look confidence 1 - (1 - c) / K, so that stopping at the first decided look
keeps the chance of any false verdict at most 1 - c."""

from __future__ import annotations

import dataclasses

from sadlang.models import LoadedModel
from sadlang.plan.compile import Plan, compile_spec
from sadlang.runner.verdict import Verdict
from sadlang.stats.sequential import looks, per_look_confidence


def base_of(plan: Plan, prompt_set: str) -> str:
    """The drawn set a prompt set grows with: itself, the source of a counterfactual set, or the
    set a reference draw belongs to."""
    ps = plan.prompt_sets[prompt_set]
    return ps.reference_of or ps.source or prompt_set


def capped(plan: Plan) -> dict[str, list[int]]:
    """Sets with `sample N up to M` -> their looks (sizes)."""
    return {name: looks(ps.decl.sample, ps.decl.sample_cap) for name, ps in plan.prompt_sets.items()
            if ps.decl.sample_cap is not None and ps.source is None and ps.reference_of is None}


def look_plan(plan: Plan, model: LoadedModel, base: str, size: int, n_looks: int) -> Plan:
    """The plan of one look: `base` drawn at `size` prompts, judged at the per-look confidence."""
    settings = plan.settings
    if settings.confidence is not None:
        settings = settings.model_copy(update={"confidence": per_look_confidence(settings.confidence, n_looks)})
    decl = plan.spec.prompt_sets[base].model_copy(update={"sample": size, "sample_cap": None})
    spec = plan.spec.model_copy(update={"prompt_sets": {**plan.spec.prompt_sets, base: decl}})
    grown = compile_spec(spec, model)
    return dataclasses.replace(grown, spec=plan.spec, settings=settings)


def mark_look(v: Verdict, k: int, sizes: list[int]) -> Verdict:
    """The verdict with the look that measured it, in words and in its details (the local and
    the Ray executor mark it alike)."""
    v.measured += (f"; look {k + 1} of {len(sizes)} (sample {sizes[0]} up to {sizes[-1]}: "
                   f"{sizes[k]} prompts{'' if k + 1 < len(sizes) else ', the cap'})")
    v.details["look"] = {"index": k + 1, "of": len(sizes), "prompts": sizes[k]}
    return v
