"""Residual stream components and their coordinates in a downstream head's Q/K space.

The input to layer l at position p, normalized by the frozen clean-run scale sigma_l(p), is
an exact sum of upstream outputs:

    X_l(p) = sum_c y_c(p),   y_c(p) = out_c(p) / sigma_l(p)

with components c (flat index, see `ComponentTable`):
    head (l', h', t)  for l' < l, every head, every source token t: A[l',h',p,t] v_t W_O[l',h']
                      (post-norm models: A / the frozen post-attention scale, gain in W_O)
    mlp l'            hook_mlp_out[l'](p)
    bias l'           b_O[l'] (attention output bias, value biases folded in)
    embed             hook_resid_pre[0](p)
    offset            the downstream head's own Q or K bias (not divided by sigma)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict

from sadlang.decomp.activations import PromptActivations
from sadlang.errors import InternalError
from sadlang.models.weights import ModelWeights

Kind = Literal["head", "mlp", "bias", "embed", "offset"]


class Component(BaseModel):
    """One upstream writer into the residual stream."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    layer: int = 0
    head: int | None = None
    src: int | None = None  # source token of an upstream head

    @property
    def head_src(self) -> tuple[int, int, int]:
        """(layer, head, source token) of a head component."""
        if self.kind != "head" or self.head is None or self.src is None:
            raise InternalError(f"{self.label()} is not a head split by its source token")
        return self.layer, self.head, self.src

    def label(self) -> str:
        if self.kind == "head":
            return f"{self.layer}.{self.head}"
        if self.kind in ("mlp", "bias"):
            return f"{self.kind} {self.layer}"
        return self.kind


@dataclass(frozen=True)
class ComponentTable:
    """Flat indexing of the components that feed layer `layer` of a prompt of length n."""

    layer: int
    n_heads: int
    n: int

    @property
    def n_head_components(self) -> int:
        return self.layer * self.n_heads * self.n

    @property
    def size(self) -> int:
        return self.n_head_components + 2 * self.layer + 2

    def head_index(self, layer: int, head: int, src: int) -> int:
        return (layer * self.n_heads + head) * self.n + src

    def mlp_index(self, layer: int) -> int:
        return self.n_head_components + layer

    def bias_index(self, layer: int) -> int:
        return self.n_head_components + self.layer + layer

    @property
    def embed_index(self) -> int:
        return self.n_head_components + 2 * self.layer

    @property
    def offset_index(self) -> int:
        return self.n_head_components + 2 * self.layer + 1

    def describe(self, i: int) -> Component:
        if i < self.n_head_components:
            lh, t = divmod(i, self.n)
            l, h = divmod(lh, self.n_heads)
            return Component(kind="head", layer=l, head=h, src=t)
        j = i - self.n_head_components
        if j < self.layer:
            return Component(kind="mlp", layer=j)
        if j < 2 * self.layer:
            return Component(kind="bias", layer=j - self.layer)
        return Component(kind="embed") if j == 2 * self.layer else Component(kind="offset")


