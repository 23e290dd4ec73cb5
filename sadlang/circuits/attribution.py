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
F is the task metric summed over prompts (logit_diff or prob: a differentiable one).

Shapes: L layers, H query heads, n positions, D d_model, r d_head, b rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from sadlang.circuits.ablation import head_z, mlp_out
from sadlang.circuits.nodes import MLP
from sadlang.circuits.wiring import norm, wiring_problem
from sadlang.decomp.rope import apply_rope
from sadlang.errors import TraceError

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.models.loader import LoadedModel

Unit = tuple[int, int]                       # (layer, head), or (layer, MLP) for an MLP
Side = Literal["query", "key", "value", "mlp", "logits"]
AttrEdge = tuple[Unit, Unit | None, Side]    # sender, receiver (None: the logits), the receiver's input
HEAD_SIDES: tuple[Side, ...] = ("query", "key", "value")
DIFFERENTIABLE = ("logit_diff", "prob")


def attribution_problem(model: LoadedModel) -> str | None:
    """Why per-receiver inputs cannot be rebuilt exactly on this model (None: they can)."""
    why = wiring_problem(model)
    return None if why is None else why.replace("edge-level circuits", "attribution patching")


def _metric(logits_end: torch.Tensor, answer: torch.Tensor, against: torch.Tensor | None, metric: str) -> torch.Tensor:
    """(b,) a differentiable task metric from (b, V) logits at the end."""
    if metric == "prob":
        return logits_end.softmax(-1).gather(1, answer[:, None])[:, 0]
    picked = logits_end.gather(1, answer[:, None])[:, 0]
    return picked if against is None else picked - logits_end.gather(1, against[:, None])[:, 0]


