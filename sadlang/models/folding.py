"""Folding norms into weights in place, for the families whose folding is plain arithmetic.

TransformerLens' compatibility mode folds by copying the whole state dict at each step (norm
folding, then unembedding centring), so loading the bundled model peaked at about three copies of
its weights (2.5 GB for 538 MB of fp32). A family whose folding is known exactly here is folded in
place instead, and the bridge boots without processing (`enable_compatibility_mode(
no_processing=True)`): the same weights to the last bit (tests/test_folding.py compares every
folded tensor, every hook and the logits with the bridge's own processing on each family's tiny
model), with no second copy. Any other model is left to the bridge.

What `fold_rms_pre` does to a pre-norm RMS decoder without biases (Llama, Mistral, Qwen3):
- each layer's input-norm gain g1 multiplies the columns of W_q, W_k, W_v and becomes 1;
- each layer's post-attention-norm gain g2 multiplies the columns of W_gate, W_up and becomes 1;
- the final norm's gain multiplies the columns of the unembedding (untied from the embedding
  first: a tied embedding stays as it was) and becomes 1;
- the unembedding is centred over the vocabulary (logits shift by one number per position, which
  no softmax, logit difference or KL sees).
RMS norms have no centring and bias-free layers have no value biases, so nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _bias_free(model: Any) -> bool:
    return all(not name.endswith(".bias") for name, _ in model.named_parameters())


def fold_rms_pre(model: Any) -> bool:
    """Fold a Llama-style model's RMSNorm gains into the weights that read the norms, and centre
    its unembedding, in place. False (and nothing changed) when the model is not of that shape:
    biases anywhere, a norm with a bias, or layers without the expected projections."""
    body = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    layers = getattr(body, "layers", None)
    if body is None or head is None or layers is None or not _bias_free(model):
        return False
    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj")) or \
                not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj")) or \
                not hasattr(layer, "input_layernorm") or not hasattr(layer, "post_attention_layernorm"):
            return False
    with torch.no_grad():
        for layer in layers:
            attn, mlp = layer.self_attn, layer.mlp
            _fold(layer.input_layernorm.weight, (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight))
            _fold(layer.post_attention_layernorm.weight, (mlp.gate_proj.weight, mlp.up_proj.weight))
        embed = body.embed_tokens.weight
        if head.weight.data_ptr() == embed.data_ptr():      # tied: the unembedding gets its own copy
            head.weight = torch.nn.Parameter(embed.detach().clone(), requires_grad=embed.requires_grad)
            model.config.tie_word_embeddings = False
        _fold(body.norm.weight, (head.weight,))
        head.weight.sub_(head.weight.mean(0, keepdim=True))
    return True


def _fold(gain: torch.Tensor, readers: tuple[torch.Tensor, ...]) -> None:
    """W (out, in) <- W * gain over its input dimension, for each reader; then gain <- 1."""
    for w in readers:
        w.mul_(gain[None, :])
    gain.fill_(1.0)


# folding method name (a family's `fold` in models/families.py) -> the in-place folder
FOLDERS: dict[str, Callable[[Any], bool]] = {"rms-pre": fold_rms_pre}


def fold_in_place(model: Any) -> bool:
    """Fold `model` in place when its family names a folder that accepts it (True); False leaves
    the model untouched for the bridge's own processing."""
    from sadlang.models.families import family_of

    family = family_of(model.config)
    folder = FOLDERS.get(family.fold) if family is not None and family.fold else None
    return bool(folder and folder(model))