def residual_components(acts: PromptActivations, weights: ModelWeights, layer: int,
                        positions: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """Components of the residual entering `layer` in d_model space.

    Returns (C - 1, P, D): every component of `ComponentTable(layer, H, n)` except the offset,
    at `positions` (default all). Divided by the frozen ln1 scale when `normalize`.
    Memory O(C P D): meant for checks and signals, not the hot path.
    """
    n = acts.n
    pos = torch.arange(n, device=acts.tokens.device) if positions is None else positions
    L_ = layer
    parts = []
    if L_ > 0:
        v = acts.v[:L_].repeat_interleave(weights.group, dim=2)                  # (l, n, H, r)
        vo = torch.einsum("lthr,lhrd->lhtd", v, weights.W_O[:L_])                 # (l, H, t, D)
        A = acts.mix[:L_][:, :, pos, :]                                           # (l, H, P, t)
        heads = A[..., None] * vo[:, :, None, :, :]                               # (l, H, P, t, D)
        parts.append(heads.permute(0, 1, 3, 2, 4).reshape(-1, len(pos), weights.d_model))
        parts.append(acts.mlp_out[:L_][:, pos])
        parts.append(weights.b_O[:L_][:, None, :].expand(L_, len(pos), -1))
    parts.append(acts.embed[pos][None])
    out = torch.cat(parts, 0)
    if normalize:
        out = out / acts.ln_scale[layer, pos][None, :, None]
    return out


class SideCoordinates:
    """Per-component coordinates in one downstream head's rotated Q or K space.

    For downstream layer l and a projection W (D, r) with bias b (r,):
        coords[c, p] = R_p (y_c(p) W)          for c != offset
        coords[offset, p] = R_p b
    (each divided by the QK-norm scale at p on models with QK-norm). Shape (C, n, r). Sums
    over c to the hooked rotated query/key vector at p.
    Built from r x r products (W_O[l'] W) so no (C, n, D) tensor is formed.
    """

    @staticmethod
    def compute(acts: PromptActivations, weights: ModelWeights, layer: int, W: torch.Tensor,
                b: torch.Tensor, side: str, index: int, vo: torch.Tensor | None = None) -> torch.Tensor:
        """`side`, `index`: "q" and the query head, or "k" and the key/value head, whose frozen
        QK-norm scale (Gemma-3) divides every component, offset included (PromptActivations.to_head).

        The head rows, l*H*n of the C, are written in place: (l, H, t, p, r) with the rotation
        at p applied to each source's value output before the attention weight scales it (both
        are linear), so no (C, n, r) temporary is formed. The tracer's hot path."""
        n, r = acts.n, W.shape[-1]
        sig = acts.ln_scale[layer]                                             # (n,)
        n_heads = weights.n_heads * layer * n
        out = torch.empty(n_heads + 2 * layer + 2, n, r, dtype=W.dtype, device=W.device)
        rows = []
        if layer > 0:
            if vo is not None:   # (L, H, n, D) per-prompt value outputs: cheaper when n < r
                vow = vo[:layer] @ W                                           # (l, H, t, r)
            else:
                OW = weights.W_O[:layer] @ W                                   # (l, H, r, r)
                v = acts.v[:layer].repeat_interleave(weights.group, dim=2)      # (l, n, H, r)
                vow = torch.einsum("lthr,lhrs->lhts", v, OW)                   # (l, H, t, r)
            coef = acts.mix[:layer] / sig[None, None, :, None]                  # (l, H, p, t)
            scale = acts.qk_scale(layer, side, index)
            if scale is not None:
                coef = coef / scale[None, None, :, None]
            heads = out[:n_heads].view(layer, weights.n_heads, n, n, r)         # (l, H, t, p, r)
            _rotated_outer(vow, *acts.rope(layer), heads)
            heads.mul_(coef.transpose(-1, -2)[..., None])
            rows.append((acts.mlp_out[:layer] @ W) / sig[None, :, None])
            rows.append((weights.b_O[:layer] @ W)[:, None, :] / sig[None, :, None])
        rows.append(((acts.embed @ W) / sig[:, None])[None])
        rows.append(b[None, None, :].expand(1, n, -1))
        out[n_heads:] = acts.to_head(torch.cat(rows, 0), layer, side, index)
        return out


def _rotated_outer(v: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                   out: torch.Tensor) -> None:
    """out[..., t, p, :] = R_p v[..., t, :]: every source vector rotated at every position.

    v: (..., t, r); cos, sin: (p, rd), rd <= r (partial rotary leaves r - rd dimensions), or None
    (no rotation); out: (..., t, p, r), written in place."""
    from sadlang.decomp.rope import rotate_half

    src = v[..., :, None, :]                                                   # (..., t, 1, r)
    if cos is None or sin is None:
        out.copy_(src.expand_as(out))
        return
    rd = cos.shape[-1]
    rot = out[..., :rd]
    torch.mul(src[..., :rd], cos, out=rot)
    rot.addcmul_(rotate_half(v[..., :rd])[..., :, None, :], sin)
    if rd < v.shape[-1]:
        out[..., rd:].copy_(src[..., rd:].expand_as(out[..., rd:]))
