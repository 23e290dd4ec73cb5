"""Edge signals: an upstream component's output inside the selected singular subspace.

In the frame tracing used (normalized by the frozen ln1 scale, rotated to the position,
biases lifted), a query-side edge's signal is sum_{k in S} (a_k / S_k) u_k and a key-side
edge's signal is sum_{k in S} b_k v_k: vectors in d_model whose singular coordinates are
exactly the traced terms.
"""

from __future__ import annotations

import torch

from sadlang.decomp.components import Component
from sadlang.decomp.prompt import PromptDecomposition


def component_index(dec: PromptDecomposition, layer: int, comp: Component) -> int:
    t = dec.table(layer)
    if comp.kind == "head":
        return t.head_index(*comp.head_src)
    if comp.kind == "mlp":
        return t.mlp_index(comp.layer)
    if comp.kind == "bias":
        return t.bias_index(comp.layer)
    if comp.kind == "embed":
        return t.embed_index
    return t.offset_index


def edge_coords(dec: PromptDecomposition, layer: int, head: int, comp: Component, side: str,
                at: int) -> torch.Tensor:
    """(r,) singular coordinates of one component at position `at` (a_k or b_k)."""
    c = component_index(dec, layer, comp)
    if side == "query":
        return dec.a(layer, head)[c, at]
    return dec.b(layer, head)[c, at]


def edge_signal(dec: PromptDecomposition, layer: int, head: int, comp: Component, side: str,
                at: int, svs: list[int]) -> torch.Tensor:
    """(D,) the edge's signal vector in the traced (rotated, normalized) frame."""
    f = dec.forms
    coords = edge_coords(dec, layer, head, comp, side, at)
    idx = torch.tensor(svs, dtype=torch.long, device=coords.device)
    if side == "query":
        return f.U[layer, head][:, idx] @ (coords[idx] / f.S[layer, head][idx].clamp_min(1e-12))
    return f.V[layer, head][:, idx] @ coords[idx]


def residual_delta(dec: PromptDecomposition, layer: int, head: int, coords_kept: torch.Tensor,
                   side: str, at: int) -> torch.Tensor:
    """(D,) the smallest residual-stream vector (unnormalized, unrotated) whose singular
    coordinates in head (layer, head) at position `at` are `coords_kept` (others zero)."""
    from sadlang.decomp.rope import unapply_rope

    f, acts = dec.forms, dec.acts
    if side == "query":
        rot = coords_kept @ f.Gk[layer, head].T          # q_rot' = a' Gq^-1 = a' Gk^T
        pinv = f.WQ_pinv[layer, head]
    else:
        rot = coords_kept @ f.Gq[layer, head].T          # k_rot' = b' Gk^-1 = b' Gq^T
        pinv = f.WK_pinv[layer, head]
    cos, sin = acts.rope(layer)
    cos = cos[at:at + 1] if cos is not None else None
    sin = sin[at:at + 1] if sin is not None else None
    plain = unapply_rope(rot[None], cos, sin)[0]
    qk = acts.qk_scale(layer, "q" if side == "query" else "k",
                       head if side == "query" else dec.weights.kv(head))
    if qk is not None:                                   # undo the frozen QK-norm scale too
        plain = plain * qk[at]
    return acts.ln_scale[layer, at] * (plain @ pinv)
