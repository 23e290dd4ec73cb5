"""Circuit metrics over node ablations (Wang et al. 2022). F is the task metric (a registry,
circuits/task_metrics.py: logit difference, accuracy, answer probability, loss, KL) averaged over
the prompt set; M the whole model; C the circuit; for a node set S, `only S` keeps the head outputs of S
and ablates every other head, `without S` ablates S alone. An edge-level circuit (one that
declares edges) also cuts, inside `only S`, every path between its heads that is not one of its
edges, and `without C` cuts its edges from the whole model (sadlang/circuits/wiring.py).

    faithfulness  F(only C) / F(M)
    necessity     (F(M) - F(without C)) / F(M)
    completeness  max over K in C of |F(only C minus K) - F(without K)| / |F(M)|   (lower is better)
    minimality    min over v in C of max over K containing v of
                  (F(only C minus (K - v)) - F(only C minus K)) / |F(M)|
    normalised    (F(only C) - F(empty)) / (F(M) - F(empty)), F(empty) with every head ablated
    vs random     faithfulness of C / mean faithfulness of random circuits of exactly its size
                  (per-layer counts matched, heads drawn without replacement), same positions,
                  with the permutation p-value of C among them
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sadlang.circuits.ablation import Row, cuts_mlps, head_z, mlp_out, row_passes, run_rows
from sadlang.circuits.ablations import get_ablation
from sadlang.circuits.nodes import MLP, Node, keep_mask, mlp_mask
from sadlang.circuits.task_metrics import METRICS
from sadlang.circuits.wiring import Edge, Head, Wiring, only_edges
from sadlang.errors import SadError
from sadlang.evidence.store import PromptSetEvidence

# per prompt nodes; keep only them (True) or remove them; optionally the paths cut between heads
Variant = tuple[list[list[Node]], bool] | tuple[list[list[Node]], bool, Wiring | None]


def score(metric: str, logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None,
          against: int | None) -> float:
    """One prompt's value of the task metric `metric` (sadlang/circuits/task_metrics.py) from its
    (V,) logits at the end under a variant and on the clean run."""
    return METRICS[metric].score(logits_end, clean_end, answer, against)


@dataclass
class CircuitLab:
    """Runs ablation variants of one prompt set, all in shared batched passes."""

    ev: PromptSetEvidence
    kind: str                                      # an ablation kind (sadlang/circuits/ablations.py)
    source: PromptSetEvidence | None               # where its values come from: reference set or twins
    batch_size: int
    metric: str = "logit_diff"                      # a task metric (circuits/task_metrics.py)
    mlps: bool = False                              # MLPs are circuit nodes: `only S` ablates the MLPs outside S
    ablation_passes: int = 0
    _values: Sequence[torch.Tensor] | None = field(default=None, repr=False)
    _mlp_values: Sequence[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def values(self) -> Sequence[torch.Tensor]:
        """Per prompt, the (L, n, H, r) values that replace ablated head outputs."""
        if self._values is None:
            self._values = get_ablation(self.kind).values(self.ev, self.source, head_z)
        return self._values

    @property
    def mlp_values(self) -> Sequence[torch.Tensor]:
        """Per prompt, the (L, n, D) values that replace ablated MLP outputs."""
        if self._mlp_values is None:
            self._mlp_values = get_ablation(self.kind).values(self.ev, self.source, mlp_out)
        return self._mlp_values

    @property
    def passes(self) -> int:
        """Forward passes the lab needs on its own: the clean passes of the prompt set (and of
        the counterfactual set it resamples from) and its ablation passes. Counted whether or
        not an earlier claim already ran them (the runs are shared, see `run`), so the figure
        does not depend on the order claims run in, or on which worker ran them."""
        clean = len(self.ev.batches()) + (0 if self.source is None else len(self.source.batches()))
        return clean + self.ablation_passes

    def reference_text(self) -> str:
        """Which prompts the ablation takes its values from, for the report."""
        return get_ablation(self.kind).describe(self.ev, self.source)

    def clean(self) -> list[float]:
        return [score(self.metric, self.ev.logits_end(i), self.ev.logits_end(i), p.answer, p.against)
                for i, p in enumerate(self.ev.prompts)]

    def run(self, variants: list[Variant]) -> list[list[float]]:
        """Per variant, per prompt: the task metric under that ablation. The same list of
        variants under the same ablation is run once per prompt set (`faithful` and
        `necessary` of one circuit share their runs)."""
        key = ("circuit-lab", self.kind, None if self.source is None else self.source.name, self.metric,
               self.batch_size, self.mlps, tuple(_frozen(v) for v in variants))
        rows, where = self._rows(variants)
        # the passes run_rows makes of these rows (one per variant per prompt), run or reused
        self.ablation_passes += len(row_passes(self.ev, rows, self.batch_size))
        if key not in self.ev.memo:
            self.ev.memo[key] = self._run(rows, where, len(variants))
        return [list(scores) for scores in self.ev.memo[key]]

    def _rows(self, variants: list[Variant]) -> tuple[list[Row], list[tuple[int, int]]]:
        """One row per variant per prompt, and each row's (variant, prompt)."""
        info = self.ev.model.info
        rows, where = [], []
        for v, variant in enumerate(variants):
            nodes, keep = variant[0], variant[1]
            wiring = variant[2] if len(variant) > 2 else None
            for i, p in enumerate(self.ev.prompts):
                shape = (info.n_layers, len(p.tokens), info.n_heads)
                ablates_mlps = self.mlps if keep else any(unit == MLP for _, unit, _ in nodes[i])
                mlp_keep = mlp_mask(nodes[i], shape[:2], keep) if ablates_mlps else None
                rows.append(Row(i, keep_mask(nodes[i], shape, keep), wiring, mlp_keep))
                where.append((v, i))
        return rows, where

    def _run(self, rows: list[Row], where: list[tuple[int, int]], n_variants: int) -> list[list[float]]:
        if not rows:
            return []
        needs = any(row.mlp_keep is not None for row in rows) or cuts_mlps(rows)
        mlp_values = self.mlp_values if needs else None

        def reduce(k: int, logits: torch.Tensor) -> float:
            i = where[k][1]
            p = self.ev.prompts[i]
            return score(self.metric, logits, self.ev.logits_end(i), p.answer, p.against)
        scores = run_rows(self.ev, rows, self.values, self.batch_size, mlp_values, reduce=reduce)
        out = [[0.0] * len(self.ev) for _ in range(n_variants)]
        for k, (v, i) in enumerate(where):
            out[v][i] = float(scores[k])
        return out


