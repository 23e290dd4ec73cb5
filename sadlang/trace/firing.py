"""Explaining one attention decision (a firing): singular terms, signal subspace, edges.

A firing is (layer, head, d, s): head attends from destination d to source s with weight
A >= threshold. The explanation is a set of edges, each an upstream component whose share
of the selected signal (query side at d, key side at s) passed the method's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from sadlang.decomp.components import Component
from sadlang.decomp.prompt import PromptDecomposition
from sadlang.errors import TraceError
from sadlang.trace.select import cumulative_rule, smallest_prefix

if TYPE_CHECKING:
    from sadlang.trace.options import TraceOptions

Side = Literal["query", "key"]


@dataclass
class Edge:
    """An upstream component feeding a firing through one side.

    The upstream node sits at position `at` (d for query edges, s for key edges); for a head
    component its own firing is (at -> component.src). `svs` are the singular indices of the
    downstream head's QK form that carry the signal; `weight` is in the method's units
    (sad/acc: score units of the relative signal; accpp: attention probability removed).
    """

    component: Component
    side: Side
    at: int
    weight: float
    svs: list[int]


@dataclass
class Firing:
    layer: int
    head: int
    d: int
    s: int
    attention: float
    threshold: float
    method: str
    svs: dict[str, list[int]] = field(default_factory=dict)   # side -> kept singular indices
    totals: dict[str, float] = field(default_factory=dict)    # side -> explained total
    terms: list[float] = field(default_factory=list)          # per-SV (relative) terms
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.layer, self.head, self.d, self.s)

    def edges_from(self, side: Side | None = None) -> list[Edge]:
        return [e for e in self.edges if side is None or e.side == side]


def check_firing_args(dec: PromptDecomposition, layer: int, head: int, d: int, s: int) -> None:
    w = dec.weights
    if not 0 <= layer < w.n_layers:
        raise TraceError(f"layer {layer} is out of range: the model has layers 0..{w.n_layers - 1}")
    if not 0 <= head < w.n_heads:
        raise TraceError(f"head {head} is out of range: the model has heads 0..{w.n_heads - 1}")
    if not 0 <= d < dec.n:
        raise TraceError(f"destination position {d} is out of range 0..{dec.n - 1}")
    if not 0 <= s <= d:
        raise TraceError(f"source position {s} must be in 0..{d} (causal attention)")
    lo = w.key_start(layer, d)
    if s < lo:
        raise TraceError(f"source position {s} is outside the sliding window of layer {layer}: "
                         f"destination {d} attends to {lo}..{d}")


def relative_key_delta(b: torch.Tensor, s: int) -> torch.Tensor:
    """b: (..., n_keys, r) -> (..., r): value at key s minus the mean over the other keys."""
    n_keys = b.shape[-2]
    if n_keys == 1:
        return b[..., 0, :]
    total = b.sum(-2)
    own = b[..., s, :]
    return own - (total - own) / (n_keys - 1)


def linear_contributions(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
                         kept: list[int], coef_q: torch.Tensor, key_weights: torch.Tensor,
                         a_tot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each component's share of sum_{k in kept} (selected terms), on each side.

    Query side: sum_k a_k(y_c(d)) coef_q[k]; key side: sum_{s'} key_weights[s'] sum_k
    a_tot[k] b_k(y_c(s')). Both through reader vectors (no per-component coordinates).
    Returns two (C,) tensors in ComponentTable(layer) order, offsets included.
    """
    from sadlang.decomp.readers import component_dots
    from sadlang.decomp.rope import unapply_rope

    w, f, acts = dec.weights, dec.forms, dec.acts
    idx = torch.tensor(kept, dtype=torch.long, device=a_tot.device)
    scale = w.attn_scale
    kv = w.kv(head)
    cos, sin = acts.rope(layer)
    sq, sk = acts.qk_scale(layer, "q", head), acts.qk_scale(layer, "k", kv)   # QK-norm (Gemma-3)
    # query side: g_rot . q_rot over kept directions, moved back before the rotation
    g_rot = (f.Gq[layer, head][:, idx] @ coef_q[idx]) / scale                     # (r,)
    g = unapply_rope(g_rot[None], None if cos is None else cos[d:d + 1],
                     None if sin is None else sin[d:d + 1])[0]
    if sq is not None:
        g = g / sq[d]
    q_reader = (w.W_Q[layer, head] @ g)[None]                                    # (1, D)
    # key side: one reader per key position, weighted by the relative coefficients
    keys = list(range(d + 1))
    h_rot = (f.Gk[layer, head][:, idx] @ a_tot[idx]) / scale                     # (r,)
    h_rot = key_weights[:, None] * h_rot[None, :]                                 # (d+1, r)
    h = unapply_rope(h_rot, None if cos is None else cos[: d + 1], None if sin is None else sin[: d + 1])
    if sk is not None:
        h = h / sk[: d + 1, None]
    k_readers = h @ w.W_K[layer, kv].T                                            # (d+1, D)
    # both sides in one pass over the value outputs: reader 0 is the query's, 1..d+1 the keys'
    groups = torch.ones(d + 2, dtype=torch.long, device=a_tot.device)
    groups[0] = 0
    qk = component_dots(acts, w, dec.vo, layer, [d, *keys], torch.cat([q_reader, k_readers]), groups, 2)
    q = torch.cat([qk[0], (w.b_Q[layer, head] @ g).reshape(1)])
    k = torch.cat([qk[1], (h @ w.b_K[layer, kv]).sum().reshape(1)])
    return q, k


