"""The fast path for cached fp32 weights (models/bundled.py: read into memory, the attention
projections straight into stacks, assigned to a model built without initialisation) gives what
transformers' `from_pretrained` gives: every parameter and buffer to the bit, and the logits;
files it does not expect fall back."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file, save_model

from sadlang.models import builtin
from sadlang.models.bundled import WEIGHTS, _assembled, _from_pretrained, load_cached_hf, read_safetensors


def _cache(tmp_path, name: str, tied: bool):
    import transformers as tf

    config = builtin.build_config(name)
    config.tie_word_embeddings = tied
    model = getattr(tf, builtin._tiny(name).model)(config)
    builtin._randomize(model, 5)
    if tied:
        model.tie_weights()
    config.architectures = [type(model).__name__]
    config.save_pretrained(tmp_path)
    save_model(model, str(tmp_path / WEIGHTS), metadata={"format": "pt"})
    builtin.tokenizer().save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3", "tiny-gpt2"])
def test_the_fast_path_equals_from_pretrained(tmp_path, name, tied):
    directory = _cache(tmp_path, name, tied)
    fast, slow = _assembled(directory), _from_pretrained(directory)
    assert fast is not None
    a, b = fast.state_dict(), slow.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    buffers = dict(slow.named_buffers())
    for key, value in fast.named_buffers():
        assert torch.equal(value, buffers[key]), key
    if tied:
        assert fast.get_output_embeddings().weight.data_ptr() == fast.get_input_embeddings().weight.data_ptr()
    stacks = getattr(fast, "_sadlang_stacks", None)
    assert (stacks is not None and stacks.current(fast)) == (name != "tiny-gpt2")   # q/k/v/o_proj decoders
    tokens = torch.tensor([[0, 5, 9, 13, 7, 21, 4]])
    with torch.no_grad():
        assert torch.equal(fast(tokens).logits, slow(tokens).logits)
    assert not fast.training


def test_a_file_the_fast_path_does_not_expect_falls_back(tmp_path):
    directory = _cache(tmp_path, "tiny-llama", False)
    state = read_safetensors(directory / WEIGHTS)
    assert state is not None
    half = {k: v.half() for k, v in state.items()}
    save_file(half, str(directory / WEIGHTS), metadata={"format": "pt"})
    assert read_safetensors(directory / WEIGHTS) is None            # not fp32: not this path's file
    model, _ = load_cached_hf(directory)                              # from_pretrained reads it
    assert next(model.parameters()).dtype == torch.float32
    extra = {**state, "model.extra.weight": torch.zeros(2)}
    save_file(extra, str(directory / WEIGHTS), metadata={"format": "pt"})
    assert _assembled(directory) is None                              # a name the model lacks



def test_reads_side_by_side_and_one_at_a_time_give_the_same_tensors_and_a_cut_file_none(tmp_path, monkeypatch):
    """The cache is read tensor by tensor, by several threads where preadv exists; the serial
    path gives the same bytes, and a file cut short of its header's offsets is refused."""
    from sadlang.models import bundled

    directory = _cache(tmp_path, "tiny-llama", False)
    parallel = read_safetensors(directory / WEIGHTS)
    monkeypatch.setattr(bundled, "_PREAD", False)
    serial = read_safetensors(directory / WEIGHTS)
    assert parallel is not None and serial is not None and list(parallel) == list(serial)
    for name in parallel:
        assert torch.equal(parallel[name], serial[name]), name
    monkeypatch.undo()
    data = (directory / WEIGHTS).read_bytes()
    (directory / WEIGHTS).write_bytes(data[:-1000])
    assert read_safetensors(directory / WEIGHTS) is None
    monkeypatch.setattr(bundled, "_PREAD", False)
    assert read_safetensors(directory / WEIGHTS) is None

@pytest.mark.bundled
def test_the_cached_tokenizer_is_the_one_the_bridge_would_build():
    """A cached model's tokenizer is loaded with BOS on, so the bridge keeps it instead of loading
    it a second time; it tokenizes as the bridge's own reload of a plain load would."""
    from transformer_lens.utilities import get_tokenizer_with_bos
    from transformers import AutoTokenizer

    from sadlang.models.bundled import bundled_cache_dir

    directory = bundled_cache_dir()
    tok = load_cached_hf(directory)[1]
    assert get_tokenizer_with_bos(tok) is tok
    theirs = get_tokenizer_with_bos(AutoTokenizer.from_pretrained(str(directory)))
    assert theirs is not tok and tok.bos_token is not None
    for text in ("When Mary and John went to the store, John gave a drink to", " Mary", "", "a\nb  c"):
        assert tok(text)["input_ids"] == theirs(text)["input_ids"], text
        assert tok.tokenize(text) == theirs.tokenize(text)
    assert tok.special_tokens_map == theirs.special_tokens_map
    assert (tok.padding_side, tok.bos_token_id, tok.eos_token_id) == \
        (theirs.padding_side, theirs.bos_token_id, theirs.eos_token_id)
