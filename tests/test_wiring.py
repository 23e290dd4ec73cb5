"""Edge-level ablation (sadlang/circuits/wiring.py) against the identities that pin it down:
nothing cut is the plain node-ablated run; every edge of the whole model kept is the clean run;
no edge kept is the all-ablated run (exact on the planted model, whose MLPs are zero); a cut
input is rebuilt exactly (the model's own scores when the cut senders are at their reference
values anyway); and a single cut edge equals a hand-written hook on the receiver's inputs."""

import pytest
import torch

from sadlang.circuits.ablation import Row, run_rows
from sadlang.circuits.wiring import SIDES, Wiring, declared_edges, only_edges, without_edges
from sadlang.models.families import tiny_models
from tests.test_circuits import _lab

# one tiny model per family the decomposition supports (tests/test_families.py)
# (Gemma-2's soft-cap and post-norm make edge-level circuits a refused spec: tests/test_families.py)
FAMILIES = tiny_models(rewirable=True)


def _all_heads(model):
    return {(layer, h) for layer in range(model.info.n_layers) for h in range(model.info.n_heads)}


def _all_edges(model):
    heads = _all_heads(model)
    return ({(s, r, side) for s in heads for r in heads if s[0] < r[0] for side in SIDES}
            | {(s, None, "logits") for s in heads})


def _run(ev, lab, keep_all: bool, wiring):
    rows = []
    for i, p in enumerate(ev.prompts):
        shape = (ev.model.info.n_layers, len(p.tokens), ev.model.info.n_heads)
        mask = torch.ones(shape, dtype=torch.bool) if keep_all else torch.zeros(shape, dtype=torch.bool)
        rows.append(Row(i, mask, wiring))
    return run_rows(ev, rows, lab.values, 4)


def _clean(ev):
    return torch.stack([ev.model.bridge(ev.acts(i).tokens[None])[0, -1].float() for i in range(len(ev))])


@pytest.mark.parametrize("model_name", ["planted", *FAMILIES])
def test_every_edge_kept_is_the_clean_run(model_name):
    model, _, stores, lab = _lab(model_name, "mean")
    ev = stores["copy"]
    heads = _all_heads(model)
    wired = _run(ev, lab, True, only_edges(heads, _all_edges(model)))
    assert not only_edges(heads, _all_edges(model))            # nothing to cut: the plain path
    with torch.no_grad():
        assert torch.allclose(wired, _clean(ev), atol=1e-4)


@pytest.mark.parametrize("model_name", ["planted", *FAMILIES])
@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_cutting_every_path_keeps_the_rebuilt_inputs_exact(model_name, kind):
    """Every head kept, but every path cut: receivers rebuild all three inputs from the residual
    (norm recomputed, projections, rotary). With mean/zero references this differs from clean;
    the same rows with an all-ablated node mask must equal the plain all-ablated run, because
    then every cut sender already sits at its reference value (z - ref = 0)."""
    model, _, stores, lab = _lab(model_name, kind)
    ev = stores["copy"]
    heads = _all_heads(model)
    plain = _run(ev, lab, False, None)
    cut_all = only_edges(heads, set())
    wired = _run(ev, lab, False, cut_all)
    assert torch.allclose(wired, plain, atol=1e-4)


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_no_edge_kept_is_the_all_ablated_run(kind):
    """On the planted model (zero MLPs), every head kept as a node but no edge kept: each head
    reads only reference values and the logits see none of the current outputs."""
    model, _, stores, lab = _lab("planted", kind)
    ev = stores["copy"]
    heads = _all_heads(model)
    none_kept = _run(ev, lab, True, only_edges(heads, set()))
    all_ablated = _run(ev, lab, False, None)
    assert torch.allclose(none_kept, all_ablated, atol=1e-4)
    if kind == "zero":    # (planted heads attend by position: their mean output is nearly the clean one)
        assert not torch.allclose(none_kept, _clean(ev), atol=1e-2)


@pytest.mark.parametrize("model_name", FAMILIES)
@pytest.mark.parametrize("side", SIDES)
def test_one_cut_edge_equals_a_hand_written_hook(model_name, side):
    """Cut sender S from receiver R's `side` input (zero reference): by hand, run the model with
    TransformerLens' split-input hook blocks.l.hook_{q,k,v}_input that subtracts S's write from
    R's input only (before the norm, which then sees the edited input)."""
    from sadlang.circuits.ablation import head_z

    model, _, stores, lab = _lab(model_name, "zero")
    ev = stores["copy"]
    sender, receiver = (0, 1), (2, 0)
    # TL's key/value inputs are per key/value head: under GQA the hand-written hook edits every
    # query head of the group, so the wiring cuts the edge into each of them
    group = model.weights.group if side != "query" else 1
    got = _run(ev, lab, True, without_edges({(sender, (receiver[0], h), side) for h in range(group)}))
    letter = side[0]
    for i in range(len(ev)):
        z = head_z(ev.acts(i), model)[sender[0], :, sender[1]]                    # (n, r)
        write = z @ model.weights.W_O[sender]                                       # (n, D)

        def patch(x, hook, write=write):                                            # (1, n, H, D)
            x = x.clone()
            x[0, :, model.weights.kv(receiver[1]) if letter != "q" else receiver[1]] -= write.to(x.dtype)
            return x

        name = f"blocks.{receiver[0]}.hook_{letter}_input"
        model.bridge.set_use_split_qkv_input(True)        # per-head q/k/v inputs: TL's own hooks
        try:
            with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(name, patch)]):
                want = model.bridge(ev.acts(i).tokens[None])[0, -1].float()
        finally:
            model.bridge.set_use_split_qkv_input(False)
        assert torch.allclose(got[i], want, atol=1e-4), (i, (got[i] - want).abs().max())


def test_declared_edges_expand_sides_and_logits():
    from sadlang.language import parse_spec

    spec = parse_spec('model planted\ncircuit c:\n  0.0\n  1.0 at end\n  edge 0.0 -> 1.0 via key\n'
                      'claim ok: logit_diff > 0\n', "c.sad")
    edges = declared_edges(spec.circuits["c"])
    assert edges == {((0, 0), (1, 0), "key"), ((0, 0), None, "logits"), ((1, 0), None, "logits")}
    w = only_edges({(0, 0), (1, 0)}, edges)
    assert w.cuts == {((1, 0), "query"): frozenset({(0, 0)}), ((1, 0), "value"): frozenset({(0, 0)})}
    assert not w.logits
    assert Wiring() == without_edges(set()) and not Wiring()
