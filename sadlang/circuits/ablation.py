"""Node ablations of attention heads through `blocks.L.attn.hook_z` (the head's output before
W_O): at each (layer, position, head) that a variant does not keep, z is replaced by a
reference value:

- zero:     0;
- mean:     the mean of z over the reference prompts with the same template and length
            (positions align), or over the same length when a template is alone;
- resample: z of the aligned counterfactual prompt (same template and positions).

MLPs, embeddings and biases are never ablated. A row may also cut paths between heads (edge-level
circuits, sadlang/circuits/wiring.py). Every variant of every prompt of one length
runs in the same forward passes (batched `batch_size` rows at a time).

Shapes: L layers, n positions, H query heads, r d_head, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sadlang.circuits.wiring import WiredRun, Wiring
from sadlang.decomp.activations import PromptActivations, batches
from sadlang.decomp.passes import last_logits
from sadlang.evidence.store import PromptSetEvidence
from sadlang.models.loader import LoadedModel

AblationKind = Literal["zero", "mean", "resample"]


def head_z(acts: PromptActivations, model: LoadedModel) -> torch.Tensor:
    """(L, n, H, r): every head's attention-weighted values, from the clean run's pattern and
    value vectors (what hook_z holds; exact, no forward pass)."""
    w = model.weights
    kv = torch.tensor([w.kv(h) for h in range(w.n_heads)], device=acts.v.device)
    v = acts.v[:, :, kv, :]                                        # (L, n, H, r)
    return torch.einsum("lhds,lshr->ldhr", acts.pattern, v)


def one_head_z(acts: PromptActivations, model: LoadedModel, layer: int, head: int) -> torch.Tensor:
    """(n, r): head_z(acts, model)[layer, :, head], computed for that head alone."""
    return acts.pattern[layer, head] @ acts.v[layer, :, model.weights.kv(head)]


def reference_values(kind: AblationKind, ev: PromptSetEvidence,
                     counterfactual: PromptSetEvidence | None = None) -> list[torch.Tensor]:
    """Per prompt of `ev`, the (L, n, H, r) values that replace ablated head outputs."""
    zs = [head_z(ev.acts(i), ev.model) for i in range(len(ev))]
    if kind == "zero":
        return [torch.zeros_like(z) for z in zs]
    if kind == "resample":
        if counterfactual is None or len(counterfactual) != len(ev):
            raise ValueError("resample ablation needs the aligned counterfactual prompt set")
        return [head_z(counterfactual.acts(i), ev.model) for i in range(len(ev))]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(ev.prompts):
        groups.setdefault((p.template_index, len(p.tokens)), []).append(i)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(ev.prompts):
        by_len.setdefault(len(p.tokens), []).append(i)
    out = []
    for p in ev.prompts:
        members = groups[(p.template_index, len(p.tokens))]
        if len(members) < 2:
            members = by_len[len(p.tokens)]
        out.append(torch.stack([zs[j] for j in members]).mean(0))
    return out


@dataclass
class Row:
    """One forward pass row: prompt `prompt` with head outputs kept where `keep` (L, n, H) is
    True, and with the paths `wiring` cuts (sadlang/circuits/wiring.py) when it has one."""

    prompt: int
    keep: torch.Tensor
    wiring: Wiring | None = None


def run_rows(ev: PromptSetEvidence, rows: list[Row], values: list[torch.Tensor],
             batch_size: int) -> torch.Tensor:
    """Logits at the last position of every row, (len(rows), V); rows of one length share
    passes of up to `batch_size` rows."""
    model = ev.model
    L = model.info.n_layers
    out = torch.empty(len(rows), model.bridge.cfg.d_vocab, device=model.device)
    for chunk in batches([len(ev.prompts[row.prompt].tokens) for row in rows], batch_size):
        keep = torch.stack([rows[k].keep for k in chunk]).to(model.device)            # (b, L, n, H)
        repl = torch.stack([values[rows[k].prompt] for k in chunk]).to(model.device)  # (b, L, n, H, r)
        tokens = torch.stack([ev.acts(rows[k].prompt).tokens for k in chunk])
        wirings = [rows[k].wiring for k in chunk]
        hooks: list = []
        if any(wirings):
            acts = ev.acts(rows[chunk[0]].prompt)
            run = WiredRun(model, wirings, repl, acts.cos, acts.sin)
            hooks = run.hooks() + [(f"blocks.{layer}.attn.hook_z", run.z_hook(layer, keep)) for layer in range(L)]
        else:
            for layer in range(L):
                def swap(z: torch.Tensor, hook, layer: int = layer, keep: torch.Tensor = keep,
                         repl: torch.Tensor = repl) -> torch.Tensor:
                    return torch.where(keep[:, layer, :, :, None], z, repl[:, layer].to(z.dtype))
                hooks.append((f"blocks.{layer}.attn.hook_z", swap))
        out[chunk] = last_logits(model, tokens, hooks)
    return out
