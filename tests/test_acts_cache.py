"""Prompt activations under a byte budget: what is spilled reads back bit for bit, memory stays
within the budget, and a check under a budget that spills almost everything reports the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sadlang.decomp import acts_cache
from sadlang.decomp.activations import run_prompts
from sadlang.evidence.store import PromptSetEvidence
from sadlang.prompts.build import build_prompt
from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.runner.report import to_json
from sadlang.trace.options import TraceOptions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tight():
    """The process budget cut to nothing but the two newest prompts, restored afterwards."""
    budget = acts_cache.BUDGET
    saved = (budget.limit, budget.keep)
    budget.limit, budget.keep = 0, 2
    yield budget
    budget.limit, budget.keep = saved


def test_spilled_activations_read_back_bit_for_bit(tight, tiny_llama):
    names = [" Mary", " John", " Alice", " Bob", " Tom", " Kate"]
    prompts = [build_prompt(tiny_llama, "When{A} and{B} went to the store,{B} gave it to", {"A": a, "B": b},
                            answer="{A}", against="{B}")
               for a, b in zip(names, names[1:] + names[:1])]
    ev = PromptSetEvidence(tiny_llama, prompts, TraceOptions(), batch_size=4)
    fresh = run_prompts(tiny_llama, [p.tokens for p in prompts], batch_size=4)
    for _ in range(2):                          # the second round reads every prompt back
        for i, want in enumerate(fresh):
            got = ev.acts(i)
            for f in dataclasses.fields(want):
                a, b = getattr(got, f.name), getattr(want, f.name)
                assert (a is None and b is None) or torch.equal(a, b), f.name
                # each field on storage of its own: one kept elsewhere pins nothing more
                assert a is None or a.untyped_storage().nbytes() == a.numel() * a.element_size(), f.name
            assert len(ev._acts._held) <= tight.keep
    assert ev._acts.spills == len(prompts) and ev._acts.reads >= len(prompts)
    kept = ev.logits_end(0)                      # kept apart: it pins no read-back buffer
    assert torch.equal(kept, fresh[0].logits_end) and kept.untyped_storage().nbytes() == kept.numel() * 4
    assert tight.total <= max(acts_cache.nbytes(a) for a in fresh) * tight.keep


def test_a_check_that_spills_almost_everything_reports_the_same(tight, planted):
    only = {"reads_marker", "key_edge", "stable", "causal", "copies", "faithful", "path_key"}
    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")
    before = acts_cache.ActsCache.written
    spilled = to_json(run_plan(plan, model, only=only))
    assert acts_cache.ActsCache.written - before >= 10
    tight.limit, tight.keep = 2**40, 8
    kept = to_json(run_plan(plan, model, only=only))
    assert spilled == kept
