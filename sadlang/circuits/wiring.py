"""Edge-level ablation: which head outputs reach which inputs.

A run is node-ablated first (sadlang/circuits/ablation.py: every (layer, position, head) a run
does not keep has its output z replaced by the reference value). A `Wiring` then cuts paths:
for a receiver head R and one of its inputs (query, key or value), the senders listed for it
reach that input only with their *reference* value, while every other reader still sees their
current output; `logits` lists the senders whose current output is withheld from the unembedding.

Nothing is frozen: R's cut input is rebuilt from the run's own residual stream,

    x_R = resid_pre[l_R] - sum over cut senders S of (z_S - ref_S) @ W_O[S]

and goes through the layer's norm (recomputed on x_R), R's projection and rotary, so R's scores
(query/key cuts) or R's z (value cut) are what the model computes on that input. MLPs, embeddings
and biases read the run's residual: they are the backbone, never cut.

Shapes: b rows, n positions, H query heads, r d_head, D d_model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from sadlang.decomp.rope import apply_rope
from sadlang.errors import TraceError
from sadlang.lang import ast as A

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel

Head = tuple[int, int]
Side = Literal["query", "key", "value"]
SIDES: tuple[Side, ...] = ("query", "key", "value")
Edge = tuple[Head, Head | None, str]          # sender, receiver (None: the logits), side ("logits")


@dataclass(frozen=True)
class Wiring:
    """Cut paths of one run: `cuts[(receiver, side)]` are the senders R's `side` input sees at
    their reference value; `logits` the senders the unembedding sees at their reference value."""

    cuts: dict[tuple[Head, Side], frozenset[Head]] = field(default_factory=dict)
    logits: frozenset[Head] = frozenset()

    def __bool__(self) -> bool:
        return any(self.cuts.values()) or bool(self.logits)


def declared_edges(decl: A.CircuitDecl) -> set[Edge] | None:
    """The edges of a declared circuit, None when it declares none (a node-level circuit).
    `edge S -> R` without `via` is all three of R's inputs; without any `edge S -> logits` line
    every node of the circuit writes the logits."""
    if not decl.edges:
        return None
    out: set[Edge] = set()
    for e in decl.edges:
        sender = e.upstream.pair
        if e.downstream is None:
            out.add((sender, None, "logits"))
            continue
        for side in ([e.side] if e.side else SIDES):
            out.add((sender, e.downstream.pair, side))
    if not any(r is None for _, r, _ in out):
        out |= {(n.head.pair, None, "logits") for n in decl.nodes}
    return out


def only_edges(heads: set[Head], edges: set[Edge]) -> Wiring:
    """The circuit alone at edge level: a circuit head reads another circuit head only through
    an edge of `edges`; only senders with a logits edge reach the logits. (Heads outside the
    circuit are ablated by the node mask already.)"""
    cuts: dict[tuple[Head, Side], frozenset[Head]] = {}
    for r in heads:
        for side in SIDES:
            cut = frozenset(s for s in heads if s[0] < r[0] and (s, r, side) not in edges)
            if cut:
                cuts[(r, side)] = cut
    return Wiring(cuts, frozenset(s for s in heads if (s, None, "logits") not in edges))


def without_edges(edges: set[Edge]) -> Wiring:
    """The full model with `edges` cut (every node kept)."""
    cuts: dict[tuple[Head, Side], set[Head]] = {}
    logits = set()
    for s, r, side in edges:
        if r is None:
            logits.add(s)
        else:
            cuts.setdefault((r, side), set()).add(s)   # type: ignore[arg-type]
    return Wiring({k: frozenset(v) for k, v in cuts.items()}, frozenset(logits))


def norm(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """(..., D) -> (..., D): the folded pre-attention norm (LN centres, RMS does not; gains are
    folded into the weights)."""
    if kind.startswith("LN"):
        x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def wiring_problem(model: LoadedModel, who: str = "edge-level circuits",
                   instead: str = "test the circuit at node level") -> str | None:
    """Why `who` (anything that rebuilds a receiver's inputs, queries and keys linearly from head
    writes: edge-level circuits, attribution patching) cannot run exactly on this model (None: it
    can); `instead` is what to do then."""
    w = model.weights
    if w.softcap:
        return f"{who} rebuild attention scores, which a soft-capped model caps"
    if w.post_norm:
        return (f"{who} rebuild a receiver's input from head writes, which a "
                f"post-attention norm (Gemma) rescales; {instead}")
    if w.qk_norm:
        return (f"{who} rebuild a receiver's queries and keys linearly, which a QK-norm "
                f"(Gemma-3, Qwen3) rescales per head; {instead}")
    return None


def refuse_wiring(model: LoadedModel) -> None:
    """Raise TraceError when edge-level circuits cannot be run exactly on this model."""
    why = wiring_problem(model)
    if why is not None:
        raise TraceError(why)


class Taps:
    """Hooks that keep the current layer's residual stream and attention pattern for the hooks
    that rebuild a receiver's inputs later in the same layer."""

    def __init__(self) -> None:
        self.resid: torch.Tensor | None = None            # (b, n, D) resid_pre of the current layer
        self.pattern: torch.Tensor | None = None          # (b, H, n, n)

    def _keep_resid(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        self.resid = x
        return x

    def _keep_pattern(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        self.pattern = x
        return x


class WiredRun(Taps):
    """The hooks of one batched pass with per-row wirings. Rows without a wiring run as plain
    node ablations. Use `hooks()` inside `model.bridge.hooks(fwd_hooks=...)`."""

    def __init__(self, model: LoadedModel, wirings: list[Wiring | None], values: torch.Tensor,
                 cos: torch.Tensor | None, sin: torch.Tensor | None) -> None:
        """values: (b, L, n, H, r) the reference outputs of each row; cos, sin: (n, r) or None."""
        super().__init__()
        w = model.weights
        if any(wirings):
            refuse_wiring(model)
        cfg = model.bridge.cfg
        self.w, self.kind, self.eps = w, str(cfg.normalization_type or "LN"), float(cfg.eps)
        self.wirings, self.values, self.cos, self.sin = wirings, values, cos, sin
        self.n_layers = w.n_layers
        self.delta: dict[int, torch.Tensor] = {}          # layer -> (b, n, H, r) z - ref

    def _input(self, row: int, layer: int, senders: frozenset[Head]) -> torch.Tensor:
        """(n, D) the normed input of a layer-`layer` head whose `senders` are cut, in fp32 (the
        weights' precision) whatever the model runs in."""
        assert self.resid is not None
        x = self.resid[row].float()
        for ls, hs in sorted(senders):
            x = x - self.delta[ls][row, :, hs].float() @ self.w.W_O[ls, hs]
        return norm(x, self.kind, self.eps)

    def _cuts(self, row: int, layer: int, side: Side) -> list[tuple[int, frozenset[Head]]]:
        wiring = self.wirings[row]
        if not wiring:
            return []
        return [(r[1], s) for (r, sd), s in wiring.cuts.items() if r[0] == layer and sd == side and s]

    def hooks(self) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        for layer in range(self.n_layers):
            out.append((f"blocks.{layer}.hook_resid_pre", self._keep_resid))
            out.append((f"blocks.{layer}.attn.hook_attn_scores", self._scores_hook(layer)))
            out.append((f"blocks.{layer}.attn.hook_pattern", self._keep_pattern))
        out.append((f"blocks.{self.n_layers - 1}.hook_resid_post", self._logits_hook))
        return out

    def z_hook(self, layer: int, keep: torch.Tensor) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """The hook_z function of `layer`: rebuild value-cut heads, then node-ablate with
        keep (b, L, n, H) and remember z - ref for later layers."""
        def hook(z: torch.Tensor, hook: Any = None) -> torch.Tensor:
            z = z.clone()
            w = self.w
            for row in range(z.shape[0]):
                for head, senders in self._cuts(row, layer, "value"):
                    assert self.pattern is not None
                    v = self._input(row, layer, senders) @ w.W_V[layer, w.kv(head)]
                    z[row, :, head] = (self.pattern[row, head].float() @ v).to(z.dtype)
            ref = self.values[:, layer].to(z.dtype)
            z = torch.where(keep[:, layer, :, :, None], z, ref)
            self.delta[layer] = z - ref
            return z
        return hook

    def _scores_hook(self, layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        def hook(scores: torch.Tensor, hook: Any = None) -> torch.Tensor:
            w = self.w
            out = scores
            for row in range(scores.shape[0]):
                q_cut = dict(self._cuts(row, layer, "query"))
                k_cut = dict(self._cuts(row, layer, "key"))
                for head in sorted(set(q_cut) | set(k_cut)):
                    kv = w.kv(head)
                    q = self._input(row, layer, q_cut.get(head, frozenset())) @ w.W_Q[layer, head] + w.b_Q[layer, head]
                    k = self._input(row, layer, k_cut.get(head, frozenset())) @ w.W_K[layer, kv] + w.b_K[layer, kv]
                    s = apply_rope(q, self.cos, self.sin) @ apply_rope(k, self.cos, self.sin).T / w.attn_scale
                    if out is scores:
                        out = scores.clone()
                    out[row, head] = torch.where(torch.isfinite(scores[row, head]), s.to(scores.dtype),
                                                 scores[row, head])
            return out
        return hook

    def _logits_hook(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        rows = [(row, wr.logits) for row, wr in enumerate(self.wirings) if wr and wr.logits]
        if not rows:
            return x
        x = x.clone()
        for row, senders in rows:
            for ls, hs in sorted(senders):
                x[row] = (x[row].float() - self.delta[ls][row, :, hs].float() @ self.w.W_O[ls, hs]).to(x.dtype)
        return x
