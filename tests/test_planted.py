"""Planted circuits with known ground truth: recovery, interventions, control signals."""

import pytest
import torch

from sadlang.control.sinks import control_ablation_drop, prototypes, sink_profile
from sadlang.decomp.activations import run_prompts
from sadlang.evidence.store import PromptSetEvidence
from sadlang.intervene.edits import EdgeEdit, run_edits
from sadlang.intervene.signals import edge_signal
from sadlang.models.planted import DIRECTIONS
from sadlang.prompts.build import build_prompt
from sadlang.trace.methods import decompose
from sadlang.trace.options import TraceOptions
from sadlang.trace.tracer import decomposition

TEXT = " When Mary went to the x, John and Mary said"   # marker at 6, Mary at 2 and 10


def _dec(planted, text=TEXT):
    return decomposition(planted, run_prompts(planted, [planted.to_tokens(text)])[0])


def _angle_cos(signal, direction):
    return abs(float(signal @ direction.float()) / (signal.norm() * direction.float().norm()))


@pytest.mark.parametrize("method", ["sad", "acc", "accpp"])
def test_key_side_edge_is_recovered_exactly(planted, method):
    dec = _dec(planted)
    f = decompose(dec, 1, 0, dec.n - 1, 6, TraceOptions(method=method))
    heads = [e for e in f.edges if e.component.kind == "head"]
    assert [(e.component.layer, e.component.head, e.component.src, e.side) for e in heads] == [(0, 0, 6, "key")]
    e = heads[0]
    sig = edge_signal(dec, 1, 0, e.component, "key", 6, e.svs)
    # the planted key reads f0 + 0.5 bos (rank 1): the signal subspace is exactly that line
    assert _angle_cos(sig, DIRECTIONS["f0"] + 0.5 * DIRECTIONS["bos"]) > 0.999
    # 0.2 writes f2 at the same position: orthogonal, so it is not an edge
    assert not any(e.component.kind == "head" and e.component.head == 2 for e in f.edges)


@pytest.mark.parametrize("method", ["sad", "acc", "accpp"])
def test_query_side_edge_is_recovered(planted, method):
    dec = _dec(planted)
    f = decompose(dec, 1, 1, 10, 2, TraceOptions(method=method))
    heads = [e for e in f.edges if e.component.kind == "head"]
    assert [(e.component.layer, e.component.head, e.component.src, e.side) for e in heads] == [(0, 1, 10, "query")]
    sig = edge_signal(dec, 1, 1, heads[0].component, "query", 10, heads[0].svs)
    F = DIRECTIONS["F"].float()
    inside = (F @ sig).norm() / sig.norm()
    assert inside > 0.999                                    # signal lies in the planted subspace F


def _edit(dec, comp_edge, svs, mode="local", sign=-1.0, head=0):
    return EdgeEdit(1, head, dec.n - 1, 6, comp_edge.component, "key", svs, mode, sign)


def _planted_edge(planted):
    dec = _dec(planted)
    f = decompose(dec, 1, 0, dec.n - 1, 6, TraceOptions(method="acc"))
    e = next(e for e in f.edges if e.component.kind == "head")
    return dec, f, e


def test_ablating_the_planted_edge_removes_the_attention_but_random_does_not(planted):
    dec, f, e = _planted_edge(planted)
    key = (1, 0, dec.n - 1, 6)
    _, att = run_edits(planted, [dec], [[_edit(dec, e, e.svs)]], [key])
    assert f.attention > 0.99 and float(att[0]) < 2.0 / dec.n      # falls to about uniform or below
    others = [k for k in range(16) if k not in e.svs][:len(e.svs)]
    _, att_r = run_edits(planted, [dec], [[_edit(dec, e, others)]], [key])
    assert float(att_r[0]) > 0.99                                   # random subspace: no change


def test_full_rank_local_ablation_equals_removing_the_component(planted):
    dec, _f, e = _planted_edge(planted)
    from sadlang.intervene.edits import score_delta
    full = score_delta(dec, _edit(dec, e, list(range(16))))
    c = dec.table(1).head_index(0, 0, 6)
    a_tot = dec.a(1, 0).sum(0)                       # (n, r)
    expected = -(a_tot @ dec.b(1, 0)[c, 6]) / dec.weights.attn_scale
    assert torch.allclose(full[6:, 6], expected[6:], atol=1e-4)


def test_local_stays_local_and_global_reaches_other_readers(planted):
    dec, _f, e = _planted_edge(planted)
    reads = (1, 2, dec.n - 1, 6)                      # 1.2 reads the same f0 feature
    _, loc = run_edits(planted, [dec], [[_edit(dec, e, e.svs, "local")]], [reads])
    _, glob = run_edits(planted, [dec], [[_edit(dec, e, e.svs, "global")]], [reads])
    assert float(loc[0]) > 0.99
    assert float(glob[0]) < 0.5


def test_boost_raises_attention(tiny_gpt2):
    dec = _dec(tiny_gpt2, " When Mary and John went to the store, John gave a drink to")
    d = dec.n - 1
    A = dec.acts.pattern[1:, :, d, 1:]
    cand = [(l + 1, h, s + 1) for l in range(A.shape[0]) for h in range(A.shape[1]) for s in range(A.shape[2])
            if 0.2 < float(A[l, h, s]) < 0.8]
    assert cand, "the random model should have a moderate firing at the last position"
    layer, head, s = cand[0]
    f = decompose(dec, layer, head, d, s, TraceOptions(method="acc"))
    e = max((e for e in f.edges if e.side == "query"), key=lambda e: e.weight)
    boost = EdgeEdit(layer, head, d, s, e.component, "query", e.svs, "local", 1.0)
    ablate = EdgeEdit(layer, head, d, s, e.component, "query", e.svs, "local", -1.0)
    _, up = run_edits(tiny_gpt2, [dec], [[boost]], [(layer, head, d, s)])
    _, down = run_edits(tiny_gpt2, [dec], [[ablate]], [(layer, head, d, s)])
    assert float(up[0]) > f.attention > float(down[0])


