"""accpp: joint (component x singular direction) terms ranked by integrated gradients of the
softmax weight, then greedily deleted until the attention drops below the firing threshold.

Rows are (component c, singular index k); columns are keys s' <= d. For side "query"
X[c,k,s'] = a[c,d,k] b_tot[s',k] / scale; for side "key" X[c,k,s'] = a_tot[d,k] b[c,s',k] / scale.
Summing the rows gives the pre-cap scores of row d.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from sadlang.decomp.prompt import PromptDecomposition, softcap
from sadlang.trace.firing import Edge, Firing, Side, check_firing_args

if TYPE_CHECKING:
    from sadlang.trace.options import TraceOptions


def ig_softmax(X: torch.Tensor, j: int, steps: int, cap: float = 0.0) -> torch.Tensor:
    """Integrated gradients of softmax(cap(sum rows))_j along beta * X, beta in [0, 1].

    X: (N, n) float64. Returns (N,). Completeness: sum = p_j(S) - 1/n (exact without a cap;
    with a cap the chain rule factor cap'(beta S) is included).
    """
    # the path depends only on S, so IG is linear in each row: IG_i = X_i . integral of grad
    return X @ ig_path(X.sum(0), j, steps, cap)


def ig_path(S: torch.Tensor, j: int, steps: int, cap: float = 0.0) -> torch.Tensor:
    """(n,) the trapezoid integral over beta in [0, 1] of d softmax(cap(beta S))_j / dz at
    z = beta S: the IG of any row x of a decomposition of S is x . ig_path(S)."""
    betas = torch.linspace(0.0, 1.0, steps + 1, dtype=S.dtype, device=S.device)
    z = betas[:, None] * S[None, :]                               # (T, n)
    if cap > 0:
        dz = 1.0 - torch.tanh(z / cap) ** 2                        # d cap / dz
        z = softcap(z, cap)
    else:
        dz = torch.ones_like(z)
    p = torch.softmax(z, dim=-1)                                  # (T, n)
    grad = p[:, j:j + 1] * ((torch.arange(S.shape[0], device=S.device) == j).to(S.dtype) - p) * dz
    w = torch.full((steps + 1,), 1.0 / steps, dtype=S.dtype, device=S.device)
    w[0] = w[-1] = 0.5 / steps
    return (w[:, None] * grad).sum(0)


def greedy_delete(X: torch.Tensor, ig: torch.Tensor, j: int, a_clean: float, tau: float,
                  cap: float = 0.0, first: int = 512) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Remove rows of X in descending IG order until softmax(cap(sum))_j < tau.

    Returns (removed row indices in order, per-row drop in attention, reached)."""
    return greedy_rows(X.sum(0), lambda idx: X[idx], ig, j, a_clean, tau, cap, first)


def greedy_rows(S: torch.Tensor, rows: Callable[[torch.Tensor], torch.Tensor], ig: torch.Tensor, j: int,
                a_clean: float, tau: float, cap: float = 0.0,
                first: int = 512) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """`greedy_delete` of the rows of an implicit X with row sum S (n,): `rows(idx)` builds the
    rows idx (m, n) on demand. Vectorized with a cumulative sum over the top rows; the prefix
    examined grows 8x until the stop is found, so a firing explained by a few terms never
    builds, sorts or sums all N rows."""
    N = ig.shape[0]
    k = min(N, first)
    while True:
        order = torch.topk(ig, k, sorted=True).indices
        running = S[None, :] - torch.cumsum(rows(order), 0)        # (k, n) scores after removals
        att = torch.softmax(softcap(running, cap), dim=-1)[:, j]  # (k,)
        below = torch.nonzero(att < tau).flatten()
        if len(below) or k == N:
            break
        k = min(N, k * 8)
    reached = len(below) > 0
    m = int(below[0]) + 1 if reached else k
    prev = torch.cat([torch.tensor([a_clean], dtype=att.dtype, device=att.device), att[: m - 1]])
    return order[:m], prev - att[:m], reached


def decompose_accpp(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
                    opts: TraceOptions) -> Firing:
    check_firing_args(dec, layer, head, d, s)
    attn = float(dec.acts.pattern[layer, head, d, s])
    lo = dec.weights.key_start(layer, d)
    tau = opts.firing_threshold(d, keys=d + 1 - lo)
    f = Firing(layer, head, d, s, attn, tau, "accpp")
    a = dec.a(layer, head)[:, d].double()             # (C, r)
    b = dec.b(layer, head)[:, lo: d + 1].double()     # (C, K, r): the keys lo..d
    a_tot, b_tot = a.sum(0), b.sum(0)
    scale, cap = dec.weights.attn_scale, dec.weights.softcap
    r = a.shape[1]
    table = dec.table(layer)
    # X[(c, k), s'] is never built (C r K doubles, per side): its row sum, its IG (linear in
    # each row) and the rows the greedy deletion reaches are computed from a and b directly
    #   query: X[(c, k), s'] = a[c, k] b_tot[s', k] / scale
    #   key:   X[(c, k), s'] = a_tot[k] b[c, s', k] / scale
    S = (b_tot @ a_tot) / scale                                        # (K,) the scores of row d
    g = ig_path(S, s - lo, opts.ig_steps, cap)                          # (K,)
    row_ig: dict[Side, torch.Tensor] = {
        "query": (a * (b_tot.T @ g)[None, :] / scale).reshape(-1),
        "key": (a_tot[None, :] * torch.einsum("csk,s->ck", b, g) / scale).reshape(-1),
    }
    row_of: dict[Side, Callable[[torch.Tensor], torch.Tensor]] = {
        "query": lambda idx: (a[idx // r, idx % r][:, None] * b_tot.T[idx % r]) / scale,
        "key": lambda idx: (a_tot[idx % r][:, None] * b[idx // r, :, idx % r]) / scale,
    }
    sides: tuple[Side, ...] = ("query", "key")
    for side in sides:
        rows, drops, reached = greedy_rows(S, row_of[side], row_ig[side], s - lo, attn, tau, cap)
        if not reached:
            f.notes.append(f"{side}: removing every term did not push attention below {tau:.3g}")
        comp_ids, svs = torch.div(rows, r, rounding_mode="floor"), rows % r
        weights: dict[int, float] = {}
        sv_lists: dict[int, list[int]] = {}
        for c, k, drop in zip(comp_ids.tolist(), svs.tolist(), drops.tolist()):
            weights[c] = weights.get(c, 0.0) + drop
            sv_lists.setdefault(c, []).append(k)
        f.svs[side] = sorted({k for ks in sv_lists.values() for k in ks})
        f.totals[side] = float(sum(weights.values()))
        at = d if side == "query" else s
        for c, weight in weights.items():
            comp = table.describe(c)
            if comp.kind == "head" and comp.src is not None and comp.src > at:
                f.notes.append(f"{side} edge from {comp.label()} (source {comp.src} after {at}) dropped")
                continue
            f.edges.append(Edge(comp, side, at, weight, sv_lists[c]))
    return f
