"""Effects of locally ablating a traced prompt's strongest head -> head edges, each against a
random subspace of the same size (what `sadlang trace --ablate K` prints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sadlang.evidence.metrics import logit_diff
from sadlang.intervene.controls import random_edit
from sadlang.intervene.edits import EdgeEdit, run_edits
from sadlang.models.loader import LoadedModel
from sadlang.trace.firing import Edge, Firing
from sadlang.trace.tracer import Circuit


@dataclass
class EdgeEffect:
    firing: Firing
    edge: Edge
    attention: float          # the downstream head's weight at its firing, after the ablation
    random_attention: float   # ... after ablating a random subspace instead
    logit_diff: float         # change of the logit difference (ablated - clean)
    random_logit_diff: float


def strongest_head_edges(circuit: Circuit, k: int) -> list[tuple[Firing, Edge]]:
    edges = [(f, e) for f in circuit.firings.values() for e in f.edges if e.component.kind == "head"]
    return sorted(edges, key=lambda fe: -fe[1].weight)[:k]


def ablate_strongest_edges(model: LoadedModel, circuit: Circuit, k: int,
                           seed: int = 0) -> tuple[float, list[EdgeEffect]]:
    """(clean logit difference, effects of the k strongest head edges), one pass per edge."""
    dec = circuit.decomposition
    assert dec is not None
    clean = logit_diff(dec.acts.logits_end, circuit.answer, circuit.against)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for f, e in strongest_head_edges(circuit, k):
        edit = EdgeEdit(f.layer, f.head, f.d, f.s, e.component, e.side, e.svs, "local", -1.0)
        control = random_edit(edit, model.info.d_head, gen)
        logits, att = run_edits(model, [dec, dec], [[edit], [control]], [f.key, f.key])
        assert logits is not None and att is not None       # both were asked for
        lds = [logit_diff(logits[i], circuit.answer, circuit.against) - clean for i in range(2)]
        out.append(EdgeEffect(f, e, float(att[0]), float(att[1]), lds[0], lds[1]))
    return clean, out
