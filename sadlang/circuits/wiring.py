"""Edge-level ablation: which head and MLP outputs reach which inputs.

A run is node-ablated first (sadlang/circuits/ablation.py: every (layer, position, head) a run
does not keep has its output z replaced by the reference value, every MLP output it does not
keep likewise). A `Wiring` then cuts paths: for a receiver R (a head's query, key or value
input, or an MLP's input) the senders listed for it reach that input only with their *reference*
value, while every other reader still sees their current output; `logits` lists the senders
whose current output is withheld from the unembedding. Senders are heads and MLPs.

Nothing is frozen: R's cut input is rebuilt from the run's own residual stream,

    x_R = x - sum over cut senders S of (out_S - ref_S)      (a head's out_S = z_S @ W_O[S])

with x the stream R reads (a head: resid_pre; an MLP: its norm's input), and goes through the
norm (recomputed on x_R) and R's own computation, so R's scores (query/key cuts), R's z (value
cut) or the MLP's output are what the model computes on that input. Embeddings, biases and any
MLP that is no node of the circuit read the run's residual: they are the backbone, never cut.
In parallel blocks (GPT-NeoX) a layer's MLP reads the block input, so that layer's heads never
reach it and a cut between them removes nothing.

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

Head = tuple[int, int]                        # (layer, head), or (layer, A.MLP_UNIT) for an MLP
Side = Literal["query", "key", "value", "mlp"]
SIDES: tuple[Side, ...] = ("query", "key", "value")
Edge = tuple[Head, Head | None, str]          # sender, receiver (None: the logits), side ("mlp", "logits")


def is_mlp(unit: Head) -> bool:
    return unit[1] == A.MLP_UNIT


def reads(sender: Head, receiver: Head) -> bool:
    """Does `receiver` read the stream after `sender` wrote it (a layer's heads write before its
    MLP reads)? Parallel blocks are the run's business (module docstring)."""
    return sender[0] < receiver[0] or (sender[0] == receiver[0] and is_mlp(receiver) and not is_mlp(sender))


@dataclass(frozen=True)
class Wiring:
    """Cut paths of one run: `cuts[(receiver, side)]` are the senders R's `side` input sees at
    their reference value; `logits` the senders the unembedding sees at their reference value."""

    cuts: dict[tuple[Head, Side], frozenset[Head]] = field(default_factory=dict)
    logits: frozenset[Head] = frozenset()

    def __bool__(self) -> bool:
        return any(self.cuts.values()) or bool(self.logits)

    def cuts_mlps(self) -> bool:
        """Is any cut sender an MLP (the run then needs the MLPs' reference outputs)?"""
        return any(is_mlp(u) for senders in (*self.cuts.values(), self.logits) for u in senders)


def declared_edges(decl: A.CircuitDecl) -> set[Edge] | None:
    """The edges of a declared circuit, None when it declares none (a node-level circuit).
    `edge S -> R` without `via` is all three of a head R's inputs (an MLP has one, "mlp");
    without any `edge S -> logits` line every node of the circuit writes the logits."""
    if not decl.edges:
        return None
    out: set[Edge] = set()
    for e in decl.edges:
        sender = e.upstream.pair
        if e.downstream is None:
            out.add((sender, None, "logits"))
        elif isinstance(e.downstream, A.MlpRef):
            out.add((sender, e.downstream.pair, "mlp"))
        else:
            for side in ([e.side] if e.side else SIDES):
                out.add((sender, e.downstream.pair, side))
    if not any(r is None for _, r, _ in out):
        out |= {(n.head.pair, None, "logits") for n in decl.nodes} | {(m.pair, None, "logits") for m in decl.mlps}
    return out


def only_edges(units: set[Head], edges: set[Edge]) -> Wiring:
    """The circuit alone at edge level: a circuit unit reads another circuit unit only through
    an edge of `edges`; only senders with a logits edge reach the logits. (Units outside the
    circuit are ablated by the node masks already.)"""
    cuts: dict[tuple[Head, Side], frozenset[Head]] = {}
    for r in units:
        for side in (("mlp",) if is_mlp(r) else SIDES):
            cut = frozenset(s for s in units if reads(s, r) and (s, r, side) not in edges)
            if cut:
                cuts[(r, side)] = cut
    return Wiring(cuts, frozenset(s for s in units if (s, None, "logits") not in edges))


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


