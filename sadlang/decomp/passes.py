"""Lean forward passes for interventions: they compute only what the caller reads.

A full bridge pass unembeds every position (the vocabulary projection is about a fifth of a
pass of the bundled model) and runs every layer. Interventions read less:
- `last_logits`: the logits at the last position only (the unembedding sees one position);
- `read_attention`: attention weights at given (layer, head, d, s), and the pass stops after
  the last layer read (no later layer, no unembedding);
- `Resume`: a pass whose edits all sit at block k or later starts at block k from the residual
  entering it (the clean run's, or one a `ResidualTap` kept from an earlier pass): blocks before
  k do not run.
Each counts as one pass in `ForwardCounter`. tests/test_passes.py shows they give the numbers
of a full pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from sadlang.decomp.activations import ForwardCounter, last_position

Hook = tuple[str, Any]
Read = tuple[int, int, int, int]      # (layer, head, d, s)


class _Stop(Exception):
    """Raised by the hook after the last layer a pass reads: the rest of the pass is skipped."""


@dataclass(frozen=True)
class Resume:
    """Start a pass at block `layer`: `resid` (B, n, D) is the residual entering it. Only valid
    when the pass would compute that residual itself, i.e. nothing the pass edits lies before
    `layer` (the caller's promise; the tests check it against full passes)."""

    layer: int
    resid: torch.Tensor


@dataclass
class ResidualTap:
    """Hooks that keep the residual entering each of `layers` for the rows `rows` of a pass:
    after the pass, `resid[layer]` is (len(rows), n, D)."""

    layers: set[int]
    rows: list[int] | None = None
    resid: dict[int, torch.Tensor] = field(default_factory=dict)

    def hooks(self) -> list[Hook]:
        def keep(layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
            def read(x: torch.Tensor, hook: Any) -> torch.Tensor:
                self.resid[layer] = (x if self.rows is None else x[self.rows]).detach().clone()
                return x
            return read
        return [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in sorted(self.layers)]


def _pass_through(hidden_states: Any = None, *args: Any, **kwargs: Any) -> Any:
    return hidden_states


@contextmanager
def _skipping(model: Any, layer: int) -> Iterator[None]:
    """Blocks before `layer` hand their input on unchanged (and fire none of their hooks)."""
    skipped = list(model.bridge.blocks)[:layer]
    for block in skipped:
        object.__setattr__(block, "forward", _pass_through)   # the bridge forwards setattr to HF
    try:
        yield
    finally:
        for block in skipped:
            object.__delattr__(block, "forward")


def last_logits(model: Any, tokens: torch.Tensor, hooks: list[Hook], resume: Resume | None = None) -> torch.Tensor:
    """(B, V) logits at the last position of a pass over `tokens` (B, n) with `hooks`, started
    at `resume.layer` when given."""
    logits, _ = lean_pass(model, tokens, hooks, resume=resume)
    assert logits is not None
    return logits


def read_attention(model: Any, tokens: torch.Tensor, hooks: list[Hook], reads: list[Read | None]) -> torch.Tensor:
    """(B,) attention weight of row i at reads[i] = (layer, head, d, s) (NaN where None), from a
    pass with `hooks` that stops once the last layer read has its pattern."""
    _, att = lean_pass(model, tokens, hooks, reads, logits=False)
    assert att is not None
    return att


def lean_pass(model: Any, tokens: torch.Tensor, hooks: list[Hook], reads: list[Read | None] | None = None,
              logits: bool = True, resume: Resume | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One pass over `tokens` (B, n) with `hooks`: ((B, V) logits at the last position, or None
    without `logits`; (B,) attention weights at `reads`, or None without `reads`). Without
    logits the pass stops after the last layer it reads; with `resume` it starts at
    `resume.layer` (no read may lie before it)."""
    wanted: dict[int, list[tuple[int, Read]]] = {}
    for i, r in enumerate(reads or []):
        if r is not None:
            wanted.setdefault(r[0], []).append((i, r))
    att = None if reads is None else torch.full((len(reads),), float("nan"))
    last = max(wanted, default=-1)

    def reader(layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
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
        extra.append(("unembed.hook_in", last_position))
    elif not wanted:
        return None, att
    start: list[Hook] = []
    skip = 0
    if resume is not None and resume.layer > 0:
        if wanted and min(wanted) < resume.layer:
            raise ValueError(f"a pass resumed at layer {resume.layer} cannot read layer {min(wanted)}")
        skip, resid = resume.layer, resume.resid

        def inject(x: torch.Tensor, hook: Any) -> torch.Tensor:
            return resid.to(device=x.device, dtype=x.dtype)
        start = [(f"blocks.{skip}.hook_resid_pre", inject)]     # before any hook of the caller's
    out = None
    try:
        with (torch.no_grad(), ForwardCounter.counting(), _skipping(model, skip),
              model.bridge.hooks(fwd_hooks=[*start, *hooks, *extra])):
            out = model.bridge(tokens)[:, -1].float()
    except _Stop:
        pass
    return (out if logits else None), att
