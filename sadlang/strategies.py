"""Hypothesis strategies over a spec's prompt templates.

    from sadlang.strategies import prompts_from
    @given(prompts_from("specs/ioi.sad", "ioi"))
    def test_something(prompt): ...

A drawn prompt is a `BuiltPrompt` (text, tokens, roles, answer ids). Shrinking moves toward
the first template and the earliest pool values, so a counterexample comes out minimal.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sadlang.errors import SpecError
from sadlang.lang import ast as A
from sadlang.models.loader import LoadedModel
from sadlang.prompts.build import BuiltPrompt, PromptError, build_prompt


def assignment_strategy(spec: A.Spec, decl: A.PromptSetDecl) -> st.SearchStrategy[tuple[int, dict[str, str]]]:
    """(template index, slot -> value) respecting distinctness."""
    parts: list[st.SearchStrategy[Any]] = [st.integers(0, max(len(decl.templates) - 1, 0))]
    for g in decl.slots:
        pool = spec.pools[g.pool]
        size = 1 if pool.pairs is not None else len(g.slots)        # a pair fills its two slots at once
        parts.append(st.lists(st.integers(0, len(pool.values) - 1), min_size=size, max_size=size,
                              unique=g.distinct))

    def combine(draw_parts: tuple[Any, ...]) -> tuple[int, dict[str, str]]:
        t, *picks = draw_parts
        assignment: dict[str, str] = {}
        for g, idx in zip(decl.slots, picks):
            pool = spec.pools[g.pool]
            if pool.pairs is not None:
                assignment.update(zip(g.slots, pool.pairs[idx[0]]))
            else:
                assignment.update({slot: pool.values[k] for slot, k in zip(g.slots, idx)})
        return t, assignment

    return st.tuples(*parts).map(combine)


def prompt_strategy(spec: A.Spec, decl: A.PromptSetDecl,
                    model: LoadedModel) -> st.SearchStrategy[BuiltPrompt]:
    """BuiltPrompts of a prompt set (values that are not single tokens are filtered out)."""
    def build(ta: tuple[int, dict[str, str]]) -> BuiltPrompt | None:
        t, assignment = ta
        tpl, _ = decl.templates[t]
        try:
            return build_prompt(model, tpl, assignment, t, decl.answer, decl.against)
        except PromptError:
            return None
    return assignment_strategy(spec, decl).map(build).filter(lambda p: p is not None)  # type: ignore[return-value]


def prompts_from(spec_path: str, prompt_set: str | None = None,
                 model: LoadedModel | None = None) -> st.SearchStrategy[BuiltPrompt]:
    """Strategy of prompts from a prompt set of a .sad file (loads the spec's model if needed)."""
    from sadlang.language import parse_file
    from sadlang.plan.model import load_spec_model

    spec = parse_file(spec_path)
    name = prompt_set or next(iter(spec.prompt_sets))
    if name not in spec.prompt_sets:
        raise SpecError(f"{spec_path} has no prompt set {name!r}; it has {', '.join(sorted(spec.prompt_sets))}")
    model = model or load_spec_model(spec)
    return prompt_strategy(spec, spec.prompt_sets[name], model)
