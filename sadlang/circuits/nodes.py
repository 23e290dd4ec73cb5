"""A circuit as node sets per prompt: declared circuits resolve their `at` positions in each
prompt; traced circuits are cut from the prompts' traces (node frequency, then the top edges).

A node is (layer, unit, destination position), position None meaning every position; the unit
is a head index, or MLP for the layer's MLP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sadlang.evidence.roles import resolve
from sadlang.evidence.store import PromptSetEvidence
from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt

if TYPE_CHECKING:
    from sadlang.circuits.discovery import Ranking

Node = tuple[int, int, int | None]
MLP = A.MLP_UNIT  # the unit of an MLP node: (layer, MLP, position)


def declared_nodes(decl: A.CircuitDecl, prompt: BuiltPrompt) -> list[Node]:
    """The nodes of a declared circuit in one prompt, heads then MLPs (a RoleError if a position
    is missing)."""
    out: list[Node] = []
    for n in decl.nodes:
        layer, head = n.head.pair
        out.append((layer, head, None if n.at is None else resolve(n.at, prompt)))
    for m in decl.mlps:
        out.append((m.layer, MLP, None if m.at is None else resolve(m.at, prompt)))
    return out


def unit_name(unit: tuple[int, int]) -> str:
    """'L.H' for a head (L, H), 'mlp L' for an MLP (L, MLP)."""
    layer, index = unit
    return f"mlp {layer}" if index == MLP else f"{layer}.{index}"


def parse_unit(name: str) -> tuple[int, int]:
    """unit_name's inverse: 'L.H' -> (L, H), 'mlp L' -> (L, MLP)."""
    if name.startswith("mlp "):
        return int(name[4:]), MLP
    layer, head = name.split(".")
    return int(layer), int(head)


def node_name(node: Node) -> str:
    """A node's unit_name (the position is not named)."""
    return unit_name(node[:2])


Pair = tuple[tuple[int, int], tuple[int, int]]


def _traced(decl: A.CircuitDecl, traced: PromptSetEvidence) -> tuple[set[tuple[int, int]], list[Pair]]:
    """The seeds (heads that write the logit) and the head -> head edges, strongest first and cut
    to `top K edges`, of SET's combined trace at node frequency F."""
    from sadlang.trace.graph import combine

    g = combine(traced.graphs(), decl.frequency)
    attrs = g.nodes
    seeds = {(attrs[u]["layer"], attrs[u]["head"]) for u, v, a in g.edges(data=True)
             if a["side"] == "seed" and attrs[u]["kind"] == "head"}
    edges = sorted(((a["weight"], u, v) for u, v, a in g.edges(data=True)
                    if a["side"] != "seed" and attrs[u]["kind"] == "head" and attrs[v]["kind"] == "head"),
                   key=lambda e: (-e[0], e[1], e[2]))
    if decl.top_edges is not None:
        edges = edges[: decl.top_edges]
    pairs = [((attrs[u]["layer"], attrs[u]["head"]), (attrs[v]["layer"], attrs[v]["head"])) for _, u, v in edges]
    return seeds, pairs


def traced_heads(decl: A.CircuitDecl, traced: PromptSetEvidence) -> list[tuple[int, int]]:
    """Heads of `circuit NAME = trace of SET at frequency F top K edges`: the combined trace of
    SET cut at node frequency F; the heads that write the logit (seeds) plus the heads at either
    end of the K strongest head edges (all of them without `top`)."""
    seeds, pairs = _traced(decl, traced)
    return sorted(seeds | {h for pair in pairs for h in pair})


def traced_units(decl: A.CircuitDecl, traced: PromptSetEvidence) -> list[tuple[int, int]]:
    """The units of a traced circuit: its heads (traced_heads) and, with `with values above X`,
    the heads and MLPs that feed a traced head's values (sadlang/circuits/values.py)."""
    heads = traced_heads(decl, traced)
    if decl.value_share is None:
        return heads
    from sadlang.circuits.values import value_feeders

    fed = value_feeders(decl, traced, heads)
    return sorted(set(heads) | {u for feeders in fed.values() for u in feeders})


