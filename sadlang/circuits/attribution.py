"""Edge attribution patching over the graph of heads and MLPs: EAP (Syed et al. 2023) and EAP
with integrated gradients (EAP-IG, Hanna et al. 2024).

The graph. Senders u: every head (its write z_u @ W_O) and every MLP (hook_mlp_out). Receivers v:
every head's query, key and value input, every MLP's input, and the logits (the final norm's
input). u -> v is an edge when v reads the residual stream after u wrote it (a head of layer l
feeds MLP l, except in parallel blocks, and every later layer).

Each receiver reads its own copy of the residual stream (`SplitRun`): the layer's queries, keys
and values are rebuilt per head from three copies of resid_pre (norm recomputed on each, as the
wiring module does), the MLP from a copy of its input, the unembedding from a copy of the final
residual. The copies equal the stream, so the run equals the model's; their gradients separate
what each receiver hears, G_v = dF / dx_v.

    EAP     score(u -> v) = mean over prompts of  sum over positions p  (a_u^ref(p) - a_u(p)) . G_v(p)

with a^ref the ablation's reference output (sadlang/circuits/ablations.py: zero, mean, or the
aligned twin for resample): the first-order change of F when v alone hears u's reference output
(edge patching, which `SplitRun(add=...)` also runs exactly).

    EAP-IG  the same with G_v averaged over `steps` runs whose input embeddings lie on the line
            from the twin's to the clean prompt's, at k / steps for k = 1..steps

(EAP-IG interpolates inputs, so it needs aligned twins; the last step is EAP's clean point.)
F is the task metric summed over prompts (logit_diff, prob or loss: a differentiable one).

Shapes: L layers, H query heads, n positions, D d_model, r d_head, b rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from sadlang.circuits.ablation import head_z, mlp_out
from sadlang.circuits.nodes import MLP, unit_name
from sadlang.circuits.task_metrics import METRICS, differentiable_text
from sadlang.circuits.wiring import Taps, norm, wiring_problem
from sadlang.decomp.rope import apply_rope
from sadlang.errors import TraceError

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.models.loader import LoadedModel

Unit = tuple[int, int]                       # (layer, head), or (layer, MLP) for an MLP
Side = Literal["query", "key", "value", "mlp", "logits"]
AttrEdge = tuple[Unit, Unit | None, Side]    # sender, receiver (None: the logits), the receiver's input
HEAD_SIDES: tuple[Side, ...] = ("query", "key", "value")


def attribution_problem(model: LoadedModel) -> str | None:
    """Why per-receiver inputs cannot be rebuilt exactly on this model (None: they can)."""
    return wiring_problem(model, "attribution patching", "rank the model's nodes with `discover patching`")


def differentiable(metric: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The task metric's differentiable batched form (its registry record's); a TraceError for a
    metric without a useful gradient."""
    record = METRICS[metric]
    if record.batched is None:
        raise TraceError(f"attribution patching needs a differentiable task metric ({differentiable_text()}); "
                         f"{metric!r} cannot serve: {record.no_gradient or 'it is a step function'}. Set "
                         f"`option metric = logit_diff`, or rank with `discover patching`")
    batched = record.batched
    return batched


def _metric(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor, metric: str) -> torch.Tensor:
    """(b,) the task metric from (b, V) logits at the end; against (b,) holds -1 where a row has none."""
    return differentiable(metric)(logits_end, answers, against)


