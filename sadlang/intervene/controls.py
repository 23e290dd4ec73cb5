"""Random controls: the same intervention on a random subspace of the same size.

One size rule everywhere: the control removes as many of the head's *other* singular
directions as the edge has, or all of them when fewer remain, i.e. min(|S|, r - |S|).
"""

from __future__ import annotations

import torch

from sadlang.intervene.edits import EdgeEdit


def random_subspace(r: int, svs: list[int], gen: torch.Generator) -> list[int]:
    """Sorted random singular indices of an r-dim form, disjoint from `svs`, of size
    min(len(svs), r - len(svs)); one torch.randperm draw from `gen`."""
    others = [k for k in range(r) if k not in svs]
    size = min(len(svs), len(others))
    perm = torch.randperm(len(others), generator=gen)[:size]
    return sorted(others[int(j)] for j in perm)


def random_edit(edit: EdgeEdit, r: int, gen: torch.Generator) -> EdgeEdit:
    """The control of `edit`: the same edit on a random subspace (see `random_subspace`)."""
    return EdgeEdit(edit.layer, edit.head, edit.d, edit.s, edit.component, edit.side,
                    random_subspace(r, edit.svs, gen), edit.mode, edit.sign)
