"""Fast linear contributions: every component's dot product with reader vectors.

Any linear functional of the normalized residual at a set of positions,
f(X) = sum_p X_l(p) . w(p), splits exactly over components: f = sum_c sum_p y_c(p) . w(p).
Computing it needs only the per-prompt value outputs VO[l', h', t] = v_t W_O[l', h'] and one
matrix product, instead of every component's full coordinates.
"""

from __future__ import annotations

import torch

from sadlang.decomp.activations import PromptActivations
from sadlang.models.weights import ModelWeights


def value_outputs(acts: PromptActivations, weights: ModelWeights) -> torch.Tensor:
    """(L, H, n, D): each head's output per unit attention to source t: v_t W_O[l, h]."""
    v = acts.v.repeat_interleave(weights.group, dim=2)               # (L, n, H, r)
    return torch.einsum("lthr,lhrd->lhtd", v, weights.W_O)


def component_dots(acts: PromptActivations, weights: ModelWeights, vo: torch.Tensor, layer: int,
                   positions: list[int], readers: torch.Tensor, groups: torch.Tensor,
                   n_groups: int) -> torch.Tensor:
    """Each component's share of F_g = sum_{i in group g} X_layer(p_i) . readers[i]
    (p_i = positions[i], g = groups[i]), for several functionals at once: one pass over the
    value outputs serves them all (the tracer's query and key sides share it).

    readers: (P, D), applied to the *normalized* residual (the frozen ln1 scale is divided
    here). Returns (n_groups, C - 1) in `ComponentTable(layer, H, n)` order, without the
    offset slot.
    """
    pos = torch.tensor(positions, dtype=torch.long, device=readers.device)
    w = readers / acts.ln_scale[layer, pos][:, None]                  # (P, D)
    G = torch.zeros(len(positions), n_groups, dtype=w.dtype, device=w.device)
    G[torch.arange(len(positions), device=w.device), groups] = 1.0    # (P, g)
    parts = []
    if layer > 0:
        A = acts.mix[:layer][:, :, pos, :]                            # (l, H, P, t)
        vw = vo[:layer] @ w.T                                         # (l, H, t, P)
        parts.append(((A.transpose(-1, -2) * vw) @ G).reshape(-1, n_groups))            # (l H t, g)
        parts.append(torch.einsum("lpd,pd->lp", acts.mlp_out[:layer][:, pos], w) @ G)   # (l, g)
        parts.append((weights.b_O[:layer] @ w.T) @ G)                                   # (l, g)
    parts.append(((acts.embed[pos] * w).sum(-1) @ G)[None])           # (1, g)
    return torch.cat(parts).T
