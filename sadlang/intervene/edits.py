"""Batched interventions through TransformerLens hooks.

An `EdgeEdit` removes (ablate) or adds (boost, times a factor) the part of one upstream
component's signal that lies in a set of singular directions of a downstream head:
- local: only that query head's attention scores change (hook_attn_scores), so grouped-query
  siblings sharing the key/value head are untouched. A query-side edit changes row d; a
  key-side edit changes column s for every query row of that head.
- global: the component's signal is subtracted/added in the residual stream at its position
  (hook_attn_out for heads and biases, hook_mlp_out, blocks.0.hook_resid_pre for the
  embedding), so every later reader sees the change.
All prompts of a batch run in one forward pass, each with its own edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sadlang.decomp.components import Component
from sadlang.decomp.passes import Resume, lean_pass
from sadlang.decomp.prompt import PromptDecomposition
from sadlang.errors import TraceError
from sadlang.intervene.signals import component_index, residual_delta

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel


@dataclass
class EdgeEdit:
    layer: int
    head: int
    d: int
    s: int
    component: Component
    side: str            # query | key
    svs: list[int]
    mode: str = "local"  # local | global
    sign: float = -1.0   # -1 ablate, +factor boost


def _coords_kept(dec: PromptDecomposition, e: EdgeEdit) -> torch.Tensor:
    c = component_index(dec, e.layer, e.component)
    at = e.d if e.side == "query" else e.s
    coords = (dec.a if e.side == "query" else dec.b)(e.layer, e.head)[c, at]
    mask = torch.zeros_like(coords)
    mask[torch.tensor(e.svs, dtype=torch.long)] = 1.0
    return coords * mask


def score_delta(dec: PromptDecomposition, e: EdgeEdit) -> torch.Tensor:
    """(n, n) change of head (layer, head)'s pre-softmax scores for a local edit."""
    n = dec.n
    kept = _coords_kept(dec, e)
    scale = dec.weights.attn_scale
    delta = torch.zeros(n, n, dtype=kept.dtype, device=kept.device)
    if e.side == "query":
        b_tot = dec.b(e.layer, e.head).sum(0)               # (n, r)
        delta[e.d] = (b_tot @ kept) / scale
    else:
        a_tot = dec.a(e.layer, e.head).sum(0)               # (n, r)
        delta[:, e.s] = (a_tot @ kept) / scale
        delta[: e.s, e.s] = 0.0
    return e.sign * delta


def input_change(dec: PromptDecomposition, e: EdgeEdit) -> tuple[float, float]:
    """(norm ratio, cosine) of the downstream head's rotated query (at d) or key (at s)
    after the edit versus before, in the head's own coordinates."""
    kept = _coords_kept(dec, e)
    if e.side == "query":
        before = dec.a_total(e.layer, e.head)[e.d] @ dec.forms.Gk[e.layer, e.head].T
        delta = kept @ dec.forms.Gk[e.layer, e.head].T
    else:
        before = dec.b_total(e.layer, e.head)[e.s] @ dec.forms.Gq[e.layer, e.head].T
        delta = kept @ dec.forms.Gq[e.layer, e.head].T
    after = before + e.sign * delta
    nb = float(before.norm())
    if nb == 0:
        return float("nan"), float("nan")
    cos = float(after @ before) / max(float(after.norm()) * nb, 1e-30)
    return float(after.norm()) / nb, cos


def _global_hook(comp: Component) -> str:
    if comp.kind in ("head", "bias"):
        return f"blocks.{comp.layer}.hook_attn_out"
    if comp.kind == "mlp":
        return f"blocks.{comp.layer}.hook_mlp_out"
    if comp.kind == "embed":
        return "blocks.0.hook_resid_pre"
    raise TraceError("an offset (the head's own Q/K bias) has no place in the residual stream: "
                     "use a local intervention")


def _written_at(comp: Component) -> int:
    """The layer whose block writes `comp` into the residual (where a global edit of it acts)."""
    return 0 if comp.kind == "embed" else comp.layer


