"""Value paths: which upstream heads and MLPs a head's output is made of, through its values.

The ACC trace follows attention decisions (queries and keys). A head can also matter to a circuit
only through what it writes into another head's values (a duplicate-token head feeding a name
mover's values): this module measures that, exactly, from the clean run's decomposition, and
extends a traced circuit with it (`circuit NAME = trace of SET ... with values above X`). It is an
extension beyond the ACC method, which explains attention, not what attention carries.

For head (l, h) at destination d, its output into the residual stream is

    o = sum over sources t  mix[l, h, d, t] * X_l(t) W_V W_O          (value bias folded into b_O)

with X_l(t) the normalised residual entering layer l (the frozen norm scale divided), an exact sum
of upstream components y_c(t) (sadlang/decomp/components.py). So o = sum_c o_c exactly, and the
**value share** of component c is its projection on o:

    share_c = o_c . o / |o|^2,       sum over all components (heads, MLPs, biases, embedding) = 1

An upstream head's share sums its components over source tokens. Shapes: L layers, H heads,
n positions, D d_model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from sadlang.decomp.components import ComponentTable
from sadlang.decomp.readers import component_dots

if TYPE_CHECKING:
    from sadlang.decomp.activations import PromptActivations
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.lang import ast as A
    from sadlang.models.weights import ModelWeights

Unit = tuple[int, int]                     # (layer, head), or (layer, MLP) for an MLP


def head_output(acts: PromptActivations, weights: ModelWeights, vo: torch.Tensor, layer: int, head: int,
                dest: int) -> torch.Tensor:
    """(D,) head (layer, head)'s write into the residual at `dest` (before b_O); vo: (L, H, n, D)
    value outputs (sadlang/decomp/readers.value_outputs)."""
    return acts.mix[layer, head, dest, : dest + 1] @ vo[layer, head, : dest + 1]


def value_shares(acts: PromptActivations, weights: ModelWeights, vo: torch.Tensor, layer: int, head: int,
                 dest: int) -> torch.Tensor:
    """(C - 1,) every component's value share of head (layer, head)'s output at `dest`, in
    `ComponentTable(layer, H, n)` order without the offset (module docstring); sums to 1. Zero
    everywhere for a head that writes nothing there."""
    o = head_output(acts, weights, vo, layer, head, dest)
    norm2 = o.dot(o)
    table = ComponentTable(layer, weights.n_heads, acts.n)
    if not bool(norm2 > 0):
        return torch.zeros(table.size - 1, dtype=o.dtype, device=o.device)
    reader = weights.W_V[layer, weights.kv(head)] @ (weights.W_O[layer, head] @ (o / norm2))       # (D,)
    positions = list(range(dest + 1))
    readers = acts.mix[layer, head, dest, : dest + 1, None] * reader[None]                         # (P, D)
    groups = torch.zeros(len(positions), dtype=torch.long, device=o.device)
    return component_dots(acts, weights, vo, layer, positions, readers, groups, 1)[0]


def unit_shares(shares: torch.Tensor, table: ComponentTable) -> dict[Unit, float]:
    """Per upstream head (summed over its source tokens) and MLP, its share (from value_shares)."""
    from sadlang.circuits.nodes import MLP

    H, n, L = table.n_heads, table.n, table.layer
    heads = shares[: table.n_head_components].reshape(L, H, n).sum(-1)
    out: dict[Unit, float] = {(layer, h): float(heads[layer, h]) for layer in range(L) for h in range(H)}
    out.update({(layer, MLP): float(shares[table.mlp_index(layer)]) for layer in range(L)})
    return out


def value_feeders(decl: A.CircuitDecl, traced: PromptSetEvidence, heads: list[Unit]) -> dict[Unit, set[Unit]]:
    """For `circuit NAME = trace of SET ... with values above X`: per traced head, the heads and
    MLPs whose value share of its output reaches X at its traced destination, in at least the
    circuit's frequency F of the prompts (a share of prompts, at least one prompt). A head traced
    at several destinations counts as fed when any one qualifies. Kept in SET's memo."""
    from sadlang.decomp.readers import value_outputs

    assert decl.value_share is not None
    key = ("value-feeders", decl.frequency, decl.top_edges, decl.value_share, tuple(heads))
    if key in traced.memo:
        return traced.memo[key]
    weights = traced.model.weights
    wanted = set(heads)
    counts: dict[tuple[Unit, Unit], int] = {}
    graphs = traced.graphs()
    for i, g in enumerate(graphs):
        acts = traced.acts(i)
        vo = value_outputs(acts, weights)
        found: set[tuple[Unit, Unit]] = set()
        dests = {(a["layer"], a["head"], a["dest"]) for _, a in g.nodes(data=True)
                 if a.get("kind") == "head" and (a["layer"], a["head"]) in wanted}
        for layer, head, dest in sorted(dests):
            shares = unit_shares(value_shares(acts, weights, vo, layer, head, dest),
                                 ComponentTable(layer, weights.n_heads, acts.n))
            found |= {(u, (layer, head)) for u, s in shares.items() if s >= decl.value_share}
        for pair in found:
            counts[pair] = counts.get(pair, 0) + 1
    need = max(1, math.ceil(decl.frequency * len(graphs) - 1e-9))
    out: dict[Unit, set[Unit]] = {}
    for (u, h), c in counts.items():
        if c >= need:
            out.setdefault(h, set()).add(u)
    traced.memo[key] = out
    return out
