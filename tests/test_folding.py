"""sadlang's in-place norm folding (models/folding.py) gives the bridge's own processing to the
last bit on every family that has a folder; a tied unembedding stays tied and gives the same
logits up to fp32 rounding, through a hook that centres them; models it does not fit are left
untouched for the bridge."""

from __future__ import annotations

import copy

import pytest
import torch

from sadlang.models import builtin
from sadlang.models.families import FAMILIES, family_of
from sadlang.models.folding import finish, fold_in_place, fold_rms_pre

FOLDED = [f.tiny.name for f in FAMILIES.values() if f.fold and f.tiny is not None]
PROMPT = "When Mary and John went to the store , John gave a drink to"


def _bridges(hf: torch.nn.Module, name: str):
    """(the bridge's own processing, sadlang's in-place folding) of two copies of `hf`."""
    from transformer_lens.model_bridge import TransformerBridge

    tok = builtin.tokenizer()
    ours = copy.deepcopy(hf)
    theirs = TransformerBridge.boot_transformers(builtin.bridge_name(name), hf_model=hf, tokenizer=tok,
                                                 device="cpu")
    theirs.enable_compatibility_mode()
    assert fold_in_place(ours)
    mine = TransformerBridge.boot_transformers(builtin.bridge_name(name), hf_model=ours, tokenizer=tok,
                                               device="cpu")
    mine.enable_compatibility_mode(no_processing=True)
    finish(mine, ours)
    return theirs.eval(), mine.eval()


def _tied(name: str) -> torch.nn.Module:
    """The family's tiny model with its unembedding tied to the embedding (as SmolLM2's is)."""
    import transformers as tf

    config = builtin.build_config(name)
    config.tie_word_embeddings = True
    model = getattr(tf, family_of(config).tiny.model)(config)   # type: ignore[union-attr]
    builtin._randomize(model, 3)
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.eval()


def test_the_registry_names_folders_that_exist():
    from sadlang.models.folding import FOLDERS

    assert FOLDED, "no family folds in place"
    assert all(f.fold in FOLDERS for f in FAMILIES.values() if f.fold)


@pytest.mark.parametrize("name", FOLDED)
def test_in_place_folding_equals_the_bridges_processing(name):
    hf = builtin.build_hf_model(name, 1)
    theirs, mine = _bridges(hf, name)
    a, b = theirs.original_model.state_dict(), mine.original_model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for attr in ("W_Q", "W_K", "W_V", "W_O", "W_U", "b_U"):
        assert torch.equal(getattr(theirs, attr), getattr(mine, attr)), attr
    tokens = theirs.to_tokens(PROMPT)
    logits_a, cache_a = theirs.run_with_cache(tokens)
    logits_b, cache_b = mine.run_with_cache(tokens)
    assert torch.equal(logits_a, logits_b)
    assert set(cache_a.keys()) <= set(cache_b.keys())
    for key in cache_a.keys():
        assert torch.equal(cache_a[key], cache_b[key]), key


# the final norm keeps its gain for a tied unembedding: its output carries the gain, and the
# logits (centred by a hook instead of in the weights) agree up to fp32 rounding, not to the bit
GAINED = {"ln_final.hook_out", "unembed.hook_in"}
LOGITS = {"unembed.hook_out", "hook_unembed"}


