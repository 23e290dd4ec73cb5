"""The decomposition's per-head weights are views of the model's own attention projections
(models/stacking.py): the same values as the bridge's stacking, no second copy, the same model."""

from __future__ import annotations

import copy

import pytest
import torch

from sadlang.models import builtin, load_model
from sadlang.models.families import family_of, tiny_models
from sadlang.models.stacking import stack_projections

FAMILIES = tiny_models()

PROMPT = "When Mary and John went to the store , John gave a drink to"


@pytest.mark.parametrize("name", FAMILIES)
def test_per_head_weights_view_the_models_projections_and_equal_the_bridges(name):
    model = load_model(name)
    hf = model.bridge.original_model
    stacks = getattr(hf, "_sadlang_stacks", None)
    if stacks is None:           # the bridge processes (and replaces) the weights of other families
        assert family_of(hf.config).fold is None
        return
    assert stacks.current(hf)
    w = model.weights
    views = stacks.per_head()
    for attr in ("W_Q", "W_K", "W_V", "W_O"):
        assert torch.equal(views[attr], getattr(model.bridge, attr)), attr
    storages = {t.untyped_storage().data_ptr() for t in (stacks.q, stacks.k, stacks.v, stacks.o)}
    if not w.qk_norm:                # QK-norm gains are folded into copies of W_Q and W_K
        assert w.W_Q.untyped_storage().data_ptr() in storages
        assert w.W_K.untyped_storage().data_ptr() in storages
    if not w.post_norm:              # post-attention gains are folded into a copy of W_O
        assert w.W_O.untyped_storage().data_ptr() in storages
    assert w.W_V.untyped_storage().data_ptr() in storages
    layer = hf.model.layers[1].self_attn
    assert layer.q_proj.weight.data_ptr() == stacks.q[1].data_ptr()
    assert layer.o_proj.weight.data_ptr() == stacks.o[1].data_ptr()


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen3"])
def test_a_stacked_model_computes_what_it_did(name):
    if name not in FAMILIES:
        pytest.skip(f"{name} is not a built-in family here")
    hf = builtin.build_hf_model(name, 2).eval()
    stacked = copy.deepcopy(hf)
    params = sum(p.numel() for p in stacked.parameters())
    assert stack_projections(stacked) is not None
    assert sum(p.numel() for p in stacked.parameters()) == params
    assert all(torch.equal(a, b) for a, b in zip(hf.state_dict().values(), stacked.state_dict().values()))
    tokens = torch.tensor([[1, 5, 9, 13, 2, 7, 11]])
    with torch.no_grad():
        before, after = hf(tokens).logits, stacked(tokens).logits
    # o_proj multiplies a transposed view: the same products, summed by another kernel path
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5 * float(before.abs().max()))


def test_a_cast_model_no_longer_shares_and_says_so():
    hf = builtin.build_hf_model("tiny-llama", 0)
    stacks = stack_projections(hf)
    assert stacks is not None and stacks.current(hf)
    hf.to(torch.bfloat16)                                 # a cast replaces every weight
    assert not stacks.current(hf)


def test_a_half_precision_load_drops_the_stacks_it_no_longer_uses():
    model = load_model("tiny-llama", dtype="bf16", reuse=False)
    assert not hasattr(model.bridge.original_model, "_sadlang_stacks")
    assert torch.equal(model.weights.W_Q, model.bridge.W_Q.float())


def test_models_of_other_layouts_are_left_alone():
    hf = builtin.build_hf_model("tiny-gpt2", 0)
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    assert stack_projections(hf) is None
    assert all(torch.equal(before[k], v) for k, v in hf.state_dict().items())
