"""Seeding: which components write the logit direction at the answer position."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sadlang.decomp.activations import PromptActivations
from sadlang.decomp.components import Component, ComponentTable
from sadlang.models.weights import ModelWeights
from sadlang.trace.select import seed_rule


@dataclass
class Seed:
    component: Component
    weight: float  # logits


def direction(weights: ModelWeights, answer: int, against: int | None) -> torch.Tensor:
    """(D,) logit direction W_U[:, answer] - W_U[:, against] (or W_U[:, answer]) of the folded
    unembedding (ModelWeights.logit_direction)."""
    return weights.logit_direction(answer, against)


def final_contributions(acts: PromptActivations, weights: ModelWeights, w: torch.Tensor,
                        pos: int) -> torch.Tensor:
    """(C,) each component's logit along w at `pos`, over all layers, divided by the frozen
    final norm scale. Indexed by ComponentTable(L, H, n) (the offset slot is 0).
    Sums to ln_final.hook_normalized[pos] . w."""
    sig = acts.final_scale[pos]
    v = acts.v.repeat_interleave(weights.group, dim=2)                  # (L, n, H, r)
    vo_w = torch.einsum("lthr,lhr->lht", v, weights.W_O @ w)              # (L, H, t)
    heads = acts.mix[:, :, pos, :] * vo_w                                # (L, H, t)
    mlp = acts.mlp_out[:, pos] @ w
    bias = weights.b_O @ w
    embed = (acts.embed[pos] @ w)[None]
    zero = torch.zeros(1, dtype=w.dtype, device=w.device)
    return torch.cat([heads.reshape(-1), mlp, bias, embed, zero]) / sig


def find_seeds(acts: PromptActivations, weights: ModelWeights, w: torch.Tensor, pos: int,
               single: float = 0.5) -> tuple[list[Seed], float]:
    """Seeds by the linear rule, and the total logit along w (bias excluded)."""
    kappa = final_contributions(acts, weights, w, pos)
    table = ComponentTable(layer=weights.n_layers, n_heads=weights.n_heads, n=acts.n)
    seeds = [Seed(table.describe(i), float(kappa[i])) for i in seed_rule(kappa, 1.0, single)]
    return seeds, float(kappa.sum())