class SplitRun(Taps):
    """The hooks of one batched pass in which every receiver reads its own copy of the residual
    stream (module docstring). After the pass, `copies[(layer, side)]` is the copy the gradient is
    taken of: (b, n, H, D) for a head side, (b, n, D) for "mlp", and (-1, "logits"). `add`
    (optional) adds a (b, n, D) tensor to one receiver's copy: keys (layer, head, side) for a
    head's input, (layer, MLP, "mlp"), or (-1, -1, "logits")."""

    def __init__(self, model: LoadedModel, cos: torch.Tensor | None, sin: torch.Tensor | None,
                 embed: torch.Tensor | None = None, add: dict[tuple[int, int, str], torch.Tensor] | None = None
                 ) -> None:
        """embed: (b, n, D) the input embeddings to start from (default: the model's own)."""
        super().__init__()
        why = attribution_problem(model)
        if why is not None:
            raise TraceError(why)
        w = model.weights
        cfg = model.bridge.cfg
        self.w, self.kind, self.eps = w, str(cfg.normalization_type or "LN"), float(cfg.eps)
        self.cos, self.sin, self.embed, self.add = cos, sin, embed, add or {}
        self.kv = torch.tensor([w.kv(h) for h in range(w.n_heads)])
        self.copies: dict[tuple[int, str], torch.Tensor] = {}   # (layer, side) -> copy; (-1, "logits")

    def _copy(self, x: torch.Tensor, layer: int, side: str, heads: int | None) -> torch.Tensor:
        """A receiver group's copy of x (b, n, D): (b, n, H, D) per head, or (b, n, D)."""
        c = x.float()[:, :, None, :].repeat(1, 1, heads, 1) if heads else x.float() * 1.0
        self.copies[(layer, side)] = c
        extra = [(k, t) for k, t in self.add.items() if k[0] == layer and k[2] == side]
        for (_, unit, _), t in extra:
            if heads:
                c = c.clone()
                c[:, :, unit] = c[:, :, unit] + t.to(c)
            else:
                c = c + t.to(c)
        return c

    def hooks(self) -> list[tuple[str, Callable[..., torch.Tensor]]]:
        L = self.w.n_layers
        out: list[tuple[str, Callable[..., torch.Tensor]]] = []
        for layer in range(L):
            out += [(f"blocks.{layer}.hook_resid_pre", self._start if layer == 0 else self._keep_resid),
                    (f"blocks.{layer}.attn.hook_attn_scores", self._scores(layer)),
                    (f"blocks.{layer}.attn.hook_pattern", self._keep_pattern),
                    (f"blocks.{layer}.attn.hook_z", self._z(layer)),
                    (f"blocks.{layer}.ln2.hook_in", self._mlp_in(layer))]
        out.append(("ln_final.hook_in", self._final))
        return out

    def _start(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        """The first block's input, made the root of the graph the gradients flow through."""
        base = x if self.embed is None else self.embed.to(x)
        self.resid = base.detach().requires_grad_(True)
        return self.resid

    def _project(self, layer: int, side: str) -> torch.Tensor:
        """(b, H, n, r) every query head's query / key / value, from its own copy."""
        assert self.resid is not None
        w, H = self.w, self.w.n_heads
        x = norm(self._copy(self.resid, layer, side, H), self.kind, self.eps)          # (b, n, H, D)
        if side == "query":
            y = torch.einsum("bnhd,hdr->bhnr", x, w.W_Q[layer]) + w.b_Q[layer][None, :, None, :]
        elif side == "key":
            y = torch.einsum("bnhd,hdr->bhnr", x, w.W_K[layer][self.kv]) + w.b_K[layer][self.kv][None, :, None, :]
        else:
            y = torch.einsum("bnhd,hdr->bhnr", x, w.W_V[layer][self.kv])
        return y

    def _scores(self, layer: int) -> Callable[..., torch.Tensor]:
        def hook(scores: torch.Tensor, hook: Any = None) -> torch.Tensor:
            q = apply_rope(self._project(layer, "query"), self.cos, self.sin)
            k = apply_rope(self._project(layer, "key"), self.cos, self.sin)
            s = q @ k.transpose(-1, -2) / self.w.attn_scale                               # (b, H, n, n)
            return torch.where(torch.isfinite(scores), s.to(scores.dtype), scores)
        return hook

    def _z(self, layer: int) -> Callable[..., torch.Tensor]:
        def hook(z: torch.Tensor, hook: Any = None) -> torch.Tensor:
            assert self.pattern is not None
            v = self._project(layer, "value")                                              # (b, H, n, r)
            return (self.pattern.float() @ v).transpose(1, 2).to(z.dtype)                 # (b, n, H, r)
        return hook

    def _mlp_in(self, layer: int) -> Callable[..., torch.Tensor]:
        def hook(x: torch.Tensor, hook: Any = None) -> torch.Tensor:
            return self._copy(x, layer, "mlp", None).to(x.dtype)
        return hook

    def _final(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        return self._copy(x, -1, "logits", None).to(x.dtype)


@dataclass
class Gradients:
    """G_v of one prompt (n positions): per receiver, dF / d(its copy of the residual stream).

    query, key, value: (L, n, H, D)   mlp: (L, n, D)   logits: (n, D)
    """

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mlp: torch.Tensor
    logits: torch.Tensor


def split_pass(model: LoadedModel, tokens: torch.Tensor, answers: torch.Tensor, against: torch.Tensor,
               metric: str, cos: torch.Tensor | None, sin: torch.Tensor | None,
               embed: torch.Tensor | None = None) -> tuple[torch.Tensor, list[Gradients]]:
    """One forward and backward pass over `tokens` (b, n): (b,) the metric per row, and per row
    the receivers' gradients of the metric (rows are independent). answers, against: (b,) token
    ids, against -1 where a row has none."""
    run = SplitRun(model, cos, sin, embed)
    L = model.info.n_layers
    with torch.enable_grad():
        logits = model.bridge.run_with_hooks(tokens, fwd_hooks=run.hooks())
        values = _metric(logits[:, -1].float(), answers, against, metric)
        keys = [(layer, side) for layer in range(L) for side in (*HEAD_SIDES, "mlp")] + [(-1, "logits")]
        grads = torch.autograd.grad(values.sum(), [run.copies[k] for k in keys], allow_unused=True)
    by = {k: (torch.zeros_like(run.copies[k]) if g is None else g) for k, g in zip(keys, grads)}
    out = []
    for row in range(tokens.shape[0]):
        stack = {side: torch.stack([by[(layer, side)][row] for layer in range(L)]) for side in (*HEAD_SIDES, "mlp")}
        out.append(Gradients(stack["query"], stack["key"], stack["value"], stack["mlp"], by[(-1, "logits")][row]))
    return values.detach(), out


def patched_metric(model: LoadedModel, tokens: torch.Tensor, answers: torch.Tensor, against: torch.Tensor,
                   metric: str, cos: torch.Tensor | None, sin: torch.Tensor | None,
                   add: dict[tuple[int, int, str], torch.Tensor]) -> torch.Tensor:
    """(b,) the metric of a pass in which receivers hear extra inputs (`SplitRun`'s `add`): with
    add = a^ref - a of sender u at receiver v, exactly the edge u -> v patched to u's reference."""
    run = SplitRun(model, cos, sin, add=add)
    with torch.no_grad():
        logits = model.bridge.run_with_hooks(tokens, fwd_hooks=run.hooks())
    return _metric(logits[:, -1].float(), answers, against, metric)


@dataclass
class EdgeScores:
    """Attribution scores of every edge of the head+MLP graph, averaged over prompts.

    head_head: (3, L, H, L, H)  [side, sender layer, head, receiver layer, head]   side: query, key, value
    head_mlp:  (L, H, L)        mlp_head: (3, L, L, H)   mlp_mlp: (L, L)
    head_logits: (L, H)         mlp_logits: (L,)
    Impossible edges (a receiver that reads the stream before the sender writes) are 0.
    """

    head_head: torch.Tensor
    head_mlp: torch.Tensor
    mlp_head: torch.Tensor
    mlp_mlp: torch.Tensor
    head_logits: torch.Tensor
    mlp_logits: torch.Tensor
    method: str
    prompts: int
    passes: int
    parallel: bool = False                  # parallel blocks: a head does not feed its own layer's MLP

    def edges(self) -> list[tuple[AttrEdge, float]]:
        """Every possible edge with its score, strongest |score| first (ties by name)."""
        L, H = self.head_logits.shape
        later, feeds = edge_masks(L, self.parallel)
        out: list[tuple[AttrEdge, float]] = []
        for s, side in enumerate(HEAD_SIDES):
            for lu, hu, lv, hv in torch.nonzero(later[:, None, :, None].expand(L, H, L, H)).tolist():
                out.append((((lu, hu), (lv, hv), side), float(self.head_head[s, lu, hu, lv, hv])))
            for lu, lv, hv in torch.nonzero(later[:, :, None].expand(L, L, H)).tolist():
                out.append((((lu, MLP), (lv, hv), side), float(self.mlp_head[s, lu, lv, hv])))
        for lu, hu, lv in torch.nonzero(feeds[:, None, :].expand(L, H, L)).tolist():
            out.append((((lu, hu), (lv, MLP), "mlp"), float(self.head_mlp[lu, hu, lv])))
        for lu, lv in torch.nonzero(later).tolist():
            out.append((((lu, MLP), (lv, MLP), "mlp"), float(self.mlp_mlp[lu, lv])))
        out += [(((lu, hu), None, "logits"), float(self.head_logits[lu, hu])) for lu in range(L) for hu in range(H)]
        out += [(((lu, MLP), None, "logits"), float(self.mlp_logits[lu])) for lu in range(L)]
        return sorted(out, key=lambda e: (-abs(e[1]), edge_text(e[0])))

    def node_scores(self) -> dict[Unit, float]:
        """Per sender, the sum of its outgoing edges' scores: (a^ref - a) . dF/da, its first-order
        node-patching effect (every reader of the stream is a receiver). Impossible edges hold 0,
        so the sums run over whole tensors."""
        L, H = self.head_logits.shape
        heads = self.head_head.sum((0, 3, 4)) + self.head_mlp.sum(2) + self.head_logits         # (L, H)
        mlps = self.mlp_head.sum((0, 2, 3)) + self.mlp_mlp.sum(1) + self.mlp_logits            # (L,)
        out = {(lu, hu): float(heads[lu, hu]) for lu in range(L) for hu in range(H)}
        out.update({(lu, MLP): float(mlps[lu]) for lu in range(L)})
        return out


def edge_masks(L: int, parallel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, L) bool masks [sender layer, receiver layer]: `later`, a receiver in a later layer (heads
    and MLPs reading heads and MLPs); `feeds`, a head feeding an MLP (its own layer's too, except
    in parallel blocks, where both read the block input)."""
    ones = torch.ones(L, L, dtype=torch.bool)
    return ones.triu(1), ones.triu(1 if parallel else 0)


def edge_text(e: AttrEdge) -> str:
    u, v, side = e
    to = "logits" if v is None else unit_name(v)
    via = f" via {side}" if side in HEAD_SIDES else ""
    return f"{unit_name(u)} -> {to}{via}"


def top_nodes(edges: list[tuple[AttrEdge, float]], k: int) -> list[Unit]:
    """The heads and MLPs at either end of the k strongest edges (the logits are no node)."""
    units: set[Unit] = set()
    for (u, v, _), _ in edges[:k]:
        units.add(u)
        if v is not None:
            units.add(v)
    return sorted(units)


def _deltas(ref: Sequence[torch.Tensor], ref_mlp: Sequence[torch.Tensor], ev: PromptSetEvidence, i: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, n, H, D) and (L, n, D): a^ref - a of every head's write and every MLP's output."""
    w = ev.model.weights
    acts = ev.acts(i)
    dz = (ref[i].to(acts.v) - head_z(acts, ev.model))                                     # (L, n, H, r)
    return torch.einsum("lnhr,lhrd->lnhd", dz, w.W_O), ref_mlp[i].to(acts.v) - mlp_out(acts, ev.model)


def attribute(ev: PromptSetEvidence, ref: Sequence[torch.Tensor], ref_mlp: Sequence[torch.Tensor], metric: str,
              batch_size: int, twins: PromptSetEvidence | None = None, steps: int = 1) -> EdgeScores:
    """EAP (steps 1, no twins needed) or EAP-IG (`steps` interpolation points between each twin's
    embeddings and its prompt's) scores of every edge, averaged over the prompts of `ev`.
    ref / ref_mlp: per prompt, the reference head outputs (L, n, H, r) and MLP outputs (L, n, D).
    Each prompt's gradients are summed over its steps as the passes come (not kept per step)."""
    differentiable(metric)                          # a step metric is refused before any pass
    model = ev.model
    by_len: dict[int, list[tuple[int, int]]] = {}
    for i in range(len(ev)):
        for k in range(1, steps + 1):
            by_len.setdefault(len(ev.prompts[i].tokens), []).append((i, k))
    sums: dict[int, Gradients] = {}
    passes = 0
    for _, members in sorted(by_len.items()):
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            acts = [ev.acts(i) for i, _ in chunk]
            tokens = torch.stack([a.tokens for a in acts]).to(model.device)
            embed = None
            if steps > 1:
                assert twins is not None
                embed = torch.stack([twins.acts(i).embed + (k / steps) * (ev.acts(i).embed - twins.acts(i).embed)
                                     for i, k in chunk]).to(model.device)
            prompts = [ev.prompts[i] for i, _ in chunk]
            answers = torch.tensor([p.answer for p in prompts], device=model.device)
            against = torch.tensor([-1 if p.against is None else p.against for p in prompts], device=model.device)
            _, gs = split_pass(model, tokens, answers, against, metric, acts[0].cos, acts[0].sin, embed)
            passes += 1
            for (i, _), g in zip(chunk, gs):
                sums[i] = g if i not in sums else _added(sums[i], g)
    parallel = bool(getattr(model.bridge.cfg, "parallel_attn_mlp", False))
    later, feeds = edge_masks(model.info.n_layers, parallel)
    totals = None
    for i in range(len(ev)):
        g = sums[i]                                  # the sum over steps: divided by `steps` below
        dh, dm = _deltas(ref, ref_mlp, ev, i)
        part = [torch.stack([torch.einsum("anhd,bnkd->ahbk", dh, s) for s in (g.query, g.key, g.value)]),
                torch.einsum("anhd,bnd->ahb", dh, g.mlp),
                torch.stack([torch.einsum("and,bnkd->abk", dm, s) for s in (g.query, g.key, g.value)]),
                torch.einsum("and,bnd->ab", dm, g.mlp),
                torch.einsum("anhd,nd->ah", dh, g.logits), torch.einsum("and,nd->a", dm, g.logits)]
        totals = part if totals is None else [a + b for a, b in zip(totals, part)]
    assert totals is not None
    hh, hm, mh, mm, hl, ml = (x.cpu() / (len(ev) * steps) for x in totals)
    return EdgeScores(hh * later[None, :, None, :, None], hm * feeds[:, None, :], mh * later[None, :, :, None],
                      mm * later, hl, ml, "eap-ig" if steps > 1 else "eap", len(ev), passes, parallel)


def _added(a: Gradients, b: Gradients) -> Gradients:
    return Gradients(a.query + b.query, a.key + b.key, a.value + b.value, a.mlp + b.mlp, a.logits + b.logits)
