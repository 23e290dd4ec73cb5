"""Counterfactual prompt sets aligned one to one with a clean set: `resample IO, S` draws other
pool values for those slots (Wang et al.'s ABC distribution), `swap IO S` exchanges two slots'
values. Twin i keeps prompt i's template and every other slot, and must have the same token
count and role positions."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt, PromptError, build_prompt

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel
    from sadlang.models.planning import PlanningModel


class AlignmentError(PromptError):
    """A counterfactual twin whose positions do not line up with its clean prompt."""


def _aligned(p: BuiltPrompt, q: BuiltPrompt) -> bool:
    return len(p.tokens) == len(q.tokens) and p.roles == q.roles


def counterfactual_prompts(model: LoadedModel | PlanningModel, clean: list[BuiltPrompt], source: A.PromptSetDecl,
                           change: A.PromptSetDecl, pools: dict[str, A.Pool]) -> list[BuiltPrompt]:
    """The twin of every clean prompt under `change` (its resample or swap line)."""
    groups = {slot: g for g in source.slots for slot in g.slots}
    if source.literals:
        raise AlignmentError(f"prompt set {source.name!r} holds literal `prompt` lines, which have no slots to "
                             f"resample or swap: a counterfactual set needs a set drawn from templates alone")
    out = []
    for i, p in enumerate(clean):
        template, _ = source.templates[p.template_index]
        candidates: list[dict[str, str]]
        if change.swap is not None:
            a, b = change.swap
            candidates = [{**p.assignment, a: p.assignment[b], b: p.assignment[a]}]
        else:
            rng = random.Random(change.resample_seed * 1_000_003 + i)
            candidates = [_resampled(p.assignment, change.resample, groups, pools, rng, change.resample_pool)
                          for _ in range(16)]
        twin, why = None, f"no value of {', '.join(change.resample)} gave a twin"
        for assignment in candidates:
            try:
                q = build_prompt(model, template, assignment, p.template_index, source.answer, source.against)
            except PromptError as exc:
                why = str(exc)
                continue
            if _aligned(p, q):
                twin = q
                break
            why = (f"its twin {q.text!r} has {len(q.tokens)} tokens and roles {q.roles}, the clean prompt "
                   f"{len(p.tokens)} and {p.roles}")
        if twin is None:
            raise AlignmentError(f"prompt {i} ({p.text!r}) has no aligned counterfactual: {why}")
        if twin.tokens == p.tokens:
            change_text = (f"swap {' '.join(change.swap)}" if change.swap is not None
                           else f"resample {', '.join(change.resample)}")
            raise AlignmentError(f"prompt {i} ({p.text!r}): `{change_text}` gives a twin equal to the clean prompt, "
                                 f"so an ablation from it would change nothing; its slots need pools with other "
                                 f"values to draw (or values that differ to swap)")
        out.append(twin)
    return out


def _resampled(assignment: dict[str, str], slots: list[str], groups: dict[str, A.SlotGroup],
               pools: dict[str, A.Pool], rng: random.Random, pool: str | None = None) -> dict[str, str]:
    """Other values for `slots` (from `pool`, or each slot's own pool), each different from its
    clean value and distinct within its group when the group is `distinct`."""
    new = dict(assignment)
    for slot in slots:
        g = groups[slot]
        paired = pools[pool or g.pool].pairs
        if paired is not None:                  # a pair moves together: both slots from another pair
            current = tuple(assignment[s] for s in g.slots)
            others = [pair for pair in paired if pair != current and pair[0] != current[0]]
            if others:
                new.update(zip(g.slots, rng.choice(others)))
            continue
        taken = {new[s] for s in g.slots if s != slot} if g.distinct else set()
        options = [v for v in pools[pool or g.pool].values if v != assignment[slot] and v not in taken]
        if options:
            new[slot] = rng.choice(options)
    return new
