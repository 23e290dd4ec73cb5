"""Shrinking a counterexample in shared passes.

A drawn prompt is a point: its template index and, per slot group, the pool indices it picked.
Points are ordered lexicographically (template first, then the groups' picks in declaration
order), so the least point is the first template with the earliest pool values: the minimal
counterexample. From a failing point, one round builds every point one step simpler (an earlier
template; or one pick moved to any earlier value its group allows), measures them all in the
set's batched forward passes, and moves to the least one that still fails. The search stops at a
point none of whose simpler neighbours fails: a few rounds, each a few batched passes, where a
one-prompt-at-a-time shrinker pays one pass per candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sadlang.lang import ast as A

if TYPE_CHECKING:
    from sadlang.evidence.records import PromptEvidence
    from sadlang.models.loader import LoadedModel
    from sadlang.prompts.build import BuiltPrompt

Point = tuple[int, tuple[tuple[int, ...], ...]]     # (template, per slot group: pool indices)


@dataclass
class Space:
    """The points of one prompt set: its templates and slot groups over the spec's pools."""

    spec: A.Spec
    decl: A.PromptSetDecl

    def rows(self, g: A.SlotGroup) -> list:
        """What one pick of the group takes: a value, or a pair of a paired pool (both slots)."""
        return self.spec.pools[g.pool].rows()

    def point_of(self, template: int, assignment: dict[str, str]) -> Point:
        """The point of a drawn (template, slot -> value)."""
        picks: list[tuple[int, ...]] = []
        for g in self.decl.slots:
            rows = self.rows(g)
            if self.spec.pools[g.pool].pairs is not None:
                picks.append((rows.index(tuple(assignment[s] for s in g.slots)),))
            else:
                picks.append(tuple(rows.index(assignment[s]) for s in g.slots))
        return template, tuple(picks)

    def assignment(self, point: Point) -> tuple[int, dict[str, str]]:
        t, picks = point
        out: dict[str, str] = {}
        for g, idx in zip(self.decl.slots, picks):
            rows = self.rows(g)
            if self.spec.pools[g.pool].pairs is not None:
                out.update(zip(g.slots, rows[idx[0]]))
            else:
                out.update({s: rows[k] for s, k in zip(g.slots, idx)})
        return t, out

    def build(self, model: LoadedModel, point: Point) -> BuiltPrompt:
        """The prompt of a point (PromptError when a value is not one token, or the prompt too long)."""
        from sadlang.prompts.build import build_prompt

        t, assignment = self.assignment(point)
        decl = self.decl
        return build_prompt(model, decl.templates[t][0], assignment, t, decl.answer, decl.against)

    def simpler(self, point: Point) -> list[Point]:
        """Every point one step simpler than `point`, in order (least first)."""
        t, picks = point
        out: list[Point] = [(u, picks) for u in range(t)]
        for gi, (g, idx) in enumerate(zip(self.decl.slots, picks)):
            for k, value in enumerate(idx):
                for lower in range(value):
                    if g.distinct and lower in idx:
                        continue
                    moved = (*idx[:k], lower, *idx[k + 1:])
                    out.append((t, (*picks[:gi], moved, *picks[gi + 1:])))
        return sorted(out)


def shrink(model: LoadedModel, space: Space, start: Point,
           failing: Callable[[list[BuiltPrompt]], list[PromptEvidence]]) -> tuple[int, Point, PromptEvidence | None]:
    """(prompts measured, the least failing point reached, its evidence) from a failing `start`.
    `failing(prompts)` measures prompts in shared passes and returns the evidence of those that
    fail (their `index` is the position in `prompts`)."""
    from sadlang.prompts.build import PromptError

    point, evidence, tried = start, None, 0
    while True:
        built: list[tuple[Point, BuiltPrompt]] = []
        for cand in space.simpler(point):
            try:
                built.append((cand, space.build(model, cand)))
            except PromptError:          # a value that is not one token, a prompt too long: not a prompt
                continue
        if not built:
            return tried, point, evidence
        tried += len(built)
        fails = failing([p for _, p in built])
        if not fails:
            return tried, point, evidence
        best = min(fails, key=lambda e: built[e.index][0])
        point, evidence = built[best.index][0], best
