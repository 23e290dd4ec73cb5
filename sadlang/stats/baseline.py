"""A score against random draws of the same kind (random circuits of the same size)."""

from __future__ import annotations

from collections.abc import Sequence


def permutation_p(score: float, draws: Sequence[float]) -> float:
    """The share of random draws scoring at least `score`, counting the score itself among them
    ((1 + #{draw >= score}) / (1 + draws)): valid for exchangeable draws, never 0."""
    return (1 + sum(1 for d in draws if d >= score)) / (1 + len(draws))
