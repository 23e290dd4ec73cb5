"""Small random models built in code, deterministic by seed: one per model family (its `Tiny`
record in models/families.py says how to configure it) and the hand-planted circuits.

They run every code path the real models of their family use (norms, positions, biases, GQA,
windows, soft-caps, QK-norm) in milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch

from sadlang.models.tiny_tokenizer import build_tiny_tokenizer, tiny_vocabulary


def _builtin() -> dict[str, str]:
    from sadlang.models.families import FAMILIES

    tiny = {f.tiny.name: f.tiny.about for f in FAMILIES.values() if f.tiny is not None}
    return {**tiny,
            "planted": "hand-planted circuit with known ground truth (see sadlang.models.planted)",
            "planted-neox": "the planted key-side edge 0.0 -> 1.0 in a GPT-NeoX model: parallel blocks, "
                            "partial rotary",
            "planted-mlp": "`planted` with MLP 1 in the circuit: it amplifies what head 1.0 moves to the end",
            "planted-values": "`planted` with head 0.2 feeding only 1.0's values: an attention trace cannot see it"}


# name -> one line: every family's tiny model (models/families.py), then the planted models
BUILTIN = _builtin()


# planted models (hand-set weights, sadlang.models.planted): name -> builder function
PLANTED = {"planted": "build_planted", "planted-neox": "build_planted_neox", "planted-mlp": "build_planted_mlp",
           "planted-values": "build_planted_values"}


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


def _tiny(name: str) -> Any:
    from sadlang.models.families import FAMILIES

    found = next((f.tiny for f in FAMILIES.values() if f.tiny is not None and f.tiny.name == name), None)
    if found is None:
        raise KeyError(name)
    return found


def build_config(name: str) -> Any:
    """The transformers config of a built-in name (no weights: cheap, for checks)."""
    if name in PLANTED:
        return build_hf_model(name).config             # hand-set weights: the config comes with them
    tiny = _tiny(name)
    vocab = len(tiny_vocabulary())
    common: dict[str, Any] = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                  num_attention_heads=4, max_position_embeddings=128, bos_token_id=0,
                                  eos_token_id=0, pad_token_id=2, tie_word_embeddings=False)
    cfg = tiny.config(common)
    if tiny.eager:
        cfg._attn_implementation = "eager"          # windows and soft-caps in the computed pattern
    return cfg


def build_hf_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The transformers model behind a built-in name, with seeded random weights."""
    import transformers as tf

    if name in PLANTED:
        from sadlang.models import planted
        return getattr(planted, PLANTED[name])()
    model = getattr(tf, _tiny(name).model)(build_config(name))
    _randomize(model, seed)
    return model.eval()


def bridge_name(name: str) -> str:
    """A TransformerLens architecture name the bridge adapts the built-in model with."""
    from sadlang.models.families import FAMILIES

    special = {"planted": "gpt2", "planted-mlp": "gpt2", "planted-values": "gpt2",
               "planted-neox": "EleutherAI/pythia-70m"}
    if name in special:
        return special[name]
    return next(f.bridge for f in FAMILIES.values() if f.tiny is not None and f.tiny.name == name)


def tokenizer() -> Any:
    return build_tiny_tokenizer()
