"""Per-prompt ablation values computed when read, under the process's table budget.

A resample ablation replaces each prompt's head outputs by its twin's: (L, n, H, r) a prompt,
1.1 MB at 16 tokens on the bundled model, and as much again for MLP outputs. Held for every
prompt of a set, that grew with the set (105 MB at 96 prompts; by the same arithmetic, 0.8 GB
at 768). `PerPrompt`
computes a prompt's values when a pass first reads them and keeps them under
`decomp.prompt.MEMO`, the byte budget of the decomposition's tables. Values it evicts are
computed again, identically, from the same activations, if a later pass reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

import torch

from sadlang.decomp import prompt as P
from sadlang.decomp.budget import Memo


class PerPrompt(Sequence[torch.Tensor]):
    """`values[i]` = `compute(i)` for prompt i of `n`, memoized under the table budget."""

    def __init__(self, n: int, compute: Callable[[int], torch.Tensor]):
        self._n = n
        self._compute = compute
        self._values = Memo(lambda: P.MEMO)

    @property
    def computed(self) -> int:
        """Calls of `compute` (tests read it)."""
        return self._values.computed

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[torch.Tensor]: ...

    def __getitem__(self, i: int | slice) -> torch.Tensor | Sequence[torch.Tensor]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"prompt {i} of {self._n}")
        i %= self._n
        return self._values.get(i, lambda: self._compute(i))