def test_control_signal_sinks_are_classified_and_grouped(planted):
    texts = [" When Mary went to the store", " Then John and Alice said it", " Bob gave a drink to Anna"]
    batch = PromptSetEvidence(planted, [build_prompt(planted, t, {}) for t in texts], TraceOptions())
    sink_a, sink_b = sink_profile(batch, 1, 0, lambda p: 0), sink_profile(batch, 1, 2, lambda p: 0)
    assert min(sink_a.shares) > 0.9 and sink_a.is_control(0.8) and sink_b.is_control(0.8)
    assert _angle_cos(sink_a.control_signal, DIRECTIONS["g"]) > 0.99
    clusters = prototypes({(1, 0): sink_a.control_signal, (1, 2): sink_b.control_signal}, 0.6)
    assert clusters == [[(1, 0), (1, 2)]]
    assert control_ablation_drop(batch, 0, 1, 0, 0) > 0.5            # ablate: attention leaves BOS
    assert control_ablation_drop(batch, 0, 1, 0, 0, random_svs=True) < 0.05


def test_data_signal_is_content_dependent(planted):
    texts = [f" When{a} went to the store,{b} and{a} said" for a, b in
             [(" Mary", " John"), (" Alice", " Bob"), (" Tom", " Kate"), (" Paul", " Anna")]]
    sigs = []
    for t in texts:
        dec = _dec(planted, t)
        f = decompose(dec, 1, 1, 10, 2, TraceOptions(method="acc"))
        e = next(e for e in f.edges if e.component.kind == "head")
        sigs.append(edge_signal(dec, 1, 1, e.component, "query", 10, e.svs))
    from sadlang.control.sinks import mean_pairwise_cosine
    assert mean_pairwise_cosine(sigs) < 0.8                 # differs with the name: a data signal


def test_full_trace_recovers_exactly_the_planted_circuit(planted):
    from sadlang.trace.tracer import trace

    c = trace(planted, " When Mary went to the x, John said", " x", " y", method="acc")[0]
    assert c.traced_heads() == {(1, 0)}                         # the seed head fires at end -> x
    heads = {(a["layer"], a["head"]) for _, a in c.graph.nodes(data=True) if a["kind"] == "head"}
    assert heads == {(0, 0), (1, 0)}
    edges = [(u, v, a["side"]) for u, v, a in c.graph.edges(data=True) if u.startswith("0.")]
    assert edges == [("0.0@6:6", "1.0@9:6", "key")]
    assert c.seeds[0].component.label() == "1.0" and c.seeds[0].weight > 0.5 * c.logit_total


def test_input_change_metrics(planted):
    from sadlang.intervene.edits import input_change

    dec, _f, e = _planted_edge(planted)
    ratio, _cos = input_change(dec, _edit(dec, e, e.svs))
    assert ratio < 0.5                                   # the key at the marker loses its f0 part
    others = [k for k in range(16) if k not in e.svs][:1]
    r2, c2 = input_change(dec, _edit(dec, e, others))
    assert abs(r2 - 1) < 1e-4 and abs(c2 - 1) < 1e-4     # directions the component has no part in


def test_control_signal_writers_and_alignment(planted):
    batch = PromptSetEvidence(planted, [build_prompt(planted, " When Mary went to the store", {})], TraceOptions())
    prof = sink_profile(batch, 1, 0, lambda p: 0)
    # the constant query signal g comes with every token embedding: written by `embed`,
    # present from layer 0
    assert prof.top_writers(1)[0][0] == "embed"
    assert prof.aligned_at == 0 and abs(prof.layer_share[-1] - 1.0) < 1e-5


def test_traced_edges_can_carry_their_signal_vectors(planted, tmp_path):
    import json

    from sadlang.trace.graph import save_graph
    from sadlang.trace.tracer import trace

    c = trace(planted, " When Mary went to the x, John said", " x", " y",
              options=TraceOptions(method="acc", signals=True))[0]
    sig = next(a["signal"] for u, v, a in c.graph.edges(data=True) if u == "0.0@6:6")
    assert len(sig) == 64 and _angle_cos(torch.tensor(sig), DIRECTIONS["f0"] + 0.5 * DIRECTIONS["bos"]) > 0.999
    data = json.loads(save_graph(c.graph, tmp_path / "g.json").read_text())
    assert any("signal" in e for e in data["edges"])
    save_graph(c.graph, tmp_path / "g.graphml")          # lists are left out of GraphML, not an error


def test_swapping_slot_content_separates_data_from_control():
    from pathlib import Path

    from sadlang.runner.executor import load_and_compile, run_plan
    spec = Path(__file__).resolve().parents[1] / "specs" / "planted.sad"
    _, model, plan = load_and_compile(spec)
    verdicts = {v.name: v for v in run_plan(plan, model, only={"data", "sink"}).verdicts}
    data, sink = verdicts["data"].details, verdicts["sink"].details
    assert data["swap_pairs"] >= 4 and data["swap_invariance"] < 0.5      # the name code follows the names
    assert sink["swap_pairs"] >= 4 and sink["swap_invariance"] > 0.99     # the constant query does not move
