"""Folding norms into weights in place, for the families whose folding is plain arithmetic.

TransformerLens' compatibility mode folds by copying the whole state dict at each step (norm
folding, then unembedding centring), so loading the bundled model peaked at about three copies of
its weights (2.5 GB for 538 MB of fp32). A family whose folding is known exactly here is folded in
place instead, and the bridge boots without processing (`enable_compatibility_mode(
no_processing=True)`): the same weights to the last bit (tests/test_folding.py compares every
folded tensor, every hook and the logits with the bridge's own processing on each family's tiny
model), with no second copy. Any other model is left to the bridge.

What `fold_rms_pre` does to a pre-norm RMS decoder without biases (Llama, Mistral, Qwen3, and
Gemma-2/3 with `GEMMA`):
- each layer's input-norm gain g1 multiplies the columns of W_q, W_k, W_v and becomes the
  identity;
- the gain g2 of the norm the MLP reads (Llama's post-attention norm, Gemma's pre-feedforward
  norm) multiplies the columns of W_gate, W_up and becomes the identity;
- the final norm's gain multiplies the columns of the unembedding and becomes the identity;
- the unembedding is centred over the vocabulary (logits shift by one number per position, which
  no softmax, logit difference or KL sees).
RMS norms have no centring and bias-free layers have no value biases, so nothing else changes.
A Gemma norm's gain is 1 + w, and its identity is w = 0 (`PreNorms.offset`). Gemma's
post-norms (on the attention and MLP outputs) and QK-norms stay as they are, as the bridge
leaves them: they normalise after the weights they would fold into. Soft-capped logits
(Gemma-2) are not centred, as the bridge does not centre them (`centres_logits`).

A tied unembedding (SmolLM2's, Gemma's) stays tied: folding the final gain into it or centring it
would first copy the embedding (113 MB on the bundled model). The final norm keeps its gain, and
`centre_logits`, a permanent hook on `unembed.hook_out` that `finish` adds, centres the logits
instead: x . (w_v - mean_u w_u) = x . w_v - mean_u (x . w_u), the same logits up to fp32 rounding.
The decomposition reads the gain and the vocabulary mean from ModelWeights (`final_gain`,
`W_U_mean`), so a logit direction is the folded one either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class PreNorms:
    """Where a pre-norm RMS decoder layer keeps the norm its MLP reads, and how a norm's weight
    w gives its gain: offset + w."""

    mlp: str
    offset: float = 0.0


LLAMA = PreNorms("post_attention_layernorm")
GEMMA = PreNorms("pre_feedforward_layernorm", offset=1.0)      # Gemma2RMSNorm/Gemma3RMSNorm: (1 + w)


def _bias_free(model: Any) -> bool:
    return all(not name.endswith(".bias") for name, _ in model.named_parameters())


def fold_rms_pre(model: Any, norms: PreNorms = LLAMA) -> bool:
    """Fold a pre-norm RMS decoder's norm gains into the weights that read the norms, and centre
    its unembedding, in place. False (and nothing changed) when the model is not of that shape:
    biases anywhere, a norm with a bias, or layers without the expected projections and norms."""
    body = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    layers = getattr(body, "layers", None)
    if body is None or head is None or layers is None or not _bias_free(model):
        return False
    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj")) or \
                not all(hasattr(mlp, p) for p in ("gate_proj", "up_proj")) or \
                not hasattr(layer, "input_layernorm") or not hasattr(layer, norms.mlp):
            return False
    with torch.no_grad():
        for layer in layers:
            attn, mlp = layer.self_attn, layer.mlp
            _fold(layer.input_layernorm.weight, (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight),
                  norms.offset)
            _fold(getattr(layer, norms.mlp).weight, (mlp.gate_proj.weight, mlp.up_proj.weight), norms.offset)
        if not tied_unembedding(model):     # a tied one stays as it is (module docstring)
            _fold(body.norm.weight, (head.weight,), norms.offset)
            if centres_logits(model):
                head.weight.sub_(head.weight.mean(0, keepdim=True))
    model._sadlang_gain_offset = norms.offset
    return True


def tied_unembedding(model: Any) -> bool:
    """Is the model's unembedding the embedding matrix itself (one tensor)?"""
    head, embed = getattr(model, "lm_head", None), getattr(getattr(model, "model", None), "embed_tokens", None)
    return head is not None and embed is not None and head.weight.data_ptr() == embed.weight.data_ptr()


def centres_logits(model: Any) -> bool:
    """Does folding centre this model's unembedding? Not where the logits are soft-capped
    (Gemma-2's `final_logit_softcapping`): centring before the cap would change the capped
    logits, and the bridge leaves such an unembedding uncentred too."""
    return not getattr(getattr(model, "config", None), "final_logit_softcapping", None)


def centre_logits(logits: torch.Tensor, hook: Any = None) -> torch.Tensor:
    """(..., V) logits less their mean over the vocabulary: what a centred unembedding gives."""
    return logits - logits.mean(-1, keepdim=True)


def finish(bridge: Any, model: Any) -> None:
    """After the bridge boots over a model folded here: a tied unembedding, left uncentred, gets
    its logits centred by a permanent hook (kept through `reset_hooks`), unless they are
    soft-capped (`centres_logits`)."""
    if tied_unembedding(model) and centres_logits(model):
        bridge.unembed.hook_out.add_perma_hook(centre_logits)


def unembedding_terms(model: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(final gain (D,), vocabulary mean of the unembedding (D,)) that a tied unembedding left
    out of its weights, for ModelWeights; (None, None) when they are folded in, and no mean where
    the logits are not centred (`centres_logits`)."""
    if not (getattr(model, "_sadlang_folded", False) and tied_unembedding(model)):
        return None, None
    with torch.no_grad():
        embed = model.model.embed_tokens.weight
        mean = embed.detach().float().mean(0) if centres_logits(model) else None
        return _gain(model.model.norm.weight, model._sadlang_gain_offset).float().clone(), mean


def _gain(weight: torch.Tensor, offset: float) -> torch.Tensor:
    """The gain a norm with `weight` multiplies by: offset + weight, as the bridge computes it."""
    return (offset + weight.detach()) if offset else weight.detach()


def _fold(weight: torch.Tensor, readers: tuple[torch.Tensor, ...], offset: float) -> None:
    """W (out, in) <- W * gain over its input dimension, for each reader; then the norm's weight
    becomes its identity (gain 1)."""
    gain = _gain(weight, offset)
    for w in readers:
        w.mul_(gain[None, :])
    weight.fill_(1.0 - offset)


# folding method name (a family's `fold` in models/families.py) -> the in-place folder
FOLDERS: dict[str, Callable[[Any], bool]] = {
    "rms-pre": fold_rms_pre,
    "rms-pre-offset": functools.partial(fold_rms_pre, norms=GEMMA),
}


def fold_in_place(model: Any) -> bool:
    """Fold `model` in place when its family names a folder that accepts it (True); False leaves
    the model untouched for the bridge's own processing."""
    from sadlang.models.families import family_of

    family = family_of(model.config)
    folder = FOLDERS.get(family.fold) if family is not None and family.fold else None
    folded = bool(folder and folder(model))
    if folded:
        model._sadlang_folded = True
    return folded
