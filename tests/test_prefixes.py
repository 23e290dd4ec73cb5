"""Ablation rows that share a prefix (sadlang/circuits/ablation.py): where a row parts from the
clean run or another row of its prompt, how rows are cut into passes, and that rows started
late give the logits of rows run whole, on every tiny family and the bundled model."""

from __future__ import annotations

import pytest
import torch

from sadlang.circuits.ablation import (
    PASS_COST,
    ROW_WIDTH,
    Row,
    Start,
    _ablation_hooks,
    _partition,
    row_passes,
    run_rows,
    shared_prefixes,
)
from sadlang.circuits.nodes import MLP, keep_mask, mlp_mask
from sadlang.circuits.wiring import Wiring, only_edges, wiring_problem, without_edges
from sadlang.decomp.passes import last_logits
from tests.test_circuits import FAMILIES, _lab

L, N, H = 4, 3, 2


def _mask(kept: list[tuple[int, int]] | None = None, removed: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """(L, N, H): keep only `kept` (layer, head) at every position, or everything but `removed`."""
    if kept is not None:
        return keep_mask([(layer, h, None) for layer, h in kept], (L, N, H), True)
    return keep_mask([(layer, h, None) for layer, h in removed or []], (L, N, H), False)


def test_rows_start_where_they_part_from_the_clean_run_or_a_full_row():
    circuit = [(1, 0), (3, 1)]
    rows = [
        Row(0, _mask(kept=circuit)),                    # the circuit alone: parts at layer 0
        Row(0, _mask(kept=[(1, 0)])),                   # without 3.1: as the circuit up to layer 3
        Row(0, _mask(removed=[(2, 1)])),                # a node ablation: as the clean run up to layer 2
        Row(0, _mask(kept=circuit)),                    # the circuit again: the same everywhere
        Row(0, _mask(kept=[(1, 0)]), only_edges({(1, 0)}, set())),   # a wired row: from the start
        Row(1, _mask(kept=[(1, 0)])),                   # another prompt: its own full row
        Row(0, _mask(removed=[])),                      # the clean run itself
        Row(0, _mask(kept=[(1, 0)]), Wiring(logits=frozenset({(1, 0), (3, 1)}))),   # the wired row but
        # for the logits: from the last layer, after it (not after row 1, which cuts nothing)
        Row(0, _mask(removed=[]), Wiring({((3, 1), "key"): frozenset({(1, 0)})})),  # a cut into layer 3 alone
    ]
    assert shared_prefixes(rows) == [Start(0, None), Start(3, 0), Start(2, None), Start(L, 0), Start(0, None),
                                     Start(0, None), Start(L, None), Start(L - 1, 4), Start(3, None)]


def test_passes_merge_rows_whose_start_saves_too_little():
    # 12 rows from the first block, 6 that could start at block 2 of 30, 6 at block 23
    starts = [0] * 12 + [2] * 6 + [23] * 6
    assert _partition(starts, 30, 32) == [(0, 18), (18, 24)]
    # the cost model behind it: alone, the block-2 rows would cost more than they save
    alone = 2 * PASS_COST + 30 * (12 + ROW_WIDTH) + 28 * (6 + ROW_WIDTH)
    assert PASS_COST + 30 * (18 + ROW_WIDTH) < alone
    # no pass holds more than batch_size rows, and every row is in one pass, in order
    cuts = _partition([0] * 40 + [5] * 9, 30, 16)
    assert all(j - i <= 16 for i, j in cuts) and [k for i, j in cuts for k in range(i, j)] == list(range(49))


def _variants(model, ev):
    """Rows of the circuit lab's kinds on prompt set `ev`: a circuit of a head of the second (the
    first, on two layers) and of the last layer, alone; without either node; without it (M without C); node ablations of
    a late head and of an early one; a duplicate; edge-level rows, MLP edges too (where wiring is exact)."""
    info = model.info
    last = info.n_layers - 1
    first = 1 if last > 1 else 0
    circuit = [(first, 0, None), (last, 1, None)]
    rows = []
    for i, p in enumerate(ev.prompts):
        shape = (info.n_layers, len(p.tokens), info.n_heads)
        rows += [Row(i, keep_mask(circuit, shape, True)), Row(i, keep_mask(circuit[:1], shape, True)),
                 Row(i, keep_mask(circuit[1:], shape, True)), Row(i, keep_mask(circuit, shape, False)),
                 Row(i, keep_mask([(last, 0, None)], shape, False)),
                 Row(i, keep_mask([(first, 1, None)], shape, False)),
                 Row(i, keep_mask(circuit, shape, True))]
        # MLP nodes: a heads-and-MLPs circuit alone (every other MLP ablated), without its late
        # MLP, an early MLP ablated, and a late MLP ablated at one position
        with_mlp = [*circuit, (last, MLP, None)]
        rows += [Row(i, keep_mask(with_mlp, shape, True), None, mlp_mask(with_mlp, shape[:2], True)),
                 Row(i, keep_mask(circuit, shape, True), None, mlp_mask(circuit, shape[:2], True)),
                 Row(i, keep_mask([], shape, False), None, mlp_mask([(first, MLP, None)], shape[:2], False)),
                 Row(i, keep_mask([], shape, False), None, mlp_mask([(last, MLP, 1)], shape[:2], False))]
        if wiring_problem(model) is None:
            heads = {(first, 0), (last, 1)}
            edges = {((first, 0), (last, 1), "query"), ((last, 1), None, "logits")}
            rows += [Row(i, keep_mask(circuit, shape, True), only_edges(heads, edges)),         # C alone, edges
                     Row(i, keep_mask(circuit[:1], shape, True), only_edges({(first, 0)}, edges)),  # without a node
                     Row(i, keep_mask(circuit, shape, True),                                     # other logits edges
                         only_edges(heads, edges | {((first, 0), None, "logits")})),
                     Row(i, keep_mask([], shape, False), without_edges(edges)),                 # M without C's edges
                     Row(i, keep_mask(with_mlp, shape, True), only_edges(heads, edges),            # and with an MLP
                         mlp_mask(with_mlp, shape[:2], True))]
            # edges from and to MLPs: the MLP node hears the first head only through its edge and
            # alone reaches the logits; the model without an MLP -> head and a head -> MLP edge
            mlp_edges = {((first, 0), (last, 1), "query"), ((first, 0), (last, MLP), "mlp"),
                         ((last, MLP), None, "logits")}
            rows += [Row(i, keep_mask(with_mlp, shape, True), only_edges(heads | {(last, MLP)}, mlp_edges),
                         mlp_mask(with_mlp, shape[:2], True)),
                     Row(i, keep_mask([], shape, False), without_edges({((first, MLP), (last, 1), "value")})),
                     Row(i, keep_mask([], shape, False), without_edges({((first, 0), (last, MLP), "mlp")}))]
    return rows


def _rows_run_whole(ev, rows, values, mlp_values) -> torch.Tensor:
    """Every row in a pass of its own from the first block (no sharing)."""
    tokens = [ev.acts(row.prompt).tokens[None] for row in rows]
    return torch.cat([last_logits(ev.model, t, _ablation_hooks(ev.model, rows, [k], ev, values, mlp_values)[0])
                      for k, t in enumerate(tokens)])


def _agree(model_name: str, kind: str, cf: str | None) -> None:
    model, _, stores, lab = _lab(model_name, kind, cf)
    ev = stores["copy"]
    rows = _variants(model, ev)
    shared = run_rows(ev, rows, lab.values, 4, lab.mlp_values)
    whole = _rows_run_whole(ev, rows, lab.values, lab.mlp_values)
    # batches of other sizes round differently in float32: to ~1e-5 of the logits' size (rows
    # with every MLP but one ablated reach larger logits than the clean run)
    torch.testing.assert_close(shared, whole, rtol=1e-5, atol=1e-5 * max(10.0, float(whole.abs().max())))
    # reduced as each pass ends: the same values as reducing the whole table afterwards
    def top(k, logits):
        return float(logits.max()) + 1000.0 * rows[k].prompt
    reduced = run_rows(ev, rows, lab.values, 4, lab.mlp_values, reduce=top)
    assert reduced.tolist() == [top(k, shared[k]) for k in range(len(rows))]
    plan = row_passes(ev, rows, 4)
    assert any(layer > 0 for layer, _ in plan)                      # some rows did start late
    starts = shared_prefixes(rows)
    if wiring_problem(model) is None:                               # wired rows too, from both kinds of base
        wired = [s for row, s in zip(rows, starts) if row.wiring and s.layer > 0]
        assert {s.base is None for s in wired} == {True, False}
    assert sorted(k for _, chunk in plan for k in chunk) == [        # each row once, copies in none
        k for k, s in enumerate(shared_prefixes(rows)) if s.layer < model.info.n_layers]


@pytest.mark.parametrize("model_name", ["planted", *FAMILIES])
def test_rows_started_late_equal_rows_run_whole(model_name):
    _agree(model_name, "mean", None)


@pytest.mark.parametrize("kind,cf", [("resample", "abc"), ("zero", None)])
def test_rows_started_late_equal_rows_run_whole_under_every_ablation(kind, cf):
    _agree("tiny-llama", kind, cf)


@pytest.mark.bundled
def test_rows_started_late_equal_rows_run_whole_on_the_bundled_model():
    _agree("smollm2-135m", "mean", None)
