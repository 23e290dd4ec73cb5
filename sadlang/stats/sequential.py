"""Sampling until decided (`sample N up to M`): the prompt set is measured at sizes N, 2N, 4N, ...
up to M, and a claim stops at the first size where it is decided. Looking several times inflates
false HELDs unless each look spends a share of the error budget: the looks are fixed in advance
(`looks`), and each is made at confidence 1 - (1 - c) / K for K looks (Bonferroni), so the chance
that any look errs stays at most 1 - c whatever the stopping rule."""

from __future__ import annotations


def looks(first: int, cap: int | None) -> list[int]:
    """The sample sizes a set is measured at: first, doubling, ending at cap."""
    if cap is None or cap <= first:
        return [first]
    out = [first]
    while out[-1] < cap:
        out.append(min(cap, out[-1] * 2))
    return out


def per_look_confidence(confidence: float, n_looks: int) -> float:
    """The confidence of each look so that all of them together hold `confidence`."""
    return 1.0 - (1.0 - confidence) / max(1, n_looks)