def _cap_score_deltas(decs: list[PromptDecomposition], deltas: dict[int, torch.Tensor], cap: float) -> None:
    """Soft-capped models hook their scores after the cap: turn each pre-cap change into the
    change of the capped score, cap(z + delta) - cap(z), with z the decomposed pre-cap score.
    deltas[layer]: (B, H, n, n), edited in place."""
    from sadlang.decomp.prompt import softcap

    for layer, t in deltas.items():
        for i, dec in enumerate(decs):
            for h in range(t.shape[1]):
                if not bool(t[i, h].any()):
                    continue
                z = dec.a_total(layer, h) @ dec.b_total(layer, h).T / dec.weights.attn_scale     # (n, n)
                t[i, h] = softcap(z + t[i, h], cap) - softcap(z, cap)


def local_attention(dec: PromptDecomposition, edits: list[EdgeEdit], read: tuple[int, int, int, int]) -> float:
    """The attention weight at read = (layer, head, d, s) after local edits of that same head,
    from the decomposition alone, without a forward pass: a local edit changes only its head's
    scores, so everything below is the clean run's and row d's new weights are the softmax of
    its edited scores over its keys. Agrees with `run_edits` (tests/test_passes.py)."""
    layer, head, d, s = read
    if any(e.mode != "local" or (e.layer, e.head) != (layer, head) for e in edits):
        raise ValueError("local_attention needs local edits of the head it reads")
    delta = torch.zeros(dec.n, dec.n, dtype=dec.acts.scores.dtype, device=dec.acts.scores.device)
    for e in edits:
        delta += score_delta(dec, e)
    cap = dec.weights.softcap
    if cap:
        deltas = {layer: torch.zeros(1, dec.weights.n_heads, dec.n, dec.n, dtype=delta.dtype, device=delta.device)}
        deltas[layer][0, head] = delta
        _cap_score_deltas([dec], deltas, cap)
        delta = deltas[layer][0, head]
    lo = dec.weights.key_start(layer, d)
    row = dec.acts.scores[layer, head, d, lo: d + 1] + delta[d, lo: d + 1]
    return float(torch.softmax(row, -1)[s - lo])


def run_edits(model: LoadedModel, decs: list[PromptDecomposition], edits: list[list[EdgeEdit]],
              read: list[tuple[int, int, int, int] | None] | None = None, need_logits: bool = True
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Run one forward pass over equal-length prompts, prompt i edited by edits[i].

    Returns (logits at the last position (b, V), or None when not `need_logits`; attention
    weights (b,) read at read[i] = (layer, head, d, s), or None without `read`). A pass that
    needs no logits stops after the last layer it reads, and every pass starts at the first
    layer it edits, from the clean run's residual there (decomp/passes.py).
    """
    n = decs[0].n
    B = len(decs)
    H = model.info.n_heads
    score_deltas: dict[int, torch.Tensor] = {}
    resid_deltas: dict[str, torch.Tensor] = {}
    first = model.info.n_layers          # the first layer an edit (or a read) touches
    for r in read or []:
        if r is not None:
            first = min(first, r[0])
    for i, (dec, es) in enumerate(zip(decs, edits)):
        for e in es:
            first = min(first, e.layer if e.mode == "local" else _written_at(e.component))
            if e.mode == "local":
                t = score_deltas.setdefault(e.layer, torch.zeros(B, H, n, n, device=model.device))
                t[i, e.head] += score_delta(dec, e)
            else:
                hook = _global_hook(e.component)
                at = e.d if e.side == "query" else e.s
                delta = residual_delta(dec, e.layer, e.head, _coords_kept(dec, e), e.side, at)
                t = resid_deltas.setdefault(hook, torch.zeros(B, n, model.info.d_model, device=model.device))
                t[i, at] += e.sign * delta
    if model.weights.softcap:
        _cap_score_deltas(decs, score_deltas, model.weights.softcap)
    hooks = []
    for layer, delta in score_deltas.items():
        def add_scores(x: torch.Tensor, hook: Any, delta: torch.Tensor = delta) -> torch.Tensor:
            return x + delta.to(x.dtype)
        hooks.append((f"blocks.{layer}.attn.hook_attn_scores", add_scores))
    for name, delta in resid_deltas.items():
        def add_resid(x: torch.Tensor, hook: Any, delta: torch.Tensor = delta) -> torch.Tensor:
            return x + delta.to(x.dtype)
        hooks.append((name, add_resid))
    tokens = torch.stack([d.acts.tokens for d in decs])
    resume = None
    if 0 < first < model.info.n_layers:
        resume = Resume(first, torch.stack([d.acts.resid_pre[first] for d in decs]))
    return lean_pass(model, tokens, hooks, read, logits=need_logits, resume=resume)
