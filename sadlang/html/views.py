"""What the HTML report shows beside a verdict, as plain data: prompts with their roles, attention
heatmaps of the heads a claim names, and circuit graphs as positioned graph elements.

Everything here is read from evidence the check already computed (activations, firings, traces),
with two exceptions made for the page: a counterexample's attention is one forward pass of that
prompt, and a set's attention bank (html/patterns.py) reads its first prompts' activations (one
batch, if no claim needed them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import networkx as nx
from pydantic import BaseModel, Field

from sadlang.html.patterns import BANK_BYTES, BANK_PROMPTS, BankPrompt, PatternBank, bank_prompt
from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt
from sadlang.runner.report import json_safe
from sadlang.runner.verdict import Counterexample, PromptEvidence, Verdict

if TYPE_CHECKING:
    import torch

    from sadlang.evidence.store import PromptSetEvidence

MAX_HEATMAPS = 6


class PromptView(BaseModel):
    """One prompt's row: the verdict's evidence plus its tokens and role labels (position -> role)."""

    index: int
    text: str
    value: float | None
    passed: bool | None          # None: a claim on the mean judges no prompt alone
    detail: str = ""
    tokens: list[str] = Field(default_factory=list)
    labels: dict[int, str] = Field(default_factory=dict)


class Heatmap(BaseModel):
    """Attention weights of one head on one prompt: weights[d][s] for destination d, key s."""

    head: str
    prompt: int
    tokens: list[str]
    weights: list[list[float]]
    marked: list[tuple[int, int]] = Field(default_factory=list)   # (destination, key) cells the claim names


class GraphView(BaseModel):
    """A circuit as graph elements with fixed positions: columns are tokens (or roles), rows
    layers. Nodes: id, label, kind, layer, head, column, x, y, and attn / frequency when known;
    edges: id, source, target, side, weight, svs, and frequency / signal_norm when known."""

    title: str
    columns: list[str]
    rows: list[tuple[float, str]] = Field(default_factory=list)   # (y, label) of each row used
    n_layers: int
    aggregated: bool                      # combined over prompts: nodes and edges have frequency
    min_frequency: float = 0.0
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    claimed: list[str] = Field(default_factory=list)     # ids of nodes a claim names (outlined)
    missing: list[str] = Field(default_factory=list)     # what the claim names and the graph lacks
    extra: list[str] = Field(default_factory=list)       # ids of nodes the compared circuit lacks (dashed)
    claimed_edges: list[str] = Field(default_factory=list)   # ids of edges a claim names (always drawn, outlined)
    extra_edges: list[str] = Field(default_factory=list)     # ids of edges the compared circuit lacks


class HeadGrid(BaseModel):
    """A value per head as a layers x heads grid (a head claim's or scan's scores): values[l][h],
    None for a head that was not a candidate; `marked` heads are outlined (those that hold)."""

    title: str
    values: list[list[float | None]]
    marked: list[str] = Field(default_factory=list)


class ClaimView(BaseModel):
    prompts: list[PromptView] = Field(default_factory=list)
    counterexample_tokens: list[str] = Field(default_factory=list)
    counterexample_labels: dict[int, str] = Field(default_factory=dict)
    counterexample_heatmaps: list[Heatmap] = Field(default_factory=list)
    heatmaps: list[Heatmap] = Field(default_factory=list)
    # any head on any of these prompts: the set's bank (shared by the set's cards, written once
    # per page), prompts only this card has (its counterexample, an inspected prompt past the
    # bank), the claimed cells on each (by prompt key), and the head and prompt drawn first
    bank: PatternBank | None = None
    bank_extra: list[BankPrompt] = Field(default_factory=list)
    bank_cells: dict[str, list[tuple[int, int]]] = Field(default_factory=dict)
    pick: tuple[str, str] = ("0.0", "0")
    bank_shape: tuple[int, int] = (0, 0)          # (layers, heads) the bank's prompts hold
    graph: GraphView | None = None
    head_grid: HeadGrid | None = None
    note: str = ""


# ---- layout: the same grid as the SVG picture (sadlang.trace.render)

COLUMN_W, ROW_H = 110.0, 70.0


def _place(items: list[tuple[str, int, int]]) -> tuple[dict[str, tuple[float, float]], list[tuple[float, int]]]:
    """(id, column, row) -> pixel positions, and (y, row) of each row used. Several ids in one
    cell are spread across it; rows without nodes take no space (a 30-layer model with a
    circuit in 5 layers is 5 rows high). Row -1 is below layer 0 (embeddings, biases); larger
    rows are higher on the page."""
    cells: dict[tuple[int, int], list[str]] = {}
    for nid, col, row in items:
        cells.setdefault((col, row), []).append(nid)
    used = sorted({row for _, _, row in items}, reverse=True)
    n_cols = 1 + max([col for _, col, _ in items] or [0])
    row_h = max(ROW_H, 0.5 * COLUMN_W * n_cols / max(len(used), 1))   # not much wider than high
    y_of = {row: round(row_h * k, 2) for k, row in enumerate(used)}
    out: dict[str, tuple[float, float]] = {}
    for (col, row), ids in cells.items():
        for k, nid in enumerate(sorted(ids)):
            dx = (k + 1) / (len(ids) + 1) - 0.5
            out[nid] = (round(COLUMN_W * (col + dx), 2), y_of[row])
    return out, [(y_of[row], row) for row in used]


def _row(a: dict[str, Any], n_layers: int) -> int:
    """The logit above the top layer; nodes without a layer (embeddings) below layer 0."""
    return n_layers if a["kind"] == "root" else max(-1, int(a.get("layer", -1)))


def _num(x: Any) -> float | None:
    return None if x is None else json_safe(float(x))


def graph_view(g: nx.MultiDiGraph, columns: list[str], n_layers: int, column_of: Callable[[dict[str, Any]], int],
               title: str,
               aggregated: bool = False, min_frequency: float = 0.0) -> GraphView:
    """Positioned elements of a traced graph. `column_of(node attrs) -> int` places a node."""
    placed = [(nid, column_of(a), _row(a, n_layers)) for nid, a in g.nodes(data=True)]
    pos, used = _place(placed)
    rows = [(y, "logit" if row == n_layers else "input" if row < 0 else f"L{row}") for y, row in used]
    nodes = []
    for nid, a in sorted(g.nodes(data=True)):
        x, y = pos[nid]
        label = "logit" if a["kind"] == "root" else a.get("short") or nid.split("@")[0]
        node = {"id": nid, "label": label, "kind": a["kind"], "layer": a.get("layer", -1),
                "head": a.get("head", -1), "column": column_of(a), "x": x, "y": y,
                "where": f"{a.get('dest_role', '')}" + (f" <- {a['src_role']}" if a["kind"] == "head" else "")}
        if _num(a.get("attn_weight")) is not None and a.get("attn_weight", -1) >= 0:
            node["attn"] = _num(a["attn_weight"])
        if "frequency" in a:
            node["frequency"] = _num(a["frequency"])
        if "effect" in a:
            node["effect"] = _num(a["effect"])
        nodes.append(node)
    edges = []
    ordered = sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2].get("side", "")))
    for k, (u, v, a) in enumerate(ordered):
        svs = a.get("svs", "[]")
        svs = json.loads(svs) if isinstance(svs, str) else svs
        edge = {"id": f"e{k}", "source": u, "target": v, "side": a.get("side", ""),
                "weight": _num(a.get("weight", 0.0)) or 0.0,
                "svs": sorted(int(s) for s in (svs if isinstance(svs, list) else []))}
        if "frequency" in a:
            edge["frequency"] = _num(a["frequency"])
        if isinstance(a.get("signal"), list):
            edge["signal_norm"] = _num(math.sqrt(sum(float(s) ** 2 for s in a["signal"])))
        edges.append(edge)
    return GraphView(title=title, columns=columns, rows=rows, n_layers=n_layers, aggregated=aggregated,
                     min_frequency=min_frequency, nodes=nodes, edges=edges)


def token_columns(tokens: list[str], labels: dict[int, str]) -> list[str]:
    return [f"{t!r}"[1:-1] + (f" ({labels[i]})" if i in labels else "") for i, t in enumerate(tokens)]


def trace_graph_view(g: nx.MultiDiGraph, tokens: list[str], labels: dict[int, str], n_layers: int,
                     title: str) -> GraphView:
    """One prompt's trace: columns are its tokens."""
    return graph_view(g, token_columns(tokens, labels), n_layers, lambda a: int(a.get("dest", 0)), title)