def _frozen(v: Variant) -> tuple:
    """A variant as a hashable, canonical key."""
    nodes, keep = v[0], v[1]
    wiring = v[2] if len(v) > 2 else None
    wired = None if not wiring else (tuple(sorted((k, tuple(sorted(s))) for k, s in wiring.cuts.items())),
                                     tuple(sorted(wiring.logits)))
    return tuple(tuple(ns) for ns in nodes), keep, wired


def units_of(nodes: list[list[Node]]) -> set[Head]:
    """The heads and MLPs (layer, MLP) of per-prompt nodes."""
    return {(layer, unit) for ns in nodes for layer, unit, _ in ns}


def alone(nodes: list[list[Node]], edges: set[Edge] | None) -> Variant:
    """The variant `only nodes`: node-level, or with every path between them that is not one of
    `edges` cut (only_edges looks up pairs of `nodes`' heads and MLPs, so edges of units no
    longer there simply vanish)."""
    if edges is None:
        return (nodes, True)
    return (nodes, True, only_edges(units_of(nodes), edges))


def renamed(edges: set[Edge] | None, old: list[list[Node]], new: list[list[Node]]) -> set[Edge] | None:
    """`edges` with each head of `old` replaced by the head at the same place in `new`."""
    if edges is None or not old:
        return edges
    to: dict[Head, Head] = {}
    for (la, ha, _), (lb, hb, _) in zip(old[0], new[0], strict=True):
        to.setdefault((la, ha), (lb, hb))
    return {(to.get(s, s), None if r is None else to.get(r, r), side) for s, r, side in edges}


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b != 0 else float("nan")


def minus(nodes: list[list[Node]], drop: set[int]) -> list[list[Node]]:
    """Per prompt nodes without the node indices in `drop` (indices into the circuit's list)."""
    return [[n for k, n in enumerate(ns) if k not in drop] for ns in nodes]


def pick(nodes: list[list[Node]], keep: set[int]) -> list[list[Node]]:
    return [[n for k, n in enumerate(ns) if k in keep] for ns in nodes]


class RandomCircuitError(SadError):
    """Random circuits of a circuit's size and layers cannot be drawn."""


def random_circuits(nodes: list[list[Node]], n_heads: int, draws: int, seed: int) -> list[list[list[Node]]]:
    """`draws` random circuits of exactly the circuit's size, per-layer counts matched: each
    distinct head of the circuit is replaced by a distinct head of its layer that the circuit
    does not use (drawn without replacement, seeded); every node keeps its positions, so a head
    kept at two positions becomes one random head kept at the same two. MLP nodes stay (a layer
    has one MLP): the draws test the circuit's heads given its MLPs."""
    rng = random.Random(seed)
    heads: list[Head] = []
    for ns in nodes[:1]:
        for layer, head, _ in ns:
            if head != MLP and (layer, head) not in heads:
                heads.append((layer, head))
    layers = sorted({layer for layer, _ in heads})
    need = {layer: [h for h in heads if h[0] == layer] for layer in layers}
    free = {layer: [h for h in range(n_heads) if (layer, h) not in heads] for layer in layers}
    short = [layer for layer in layers if len(free[layer]) < len(need[layer])]
    if short:
        layer = short[0]
        raise RandomCircuitError(
            f"random circuits of the same size cannot be drawn: the circuit uses {len(need[layer])} of layer "
            f"{layer}'s {n_heads} heads, which leaves {len(free[layer])} to replace them with")
    out = []
    for _ in range(draws):
        to: dict[Head, Head] = {}
        for layer in layers:
            for old, new in zip(need[layer], rng.sample(free[layer], len(need[layer])), strict=True):
                to[old] = (layer, new)
        out.append([[(*to.get((layer, head), (layer, head)), pos) for layer, head, pos in ns] for ns in nodes])
    return out


def random_subsets(size: int, draws: int, seed: int, containing: int | None = None) -> list[set[int]]:
    """Non-empty random subsets of range(size), each element in with probability 1/2 (seeded)."""
    rng = random.Random(seed)
    out = []
    for _ in range(draws):
        k = {j for j in range(size) if rng.random() < 0.5}
        if containing is not None:
            k.add(containing)
        out.append(k or {rng.randrange(size)})
    return out