class SplitRun:
    """The hooks of one batched pass in which every receiver reads its own copy of the residual
    stream (module docstring). After the pass: `copies` lists every copy, with `where[k]` saying
    whose it is. `add` (optional) adds a (b, n, D) tensor to one receiver's copy: keys
    (layer, head, side) for a head's input, (layer, MLP, "mlp"), or (-1, -1, "logits")."""

    def __init__(self, model: LoadedModel, cos: torch.Tensor | None, sin: torch.Tensor | None,
                 embed: torch.Tensor | None = None, add: dict[tuple[int, int, str], torch.Tensor] | None = None
                 ) -> None:
        """embed: (b, n, D) the input embeddings to start from (default: the model's own)."""
        why = attribution_problem(model)
        if why is not None:
            raise TraceError(why)
        w = model.weights
        cfg = model.bridge.cfg
        self.w, self.kind, self.eps = w, str(cfg.normalization_type or "LN"), float(cfg.eps)
        self.cos, self.sin, self.embed, self.add = cos, sin, embed, add or {}
        self.kv = torch.tensor([w.kv(h) for h in range(w.n_heads)])
        self.resid: torch.Tensor | None = None
        self.pattern: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
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

    def _keep_resid(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        self.resid = x
        return x

    def _keep_pattern(self, x: torch.Tensor, hook: Any = None) -> torch.Tensor:
        self.pattern = x
        return x

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


def split_pass(model: LoadedModel, tokens: torch.Tensor, answers: torch.Tensor, against: torch.Tensor | None,
               metric: str, cos: torch.Tensor | None, sin: torch.Tensor | None,
               embed: torch.Tensor | None = None) -> tuple[torch.Tensor, list[Gradients]]:
    """One forward and backward pass over `tokens` (b, n): (b,) the metric per row, and per row
    the receivers' gradients of the metric (rows are independent)."""
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


def patched_metric(model: LoadedModel, tokens: torch.Tensor, answers: torch.Tensor, against: torch.Tensor | None,
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
        out: list[tuple[AttrEdge, float]] = []
        for s, side in enumerate(HEAD_SIDES):
            for lu, hu, lv, hv in torch.nonzero(self._head_mask(L, H)).tolist():
                out.append((((lu, hu), (lv, hv), side), float(self.head_head[s, lu, hu, lv, hv])))
            for lu, lv, hv in torch.nonzero(self._later(L)[:, :, None].expand(L, L, H)).tolist():
                out.append((((lu, MLP), (lv, hv), side), float(self.mlp_head[s, lu, lv, hv])))
        for lu, hu, lv in torch.nonzero(self._feeds_mlp(L)[:, None, :].expand(L, H, L)).tolist():
            out.append((((lu, hu), (lv, MLP), "mlp"), float(self.head_mlp[lu, hu, lv])))
        for lu, lv in torch.nonzero(self._later(L)).tolist():
            out.append((((lu, MLP), (lv, MLP), "mlp"), float(self.mlp_mlp[lu, lv])))
        out += [(((lu, hu), None, "logits"), float(self.head_logits[lu, hu])) for lu in range(L) for hu in range(H)]
        out += [(((lu, MLP), None, "logits"), float(self.mlp_logits[lu])) for lu in range(L)]
        return sorted(out, key=lambda e: (-abs(e[1]), edge_text(e[0])))

    def _later(self, L: int) -> torch.Tensor:
        return torch.ones(L, L, dtype=torch.bool).triu(1)                  # [u, v]: v after u

    def _feeds_mlp(self, L: int) -> torch.Tensor:
        return torch.ones(L, L, dtype=torch.bool).triu(1 if self.parallel else 0)

    def _head_mask(self, L: int, H: int) -> torch.Tensor:
        return self._later(L)[:, None, :, None].expand(L, H, L, H)

    def node_scores(self) -> dict[Unit, float]:
        """Per sender, the sum of its outgoing edges' scores: (a^ref - a) . dF/da, its first-order
        node-patching effect (every reader of the stream is a receiver)."""
        out: dict[Unit, float] = {}
        for (u, _, _), score in self.edges():
            out[u] = out.get(u, 0.0) + score
        return out


def edge_text(e: AttrEdge) -> str:
    u, v, side = e
    to = "logits" if v is None else unit_text(v)
    via = f" via {side}" if side in HEAD_SIDES else ""
    return f"{unit_text(u)} -> {to}{via}"


def unit_text(u: Unit) -> str:
    return f"mlp {u[0]}" if u[1] == MLP else f"{u[0]}.{u[1]}"


def top_nodes(edges: list[tuple[AttrEdge, float]], k: int) -> list[Unit]:
    """The heads and MLPs at either end of the k strongest edges (the logits are no node)."""
    units: set[Unit] = set()
    for (u, v, _), _ in edges[:k]:
        units.add(u)
        if v is not None:
            units.add(v)
    return sorted(units)


def _deltas(ref: list[torch.Tensor], ref_mlp: list[torch.Tensor], ev: PromptSetEvidence, i: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, n, H, D) and (L, n, D): a^ref - a of every head's write and every MLP's output."""
    w = ev.model.weights
    acts = ev.acts(i)
    dz = (ref[i].to(acts.v) - head_z(acts, ev.model))                                     # (L, n, H, r)
    return torch.einsum("lnhr,lhrd->lnhd", dz, w.W_O), ref_mlp[i].to(acts.v) - mlp_out(acts, ev.model)


def attribute(ev: PromptSetEvidence, ref: list[torch.Tensor], ref_mlp: list[torch.Tensor], metric: str,
              batch_size: int, twins: PromptSetEvidence | None = None, steps: int = 1,
              progress: Callable[[int], None] | None = None) -> EdgeScores:
    """EAP (steps 1, no twins needed) or EAP-IG (`steps` interpolation points between each twin's
    embeddings and its prompt's) scores of every edge, averaged over the prompts of `ev`.
    ref / ref_mlp: per prompt, the reference head outputs (L, n, H, r) and MLP outputs (L, n, D)."""
    if metric not in DIFFERENTIABLE:
        raise TraceError(f"attribution patching needs a differentiable task metric ({' or '.join(DIFFERENTIABLE)}); "
                         f"{metric!r} is a step function: set `option metric = logit_diff`")
    model = ev.model
    L = model.info.n_layers
    rows = [(i, k) for i in range(len(ev)) for k in range(1, steps + 1)]
    by_len: dict[int, list[tuple[int, int]]] = {}
    for i, k in rows:
        by_len.setdefault(len(ev.prompts[i].tokens), []).append((i, k))
    grads: dict[int, list[Gradients]] = {}
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
            answers = torch.tensor([ev.prompts[i].answer for i, _ in chunk], device=model.device)
            against = None if any(ev.prompts[i].against is None for i, _ in chunk) else torch.tensor(
                [ev.prompts[i].against for i, _ in chunk], device=model.device)
            _, gs = split_pass(model, tokens, answers, against, metric, acts[0].cos, acts[0].sin, embed)
            passes += 1
            for (i, _), g in zip(chunk, gs):
                grads.setdefault(i, []).append(g)
            if progress:
                progress(len(chunk))
    parallel = bool(getattr(model.bridge.cfg, "parallel_attn_mlp", False))
    sums = None
    for i in range(len(ev)):
        g = _mean_gradients(grads[i])
        dh, dm = _deltas(ref, ref_mlp, ev, i)
        part = [torch.stack([torch.einsum("anhd,bnkd->ahbk", dh, s) for s in (g.query, g.key, g.value)]),
                torch.einsum("anhd,bnd->ahb", dh, g.mlp),
                torch.stack([torch.einsum("and,bnkd->abk", dm, s) for s in (g.query, g.key, g.value)]),
                torch.einsum("and,bnd->ab", dm, g.mlp),
                torch.einsum("anhd,nd->ah", dh, g.logits), torch.einsum("and,nd->a", dm, g.logits)]
        sums = part if sums is None else [a + b for a, b in zip(sums, part)]
    assert sums is not None
    later = torch.ones(L, L, dtype=torch.bool).triu(1)
    feeds = torch.ones(L, L, dtype=torch.bool).triu(1 if parallel else 0)
    hh, hm, mh, mm, hl, ml = (x.cpu() / len(ev) for x in sums)
    return EdgeScores(hh * later[None, :, None, :, None], hm * feeds[:, None, :], mh * later[None, :, :, None],
                      mm * later, hl, ml, "eap-ig" if steps > 1 else "eap", len(ev), passes, parallel)


def _mean_gradients(gs: list[Gradients]) -> Gradients:
    return Gradients(*(torch.stack([getattr(g, f) for g in gs]).mean(0)
                       for f in ("query", "key", "value", "mlp", "logits")))
