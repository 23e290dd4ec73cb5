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
    "planted": "hand-planted circuit with known ground truth (see sadlang.models.planted)",
}


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


def build_hf_model(name: str, seed: int = 0, n_layers: int = 4) -> torch.nn.Module:
    """The transformers model behind a built-in name, with seeded random weights."""
    if name == "planted":
        from sadlang.models.planted import build_planted
        return build_planted()
    vocab = len(tiny_vocabulary())
    cfg: Any
    model: Any
    if name == "tiny-gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=64, n_layer=n_layers,
                         n_head=4, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2LMHeadModel(cfg)
    elif name == "tiny-llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,  # type: ignore[call-arg]
                          num_hidden_layers=n_layers, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=128,
                          bos_token_id=0, eos_token_id=0, pad_token_id=2,
                          tie_word_embeddings=False, rope_theta=10000.0)
        model = LlamaForCausalLM(cfg)
    else:
        raise KeyError(name)
    _randomize(model, seed)
    return model.eval()


def bridge_name(name: str) -> str:
    """A TransformerLens architecture name the bridge adapts the built-in model with."""
    return {"tiny-gpt2": "gpt2", "planted": "gpt2", "tiny-llama": "meta-llama/Llama-3.2-1B"}[name]


def tokenizer():
    return build_tiny_tokenizer()
