"""Rotary position embedding as a linear map on d_head vectors (rotate-half layout).

Partial rotary (GPT-NeoX/Pythia's rotary_pct): the tables cover the first `rd` < r dimensions;
the rest pass through unrotated.
"""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(..., r) -> (..., r): [-x2, x1] for x = [x1, x2]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    rd = cos.shape[-1]
    if rd == x.shape[-1]:
        return x * cos + sign * rotate_half(x) * sin
    rot, rest = x[..., :rd], x[..., rd:]
    return torch.cat([rot * cos + sign * rotate_half(rot) * sin, rest], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
    """Rotate vectors at their positions.

    x: (..., P, r) with the position axis second to last; cos, sin: (P, rd) with rd <= r, or
    None (identity). Returns (..., P, r). Linear in x, so it commutes with summing components.
    """
    if cos is None or sin is None:
        return x
    return _rotate(x, cos, sin, 1.0)


def unapply_rope(x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
    """Inverse rotation (R_p^T): rotation by -angle."""
    if cos is None or sin is None:
        return x
    return _rotate(x, cos, sin, -1.0)