class RowValues:
    """The reference values of one pass's rows, (b, L, ...) as if stacked, but stacked one layer
    at a time when a hook asks (`at`): a whole pass's stack was (b, L, n, H, r), 34 MB for 32
    rows of 16 tokens on the bundled model, alive for the pass."""

    def __init__(self, per_row: list[torch.Tensor], device: torch.device | str):
        self.per_row, self.device = per_row, device

    def at(self, layer: int) -> torch.Tensor:
        """(b, ...) every row's values of `layer`."""
        return torch.stack([v[layer] for v in self.per_row]).to(self.device)


class WiredRun(Taps):
    """The hooks of one batched pass with per-row wirings. Rows without a wiring run as plain
    node ablations. Use `hooks()` inside `model.bridge.hooks(fwd_hooks=...)`, after the MLP
    node-ablation hooks `late_hooks()` (they read the MLP outputs the row ends up with)."""

    def __init__(self, model: LoadedModel, wirings: list[Wiring | None], values: RowValues,
                 cos: torch.Tensor | None, sin: torch.Tensor | None, mlp_values: RowValues | None = None) -> None:
        """values: each row's reference head outputs, (L, n, H, r) a row; mlp_values: each row's
        reference MLP outputs, (L, n, D) a row (needed when a row cuts an MLP sender); cos, sin:
        (n, r) or None."""
        super().__init__()
        w = model.weights
        if any(wirings):
            refuse_wiring(model)
        cfg = model.bridge.cfg
        self.w, self.kind, self.eps = w, str(cfg.normalization_type or "LN"), float(cfg.eps)
        self.wirings, self.values, self.cos, self.sin = wirings, values, cos, sin
        self.mlp_values = mlp_values
        self.parallel = bool(getattr(cfg, "parallel_attn_mlp", False))
        self.n_layers = w.n_layers
        self.delta: dict[int, torch.Tensor] = {}          # layer -> (b, n, H, r) z - ref
        self.mlp_delta: dict[int, torch.Tensor] = {}      # layer -> (b, n, D) mlp_out - ref
        if any(wr and wr.cuts_mlps() for wr in wirings) and mlp_values is None:
            raise ValueError("rows cut MLP senders, so the run needs the MLPs' reference outputs")

    def _write(self, row: int, sender: Head) -> torch.Tensor:
        """(n, D) what `sender` writes in this row beyond its reference value, in fp32."""
        layer, unit = sender
        if is_mlp(sender):
            return self.mlp_delta[layer][row].float()
        return self.delta[layer][row, :, unit].float() @ self.w.W_O[layer, unit]

    def _input(self, row: int, layer: int, senders: frozenset[Head]) -> torch.Tensor:
        """(n, D) the normed input of a layer-`layer` head whose `senders` are cut, in fp32 (the
        weights' precision) whatever the model runs in."""
        assert self.resid is not None
        x = self.resid[row].float()
        for sender in sorted(senders):
            x = x - self._write(row, sender)
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
            if any(self._cuts(row, layer, "mlp") for row in range(len(self.wirings))):
                out.append((f"blocks.{layer}.ln2.hook_in", self._mlp_in_hook(layer)))
        out.append((f"blocks.{self.n_layers - 1}.hook_resid_post", self._logits_hook))
        return out

    def late_hooks(self) -> list[tuple[str, object]]:
        """hook_mlp_out readers that keep each MLP's output minus its reference (after any swap)."""
        if self.mlp_values is None:
            return []
        return [(f"blocks.{layer}.hook_mlp_out", self._mlp_out_hook(layer)) for layer in range(self.n_layers)]

    def _mlp_out_hook(self, layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        def hook(x: torch.Tensor, hook: Any = None) -> torch.Tensor:
            assert self.mlp_values is not None
            self.mlp_delta[layer] = x - self.mlp_values.at(layer).to(x.dtype)
            return x
        return hook

    def _mlp_in_hook(self, layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """The input of `layer`'s MLP with each row's cut senders' writes taken back out (a head
        of the same layer is in that input only in sequential blocks)."""
        def hook(x: torch.Tensor, hook: Any = None) -> torch.Tensor:
            out = x
            for row in range(x.shape[0]):
                for _, senders in self._cuts(row, layer, "mlp"):
                    present = [s for s in sorted(senders) if s[0] < layer or not self.parallel]
                    if not present:
                        continue
                    if out is x:
                        out = x.clone()
                    y = out[row].float()
                    for sender in present:
                        y = y - self._write(row, sender)
                    out[row] = y.to(x.dtype)
            return out
        return hook

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
            ref = self.values.at(layer).to(z.dtype)
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
            for sender in sorted(senders):
                x[row] = (x[row].float() - self._write(row, sender)).to(x.dtype)
        return x
