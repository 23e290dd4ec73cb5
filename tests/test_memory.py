"""What bounds memory: the byte budget of decomposition tables, and activations that keep only
what they need (issue 28; the figures are in docs/benchmarks.md, from benchmarks/memory.py)."""

from __future__ import annotations

import torch

from sadlang.decomp import prompt as P
from sadlang.decomp.activations import run_batch
from sadlang.decomp.budget import ByteBudget
from sadlang.trace.tracer import decomposition


def test_activations_keep_the_last_positions_logits_alone(tiny_llama):
    batch = [tiny_llama.to_tokens("When Mary and John went to the store")] * 3
    acts = run_batch(tiny_llama, batch)
    vocab = acts[0].logits_end.shape[-1]
    # one row per prompt of the batch, not (batch, n, V)
    assert acts[0].logits_end.untyped_storage().nbytes() == len(batch) * vocab * 4


def test_a_batch_unembeds_only_its_last_position_and_leaves_the_model_as_it_was(tiny_llama):
    tokens = tiny_llama.to_tokens("When Mary and John went to the store")
    acts = run_batch(tiny_llama, [tokens, tokens])
    with torch.no_grad():
        full = tiny_llama.bridge(torch.tensor([tokens]))          # the hook went with the batch
    assert full.shape[:2] == (1, len(tokens))
    # one row through the unembedding instead of n: the same dot products, up to fp32 rounding
    scale = float(full.abs().max())
    torch.testing.assert_close(acts[0].logits_end, full[0, -1], rtol=0, atol=1e-5 * scale)


def test_the_memo_budget_evicts_across_decompositions_and_recomputes_identically(tiny_llama, monkeypatch):
    tokens = tiny_llama.to_tokens("When Mary and John went to the store, John gave a drink to")
    first, second = (decomposition(tiny_llama, a) for a in run_batch(tiny_llama, [tokens, tokens]))
    one = first.a(3, 0)
    size = one.numel() * one.element_size()
    budget = ByteBudget(3 * size, keep=1)
    monkeypatch.setattr(P, "MEMO", budget)
    first._cache.clear()
    kept = {h: first.a(3, h).clone() for h in range(4)}        # the 4th evicts the 1st
    assert budget.total <= budget.limit
    assert ("a", 3, 0) not in first._cache and ("a", 3, 3) in first._cache
    second.b(3, 1)                                               # another decomposition's table evicts too
    assert ("a", 3, 1) not in first._cache and budget.total <= budget.limit
    for h, table in kept.items():                                # recomputed on demand, to the bit
        assert torch.equal(first.a(3, h), table)
    assert budget.total <= budget.limit


def test_the_newest_tables_stay_past_the_limit(tiny_llama, monkeypatch):
    tokens = tiny_llama.to_tokens("When Mary and John went to the store")
    dec = decomposition(tiny_llama, run_batch(tiny_llama, [tokens])[0])
    budget = ByteBudget(0, keep=2)
    monkeypatch.setattr(P, "MEMO", budget)
    dec._cache.clear()
    for h in range(4):
        dec.b(3, h)          # computes k_rot (memo) and b (memo): the two newest stay
    assert len(budget._entries) == 2 and ("b", 3, 3) in dec._cache


def test_a_dead_decompositions_tables_leave_the_budget(tiny_llama, monkeypatch):
    tokens = tiny_llama.to_tokens("When Mary and John went to the store")
    budget = ByteBudget(2**30, keep=1)
    monkeypatch.setattr(P, "MEMO", budget)
    dec = decomposition(tiny_llama, run_batch(tiny_llama, [tokens])[0])
    dec.a(2, 0)
    assert budget.total > 0
    del dec
    budget.limit = 0
    survivor = decomposition(tiny_llama, run_batch(tiny_llama, [tokens])[0])
    survivor.a(1, 0)                 # over a zero limit: everything older goes, the newest stays
    assert len(budget._entries) == 1 and ("a", 1, 0) in survivor._cache
