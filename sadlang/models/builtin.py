"""Small random models built in code: GPT-2 style and Llama style, deterministic by seed.

They run every code path the real models use (LayerNorm + absolute positions + Q/K/V/O
biases; RMSNorm + RoPE + grouped-query attention) in milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from sadlang.models.tiny_tokenizer import build_tiny_tokenizer, tiny_vocabulary

BUILTIN = {
    "tiny-gpt2": "GPT-2 style: LayerNorm, absolute positions, Q/K/V/O biases (4 layers, 4 heads, d_model 64)",
    "tiny-llama": "Llama style: RMSNorm, RoPE, grouped-query attention 4/2 (4 layers, d_model 64)",
    "tiny-qwen2": "Qwen2 style: Llama plus Q/K/V biases, GQA 4/2 (4 layers, d_model 64)",
    "tiny-mistral": "Mistral style: Llama plus a sliding window of 6 keys, GQA 4/2 (4 layers, d_model 64)",
    "tiny-neox": "GPT-NeoX/Pythia style: parallel attention+MLP, partial rotary 0.25, fused QKV biases "
                 "(4 layers, 4 heads, d_model 64)",
    "tiny-gemma2": "Gemma-2 style: soft-capped scores, pre+post norms, sliding/global layers, "
                   "query_pre_attn_scalar, GQA 4/2 (4 layers, d_model 64)",
    "tiny-gemma3": "Gemma-3 style: QK-norm, pre+post norms, local/global layers with two RoPE bases, "
                   "MQA 4/1 (4 layers, d_model 64)",
    "planted": "hand-planted circuit with known ground truth (see sadlang.models.planted)",
    "planted-neox": "the planted key-side edge 0.0 -> 1.0 in a GPT-NeoX model: parallel blocks, partial rotary",
}


# planted models (hand-set weights, sadlang.models.planted): name -> builder function
PLANTED = {"planted": "build_planted", "planted-neox": "build_planted_neox"}


def _randomize(model: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Give every parameter (biases and norm gains included) non-trivial random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen) * std
            if p.ndim == 1 and ("ln" in name or "norm" in name) and "bias" not in name:
                p.copy_(1.0 + 0.3 * noise)  # norm gains near 1, not exactly 1
            else:
                p.copy_(noise)


def build_config(name: str) -> Any:
    """The transformers config of a built-in name (no weights: cheap, for checks)."""
    import transformers as tf

    vocab = len(tiny_vocabulary())
    common: dict[str, Any] = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=4, max_position_embeddings=128, bos_token_id=0, eos_token_id=0,
                  pad_token_id=2, tie_word_embeddings=False)
    cfg: Any
    if name in PLANTED:
        return build_hf_model(name).config             # hand-set weights: the config comes with them
    if name == "tiny-gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=64, n_layer=4,
                         n_head=4, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0)
    elif name == "tiny-llama":
        cfg = LlamaConfig(**common, num_key_value_heads=2, rope_theta=10000.0)  # type: ignore[call-arg]
    elif name == "tiny-qwen2":
        cfg = tf.Qwen2Config(**common, num_key_value_heads=2, use_sliding_window=False)
    elif name == "tiny-mistral":
        cfg = tf.MistralConfig(**common, num_key_value_heads=2, sliding_window=6)
    elif name == "tiny-neox":
        # rotary_pct is the legacy spelling transformers still maps to partial_rotary_factor
        cfg = tf.GPTNeoXConfig(**common, rotary_pct=0.25, use_parallel_residual=True,  # type: ignore[call-arg]
                               attention_dropout=0.0, hidden_dropout=0.0)
    elif name == "tiny-gemma2":
        cfg = tf.Gemma2Config(**common, num_key_value_heads=2, head_dim=16, sliding_window=6,
                              attn_logit_softcapping=50.0, final_logit_softcapping=None, query_pre_attn_scalar=32)
    elif name == "tiny-gemma3":
        cfg = tf.Gemma3TextConfig(**common, num_key_value_heads=1, head_dim=16, sliding_window=6,
                                  query_pre_attn_scalar=32,
                                  layer_types=["sliding_attention", "full_attention"] * 2)
        cfg.architectures = ["Gemma3ForCausalLM"]   # the bridge picks its adapter from this
    else:
        raise KeyError(name)
    if name not in ("tiny-gpt2", "tiny-llama"):
        cfg._attn_implementation = "eager"          # windows and soft-caps in the computed pattern
    return cfg


def build_hf_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The transformers model behind a built-in name, with seeded random weights."""
    import transformers as tf

    if name in PLANTED:
        from sadlang.models import planted
        return getattr(planted, PLANTED[name])()
    cfg = build_config(name)
    classes = {"tiny-gpt2": GPT2LMHeadModel, "tiny-llama": LlamaForCausalLM, "tiny-qwen2": tf.Qwen2ForCausalLM,
               "tiny-mistral": tf.MistralForCausalLM, "tiny-neox": tf.GPTNeoXForCausalLM,
               "tiny-gemma2": tf.Gemma2ForCausalLM, "tiny-gemma3": tf.Gemma3ForCausalLM}
    model = classes[name](cfg)
    _randomize(model, seed)
    return model.eval()


def bridge_name(name: str) -> str:
    """A TransformerLens architecture name the bridge adapts the built-in model with."""
    from sadlang.models.families import FAMILIES

    special = {"tiny-gpt2": "gpt2", "planted": "gpt2", "planted-neox": "EleutherAI/pythia-70m"}
    if name in special:
        return special[name]
    return next(f.bridge for f in FAMILIES.values() if f.tiny == name)


def tokenizer():
    return build_tiny_tokenizer()
