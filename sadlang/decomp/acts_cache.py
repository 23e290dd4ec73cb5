"""Prompt activations under one byte budget for the whole process.

A check keeps each prompt's activations for as long as its set is checked (4.4 MB per prompt of
16 tokens on the bundled model: three (layers, n, d_model) tensors, the patterns and scores), and
a sampled set's last look holds its prompts, their twins and a reference draw: 224 prompts, 1
GB, growing with the prompts. Here the most recently used activations stay in memory up to
`SADLANG_ACTS_MB` (default 64) and older ones are written once to a spill file in a temporary
folder and read back when needed again: the same bits, at the cost of a read from the page
cache instead of a forward pass. The folder goes when its cache does (or at exit). The default
was 128 until 2026-12-02: `check specs/ioi.sad` peaked at 1561 MiB in 74.4 s with 64 against
1616 MiB in 74.2 s with 128 (single runs; docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import weakref
from pathlib import Path

import torch

from sadlang.decomp.activations import PromptActivations
from sadlang.decomp.budget import ByteBudget


def nbytes(acts: PromptActivations) -> int:
    """Bytes the prompt's own tensors take (shared RoPE tables counted too: they are small)."""
    return sum(t.numel() * t.element_size() for t in _tensors(acts).values())


def _tensors(acts: PromptActivations) -> dict[str, torch.Tensor]:
    return {f.name: getattr(acts, f.name) for f in dataclasses.fields(acts)
            if isinstance(getattr(acts, f.name), torch.Tensor)}


def owned(acts: PromptActivations) -> PromptActivations:
    """The same activations on storage of their own. Some of a batch's are views into batch-wide
    tensors (the final norm's, the logits), and one kept view would keep the whole batch alive
    after the rest is dropped; tensors that already own their storage are kept as they are."""
    return dataclasses.replace(acts, **{k: t.clone() for k, t in _tensors(acts).items() if not _owns(t)})


def _owns(t: torch.Tensor) -> bool:
    """Is `t` all of its storage (a view of nothing larger)?"""
    return t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()


# where each tensor of a spilled prompt sits in its file: name -> (dtype, shape, device, byte offset, bytes)
Layout = dict[str, tuple[torch.dtype, tuple[int, ...], torch.device, int, int]]


def _write(path: Path, acts: PromptActivations) -> Layout:
    """The prompt's tensors as raw bytes, one after another (a read back is one file read, not
    an unpickling: 1-2 ms for a bundled-model prompt)."""
    layout: Layout = {}
    offset = 0
    with open(path, "wb") as f:
        for name, t in _tensors(acts).items():
            raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            layout[name] = (t.dtype, tuple(t.shape), t.device, offset, raw.numel())
            f.write(raw.numpy().data)
            offset += raw.numel()
    return layout


def _read(path: Path, layout: Layout) -> PromptActivations:
    """The file read into memory of the process's own, each tensor on storage of its own (a
    mapping would take a page fault per 4 KB on first touch, and every claim touches every
    prompt; one buffer shared by the fields would let any one field kept elsewhere, such as an
    MLP output kept as a resample value, pin the whole prompt)."""
    fields = {}
    with open(path, "rb") as f:
        for name, (dtype, shape, device, offset, size) in layout.items():
            t = torch.empty(shape, dtype=dtype)
            f.seek(offset)
            if size and f.readinto(t.reshape(-1).view(torch.uint8).numpy().data) != size:
                raise OSError(f"spilled activations {path} were cut short")
            fields[name] = t.to(device)
    return PromptActivations(**{f.name: fields.get(f.name) for f in dataclasses.fields(PromptActivations)})  # type: ignore[arg-type]


# the newest 8 prompts stay whatever their size, so the prompts a computation reads side by side
# (a prompt and its twin) are never spilled under it
BUDGET = ByteBudget(int(float(os.environ.get("SADLANG_ACTS_MB", "64")) * 2**20), keep=8)


class ActsCache:
    """One prompt set's activations by prompt index: in memory while the budget allows, else in
    a spill file (written once: activations never change)."""

    written = 0                  # spill files written by every cache of the process (tests, benchmarks)

    def __init__(self, budget: ByteBudget = BUDGET):
        self.budget = budget
        self._held: dict[int, PromptActivations] = {}
        self._spilled: dict[int, Path] = {}
        self._layouts: dict[int, Layout] = {}
        self._folder: Path | None = None
        self.reads = 0           # files read back

    @property
    def spills(self) -> int:
        """Prompts written to the spill folder (each once)."""
        return len(self._spilled)

    def __contains__(self, i: int) -> bool:
        return i in self._held or i in self._spilled

    def get(self, i: int) -> PromptActivations | None:
        if i in self._held:
            self.budget.touch(self, i)
            return self._held[i]
        path = self._spilled.get(i)
        if path is None:
            return None
        self.reads += 1
        acts = _read(path, self._layouts[i])
        self._hold(i, acts)
        return acts

    def put(self, i: int, acts: PromptActivations) -> None:
        self._hold(i, owned(acts))

    def _hold(self, i: int, acts: PromptActivations) -> None:
        self._held[i] = acts
        self.budget.add(self, i, nbytes(acts))

    def evict(self, i: int) -> None:
        """Move prompt i out of memory (the budget's call)."""
        acts = self._held.pop(i, None)
        if acts is None or i in self._spilled:
            return
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="sadlang-acts-"))
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        path = self._folder / f"{i}.bin"
        self._layouts[i] = _write(path, acts)
        self._spilled[i] = path
        ActsCache.written += 1

    def drop(self, indices: list[int]) -> None:
        """Forget these prompts in memory (spill files stay: reading one back is cheap)."""
        for i in indices:
            if self._held.pop(i, None) is not None:
                self.budget.forget(self, i)
