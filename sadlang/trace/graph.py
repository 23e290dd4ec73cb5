"""Circuit graphs: node and edge schema, export to GraphML/JSON, combination over prompts.

Schema (networkx.MultiDiGraph, edges point upstream -> downstream):
  node id      "L.H@d:s" for a head firing, "mlp L@p", "bias L@p", "embed@p",
               "offset L.H@p" (the downstream head's own Q/K bias), "logit@p" (the root)
  node attrs   kind (head|mlp|bias|embed|offset|root), layer, head (-1 if none),
               dest, src (positions), dest_role, src_role, attn_weight (-1 if unknown), label
  edge attrs   side (query|key|seed), weight (float), svs (JSON list of singular indices),
               signal (d_model floats; only with TraceOptions(signals=True); JSON only)
Combined graphs key nodes by roles instead of positions and add `frequency` (share of
prompts with the node) to nodes and `frequency`, `count` to edges; an edge's `svs` there are
the singular indices seen in any prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from sadlang.decomp.components import Component


def role_of(roles: dict[int, str], pos: int) -> str:
    """A position's role: its label, else its offset from the nearest labelled position before it
    (`A+2`, the pos syntax of specs), else after it (`A-1`), else `p{pos}`. Relative names keep
    traces of different templates apart by role, never by absolute position."""
    if pos in roles:
        return roles[pos]
    before = [p for p in roles if p < pos]
    if before:
        base = max(before)
        return f"{roles[base]}+{pos - base}"
    after = [p for p in roles if p > pos]
    if after:
        base = min(after)
        return f"{roles[base]}-{base - pos}"
    return f"p{pos}"


def node_id(comp: Component, at: int, downstream: tuple[int, int] | None = None) -> str:
    if comp.kind == "head":
        return f"{comp.layer}.{comp.head}@{at}:{comp.src}"
    if comp.kind in ("mlp", "bias"):
        return f"{comp.kind} {comp.layer}@{at}"
    if comp.kind == "offset" and downstream is not None:
        return f"offset {downstream[0]}.{downstream[1]}@{at}"
    return f"{comp.kind}@{at}"


def head_node(layer: int, head: int, d: int, s: int) -> str:
    return f"{layer}.{head}@{d}:{s}"


def add_node(g: nx.MultiDiGraph, nid: str, roles: dict[int, str], *, kind: str, layer: int = -1,
             head: int = -1, dest: int, src: int, attn_weight: float = -1.0) -> None:
    if nid in g:
        if attn_weight >= 0 and g.nodes[nid].get("attn_weight", -1.0) < 0:
            g.nodes[nid]["attn_weight"] = attn_weight
        return
    g.add_node(nid, kind=kind, layer=layer, head=head, dest=dest, src=src,
               dest_role=role_of(roles, dest), src_role=role_of(roles, src),
               attn_weight=attn_weight, label=nid)


def add_component(g: nx.MultiDiGraph, roles: dict[int, str], comp: Component, at: int, pattern: Any,
                  downstream: tuple[int, int] | None = None) -> str:
    """Add the node of `comp` writing at position `at` (a head: its firing at -> its source, with
    its attention weight from `pattern` (L, H, n, n)); returns the node's id. `downstream`: the
    head whose own bias an `offset` component is."""
    nid = node_id(comp, at, downstream=downstream)
    if comp.kind == "head":
        cl, ch, cs = comp.head_src
        add_node(g, nid, roles, kind="head", layer=cl, head=ch, dest=at, src=cs,
                 attn_weight=float(pattern[cl, ch, at, cs]))
    else:
        add_node(g, nid, roles, kind=comp.kind, layer=comp.layer if comp.kind in ("mlp", "bias") else -1,
                 dest=at, src=at)
    return nid


def role_key(g: nx.MultiDiGraph, nid: str) -> str:
    """Position-free key of a node: roles instead of positions."""
    a = g.nodes[nid]
    kind = a["kind"]
    if kind == "head":
        return f"{a['layer']}.{a['head']}@{a['dest_role']}:{a['src_role']}"
    if kind == "root":
        return f"logit@{a['dest_role']}"
    if kind in ("mlp", "bias"):
        return f"{kind} {a['layer']}@{a['dest_role']}"
    return f"{nid.split('@')[0]}@{a['dest_role']}"


def combine(graphs: list[nx.MultiDiGraph], min_frequency: float = 0.0) -> nx.MultiDiGraph:
    """Merge per-prompt graphs on role keys; weights are summed over prompts / number of graphs.

    Keeps nodes present in at least `min_frequency` of the graphs (and edges among them)."""
    out = nx.MultiDiGraph()
    n = max(len(graphs), 1)
    node_count: dict[str, int] = {}
    edge_acc: dict[tuple[str, str, str], list] = {}
    for g in graphs:
        seen = set()
        for nid, attrs in g.nodes(data=True):
            key = role_key(g, nid)
            if key not in out:
                kept = {k: v for k, v in attrs.items() if k not in ("dest", "src", "attn_weight", "label")}
                out.add_node(key, **kept, label=key)
            if key not in seen:
                node_count[key] = node_count.get(key, 0) + 1
                seen.add(key)
        for u, v, attrs in g.edges(data=True):
            k = (role_key(g, u), role_key(g, v), attrs["side"])
            acc = edge_acc.setdefault(k, [0.0, 0, set()])
            acc[0] += attrs["weight"]
            acc[1] += 1
            svs = attrs.get("svs", "[]")
            acc[2].update(json.loads(svs) if isinstance(svs, str) else svs)
    for key, c in node_count.items():
        out.nodes[key]["frequency"] = c / n
    for (u, v, side), (total, count, svs) in edge_acc.items():
        out.add_edge(u, v, side=side, weight=total / n, count=count, frequency=count / n,
                     svs=svs_text(sorted(svs)))
    drop = [k for k, a in out.nodes(data=True) if a["frequency"] < min_frequency]
    out.remove_nodes_from(drop)
    out.remove_nodes_from([k for k in list(out.nodes) if out.degree(k) == 0 and out.nodes[k]["kind"] != "root"])
    return out


def heads_in(g: nx.MultiDiGraph) -> set[tuple[int, int]]:
    return {(a["layer"], a["head"]) for _, a in g.nodes(data=True) if a["kind"] == "head"}


def svs_text(svs: list[int]) -> str:
    """Singular indices as a graph attribute: the JSON text of the list (`[0, 3]`), written
    directly (json.dumps costs more than the rest of building an edge)."""
    return "[" + ", ".join(str(int(k)) for k in svs) + "]"


def to_json(g: nx.MultiDiGraph) -> dict:
    return {
        "nodes": [{"id": n, **a} for n, a in sorted(g.nodes(data=True))],
        "edges": [{"source": u, "target": v, **a} for u, v, a in
                  sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["side"]))],
    }


def save_graph(g: nx.MultiDiGraph, path: str | Path, tokens: list[str] | None = None,
               n_layers: int | None = None, title: str = "") -> Path:
    """Write a graph as .graphml, .json or a .svg picture (by suffix; .svg needs tokens)."""
    path = Path(path)
    if path.suffix == ".svg":
        from sadlang.trace.render import to_svg

        layers = n_layers or 1 + max([a.get("layer", 0) for _, a in g.nodes(data=True)] or [0])
        path.write_text(to_svg(g, tokens or [], layers, title))
    elif path.suffix == ".json":
        path.write_text(json.dumps(to_json(g), indent=1, sort_keys=True))
    elif path.suffix == ".graphml":
        clean = nx.MultiDiGraph()
        for n_, a in g.nodes(data=True):
            clean.add_node(n_, **{k: v for k, v in a.items() if isinstance(v, (int, float, str))})
        for u, v, a in g.edges(data=True):
            clean.add_edge(u, v, **{k: v_ for k, v_ in a.items() if isinstance(v_, (int, float, str))})
        nx.write_graphml(clean, str(path))
    else:
        raise ValueError(f"unknown graph format {path.suffix!r}: use .graphml, .json or .svg")
    return path
