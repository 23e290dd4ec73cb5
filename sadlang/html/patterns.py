"""Attention of every head on a few prompts, packed for the page so that a card can draw any head
on any of them without a model: each head's lower triangle (destination d >= key s) quantized to
a byte, round(255 w), base64-encoded.

Layout of one prompt's bytes (n tokens, L layers, H heads, T = n (n + 1) / 2 cells per head):
head (l, h), destination d, key s <= d sits at (l H + h) T + d (d + 1) / 2 + s. A weight read
back is exact to 1/510 (half a quantization step).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import torch

BANK_PROMPTS = 12               # a set's first prompts that every card on it can draw
BANK_BYTES = 4 * 2**20          # and at most this many bytes of weights per set


class BankPrompt(BaseModel):
    """One prompt's attention, every head. `key`: the prompt's index in its set as text, or
    "counterexample"; `label` names it in the page's picker."""

    key: str
    label: str
    tokens: list[str]
    labels: dict[int, str] = Field(default_factory=dict)
    weights: str                                   # base64 of the quantized lower triangles


class PatternBank(BaseModel):
    n_layers: int
    n_heads: int
    prompts: list[BankPrompt] = Field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(p.weights) for p in self.prompts) * 3 // 4


def packed(pattern: torch.Tensor) -> str:
    """pattern (L, H, n, n) -> base64 of each head's quantized lower triangle, heads in order."""
    import torch

    n = pattern.shape[-1]
    rows, cols = torch.tril_indices(n, n)           # row-major: d ascending, s <= d ascending
    tri = pattern.detach().to("cpu").float()[..., rows, cols]           # (L, H, T)
    q = torch.round(tri.clamp(0.0, 1.0) * 255).to(torch.uint8)
    return base64.b64encode(q.contiguous().numpy().tobytes()).decode("ascii")


def unpacked(weights: str, n_layers: int, n_heads: int, n: int, layer: int, head: int) -> list[list[float]]:
    """The inverse of `packed` for one head: weights[d][s] (0 above the diagonal)."""
    raw = base64.b64decode(weights)
    t = n * (n + 1) // 2
    base = (layer * n_heads + head) * t
    out = [[0.0] * n for _ in range(n)]
    for d in range(n):
        for s in range(d + 1):
            out[d][s] = raw[base + d * (d + 1) // 2 + s] / 255
    return out


def bank_prompt(key: str, label: str, pattern: torch.Tensor, tokens: list[str],
                labels: dict[int, str]) -> BankPrompt:
    return BankPrompt(key=key, label=label, tokens=tokens, labels=labels, weights=packed(pattern))