def _role_column(labels: dict[int, str], n: int) -> Callable[[dict[str, Any]], int]:
    first: dict[str, int] = {}
    for p, r in sorted(labels.items()):
        first.setdefault(r, p)
    first.setdefault("end", n - 1)
    first.setdefault("bos", 0)

    def column(a: dict[str, Any]) -> int:
        role = str(a.get("dest_role", ""))
        if role in first:
            return first[role]
        m = re.fullmatch(r"(.+?)([+-]\d+)", role)          # `A+2`: two after A (trace.graph.role_of)
        if m and m.group(1) in first:
            return max(0, min(first[m.group(1)] + int(m.group(2)), n - 1))
        m = re.fullmatch(r"p(\d+)", role)
        return min(int(m.group(1)), n - 1) if m else n - 1
    return column


def combined_graph_view(g: nx.MultiDiGraph, prompt: BuiltPrompt, n_layers: int, title: str,
                        min_frequency: float) -> GraphView:
    """Traces combined over a prompt set (nodes keyed by role): laid out on the first prompt."""
    return graph_view(g, token_columns(prompt.token_texts, prompt.labels), n_layers,
                      _role_column(prompt.labels, len(prompt.tokens)), title, aggregated=True,
                      min_frequency=min_frequency)


def declared_graph_view(decl: A.CircuitDecl, prompt: BuiltPrompt, n_layers: int,
                        heads: list[tuple[int, int]] | None = None,
                        effects: dict[str, float] | None = None) -> GraphView:
    """A declared circuit: its heads at their positions in the first prompt (a head kept at every
    position sits in the first column, `every position`) and its declared edges. `effects`:
    node text -> the claim's faithfulness without that node, shown on hover."""
    from sadlang.evidence.roles import RoleError, resolve

    columns = ["(every position)", *token_columns(prompt.token_texts, prompt.labels)]
    everywhere = any(n.at is None for n in decl.nodes) or any(m.at is None for m in decl.mlps) or heads is not None
    if not everywhere:                      # every node has a position: no column for "every"
        columns = columns[1:]
    g = nx.MultiDiGraph()
    ids: dict[tuple[int, int], list[str]] = {}
    nodes = decl.nodes if heads is None else [
        A.CircuitNode(head=A.HeadRef(layer=layer, head=head)) for layer, head in heads]
    def column(at: A.Pos | None) -> int:
        """The node's column: its position's token, or `every position`."""
        if at is None:
            return 0
        try:
            return resolve(at, prompt) + (1 if everywhere else 0)
        except RoleError:
            return 0

    for node in nodes:
        col = column(node.at)
        if not node.head.concrete:
            continue
        pair, nid = node.head.pair, node.text()
        ids.setdefault(pair, []).append(nid)
        g.add_node(nid, kind="head", layer=pair[0], head=pair[1], column=col, short=f"{pair[0]}.{pair[1]}",
                   dest_role=node.at.text() if node.at else "every position",
                   src_role=node.src.text() if node.src else "any",
                   **({"effect": effects[nid]} if effects and nid in effects else {}))
    for mlp in decl.mlps if heads is None else []:
        nid = mlp.text()
        ids.setdefault((mlp.layer, -1), []).append(nid)
        g.add_node(nid, kind="mlp", layer=mlp.layer, head=-1, column=column(mlp.at), short=f"mlp {mlp.layer}",
                   dest_role=mlp.at.text() if mlp.at else "every position", src_role="",
                   **({"effect": effects[nid]} if effects and nid in effects else {}))
    root = "logits"
    g.add_node(root, kind="root", layer=-1, column=len(columns) - 1, dest_role="end", src_role="")
    for e in decl.edges:
        for up in ids.get(e.upstream.pair, []):
            downs = [root] if e.downstream is None else ids.get(e.downstream.pair, [])
            for down in downs:
                g.add_edge(up, down, side=e.side or "all", weight=1.0, svs=[])
    if not decl.edges:  # node level: every node reaches the logits through the rest of the model
        for nid in [n for group in ids.values() for n in group]:
            g.add_edge(nid, root, side="node", weight=1.0, svs=[])
    title = f"circuit {decl.name}" + (" (edge level)" if decl.edges else " (node level)")
    return graph_view(g, columns, n_layers, lambda a: int(a.get("column", 0)), title)


