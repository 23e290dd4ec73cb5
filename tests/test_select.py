"""The selection rules (trace/select.py) against their definitions written as plain loops, on
random values with ties, zeros and negatives."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sadlang.trace.select import ROUND, cumulative_rule, seed_rule, smallest_prefix

values = st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0]) | st.floats(-5, 5, width=32),
                  min_size=1, max_size=40).map(lambda xs: torch.tensor(xs, dtype=torch.float32))


def _order(v: torch.Tensor) -> list[int]:
    return sorted(range(len(v)), key=lambda i: (-float(v[i]), i))       # descending, stable


def _stop(v: torch.Tensor, order: list[int], reached) -> int:
    """The first place in `order` where the running sum satisfies `reached`, else the last."""
    running = 0.0
    for j, i in enumerate(order):
        running += float(v[i])
        if reached(running):
            return j
    return len(order) - 1


def cumulative_by_definition(v: torch.Tensor, fraction: float) -> list[int]:
    total = float(v.sum())
    if not total > 0:
        return []
    order = _order(v)
    cutoff = v[order[_stop(v, order, lambda run: run > fraction * total * (1 - ROUND))]]
    return [i for i in order if v[i] >= cutoff and v[i] > 0]


def seed_by_definition(v: torch.Tensor, fraction: float, single: float) -> list[int]:
    total = float(v.sum())
    if not total > 0:
        return []
    order = _order(v)
    stop = _stop(v, order, lambda run: run >= fraction * total * (1 - ROUND))
    cutoff = min(float(v[order[stop]]), single * total)
    return [i for i in order if v[i] >= cutoff and v[i] > 0]


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from([0.5, 0.7, 1.0]))
def test_cumulative_rule_is_its_definition(v, fraction):
    assert cumulative_rule(v, fraction) == cumulative_by_definition(v, fraction)


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from([0.7, 1.0]), st.sampled_from([0.3, 0.5]))
def test_seed_rule_is_its_definition(v, fraction, single):
    assert seed_rule(v, fraction, single) == seed_by_definition(v, fraction, single)


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from([0.5, 1.0]))
def test_smallest_prefix_reaches_the_fraction_with_the_largest_terms(v, fraction):
    kept = smallest_prefix(v, fraction)
    total = float(v.sum())
    if not total > 0:
        assert kept == []
        return
    assert kept == _order(v)[: len(kept)]
    assert float(v[kept].double().sum()) >= (fraction - ROUND) * total - 1e-6 or len(kept) == len(v)