@pytest.mark.parametrize("name", FOLDED)
def test_a_tied_unembedding_stays_tied_and_gives_the_bridges_logits(name):
    from sadlang.models.folding import unembedding_terms
    from sadlang.models.weights import read_weights

    hf = _tied(name)
    embed = hf.model.embed_tokens.weight.detach().clone()
    theirs, mine = _bridges(hf, name)
    model = mine.original_model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()    # no copy
    assert torch.equal(model.model.embed_tokens.weight, embed)
    a, b = theirs.original_model.state_dict(), model.state_dict()
    for key in a:
        if "lm_head" not in key and "model.norm." not in key:       # the gain stays in the final norm
            assert torch.equal(a[key], b[key]), key
    for attr in ("W_Q", "W_K", "W_V", "W_O"):
        assert torch.equal(getattr(theirs, attr), getattr(mine, attr)), attr
    tokens = theirs.to_tokens(PROMPT)
    logits_a, cache_a = theirs.run_with_cache(tokens)
    logits_b, cache_b = mine.run_with_cache(tokens)
    scale = float(logits_a.detach().abs().max())
    # D-long fp32 dot products summed in another order: a few units of 2^-24 times sqrt(D)
    tol = 1e-5 * scale
    torch.testing.assert_close(logits_b, logits_a, rtol=0, atol=tol)
    assert float(logits_b.detach().mean(-1).abs().max()) < tol                    # centred, as the bridge's are
    mine.reset_hooks()                       # the centring hook is permanent: it survives a reset
    with torch.no_grad():
        assert float(mine(tokens).mean(-1).abs().max()) < tol
    final_gain, mean = unembedding_terms(model)          # offset + w: Gemma's norms scale by 1 + w
    assert final_gain is not None and mean is not None
    gain = final_gain
    for key in cache_a.keys():
        if key in GAINED:
            assert torch.equal(cache_b[key], cache_a[key] * gain), key
        elif key in LOGITS:
            torch.testing.assert_close(cache_b[key], cache_a[key], rtol=0, atol=tol)
        else:
            assert torch.equal(cache_a[key], cache_b[key]), key
    # the decomposition's logit directions are the folded unembedding's
    weights = read_weights(mine, final_gain=final_gain, W_U_mean=mean)
    W_U = theirs.W_U.detach()
    for against in (7, None):
        want = W_U[:, 3] - W_U[:, against] if against is not None else W_U[:, 3]
        torch.testing.assert_close(weights.logit_direction(3, against), want, rtol=0,
                                   atol=1e-6 * float(W_U.abs().max()))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_soft_capped_logits_are_not_centred_as_the_bridge_does_not_centre_them(tied):
    """Gemma-2 caps its logits (`final_logit_softcapping`); the bridge then folds the final gain
    but leaves the unembedding uncentred, and so does the in-place folder."""
    import transformers as tf

    from sadlang.models.folding import centres_logits, unembedding_terms
    from sadlang.models.weights import read_weights

    config = builtin.build_config("tiny-gemma2")
    config.final_logit_softcapping, config.tie_word_embeddings = 3.0, tied
    hf = tf.Gemma2ForCausalLM(config)
    builtin._randomize(hf, 3)
    if tied:
        hf.tie_weights()
    assert not centres_logits(hf.eval())
    theirs, mine = _bridges(hf, "tiny-gemma2")
    tokens = theirs.to_tokens(PROMPT)
    logits_a, cache_a = theirs.run_with_cache(tokens)
    logits_b, cache_b = mine.run_with_cache(tokens)
    assert float(logits_a.detach().mean(-1).abs().max()) > 0.01           # not centred, in either
    for key in cache_a.keys():
        if not tied or key not in GAINED | LOGITS:
            assert torch.equal(cache_a[key], cache_b[key]), key
    if not tied:
        a, b = theirs.original_model.state_dict(), mine.original_model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert torch.equal(logits_a, logits_b)
        return
    torch.testing.assert_close(logits_b, logits_a, rtol=0, atol=1e-5 * float(logits_a.detach().abs().max()))
    final_gain, mean = unembedding_terms(mine.original_model)
    assert final_gain is not None and mean is None
    weights = read_weights(mine, final_gain=final_gain, W_U_mean=mean)
    W_U = theirs.W_U.detach()
    torch.testing.assert_close(weights.logit_direction(3, None), W_U[:, 3], rtol=0,
                               atol=1e-6 * float(W_U.abs().max()))


def test_a_model_with_biases_is_left_to_the_bridge():
    import transformers as tf

    config = builtin.build_config("tiny-llama")
    config.attention_bias = True
    model = tf.LlamaForCausalLM(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert fold_rms_pre(model) is False
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_families_without_a_folder_are_not_folded_in_place():
    name = next(f.tiny.name for f in FAMILIES.values() if not f.fold and f.tiny is not None)
    model = builtin.build_hf_model(name, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert fold_in_place(model) is False
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_loaded_bridge_refuses_to_fold_twice(tiny_llama):
    """The in-place folded bridge is marked processed: a second processing (which would fold the
    gains again) is skipped by the bridge."""
    before = tiny_llama.bridge.W_Q.clone()
    tiny_llama.bridge.process_weights()
    assert torch.equal(tiny_llama.bridge.W_Q, before)