def _first_sample(ev: PromptSetEvidence, twins: PromptSetEvidence) -> tuple[PromptSetEvidence, PromptSetEvidence]:
    """SET's first `sample N` prompts and their twins (the whole sets when SET has no more). N is
    the spec's own (a look's plan draws SET at the look's size, but keeps the spec as written).
    The sub-sets run their own passes rather than share the set's activations: the set's batches
    change from look to look (a prompt's batch-mates change the last bits of fp32 results), and the
    ranking must be the same at every look; it costs one clean pass of N prompts per look."""
    spec_decl = ev.workspace.spec.prompt_sets.get(ev.name) if ev.workspace is not None else None
    decl = spec_decl or ev.decl
    n = decl.sample if decl is not None and decl.templates else len(ev)
    if n >= len(ev):
        return ev, twins
    key = ("first-sample", n, twins.name)
    if key not in ev.memo:
        def first(src: PromptSetEvidence, keep: list[int]) -> PromptSetEvidence:
            sub = PromptSetEvidence(src.model, [src.prompts[j] for j in keep], src.opts, src.batch_size,
                                    src.progress, src.name, src.decl, [src.origin[j] for j in keep])
            sub.workspace = src.workspace
            return sub
        ev.memo[key] = (first(ev, list(range(n))), first(twins, [j for j, o in enumerate(twins.origin) if o < n]))
    return ev.memo[key]


def circuit_edges(decl: A.CircuitDecl, sets: dict[str, PromptSetEvidence], metric: str, batch_size: int,
                  steps: int) -> set[tuple[str, str]]:
    """A circuit's edges as (sender, receiver) unit names, the receiver "logits" for an edge into
    the unembedding; the side an edge enters by (query, key, value) is merged, so declared,
    traced and discovered circuits compare edge for edge. Declared: its `edge` lines; traced: a
    seed head -> logits, the kept head -> head edges and each value feeder -> the head it feeds;
    discovered: its top K edges."""
    if decl.traced_from is None:
        return {(unit_name(e.upstream.pair), "logits" if e.downstream is None else unit_name(e.downstream.pair))
                for e in decl.edges}
    if decl.discovery is not None:
        _, ranking = discovered(decl, sets, metric, batch_size, steps)
        return {(unit_name(u), "logits" if v is None else unit_name(v))
                for (u, v, _), _ in ranking.edges[: decl.top_edges or 0]}
    seeds, pairs = _traced(decl, sets[decl.traced_from])
    out = {(unit_name(h), "logits") for h in seeds} | {(unit_name(u), unit_name(v)) for u, v in pairs}
    if decl.value_share is not None:
        from sadlang.circuits.values import value_feeders

        fed = value_feeders(decl, sets[decl.traced_from], traced_heads(decl, sets[decl.traced_from]))
        out |= {(unit_name(u), unit_name(h)) for h, feeders in fed.items() for u in feeders}
    return out


def keep_mask(nodes: list[Node], shape: tuple[int, int, int], keep_nodes: bool) -> torch.Tensor:
    """(L, n, H) bool. keep_nodes: keep only `nodes` (the circuit alone); otherwise keep all
    but `nodes` (the circuit removed from the model)."""
    mark = torch.zeros(shape, dtype=torch.bool)
    for layer, head, pos in nodes:
        if head == MLP:
            continue
        if pos is None:
            mark[layer, :, head] = True
        else:
            mark[layer, pos, head] = True
    return mark if keep_nodes else ~mark


def mlp_mask(nodes: list[Node], shape: tuple[int, int], keep_nodes: bool) -> torch.Tensor:
    """(L, n) bool, as keep_mask for the MLP nodes among `nodes`: keep only them (every other MLP
    ablated), or keep all but them."""
    mark = torch.zeros(shape, dtype=torch.bool)
    for layer, unit, pos in nodes:
        if unit == MLP:
            if pos is None:
                mark[layer, :] = True
            else:
                mark[layer, pos] = True
    return mark if keep_nodes else ~mark


def discovered(decl: A.CircuitDecl, sets: dict[str, PromptSetEvidence], metric: str, batch_size: int,
               steps: int) -> tuple[list[tuple[int, int]], Ranking]:
    """The units (layer, head or MLP) of `circuit NAME = discover METHOD of SET from TWINS top K
    edges|nodes`, and the method's Ranking; ranked once per set, method, metric and steps (the
    ranking is kept in SET's memo, so every claim on the circuit shares it). A set sampled until
    decided (`sample N up to M`) is ranked on its first N prompts at every look, so the circuit a
    claim tests does not change as the looks add prompts."""
    from sadlang.circuits.discovery import DISCOVERIES

    assert decl.discovery is not None and decl.traced_from is not None and decl.twins is not None
    ev, twins = _first_sample(sets[decl.traced_from], sets[decl.twins])
    key = ("discovery", decl.discovery, decl.twins, metric, steps)
    if key not in ev.memo:
        ev.memo[key] = DISCOVERIES[decl.discovery].rank(ev, twins, metric, batch_size, steps)
    ranking = ev.memo[key]
    if decl.top_nodes is not None:
        return ranking.top(decl.top_nodes, "nodes"), ranking
    return ranking.top(decl.top_edges or 1, "edges"), ranking
