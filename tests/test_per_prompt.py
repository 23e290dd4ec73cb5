"""Resample values are computed when a pass reads them and kept under the table budget
(sadlang/circuits/per_prompt.py): the same tensors as reading every twin up front, bounded by
the budget however many prompts, recomputed to the bit after eviction."""

from __future__ import annotations

import pytest
import torch

from sadlang.circuits.ablation import head_z, mlp_out
from sadlang.circuits.ablations import get_ablation
from sadlang.circuits.per_prompt import PerPrompt
from sadlang.decomp import prompt as P
from sadlang.decomp.budget import ByteBudget
from tests.test_circuits import _lab


@pytest.mark.parametrize("read", [head_z, mlp_out], ids=["heads", "mlps"])
def test_resample_values_are_the_twins_read_when_asked(read):
    model, _, stores, _ = _lab("tiny-llama", "resample", "abc")
    ev, twins = stores["copy"], stores["abc"]
    values = get_ablation("resample").values(ev, twins, read)
    assert isinstance(values, PerPrompt) and len(values) == len(ev) and values.computed == 0
    for i in reversed(range(len(ev))):
        assert torch.equal(values[i], read(twins.acts(i), model))
    assert values.computed == len(ev)
    assert torch.equal(values[-1], values[len(ev) - 1]) and values.computed == len(ev)   # kept
    assert [t.shape for t in values[1:3]] == [values[1].shape, values[2].shape]
    with pytest.raises(IndexError):
        values[len(ev)]
    assert len(list(values)) == len(ev)


def test_evicted_values_leave_the_budget_and_come_back_identical(monkeypatch):
    one = torch.arange(12.0).reshape(3, 4)
    size = one.numel() * one.element_size()
    budget = ByteBudget(2 * size, keep=1)
    monkeypatch.setattr(P, "MEMO", budget)
    values = PerPrompt(5, lambda i: one * (i + 1))
    first = [values[i].clone() for i in range(5)]
    assert budget.total <= budget.limit and len(values._values) == 2      # the two newest
    assert values.computed == 5
    for i in reversed(range(5)):
        assert torch.equal(values[i], first[i])
    assert values.computed == 8            # 4 and 3 were still held; 2, 1 and 0 again
    assert budget.total <= budget.limit