def decompose_linear(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
                     opts: TraceOptions, relative: bool = True) -> Firing:
    """sad (relative=False: the raw score) / acc (relative=True: the score minus the mean of
    the other keys): select singular terms, then split their sum over components per side."""
    check_firing_args(dec, layer, head, d, s)
    attn = float(dec.acts.pattern[layer, head, d, s])
    w = dec.weights
    lo, n_keys = w.key_start(layer, d), w.n_keys(layer, d)
    f = Firing(layer, head, d, s, attn, opts.firing_threshold(d, keys=n_keys), opts.method)
    a_tot = dec.a_total(layer, head)[d]                  # (r,)
    b_tot = dec.b_total(layer, head)[: d + 1]            # (d+1, r)
    scale = w.attn_scale
    # relative attention: key s minus the mean of the other keys (those in the window)
    key_weights = torch.zeros(d + 1, dtype=a_tot.dtype, device=a_tot.device)
    if not relative:
        key_weights[s] = 1.0
    else:
        key_weights[lo:] = -1.0 / (n_keys - 1) if n_keys > 1 else 0.0
        key_weights[s] = 1.0
    db_tot = key_weights @ b_tot                          # (r,)
    terms = a_tot * db_tot / scale                        # (r,)
    f.terms = terms.tolist()
    kept = smallest_prefix(terms, opts.term_fraction)
    if not kept:
        f.notes.append(f"{'relative' if relative else 'raw'} score total "
                       f"{float(terms.sum()):.4g} <= 0: no signal to trace")
        return f
    q_contrib, k_contrib = linear_contributions(dec, layer, head, d, s, kept, db_tot, key_weights, a_tot)
    table = dec.table(layer)
    sides: tuple[tuple[Side, torch.Tensor, int], ...] = (("query", q_contrib, d), ("key", k_contrib, s))
    for side, contrib, at in sides:
        f.svs[side] = list(kept)
        f.totals[side] = float(contrib.sum())
        for c in cumulative_rule(contrib, opts.edge_fraction):
            comp = table.describe(c)
            if comp.kind == "head" and comp.src is not None and comp.src > at:
                f.notes.append(f"{side} edge from {comp.label()} (source {comp.src} after {at}) dropped")
                continue
            f.edges.append(Edge(comp, side, at, float(contrib[c]), list(kept)))
    return f
