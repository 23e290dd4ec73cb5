"""Per-prompt decomposition: memoized component coordinates for downstream heads."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from sadlang.decomp.activations import PromptActivations
from sadlang.decomp.budget import ByteBudget, Memo
from sadlang.decomp.components import ComponentTable, SideCoordinates
from sadlang.decomp.forms import HeadForms
from sadlang.models.weights import ModelWeights


def softcap(x: torch.Tensor, cap: float) -> torch.Tensor:
    return cap * torch.tanh(x / cap) if cap > 0 else x


# Bytes of per-head coordinate tables that all decompositions of the process may keep, and of
# per-prompt ablation values (circuits/per_prompt.py). One table of a late layer holds every
# upstream head at every source position, (C, n, r) with C ~ layers x heads x n: 10-17 MB at 16
# tokens on the bundled model and growing as n^2, so a count of tables is no bound. An evicted
# table is recomputed, identically, when asked again. `SADLANG_MEMO_MB` sets the limit (default
# 128: on 2026-12-02, `check specs/ioi.sad` peaked at 1730 MiB in 79 s with 128 against 1887 MiB
# in 78 s with 256, and acc traces of 32 and 64 tokens took as long; docs/benchmarks.md). The
# newest 4 tables stay whatever their size, so the query and key tables of one head outlive the
# firing that reads them even on long prompts, where a table alone passes any such limit.
MEMO = ByteBudget(int(float(os.environ.get("SADLANG_MEMO_MB", "128")) * 2**20), keep=4)


class PromptDecomposition:
    """Everything the tracer needs about one prompt, computed lazily and memoized.

    `a(layer, head)` -> (C, n, r): query-side singular coordinates a_k of every component at
    every position; `b(layer, head)` -> (C, n, r): key-side coordinates b_k. The score of
    destination d to key s' is sum_c,c' sum_k a[c, d, k] b[c', s', k] / attn_scale.
    """

    def __init__(self, weights: ModelWeights, forms: HeadForms, acts: PromptActivations,
                 max_cached: int = 24, reload: Callable[[], PromptActivations] | None = None):
        """With `reload` (an evidence store's `lambda: store.acts(i)`), the decomposition does
        not hold `acts`: it asks for them on each use, so activations the store's byte budget
        spilled are not pinned here (and read back twice)."""
        self.weights = weights
        self.forms = forms
        self._get_acts: Callable[[], PromptActivations] = reload if reload is not None else (lambda: acts)
        self._n = acts.n
        self._cache = Memo(lambda: MEMO, max_cached)

    @property
    def acts(self) -> PromptActivations:
        return self._get_acts()

    @property
    def n(self) -> int:
        return self._n

    def table(self, layer: int) -> ComponentTable:
        return ComponentTable(layer=layer, n_heads=self.weights.n_heads, n=self.n)

    def _memo(self, key: tuple[Any, ...], fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A table, computed once and kept under `MEMO` (recomputed if the budget evicted it)."""
        return self._cache.get(key, fn)

    def q_rot(self, layer: int, head: int) -> torch.Tensor:
        """(C, n, r) rotated query contributions of every component (pre singular map)."""
        w = self.weights
        return self._memo(("q", layer, head), lambda: SideCoordinates.compute(
            self.acts, w, layer, w.W_Q[layer, head], w.b_Q[layer, head], "q", head, self.vo))

    def k_rot(self, layer: int, head: int) -> torch.Tensor:
        """(C, n, r) rotated key contributions; shared by the query heads of a KV group."""
        w = self.weights
        kv = w.kv(head)
        return self._memo(("k", layer, kv), lambda: SideCoordinates.compute(
            self.acts, w, layer, w.W_K[layer, kv], w.b_K[layer, kv], "k", kv, self.vo))

    @property
    def vo(self) -> torch.Tensor:
        """(L, H, n, D) value outputs per source token (see readers.value_outputs): 10 MB at 16
        tokens on the bundled model, so it is a table under the byte budget like the others."""
        from sadlang.decomp.readers import value_outputs

        return self._memo(("vo",), lambda: value_outputs(self.acts, self.weights))

    def a_total(self, layer: int, head: int) -> torch.Tensor:
        """(n, r) singular coordinates of the whole query at every position (hooked input)."""
        w = self.weights

        def build() -> torch.Tensor:
            q = self.acts.normalized[layer] @ w.W_Q[layer, head] + w.b_Q[layer, head]
            return self.acts.to_head(q, layer, "q", head) @ self.forms.Gq[layer, head]
        return self._memo(("A", layer, head), build)

    def b_total(self, layer: int, head: int) -> torch.Tensor:
        """(n, r) singular coordinates of the whole key at every position (hooked input)."""
        w = self.weights
        kv = w.kv(head)

        def build() -> torch.Tensor:
            k = self.acts.normalized[layer] @ w.W_K[layer, kv] + w.b_K[layer, kv]
            return self.acts.to_head(k, layer, "k", kv) @ self.forms.Gk[layer, head]
        return self._memo(("B", layer, head), build)

    def a(self, layer: int, head: int) -> torch.Tensor:
        return self._memo(("a", layer, head), lambda: self.q_rot(layer, head) @ self.forms.Gq[layer, head])

    def b(self, layer: int, head: int) -> torch.Tensor:
        return self._memo(("b", layer, head), lambda: self.k_rot(layer, head) @ self.forms.Gk[layer, head])

    def score_terms(self, layer: int, head: int, d: int) -> torch.Tensor:
        """(K, r): per-singular-direction terms of the raw score of d to each of its keys
        s' = lo..d, lo = weights.key_start(layer, d) (0 without a sliding window; K = d+1-lo).

        Sum over the last axis equals the pre-cap attention score (already / attn_scale).
        """
        lo = self.weights.key_start(layer, d)
        a_tot = self.a(layer, head)[:, d].sum(0)                 # (r,)
        b_tot = self.b(layer, head)[:, lo: d + 1].sum(0)         # (K, r)
        return a_tot[None, :] * b_tot / self.weights.attn_scale

    def scores_check(self, layer: int, head: int, d: int) -> float:
        """Max abs difference between the decomposed and the hooked scores of row d (its keys)."""
        mine = softcap(self.score_terms(layer, head, d).sum(-1), self.weights.softcap)
        hooked = self.acts.scores[layer, head, d, self.weights.key_start(layer, d): d + 1]
        return float((mine - hooked).abs().max())