# ---- prompts and heatmaps

def prompt_views(prompts: list[PromptEvidence], built: list[BuiltPrompt]) -> list[PromptView]:
    out = []
    for p in prompts:
        b = built[p.index] if 0 <= p.index < len(built) and built[p.index].text == p.text else None
        out.append(PromptView(index=p.index, text=p.text, value=_num(p.value), passed=p.passed, detail=p.detail,
                              tokens=list(b.token_texts) if b else [], labels=dict(b.labels) if b else {}))
    return out


def heatmap(pattern: torch.Tensor, head: tuple[int, int], prompt: int, tokens: list[str]) -> Heatmap:
    """pattern: (L, H, n, n) attention weights of one prompt."""
    layer, h = head
    w = pattern[layer, h].detach().to("cpu").float()
    return Heatmap(head=f"{layer}.{h}", prompt=prompt, tokens=tokens,
                   weights=[[round(float(x), 4) for x in row] for row in w])


def strongest_heads(g: nx.MultiDiGraph, k: int) -> list[tuple[int, int]]:
    """The k heads whose traced out-edges weigh most in total (|weight|; a seed's edge into the
    logit counts), strongest first."""
    total: dict[tuple[int, int], float] = {}
    for u, _, a in g.edges(data=True):
        n = g.nodes[u]
        if n.get("kind") == "head":
            key = (int(n["layer"]), int(n["head"]))
            total[key] = total.get(key, 0.0) + abs(float(a.get("weight", 0.0)))
    return [h for h, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def named_heads(claim: A.Claim, spec: A.Spec) -> list[tuple[int, int]]:
    """Concrete heads a claim names, in order, including the nodes of a circuit it tests."""
    from sadlang.claims import kind_of

    refs = kind_of(claim.body).references(claim.body)
    heads = [h.pair for h, _ in refs.heads if h.concrete]
    name = getattr(claim.body, "circuit", None)
    if isinstance(name, str) and name in spec.circuits:
        heads += [n.head.pair for n in spec.circuits[name].nodes if n.head.concrete]
    seen: list[tuple[int, int]] = []
    for h in heads:
        if h not in seen:
            seen.append(h)
    return seen[:MAX_HEATMAPS]


def claimed_cells(claim: A.Claim, prompt: BuiltPrompt) -> list[tuple[int, int]]:
    """The (destination, key) cell a claim's `at D -> S` names on `prompt` (none when it names
    none, or its roles do not resolve there)."""
    from sadlang.evidence.roles import RoleError, resolve

    at = getattr(claim.body, "at", None)
    if not isinstance(at, A.FiringAt):
        return []
    try:
        return [(resolve(at.dest, prompt), resolve(at.src, prompt))]
    except RoleError:
        return []


def _fires(claim: A.Claim, head: tuple[int, int]) -> bool:
    """Is `head` the one whose attention the claim's `at D -> S` is about? (An edge claim names
    its upstream head too, which attends elsewhere.)"""
    body = claim.body
    return not isinstance(body, A.EdgeSelector) or (body.downstream.concrete and body.downstream.pair == head)


def inspected_prompt(v: Verdict) -> int:
    """The prompt a card shows heatmaps for: the first failing one, else the first."""
    failing = [p.index for p in v.prompts if p.passed is False]
    return failing[0] if failing else (v.prompts[0].index if v.prompts else 0)


def as_prompt(c: Counterexample) -> BuiltPrompt:
    """A counterexample as a prompt that roles resolve on (no answer: it is not traced)."""
    return BuiltPrompt(text=c.text, tokens=list(c.token_ids), roles={k: list(v) for k, v in c.roles.items()},
                       assignment={}, template_index=0, answer=None, against=None, labels=dict(c.labels),
                       token_texts=list(c.tokens), template=c.template)


def set_bank(ev: PromptSetEvidence) -> PatternBank:
    """Every head's attention on the set's first BANK_PROMPTS prompts (at most BANK_BYTES)."""
    info = ev.model.info
    bank = PatternBank(n_layers=info.n_layers, n_heads=info.n_heads)
    for i in range(min(len(ev), BANK_PROMPTS)):
        p = ev.prompts[i]
        entry = bank_prompt(str(i), f"prompt {i}: {p.text}", ev.acts(i).pattern, list(p.token_texts), dict(p.labels))
        if bank.prompts and bank.size + len(entry.weights) * 3 // 4 > BANK_BYTES:
            break
        bank.prompts.append(entry)
    return bank


def claim_view(ev: PromptSetEvidence, claim: A.Claim, v: Verdict, spec: A.Spec,
               banks: dict[str, PatternBank] | None = None) -> ClaimView:
    """Everything a claim's card shows beyond its verdict. `ev`: the claim's PromptSetEvidence;
    `banks`: the attention banks of the sets seen so far, by set name (filled here)."""
    from sadlang.claims import kind_of

    view = ClaimView(prompts=prompt_views(v.prompts, ev.prompts))
    n_layers, n_heads = ev.model.info.n_layers, ev.model.info.n_heads
    view.bank_shape = (n_layers, n_heads)
    heads = [h for h in named_heads(claim, spec) if h[0] < n_layers and h[1] < n_heads]
    if heads:
        view.pick = (f"{heads[0][0]}.{heads[0][1]}", view.pick[1])
    c = v.counterexample
    if c is not None:
        view.counterexample_tokens = list(c.tokens)
        view.counterexample_labels = dict(c.labels)
        if c.token_ids:
            _counterexample_attention(view, ev, claim, c, heads)
    if len(ev) == 0:
        return view
    i = inspected_prompt(v)
    i = i if 0 <= i < len(ev) else 0
    if heads:
        acts = ev.acts(i)
        cells = claimed_cells(claim, ev.prompts[i])
        view.heatmaps = [heatmap(acts.pattern, h, i, list(ev.prompts[i].token_texts)).model_copy(
            update={"marked": cells if _fires(claim, h) else []}) for h in heads]
    _bank(view, ev, claim, i, banks)
    picture = kind_of(claim.body).picture
    if picture is not None:
        drawn = PICTURES[picture](ev, claim, v, spec)
        if isinstance(drawn, HeadGrid):
            view.head_grid = drawn
        else:
            view.graph = drawn
    return view


def _counterexample_attention(view: ClaimView, ev: PromptSetEvidence, claim: A.Claim, c: Counterexample,
                              heads: list[tuple[int, int]]) -> None:
    """The named heads' attention on the counterexample (one forward pass of that prompt), with
    the claimed cells marked, and every head's in the card's bank."""
    from sadlang.decomp.activations import run_batch

    acts = run_batch(ev.model, [list(c.token_ids)])[0]
    cells = claimed_cells(claim, as_prompt(c))
    view.counterexample_heatmaps = [heatmap(acts.pattern, h, 0, list(c.tokens)).model_copy(
        update={"marked": cells if _fires(claim, h) else []}) for h in heads]
    view.bank_extra.append(bank_prompt("counterexample", f"counterexample: {c.text}", acts.pattern, list(c.tokens),
                                       dict(c.labels)))
    view.bank_cells["counterexample"] = cells
    view.pick = (view.pick[0], "counterexample")


def _bank(view: ClaimView, ev: PromptSetEvidence, claim: A.Claim, inspected: int,
          banks: dict[str, PatternBank] | None) -> None:
    """Any head on the set's first prompts (shared bank), on the inspected prompt, and on the
    counterexample, with the claimed cells of each."""
    bank = None if banks is None else banks.get(ev.name)
    if bank is None:
        bank = set_bank(ev)
        if banks is not None:
            banks[ev.name] = bank
    view.bank = bank
    if inspected >= len(bank.prompts):
        p = ev.prompts[inspected]
        view.bank_extra.insert(0, bank_prompt(str(inspected), f"prompt {inspected}: {p.text}",
                                              ev.acts(inspected).pattern, list(p.token_texts), dict(p.labels)))
    for entry in [*bank.prompts, *view.bank_extra]:
        if entry.key != "counterexample":
            view.bank_cells[entry.key] = claimed_cells(claim, ev.prompts[int(entry.key)])
    if view.pick[1] != "counterexample":
        view.pick = (view.pick[0], str(inspected))


def _combined_traces(ev: Any, claim: A.Claim, v: Verdict, spec: A.Spec) -> GraphView | None:
    """The prompt set's traces combined by role, cut at the claim's node frequency."""
    from sadlang.trace.graph import combine

    freq = float(getattr(claim.body, "frequency", 0.0))
    view = combined_graph_view(combine(ev.graphs(), 0.0), ev.prompts[0], ev.model.info.n_layers,
                               f"traces of {ev.name or 'the prompt set'} combined by role", freq)
    return _mark_claimed(view, getattr(claim.body, "components", []), freq)


def _mark_claimed(view: GraphView, components: list[A.CompRef], freq: float) -> GraphView:
    """Outline the nodes (at the claim's frequency) that the claim's components name, and list the
    components no such node matches."""
    def named(comp: A.CompRef, n: dict[str, Any]) -> bool:
        if comp.kind == "head" and comp.head is not None:
            return n["kind"] == "head" and comp.head.matches(int(n["layer"]), int(n["head"]))
        return n["kind"] == comp.kind and (comp.layer is None or comp.layer == n.get("layer"))
    present = [n for n in view.nodes if (n.get("frequency") or 0.0) >= freq]
    claimed = sorted({n["id"] for c in components for n in present if named(c, n)})
    missing = [c.text() for c in components if not any(named(c, n) for n in present)]
    title = view.title
    if components:
        title += ("; claimed nodes outlined" + (f"; missing (dashed in the list): {', '.join(missing)}"
                                                 if missing else ""))
    return view.model_copy(update={"claimed": claimed, "missing": missing, "title": title})


def _declared_circuit(ev: Any, claim: A.Claim, v: Verdict, spec: A.Spec) -> GraphView | None:
    """The circuit the claim tests, each node shaded by the faithfulness lost without it."""
    decl = spec.circuits.get(getattr(claim.body, "circuit", ""))
    if decl is None:
        return None
    heads_traced = None
    names = v.details.get("circuit")
    if (decl.discovery is not None or decl.value_share is not None) and isinstance(names, list):
        # drawn from the units it found (a value-extended trace may name MLPs)
        from sadlang.circuits.nodes import MLP, parse_unit

        units = [parse_unit(n) for n in names]
        decl = A.CircuitDecl(name=decl.name,
                             nodes=[A.CircuitNode(head=A.HeadRef(layer=lay, head=u)) for lay, u in units if u != MLP],
                             mlps=[A.CircuitMlp(layer=lay) for lay, u in units if u == MLP])
    elif decl.traced_from is not None and ev.workspace is not None:
        from sadlang.circuits.nodes import traced_heads
        heads_traced = traced_heads(decl, ev.workspace.sets[decl.traced_from])
    effects = v.details.get("faithfulness without each node")
    view = declared_graph_view(decl, ev.prompts[0], ev.model.info.n_layers, heads_traced,
                               effects if isinstance(effects, dict) else None)
    return _mark_matched(view, v) if getattr(claim.body, "prop", "") == "matches" else view


def _unit(n: dict[str, Any]) -> str:
    """A drawn node as the unit name circuits compare by ('L.H', 'mlp L', 'logits')."""
    return "logits" if n["kind"] == "root" else f"mlp {n['layer']}" if n["kind"] == "mlp" else n["label"]


def _mark_matched(view: GraphView, v: Verdict) -> GraphView:
    """A `matches` card: the nodes (node level) or edges (edge level) both circuits have outlined,
    those only this one has dashed, and those only the other has named in the title."""
    only_here, only_there = v.details.get("only here"), v.details.get("only there")
    if not isinstance(only_here, list) or not isinstance(only_there, list):
        return view
    here = {str(x) for x in only_here}
    if v.details.get("level") == "edge":
        unit = {n["id"]: _unit(n) for n in view.nodes}
        pairs = {e["id"]: f"{unit[e['source']]} -> {unit[e['target']]}" for e in view.edges}
        title = (view.title + "; edges both circuits have outlined, only this one's in orange"
                 + (f"; only the other has: {', '.join(map(str, only_there))}" if only_there else ""))
        return view.model_copy(update={
            "claimed_edges": sorted(i for i, p in pairs.items() if p not in here),
            "extra_edges": sorted(i for i, p in pairs.items() if p in here),
            "missing": [str(x) for x in only_there], "title": title})
    if v.details.get("level") != "node":
        return view
    nodes = [n for n in view.nodes if n["kind"] in ("head", "mlp")]
    claimed = sorted(n["id"] for n in nodes if n["label"] not in here)
    extra = sorted(n["id"] for n in nodes if n["label"] in here)
    title = (view.title + "; nodes both circuits have outlined, only this one's dashed"
             + (f"; only the other has: {', '.join(map(str, only_there))}" if only_there else ""))
    return view.model_copy(update={"claimed": claimed, "extra": extra, "missing": [str(x) for x in only_there],
                                   "title": title})


def _head_scores(ev: Any, claim: A.Claim, v: Verdict, spec: A.Spec) -> HeadGrid | None:
    """Each candidate head's share of passing prompts, layers x heads; the heads that hold outlined."""
    shares = v.details.get("shares")
    if not isinstance(shares, dict):
        return None
    info = ev.model.info
    values: list[list[float | None]] = [[None] * info.n_heads for _ in range(info.n_layers)]
    for name, share in shares.items():
        layer, head = (int(x) for x in str(name).split("."))
        values[layer][head] = float(share)
    holding = v.details.get("holding")
    return HeadGrid(title="share of prompts where each candidate head passes (layers x heads)", values=values,
                    marked=[str(h) for h in holding] if isinstance(holding, list) else [])


def _firing_edges(ev: Any, claim: A.Claim, v: Verdict, spec: A.Spec) -> GraphView | None:
    """A claim on an edge (`UP -> L.H [via SIDE] [at D -> S]`), on the inspected prompt: the
    downstream head's firing with every upstream edge that explains it, the edges the claim names
    outlined, or named in the title as missing. Reads the firing the claim decomposed (at `at`),
    else the prompt's trace (the firing of the head whose matching edge is strongest)."""
    from sadlang.evidence.roles import RoleError, comp_matches, resolve
    from sadlang.trace.graph import add_component, add_node, head_node, role_of, svs_text

    body = claim.body
    if not isinstance(body, A.EdgeSelector) or not body.downstream.concrete or not len(ev):
        return None
    i = inspected_prompt(v)
    i = i if 0 <= i < len(ev) else 0
    p = ev.prompts[i]

    def named(e: Any) -> bool:
        return (body.side is None or e.side == body.side) and comp_matches(body.upstream, e.component)

    if body.at is not None:
        try:
            firing = ev.firing(i, *body.downstream.pair, resolve(body.at.dest, p), resolve(body.at.src, p))
        except RoleError:
            return None
    else:
        mine = [f for f in ev.circuit(i).firings.values() if body.downstream.matches(f.layer, f.head)]
        if not mine:
            return None
        firing = max(mine, key=lambda f: max([e.weight for e in f.edges if named(e)], default=float("-inf")))
    roles = dict(p.labels)
    pattern = ev.acts(i).pattern
    g = nx.MultiDiGraph()
    down = head_node(firing.layer, firing.head, firing.d, firing.s)
    add_node(g, down, roles, kind="head", layer=firing.layer, head=firing.head, dest=firing.d, src=firing.s,
             attn_weight=firing.attention)
    marked = set()
    for e in firing.edges:
        up = add_component(g, roles, e.component, e.at, pattern, downstream=(firing.layer, firing.head))
        g.add_edge(up, down, side=e.side, weight=e.weight, svs=svs_text(e.svs))
        if named(e):
            marked.add((up, down, e.side))
    def pos(t: int) -> str:
        return roles.get(t) or repr(p.token_texts[t].strip()) if t < len(p.token_texts) else role_of(roles, t)

    where = f"{firing.layer}.{firing.head} at {pos(firing.d)} -> {pos(firing.s)}"
    what = (f"{body.upstream.text()} -> {body.downstream.text()}"
            + (f" via {body.side}" if body.side else ""))
    title = f"the edges into {where} on prompt {i}"
    if getattr(body, "negated", False):
        title += (f"; the claim says {what} is no edge, and it is one (outlined)" if marked
                  else f"; the claim says {what} is no edge, and it is none")
    else:
        title += (f"; the claimed edge {what} outlined" if marked
                  else f"; missing: {what} is not an edge of this firing")
    view = trace_graph_view(g, list(p.token_texts), roles, ev.model.info.n_layers, title)
    claimed = sorted(e["id"] for e in view.edges if (e["source"], e["target"], e["side"]) in marked)
    missing = [] if marked or getattr(body, "negated", False) else [what]
    return view.model_copy(update={"claimed_edges": claimed, "missing": missing})


# the pictures a claim kind may name as its `picture` (claims/base.py): name -> drawer
Drawer = Callable[[Any, A.Claim, Verdict, A.Spec], "GraphView | HeadGrid | None"]
PICTURES: dict[str, Drawer] = {"combined-traces": _combined_traces, "declared-circuit": _declared_circuit,
                               "head-scores": _head_scores, "firing-edges": _firing_edges}


def collector(spec: A.Spec) -> tuple[dict[str, ClaimView], Callable[[Any, A.Claim, Verdict], None]]:
    """(views, observe): pass `observe` to check.executor.run_plan and `views` fills with each
    claim's card data. A claim whose pictures cannot be drawn still gets its card, with a note."""
    from sadlang.errors import SadError

    views: dict[str, ClaimView] = {}
    banks: dict[str, PatternBank] = {}

    def observe(ev: Any, claim: A.Claim, v: Verdict) -> None:
        try:
            views[claim.name] = claim_view(ev, claim, v, spec, banks)
        except SadError as exc:
            views[claim.name] = ClaimView(prompts=prompt_views(v.prompts, ev.prompts), note=f"no picture: {exc}")
        except Exception as exc:  # a drawing bug must not lose the verdicts: say so on the card
            views[claim.name] = ClaimView(prompts=prompt_views(v.prompts, ev.prompts),
                                          note=f"no picture: internal error ({type(exc).__name__}: {exc}); "
                                               f"please report it")
    return views, observe
