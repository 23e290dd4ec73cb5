"""Lean forward passes for interventions: they compute only what the caller reads.

A full bridge pass unembeds every position (the vocabulary projection is about a fifth of a
pass of the bundled model) and runs every layer. Interventions read less:
- `last_logits`: the logits at the last position only (the unembedding sees one position);
- `read_attention`: attention weights at given (layer, head, d, s), and the pass stops after
  the last layer read (no later layer, no unembedding).
Both count as one pass in `ForwardCounter`. tests/test_passes.py shows they give the numbers
of a full pass.
"""

from __future__ import annotations

from typing import Any

import torch

from sadlang.decomp.activations import ForwardCounter

Hook = tuple[str, Any]
Read = tuple[int, int, int, int]      # (layer, head, d, s)


class _Stop(Exception):
    """Raised by the hook after the last layer a pass reads: the rest of the pass is skipped."""


def _last_position(x: torch.Tensor, hook: Any) -> torch.Tensor:
    return x[:, -1:]


def last_logits(model: Any, tokens: torch.Tensor, hooks: list[Hook]) -> torch.Tensor:
    """(B, V) logits at the last position of a pass over `tokens` (B, n) with `hooks`."""
    logits, _ = lean_pass(model, tokens, hooks)
    assert logits is not None
    return logits


def read_attention(model: Any, tokens: torch.Tensor, hooks: list[Hook], reads: list[Read | None]) -> torch.Tensor:
    """(B,) attention weight of row i at reads[i] = (layer, head, d, s) (NaN where None), from a
    pass with `hooks` that stops once the last layer read has its pattern."""
    _, att = lean_pass(model, tokens, hooks, reads, logits=False)
    assert att is not None
    return att


def lean_pass(model: Any, tokens: torch.Tensor, hooks: list[Hook], reads: list[Read | None] | None = None,
              logits: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One pass over `tokens` (B, n) with `hooks`: ((B, V) logits at the last position, or None
    without `logits`; (B,) attention weights at `reads`, or None without `reads`). Without
    logits the pass stops after the last layer it reads."""
    wanted: dict[int, list[tuple[int, Read]]] = {}
    for i, r in enumerate(reads or []):
        if r is not None:
            wanted.setdefault(r[0], []).append((i, r))
    att = None if reads is None else torch.full((len(reads),), float("nan"))
    last = max(wanted, default=-1)

    def reader(layer: int):
        def read(x: torch.Tensor, hook: Any) -> torch.Tensor:
            assert att is not None
            for i, (_, h, d, s) in wanted[layer]:
                att[i] = float(x[i, h, d, s])
            if layer == last and not logits:
                raise _Stop
            return x
        return read

    extra = [(f"blocks.{layer}.attn.hook_pattern", reader(layer)) for layer in sorted(wanted)]
    if logits:
        extra.append(("unembed.hook_in", _last_position))
    elif not wanted:
        return None, att
    out = None
    try:
        with torch.no_grad(), ForwardCounter.counting(), model.bridge.hooks(fwd_hooks=[*hooks, *extra]):
            out = model.bridge(tokens)[:, -1].float()
    except _Stop:
        pass
    return (out if logits else None), att
