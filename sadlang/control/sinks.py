"""Measure how a head sinks onto a default token, and whether a control signal causes it.

For head (l, h) and a sink position P (BOS by default), in every prompt and at every
destination d >= 1 where the head fires onto P, the firing is decomposed and its
query-side signal taken: the destination residual inside the kept singular directions,
sum_{k in S} (a_k / S_k) u_k, unit-normalized. A head's signals are **control** when they
are nearly the same across prompts and destinations (mean pairwise cosine >=
`control_consistency`): content-independent by construction, since prompts differ in
content. Their normalized mean is the head's control signal. Heads whose control signals
lie within `prototype_cut` cosine distance (average linkage) share a prototype.

Firings are decomposed with the spec's method, through the evidence store (so a firing the
trace already explained is reused), except for a method that cannot explain attention to
BOS (`sad`): then `acc` is used and `sink_options` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from sadlang.decomp.prompt import softcap
from sadlang.evidence.store import PromptSetEvidence
from sadlang.intervene.controls import random_subspace
from sadlang.trace.methods import get_method
from sadlang.trace.options import TraceOptions

if TYPE_CHECKING:
    from sadlang.prompts.build import BuiltPrompt


@dataclass
class SinkProfile:
    layer: int
    head: int
    shares: list[float]                     # per prompt: mean attention onto the sink (d >= 1)
    signals: list[torch.Tensor] = field(default_factory=list)   # unit (D,) query-side signals
    keys: list[tuple[int, int]] = field(default_factory=list)   # (prompt index, destination) per signal
    consistency: float = float("nan")       # mean pairwise cosine of the signals
    n_firings: int = 0
    writers: dict[str, float] = field(default_factory=dict)     # query-side edge weight by component
    layer_share: list[float] = field(default_factory=list)      # share of the signal present at each layer

    @property
    def aligned_at(self) -> int | None:
        """First layer whose residual already carries half of the signal (None if never)."""
        for layer, share in enumerate(self.layer_share):
            if share >= 0.5:
                return layer
        return None

    def top_writers(self, k: int = 3) -> list[tuple[str, float]]:
        total = sum(w for w in self.writers.values() if w > 0) or 1.0
        return [(c, w / total) for c, w in sorted(self.writers.items(), key=lambda kv: -kv[1])[:k]]

    @property
    def control_signal(self) -> torch.Tensor | None:
        if not self.signals:
            return None
        m = torch.stack(self.signals).mean(0)
        return m / m.norm().clamp_min(1e-12)

    def is_control(self, min_consistency: float) -> bool:
        return self.n_firings >= 2 and self.consistency >= min_consistency


def mean_pairwise_cosine(vectors: list[torch.Tensor]) -> float:
    if len(vectors) < 2:
        return float("nan")
    X = torch.stack(vectors)
    X = X / X.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    G = X @ X.T
    n = len(vectors)
    return float((G.sum() - G.diagonal().sum()) / (n * (n - 1)))


def sink_options(opts: TraceOptions) -> tuple[TraceOptions, str | None]:
    """The options sinks are analysed with, and why they differ from `opts` (None if not)."""
    method = get_method(opts.method)
    if not method.raw_sources:
        return opts, None
    return (opts.model_copy(update={"method": "acc"}),
            f"{method.name} never explains attention to BOS (its firings need a non-BOS source), "
            f"so sinks are analysed with acc")


def sink_evidence(ev: PromptSetEvidence) -> PromptSetEvidence:
    """`ev` itself, or a view of the same prompts and activations under `sink_options`."""
    opts, why = sink_options(ev.opts)
    if why is None:
        return ev
    return ev.with_options(opts)


def query_signal(batch: PromptSetEvidence, i: int, layer: int, head: int, d: int, svs: list[int]) -> torch.Tensor:
    dec = batch.dec(i)
    a_tot = dec.a(layer, head)[:, d].sum(0)
    idx = torch.tensor(svs, dtype=torch.long)
    f = dec.forms
    u = f.U[layer, head][:, idx] @ (a_tot[idx] / f.S[layer, head][idx].clamp_min(1e-12))
    return u / u.norm().clamp_min(1e-12)


def signal_share_by_layer(batch: PromptSetEvidence, i: int, layer: int, head: int, d: int,
                          svs: list[int]) -> list[float]:
    """For layers 0..layer: the share of the query's selected signal already in the residual
    entering that layer (projection of its singular coordinates on the final ones)."""
    dec = batch.dec(i)
    w, acts = dec.weights, dec.acts
    idx = torch.tensor(svs, dtype=torch.long)
    x = acts.resid_pre[: layer + 1, d] / acts.ln_scale[layer, d]                   # (l+1, D)
    q = x @ w.W_Q[layer, head] + w.b_Q[layer, head]
    at_d = torch.full((len(q),), d, dtype=torch.long, device=q.device)              # every row sits at d
    a = (acts.to_head(q, layer, "q", head, at_d) @ dec.forms.Gq[layer, head])[:, idx]   # (l+1, |S|)
    final = a[-1]
    norm = float(final @ final)
    return [float(row @ final) / norm if norm > 0 else float("nan") for row in a]


def sink_profile(batch: PromptSetEvidence, layer: int, head: int, sink_of: Callable[[BuiltPrompt], int],
                 max_per_prompt: int = 8) -> SinkProfile:
    """sink_of(prompt) -> sink position. Decomposes up to max_per_prompt firings per prompt
    (with `sink_options` of the set's method)."""
    batch = sink_evidence(batch)
    opts = batch.opts
    prof = SinkProfile(layer, head, shares=[])
    curves: list[list[float]] = []
    for i, p in enumerate(batch.prompts):
        P = sink_of(p)
        A = batch.acts(i).pattern[layer, head]
        n = A.shape[-1]
        prof.shares.append(float(A[P + 1:, P].mean()) if P + 1 < n else float("nan"))
        ds = [d for d in range(max(1, P + 1), n)
              if float(A[d, P]) >= opts.firing_threshold(d, keys=batch.model.weights.n_keys(layer, d))]
        for d in ds[-max_per_prompt:]:
            f = batch.firing(i, layer, head, d, P)
            if f.svs.get("query"):
                prof.signals.append(query_signal(batch, i, layer, head, d, f.svs["query"]))
                prof.keys.append((i, d))
                curves.append(signal_share_by_layer(batch, i, layer, head, d, f.svs["query"]))
                for e in f.edges_from("query"):
                    key = e.component.label()
                    prof.writers[key] = prof.writers.get(key, 0.0) + e.weight
    if curves:
        prof.layer_share = [sum(c[l] for c in curves) / len(curves) for l in range(len(curves[0]))]
    prof.n_firings = len(prof.signals)
    prof.consistency = mean_pairwise_cosine(prof.signals)
    return prof


def paired_cosine(a: dict, b: dict) -> tuple[float, int]:
    """Mean cosine between signals with the same key in two runs; (nan, 0) without pairs."""
    common = sorted(set(a) & set(b))
    if not common:
        return float("nan"), 0
    cos = [float(a[k] @ b[k]) / max(float(a[k].norm() * b[k].norm()), 1e-30) for k in common]
    return sum(cos) / len(cos), len(common)


def swap_invariance(prof: SinkProfile, swapped: SinkProfile, origin: list[int]) -> tuple[float, int]:
    """How much the sink signals stay put when slot contents are swapped (same positions)."""
    mine = dict(zip(prof.keys, prof.signals))
    theirs = {(origin[i], d): v for (i, d), v in zip(swapped.keys, swapped.signals)}
    return paired_cosine(mine, theirs)


def prototypes(signals: dict[tuple[int, int], torch.Tensor], cut: float) -> list[list[tuple[int, int]]]:
    """Average-linkage clustering of unit vectors by cosine distance, cut at `cut`."""
    keys = sorted(signals)
    clusters = [[k] for k in keys]
    vec = {k: signals[k] / signals[k].norm().clamp_min(1e-12) for k in keys}

    def dist(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> float:
        return sum(1 - float(vec[x] @ vec[y]) for x in a for y in b) / (len(a) * len(b))

    while len(clusters) > 1:
        best = min(((dist(a, b), i, j) for i, a in enumerate(clusters) for j, b in enumerate(clusters) if i < j))
        if best[0] > cut:
            break
        _, i, j = best
        clusters[i] = sorted(clusters[i] + clusters[j])
        del clusters[j]
    return clusters


def control_ablation_drop(batch: PromptSetEvidence, i: int, layer: int, head: int, P: int,
                          random_svs: bool = False, seed: int = 0) -> float:
    """Mean drop of attention onto P (over destinations that fire onto it) when the query's
    signal in the firing's kept singular directions is removed from this head's scores (a local
    intervention, computed exactly from the decomposition). With random_svs, the same number of
    other singular directions is removed instead."""
    batch = sink_evidence(batch)
    opts = batch.opts
    dec = batch.dec(i)
    A = dec.acts.pattern[layer, head]
    n = A.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    drops = []
    for d in range(max(1, P + 1), n):
        if float(A[d, P]) < opts.firing_threshold(d, keys=dec.weights.n_keys(layer, d)):
            continue
        f = batch.firing(i, layer, head, d, P)
        svs = f.svs.get("query", [])
        if not svs:
            continue
        if random_svs:
            svs = random_subspace(dec.weights.d_head, svs, gen)
        terms = dec.score_terms(layer, head, d)            # (K, r): keys lo..d
        keep = torch.ones(terms.shape[-1], dtype=terms.dtype, device=terms.device)
        keep[torch.tensor(svs)] = 0.0
        capped = softcap((terms * keep).sum(-1), dec.weights.softcap)
        new = torch.softmax(capped, -1)[P - dec.weights.key_start(layer, d)]
        drops.append(float(A[d, P]) - float(new))
    return sum(drops) / len(drops) if drops else float("nan")


@dataclass
class SinkRow:
    layer: int
    head: int
    share: float
    profile: SinkProfile
    cls: str                  # "control" | "data"
    prototype: int | None = None


def survey(ev: PromptSetEvidence, layers: list[int], min_share: float, consistency: float,
           cut: float, max_per_prompt: int = 4) -> tuple[list[SinkRow], list[list[tuple[int, int]]]]:
    """Every head of `layers` whose mean sink share onto BOS is >= min_share, classed control
    (consistency >= `consistency`) or data, and the control signals' prototypes."""
    rows, sigs = [], {}
    for layer in layers:
        for head in range(ev.model.info.n_heads):
            prof = sink_profile(ev, layer, head, lambda p: 0, max_per_prompt=max_per_prompt)
            share = sum(prof.shares) / len(prof.shares)
            if share < min_share:
                continue
            signal = prof.control_signal
            cls = "control" if prof.is_control(consistency) and signal is not None else "data"
            if signal is not None and cls == "control":
                sigs[(layer, head)] = signal
            rows.append(SinkRow(layer, head, share, prof, cls))
    protos = prototypes(sigs, cut) if sigs else []
    proto_of = {k: i for i, c in enumerate(protos) for k in c}
    for row in rows:
        row.prototype = proto_of.get((row.layer, row.head))
    return rows, protos
