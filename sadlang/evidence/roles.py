"""Where a role is in one prompt, and which components a pattern names."""

from __future__ import annotations

from sadlang.decomp.components import Component
from sadlang.errors import SadError
from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt


class RoleError(SadError):
    """A role that does not exist in one prompt (the claim fails for that prompt)."""


def resolve(pos: A.Pos, prompt: BuiltPrompt) -> int:
    """Position of a role in one prompt (BOS is 0)."""
    if pos.word is not None:
        found = next((i for i in range(1, len(prompt.tokens)) if prompt.token_texts[i].strip() == pos.word.strip()),
                     None)
        if found is None:
            raise RoleError(f"word {pos.word!r} does not occur in {prompt.text!r}")
        base = found
    elif pos.role == "end":
        base = prompt.end
    elif pos.role == "bos":
        base = 0
    else:
        occ = prompt.roles.get(pos.role or "", [])
        if len(occ) < pos.occurrence:
            raise RoleError(f"role {pos.text()} does not occur in {prompt.text!r}")
        base = occ[pos.occurrence - 1]
    p = base + pos.shift
    if not 0 <= p <= prompt.end:
        raise RoleError(f"position {pos.text()} = {p} is outside the prompt (0..{prompt.end})")
    return p


def comp_matches(ref: A.CompRef, comp: Component) -> bool:
    """Does the pattern `ref` (`20.*`, `mlp 3`, `embed`...) name component `comp`?"""
    if ref.kind != comp.kind:
        return False
    if ref.kind == "head":
        return ref.head is not None and comp.head is not None and ref.head.matches(comp.layer, comp.head)
    if ref.kind in ("mlp", "bias"):
        return ref.layer == comp.layer
    return True
