"""The registry of discovery methods: how `circuit NAME = discover METHOD of SET from TWINS top K
edges|nodes` ranks the graph of heads and MLPs, patching each node or edge from the clean prompts
of SET toward their aligned twins (a counterfactual set: `prompts TWINS from SET:` with
`resample` or `swap`).

    DISCOVERIES["eap-ig"].rank(ev, twins, metric, batch_size, steps)   # -> Ranking

- `eap`:      edge attribution patching, one forward and backward pass per batch
- `eap-ig`:   EAP with integrated gradients over `ig_steps` interpolated inputs
- `patching`: exact activation patching of every head and MLP (one variant each, in shared
              batched passes); it ranks nodes: patching every edge exactly costs a pass per edge

A discovered circuit is a heads-and-MLPs circuit at every position: the nodes at either end of
the K strongest edges (by |score|), or the K strongest nodes. Adding a method is adding a record
here and running scripts/gen_docs.py (the grammar's DISCOVERY terminal and the docs table).

Importing this module loads no tensor code (the parser's checks and the docs read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sadlang.errors import one_of

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence

Unit = tuple[int, int]


@dataclass
class Ranking:
    """What a discovery method found: nodes (and, for attribution methods, edges) with scores,
    strongest |score| first. Edge entries are (sender, receiver or None, side)."""

    method: str
    nodes: list[tuple[Unit, float]]
    edges: list[tuple[tuple, float]] = field(default_factory=list)
    passes: int = 0

    def top(self, k: int, unit: Literal["edges", "nodes"]) -> list[Unit]:
        """The circuit's units: those at either end of the k strongest edges, or the k strongest nodes."""
        if unit == "nodes":
            return sorted(u for u, _ in self.nodes[:k])
        from sadlang.circuits.attribution import top_nodes

        return top_nodes(self.edges, k)


Rank = Callable[["PromptSetEvidence", "PromptSetEvidence", str, int, int], Ranking]


@dataclass(frozen=True)
class Discovery:
    """One discovery method.

    name:     as written after `discover`
    summary:  what it computes (docs)
    edges:    whether it ranks edges (`top K edges`); every method ranks nodes
    rank:     (clean set, twins, task metric, batch size, IG steps) -> Ranking
    """

    name: str
    summary: str
    edges: bool
    rank: Rank


def _attribution(ev: PromptSetEvidence, twins: PromptSetEvidence, metric: str, batch_size: int,
                 steps: int) -> Ranking:
    from sadlang.circuits.ablation import head_z, mlp_out
    from sadlang.circuits.ablations import get_ablation
    from sadlang.circuits.attribution import attribute

    resample = get_ablation("resample")
    scores = attribute(ev, resample.values(ev, twins, head_z), resample.values(ev, twins, mlp_out), metric,
                       batch_size, twins, steps)
    nodes = sorted(scores.node_scores().items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    return Ranking(scores.method, nodes, scores.edges(), scores.passes)


def _eap(ev: PromptSetEvidence, twins: PromptSetEvidence, metric: str, batch_size: int, steps: int) -> Ranking:
    return _attribution(ev, twins, metric, batch_size, 1)


def _eap_ig(ev: PromptSetEvidence, twins: PromptSetEvidence, metric: str, batch_size: int, steps: int) -> Ranking:
    return _attribution(ev, twins, metric, batch_size, max(2, steps))


def _patching(ev: PromptSetEvidence, twins: PromptSetEvidence, metric: str, batch_size: int,
              steps: int) -> Ranking:
    from sadlang.circuits.metrics import CircuitLab, Variant, mean
    from sadlang.circuits.nodes import MLP, Node

    info = ev.model.info
    units = [(layer, head) for layer in range(info.n_layers) for head in range(info.n_heads)]
    units += [(layer, MLP) for layer in range(info.n_layers)]
    lab = CircuitLab(ev, "resample", twins, batch_size, metric)
    clean = mean(lab.clean())
    everywhere: list[Node] = [(layer, unit, None) for layer, unit in units]
    single: list[Variant] = [([[node] for _ in ev.prompts], False) for node in everywhere]
    runs = lab.run(single)
    nodes = sorted(((u, mean(r) - clean) for u, r in zip(units, runs)), key=lambda kv: (-abs(kv[1]), kv[0]))
    return Ranking("patching", nodes, [], lab.ablation_passes)


DISCOVERIES: dict[str, Discovery] = {d.name: d for d in (
    Discovery("eap", "edge attribution patching: (a_twin − a) · ∂F/∂(receiver input), one forward and backward "
                     "pass per batch", True, _eap),
    Discovery("eap-ig", "EAP with the gradients averaged over `eap_ig_steps` inputs interpolated from the twin's "
                        "embeddings to the prompt's (integrated gradients)", True, _eap_ig),
    Discovery("patching", "exact activation patching: F with one head's or MLP's output taken from the twin, "
                          "minus F; ranks nodes only", False, _patching),
)}


def names_text() -> str:
    return one_of(list(DISCOVERIES))


def grammar_terminal() -> str:
    """The grammar's DISCOVERY terminal (a generated line of sadlang/grammar/sad.lark)."""
    return "DISCOVERY: " + " | ".join(f'"{name}"' for name in sorted(DISCOVERIES, key=len, reverse=True))


def docs_table() -> str:
    """The discovery-methods table of docs/language.md."""
    rows = ["| method | ranks | what it computes |", "| --- | --- | --- |"]
    rows += [f"| `{d.name}` | {'edges and nodes' if d.edges else 'nodes'} | {d.summary} |"
             for d in DISCOVERIES.values()]
    return "\n".join(rows)
