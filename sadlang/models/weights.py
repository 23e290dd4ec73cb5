"""Folded weights read off a TransformerLens bridge, as plain fp32 tensors.

Shapes use L layers, H query heads, K key/value heads, D d_model, r d_head, V vocab.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import xxhash


@dataclass(frozen=True)
class ModelWeights:
    """The weights the decomposition needs, after norm folding and centring.

    W_Q: (L, H, D, r)   b_Q: (L, H, r)
    W_K: (L, K, D, r)   b_K: (L, K, r)    key head of query head h is h // (H // K)
    W_V: (L, K, D, r)
    W_O: (L, H, r, D)   b_O: (L, D)       b_O includes folded value biases
    W_U: (D, V)         b_U: (V,)
    final_gain: (D,) or None   W_U_mean: (D,) or None

    W_U is the unembedding as the model holds it. Folded, it is final_gain[:, None] *
    (W_U - W_U_mean[:, None]); both are None where the gain and the centring are in W_U already.
    They are not for a tied unembedding (models/folding.py): read logit directions through
    `logit_direction`, which folds them in.
    """

    W_Q: torch.Tensor
    b_Q: torch.Tensor
    W_K: torch.Tensor
    b_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    b_O: torch.Tensor
    W_U: torch.Tensor
    b_U: torch.Tensor
    attn_scale: float
    softcap: float  # 0.0 when the model does not soft-cap attention scores
    rotary: bool
    windows: tuple[int | None, ...] = ()   # per layer: sliding-window size, None (or absent) = global
    post_norm: bool = False   # Gemma-2/3: attention output RMS-normed before the residual (gain in W_O)
    qk_norm: bool = False     # Gemma-3, Qwen3: q and k RMS-normed per head after projection (gains in W_Q/W_K)
    rope_per_layer: bool = False   # Gemma-3: local and global layers rotate with different bases
    final_gain: torch.Tensor | None = None    # a tied unembedding's final norm gain, left in the norm
    W_U_mean: torch.Tensor | None = None      # a tied unembedding's mean over the vocabulary (uncentred)

    def logit_direction(self, answer: int, against: int | None) -> torch.Tensor:
        """(D,) the folded unembedding's column of `answer` less that of `against` (or less
        nothing): the direction the final normalized residual (ln_final.hook_normalized) is read
        along for that logit (difference)."""
        other = self.W_U[:, against] if against is not None else self.W_U_mean
        w = self.W_U[:, answer].clone() if other is None else self.W_U[:, answer] - other
        return w if self.final_gain is None else w * self.final_gain

    @property
    def n_layers(self) -> int:
        return self.W_Q.shape[0]

    @property
    def n_heads(self) -> int:
        return self.W_Q.shape[1]

    @property
    def n_kv_heads(self) -> int:
        return self.W_K.shape[1]

    @property
    def group(self) -> int:
        return self.n_heads // self.n_kv_heads

    @property
    def d_model(self) -> int:
        return self.W_Q.shape[2]

    @property
    def d_head(self) -> int:
        return self.W_Q.shape[3]

    def key_start(self, layer: int, d: int) -> int:
        """First key position destination d may attend to in `layer` (sliding windows)."""
        w = self.windows[layer] if layer < len(self.windows) else None
        return max(0, d - w + 1) if w else 0

    def n_keys(self, layer: int, d: int) -> int:
        """How many keys destination d has in `layer`: d + 1, or the window."""
        return d + 1 - self.key_start(layer, d)

    def kv(self, head: int) -> int:
        """Key/value head index used by query head `head`."""
        return head // self.group

    def fingerprint(self, raw_digest: str) -> str:
        """Keys caches by the weights, not by a name: sha256 over `raw_digest` (every weight of the
        model as loaded, before folding: `weights_digest`) and the attention features the
        decomposition reads from the config. The raw bytes are the same on every CPU, unlike
        folded ones."""
        h = hashlib.sha256(raw_digest.encode())
        h.update(repr((self.attn_scale, self.softcap, self.rotary)).encode())
        extra = (self.windows, self.post_norm, self.qk_norm, self.rope_per_layer)
        if any(self.windows) or any(extra[1:]):
            h.update(repr(extra).encode())
        return h.hexdigest()[:16]


def hasher(algorithm: str = "xxh3") -> Any:
    """A fresh hash object: 128-bit xxh3, or any hashlib algorithm (`sha256`)."""
    return xxhash.xxh3_128() if algorithm == "xxh3" else hashlib.new(algorithm)


def tensors_digest(tensors: Mapping[str, torch.Tensor], algorithm: str = "xxh3") -> str:
    """A digest of named tensors: name, shape, dtype and bytes of each, in name order. `xxh3`
    (128-bit xxHash, the default) reads the bundled model's 538 MB in about 0.05 s, where `sha256`
    takes 0.5 s of a warm load; a digest that guards against corruption and keys caches needs no
    cryptographic hash. `sha256` is what older manifests and the forms cache recorded."""
    h = hasher(algorithm)
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)     # the bytes, without a copy
    return str(h.hexdigest())


def weights_digest(model: torch.nn.Module, algorithm: str = "xxh3") -> str:
    """`tensors_digest` of every parameter and buffer of a model; `sha256` reads caches whose
    manifest was written before xxh3 (models/bundled.py)."""
    return tensors_digest(model.state_dict(), algorithm)


def _param(bridge: Any, name: str, like: torch.Tensor) -> torch.Tensor:
    try:
        value = getattr(bridge, name)
    except AttributeError:
        value = None
    if value is None:
        return torch.zeros_like(like)
    return value


def read_weights(bridge: Any, windows: tuple[int | None, ...] = (), attn_scale: float | None = None,
                 post_gain: torch.Tensor | None = None, qk_gains: tuple[torch.Tensor, torch.Tensor] | None = None,
                 rope_per_layer: bool = False, stacks: dict[str, torch.Tensor] | None = None,
                 final_gain: torch.Tensor | None = None, W_U_mean: torch.Tensor | None = None) -> ModelWeights:
    """Read folded weights from a bridge in compatibility mode (fp32, detached). From the
    model's own config and modules (models.families): `windows`, the per-layer sliding windows;
    `attn_scale`, the score divisor when it is not sqrt(d_head) (Gemma's query_pre_attn_scalar);
    `post_gain` (L, D), the post-attention norm gains, folded into W_O; `qk_gains` ((L, r), (L, r)),
    the QK-norm gains, folded into W_Q, b_Q and W_K, b_K (the per-head scales are frozen per
    prompt, PromptActivations.q_scale); `rope_per_layer`, whether layers use different RoPE bases;
    `stacks`, W_Q, W_K, W_V and W_O as views of the model's own weights (models/stacking.py),
    read instead of the bridge's stacked copies; `final_gain` and `W_U_mean`, what a tied
    unembedding left out of its weights (models/folding.py)."""
    cfg = bridge.cfg
    with torch.no_grad():
        if stacks is not None:
            W_Q, W_K, W_V, W_O = (stacks[k].detach().float() for k in ("W_Q", "W_K", "W_V", "W_O"))
        else:
            W_Q = bridge.W_Q.detach().float()
            W_K = bridge.W_K.detach().float()
            W_V = bridge.W_V.detach().float()
            W_O = bridge.W_O.detach().float()
        b_Q = _param(bridge, "b_Q", W_Q[:, :, 0, :]).detach().float()
        b_K = _param(bridge, "b_K", W_K[:, :, 0, :]).detach().float()
        b_O = _param(bridge, "b_O", W_O[:, 0, 0, :]).detach().float()
        W_U = bridge.W_U.detach().float()
        b_U = _param(bridge, "b_U", W_U[0, :]).detach().float()
    scale = float(attn_scale or getattr(cfg, "attn_scale", -1.0) or -1.0)
    if scale <= 0:
        scale = float(W_Q.shape[-1]) ** 0.5 if getattr(cfg, "use_attn_scale", True) else 1.0
    softcap = float(getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0)
    if post_gain is not None:
        if float(b_O.abs().max()) > 0:
            raise ValueError("a post-attention norm with an output bias is not supported")
        W_O = W_O * post_gain.float()[:, None, None, :]
    if qk_gains is not None:
        gq, gk = (g.float()[:, None, None, :] for g in qk_gains)
        W_Q, W_K = W_Q * gq, W_K * gk
        b_Q, b_K = b_Q * gq[:, :, 0], b_K * gk[:, :, 0]
    return ModelWeights(
        W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, W_O=W_O, b_O=b_O, W_U=W_U, b_U=b_U,
        attn_scale=scale, softcap=max(softcap, 0.0),
        rotary=getattr(cfg, "positional_embedding_type", "standard") == "rotary",
        windows=tuple(windows), post_norm=post_gain is not None, qk_norm=qk_gains is not None,
        rope_per_layer=rope_per_layer, final_gain=final_gain, W_U_mean=W_U_mean,
    )
