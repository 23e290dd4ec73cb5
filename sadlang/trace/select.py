"""Selection rules, as pure functions over 1-D tensors. None of them can raise IndexError."""

from __future__ import annotations

import torch

ROUND = 1e-5  # tolerance on cumulative fractions (ACC rounds to 5 decimals)


def smallest_prefix(terms: torch.Tensor, fraction: float = 1.0) -> list[int]:
    """Indices of the fewest largest terms whose running sum reaches `fraction` of the total.

    terms: (r,) with a positive total. Sorted descending; the prefix ends at the first j with
    cumsum_j >= fraction * total (within ROUND relative). Negative terms are only kept when the
    positive ones cannot reach the total on their own. Returns [] when the total is <= 0.
    """
    total = float(terms.sum())
    if not total > 0:
        return []
    order = torch.argsort(terms, descending=True, stable=True)
    frac = torch.cumsum(terms[order].double(), 0) / total
    hits = torch.nonzero(frac >= fraction - ROUND).flatten()
    stop = int(hits[0]) if len(hits) else len(order) - 1
    return order[: stop + 1].tolist()


def cumulative_rule(values: torch.Tensor, fraction: float = 0.7) -> list[int]:
    """The ACC edge rule: keep every entry >= the first sorted value at which the running sum
    exceeds `fraction` of the total. values: (C,). Returns indices (largest first); [] when
    the total is <= 0."""
    total = float(values.sum())
    if not total > 0:
        return []
    order = torch.argsort(values, descending=True, stable=True)
    running = torch.cumsum(values[order].double(), 0)
    hits = torch.nonzero(running > fraction * total * (1 - ROUND)).flatten()
    stop = int(hits[0]) if len(hits) else len(order) - 1
    cutoff = values[order[stop]]
    keep = order[values[order] >= cutoff]
    return keep[values[keep] > 0].tolist()


def seed_rule(values: torch.Tensor, fraction: float = 1.0, single: float = 0.5) -> list[int]:
    """The seed rule: cutoff at the first sorted value where the running sum reaches
    `fraction` of the total, lowered to `single` x total so any component carrying at least
    that share is kept. Only positive entries. values: (C,)."""
    total = float(values.sum())
    if not total > 0:
        return []
    order = torch.argsort(values, descending=True, stable=True)
    running = torch.cumsum(values[order].double(), 0)
    hits = torch.nonzero(running >= fraction * total * (1 - ROUND)).flatten()
    stop = int(hits[0]) if len(hits) else len(order) - 1
    cutoff = min(float(values[order[stop]]), single * total)
    ranked = values[order]
    return order[(ranked >= cutoff) & (ranked > 0)].tolist()
