"""A byte budget for what many owners keep in memory across the process, least recently used out
first: decomposition tables (decomp/prompt.py), ablation values (circuits/per_prompt.py) and
prompts' activations (decomp/acts_cache.py).

An owner registers each thing it keeps with its size; when the total passes the limit, the
oldest things are handed back to their owners' `evict(key)` (drop it, or move it to disk). The
newest `keep` stay whatever their size. Owners are held weakly: a dead owner's entries just leave.
`Memo` is the owner for things that are computed again, identically, when asked after eviction.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol


class Owner(Protocol):
    def evict(self, key: Any) -> None: ...


class ByteBudget:
    def __init__(self, limit_bytes: int, keep: int):
        self.limit = limit_bytes
        self.keep = keep
        self.total = 0
        self._entries: OrderedDict = OrderedDict()     # (id(owner), key) -> (weakref(owner), nbytes)

    def touch(self, owner: Owner, key: Hashable) -> None:
        if (id(owner), key) in self._entries:
            self._entries.move_to_end((id(owner), key))

    def forget(self, owner: Owner, key: Hashable) -> None:
        found = self._entries.pop((id(owner), key), None)
        if found is not None:
            self.total -= found[1]

    def add(self, owner: Owner, key: Hashable, size: int) -> None:
        entry = (id(owner), key)
        if entry in self._entries:             # an id reused by a new owner after a dead one
            self.total -= self._entries.pop(entry)[1]
        self._entries[entry] = (weakref.ref(owner), size)
        self.total += size
        while self.total > self.limit and len(self._entries) > self.keep:
            (_, old), (ref, old_size) = self._entries.popitem(last=False)
            self.total -= old_size
            holder = ref()
            if holder is not None:
                holder.evict(old)


class Memo:
    """Tensors computed when first asked for (`get(key, compute)`) and kept under the byte budget
    `budget()` returns (looked up at each use); one the budget evicts is computed again when asked
    for again, so `compute` must give the same tensor each time. `max_kept` also caps how many
    stay, newest first."""

    def __init__(self, budget: Callable[[], ByteBudget], max_kept: int | None = None):
        self._budget = budget
        self._kept: OrderedDict = OrderedDict()
        self._max = max_kept
        self.computed = 0            # calls of `compute` (tests read it)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        budget = self._budget()
        if key in self._kept:
            self._kept.move_to_end(key)
            budget.touch(self, key)
            return self._kept[key]
        value = compute()
        self.computed += 1
        self._kept[key] = value
        budget.add(self, key, value.numel() * value.element_size())
        if self._max is not None and len(self._kept) > self._max:
            budget.forget(self, self._kept.popitem(last=False)[0])
        return value

    def evict(self, key: Hashable) -> None:
        """Drop one (the budget's call)."""
        self._kept.pop(key, None)
