"""One forward pass per batch of equal-length prompts; the activations the method reads.

Shapes (per prompt, no batch axis): n positions, L layers, H heads, K kv heads, D d_model,
r d_head, V vocab.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sadlang.models.loader import LoadedModel


@dataclass
class PromptActivations:
    """Clean-run activations of one prompt, all fp32 on the model's device.

    tokens:      (n,)          token ids, BOS first
    embed:       (n, D)        blocks.0.hook_resid_pre
    ln_scale:    (L, n)        blocks.l.ln1.hook_scale (frozen norm scale)
    final_scale: (n,)          ln_final.hook_scale
    pattern:     (L, H, n, n)  attention weights
    scores:      (L, H, n, n)  hooked attention scores (after scaling and soft-cap)
    v:           (L, n, K, r)  value vectors (value bias folded into b_O)
    mlp_out:     (L, n, D)
    resid_pre:   (L, n, D)     for checks and signal alignment
    normalized:  (L, n, D)     blocks.l.ln1.hook_normalized
    cos, sin:    (n, r)        RoPE tables from the model's own hooks (None without RoPE)
    logits_end:  (V,)          logits at the last position
    mix:         (L, H, n, n)  how much of head (l, h)'s value at source t reaches the residual
                               at p: the pattern, divided by the frozen post-attention norm scale
                               (Gemma-2/3) where the model has one (the gain is folded in W_O)
    """

    tokens: torch.Tensor
    embed: torch.Tensor
    ln_scale: torch.Tensor
    final_scale: torch.Tensor
    final_normalized: torch.Tensor
    pattern: torch.Tensor
    scores: torch.Tensor
    v: torch.Tensor
    mlp_out: torch.Tensor
    resid_pre: torch.Tensor
    normalized: torch.Tensor
    cos: torch.Tensor | None
    sin: torch.Tensor | None
    logits_end: torch.Tensor
    post_scale: torch.Tensor | None = None   # (L, n) ln1_post.hook_scale, post-norm models only
    q_scale: torch.Tensor | None = None      # (L, n, H) QK-norm scale of each query (Gemma-3)
    k_scale: torch.Tensor | None = None      # (L, n, K) QK-norm scale of each key
    cos_by_layer: torch.Tensor | None = None  # (L, n, rd) when layers use different RoPE bases
    sin_by_layer: torch.Tensor | None = None

    def rope(self, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(cos, sin) tables of `layer` (n, rd), or (None, None) without RoPE."""
        if self.cos_by_layer is not None and self.sin_by_layer is not None:
            return self.cos_by_layer[layer], self.sin_by_layer[layer]
        return self.cos, self.sin

    def to_head(self, x: torch.Tensor, layer: int, side: str, index: int,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., P, r): query (side "q", head `index`) or key (side "k", key/value head `index`)
        vectors of `layer` as projected, at `positions` (default: all n). Returns them as the head
        scores them: divided by the frozen QK-norm scale (Gemma-3), then rotated (RoPE)."""
        from sadlang.decomp.rope import apply_rope

        at = slice(None) if positions is None else positions
        scale = self.qk_scale(layer, side, index)
        if scale is not None:
            x = x / scale[at][:, None]
        cos, sin = self.rope(layer)
        return apply_rope(x, None if cos is None else cos[at], None if sin is None else sin[at])

    def qk_scale(self, layer: int, side: str, index: int) -> torch.Tensor | None:
        """(n,) the frozen QK-norm scale of query head (side "q") or key head (side "k") `index`
        in `layer`, or None when the model has no QK-norm."""
        table = self.q_scale if side == "q" else self.k_scale
        return None if table is None else table[layer, :, index]

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def mix(self) -> torch.Tensor:
        if self.post_scale is None:
            return self.pattern
        if "_mix" not in self.__dict__:
            self.__dict__["_mix"] = self.pattern / self.post_scale[:, None, :, None]
        return self.__dict__["_mix"]


_NEEDED = ("hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_pattern",
           "attn.hook_attn_scores", "attn.hook_v", "hook_mlp_out",
           "attn.hook_cos", "attn.hook_sin", "ln_final.hook_scale", "ln_final.hook_normalized",
           "ln1_post.hook_scale", "attn.q_norm.hook_scale", "attn.k_norm.hook_scale")


class ForwardCounter:
    """Counts model forward passes and their seconds (tests use it to prove one pass per batch;
    `sadlang check --profile` reports both)."""

    calls = 0
    seconds = 0.0

    @classmethod
    @contextmanager
    def counting(cls) -> Iterator[None]:
        """Wrap one forward pass."""
        cls.calls += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            cls.seconds += time.perf_counter() - start


def _names_filter(name: str) -> bool:
    return any(name.endswith(k) for k in _NEEDED)


def last_position(x: torch.Tensor, hook: Any) -> torch.Tensor:
    """A hook on `unembed.hook_in` that keeps the last position: (B, n, D) -> (B, 1, D)."""
    return x[:, -1:]


def _scale(t: torch.Tensor) -> torch.Tensor:
    """hook_scale may be (..., n, 1) or (..., n): squeeze to (..., n)."""
    return t[..., 0] if t.ndim >= 3 and t.shape[-1] == 1 else t


def run_batch(model: LoadedModel, batch: list[list[int]]) -> list[PromptActivations]:
    """Run prompts of equal token length in one forward pass and split the cache per prompt."""
    lengths = {len(t) for t in batch}
    if len(lengths) != 1:
        raise ValueError(f"run_batch needs equal-length prompts, got lengths {sorted(lengths)}")
    L = model.info.n_layers
    tokens = torch.tensor(batch, dtype=torch.long, device=model.device)
    # only the last position is unembedded: every position's logits are b x n x V floats (126 MB
    # for a batch of 32 prompts of 20 tokens on the bundled model), none of them read
    with (torch.no_grad(), ForwardCounter.counting(),
          model.bridge.hooks(fwd_hooks=[("unembed.hook_in", last_position)])):
        logits, cache = model.bridge.run_with_cache(tokens, names_filter=_names_filter)
    logits_end = logits[:, -1].float()
    del logits
    held = cache.cache_dict if hasattr(cache, "cache_dict") else None
    b = len(batch)

    def stack(key: str) -> list[torch.Tensor]:
        """Per prompt, (L, ...) of one hook over the layers, each on storage of its own. The
        hooked tensors are let go as they are stacked (with any alias of them), so a batch's
        activations are never held twice over; and no prompt's tensors view a batch-wide one,
        which a kept prompt would pin whole (decomp/acts_cache.py keeps prompts one by one)."""
        parts = [cache[f"blocks.{l}.{key}"] for l in range(L)]
        out = [torch.stack([p[i] for p in parts]).float() for i in range(b)]
        if held is not None:
            taken = {id(t) for t in parts}
            for name in [k for k, t in held.items() if id(t) in taken]:
                del held[name]
        return out

    def scales(key: str) -> list[torch.Tensor]:
        return [_scale(t) for t in stack(key)]
    resid = stack("hook_resid_pre")                      # b x (L, n, D)
    ln_scale = scales("ln1.hook_scale")                   # b x (L, n)
    pattern = stack("attn.hook_pattern")                  # b x (L, H, n, n)
    scores = stack("attn.hook_attn_scores")
    v = stack("attn.hook_v")                              # b x (L, n, K, r)
    mlp_out = stack("hook_mlp_out")
    normalized = stack("ln1.hook_normalized")
    post = scales("ln1_post.hook_scale") if model.weights.post_norm else None   # b x (L, n)
    q_scale = k_scale = None
    if model.weights.qk_norm:      # hooks hold (heads, n, 1) a prompt: to (L, n, heads)
        q_scale = [t[..., 0].transpose(-1, -2) for t in stack("attn.q_norm.hook_scale")]
        k_scale = [t[..., 0].transpose(-1, -2) for t in stack("attn.k_norm.hook_scale")]
    cos_l = sin_l = None
    if model.weights.rope_per_layer:
        def table(key: str, l: int) -> torch.Tensor:      # (n, rd): shared across the batch
            t = cache[f"blocks.{l}.attn.{key}"].float()
            return t.reshape(-1, *t.shape[-2:])[0]
        cos_l = torch.stack([table("hook_cos", l) for l in range(L)])
        sin_l = torch.stack([table("hook_sin", l) for l in range(L)])
    final_scale = _scale(cache["ln_final.hook_scale"].float())
    final_norm = cache["ln_final.hook_normalized"].float()
    has_rope = held is not None and "blocks.0.attn.hook_cos" in held
    cos_all = cache["blocks.0.attn.hook_cos"].float() if has_rope else None
    sin_all = cache["blocks.0.attn.hook_sin"].float() if has_rope else None
    out = []
    for i in range(b):
        cos = sin = None
        if cos_all is not None and sin_all is not None:
            cos, sin = cos_all, sin_all
            # the tables are shared across the batch: (1, n, r) or (n, r)
            cos = cos[min(i, cos.shape[0] - 1)] if cos.ndim == 3 else cos
            sin = sin[min(i, sin.shape[0] - 1)] if sin.ndim == 3 else sin
        out.append(PromptActivations(
            tokens=tokens[i], embed=resid[i][0], ln_scale=ln_scale[i],
            final_scale=final_scale[i], final_normalized=final_norm[i], pattern=pattern[i],
            scores=scores[i], v=v[i], mlp_out=mlp_out[i],
            resid_pre=resid[i], normalized=normalized[i], cos=cos, sin=sin,
            logits_end=logits_end[i], post_scale=None if post is None else post[i],
            q_scale=None if q_scale is None else q_scale[i], k_scale=None if k_scale is None else k_scale[i],
            cos_by_layer=cos_l, sin_by_layer=sin_l))
    return out


def batches(lengths: list[int], batch_size: int = 32) -> list[list[int]]:
    """The forward-pass batches of prompts with these token lengths: indices grouped by length
    (shortest first), each group cut into chunks of `batch_size` in index order. Every pass over
    a prompt set, local or sharded across workers, uses exactly these batches, so a prompt's
    activations never depend on where it was computed."""
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_len.setdefault(n, []).append(i)
    return [idxs[start:start + batch_size] for _, idxs in sorted(by_len.items())
            for start in range(0, len(idxs), batch_size)]


def run_prompts(model: LoadedModel, prompts: list[list[int]], batch_size: int = 32,
                progress: Callable[[int], object] | None = None) -> list[PromptActivations]:
    """Activations for many prompts: one pass per batch of `batches`."""
    result: list[PromptActivations | None] = [None] * len(prompts)
    for chunk in batches([len(t) for t in prompts], batch_size):
        for i, acts in zip(chunk, run_batch(model, [prompts[j] for j in chunk])):
            result[i] = acts
        if progress is not None:
            progress(len(chunk))
    return result  # type: ignore[return-value]
