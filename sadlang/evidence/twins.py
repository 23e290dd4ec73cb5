"""Counterfactual twins of a prompt set: the same templates and positions with slot values
rotated within a group (IO <-> S). What stays put under a swap does not follow content."""

from __future__ import annotations

from sadlang.lang import ast as A
from sadlang.models.loader import LoadedModel
from sadlang.prompts.build import BuiltPrompt, PromptError, build_prompt


def swapped_twins(model: LoadedModel, prompts: list[BuiltPrompt],
                  decl: A.PromptSetDecl) -> tuple[list[BuiltPrompt], list[int]]:
    """Each prompt with the values of the set's first multi-slot group rotated.

    Returns (twins, origin): origin[j] is the index in `prompts` of twin j. Prompts whose
    twin does not tokenize to the same length are left out (positions must align).
    """
    group = next((g for g in decl.slots if len(g.slots) >= 2), None)
    if group is None:
        return [], []
    twins, origin = [], []
    for i, p in enumerate(prompts):
        if not all(slot in p.assignment for slot in group.slots):
            continue
        values = [p.assignment[slot] for slot in group.slots]
        assignment = dict(p.assignment)
        assignment.update(zip(group.slots, values[1:] + values[:1], strict=True))
        template, _ = decl.templates[p.template_index]
        try:
            q = build_prompt(model, template, assignment, p.template_index, decl.answer, decl.against)
        except PromptError:
            continue
        if len(q.tokens) == len(p.tokens):
            twins.append(q)
            origin.append(i)
    return twins, origin
