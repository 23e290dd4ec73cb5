"""A circuit graph as a standalone SVG picture: tokens left to right, layers bottom to top.

Head nodes sit at (destination position, layer); MLP, bias, embedding and offset nodes at
their position one row below layer 0 when they have no layer. Edges are coloured by side
(query red, key blue, seed grey) with width by weight; the root sits above the top layer.
"""

from __future__ import annotations

from html import escape

import networkx as nx

SIDE_COLOUR = {"query": "#E41A1C", "key": "#377EB8", "seed": "#777777"}


def _layout(g: nx.MultiDiGraph, n_layers: int) -> dict[str, tuple[float, float]]:
    slots: dict[tuple[int, int], list[str]] = {}
    for nid, a in g.nodes(data=True):
        kind = a["kind"]
        row = n_layers + 1 if kind == "root" else (a["layer"] if a.get("layer", -1) >= 0 else -1)
        slots.setdefault((a["dest"], row), []).append(nid)
    pos: dict[str, tuple[float, float]] = {}
    for (col, row), ids in slots.items():
        for k, nid in enumerate(sorted(ids)):
            pos[nid] = (col + (k + 1) / (len(ids) + 1) - 0.5, row)
    return pos


def to_svg(g: nx.MultiDiGraph, tokens: list[str], n_layers: int, title: str = "") -> str:
    """Render a per-prompt circuit graph to SVG text."""
    cw, rh, left, top = 90, 26, 60, 40
    width = left + cw * max(len(tokens), 1) + 20
    height = top + rh * (n_layers + 3) + 40
    pos = _layout(g, n_layers)

    def xy(nid: str) -> tuple[float, float]:
        c, r = pos[nid]
        return left + cw * c + cw / 2, top + rh * (n_layers + 1 - r)

    wmax = max([abs(a.get("weight", 0.0)) for _, _, a in g.edges(data=True)] or [1.0]) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="sans-serif" font-size="10">',
           f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>']
    for r in range(n_layers):
        y_row = top + rh * (n_layers + 1 - r)
        out.append(f'<text x="4" y="{y_row + 3:.0f}" fill="#999">L{r}</text>')
    for i, tok in enumerate(tokens):
        out.append(f'<text x="{left + cw * i + cw / 2:.0f}" y="{height - 12:.0f}" text-anchor="middle">'
                   f'{escape(repr(tok)[1:-1])}</text>')
    for u, v, a in g.edges(data=True):
        (x1, y1), (x2, y2) = xy(u), xy(v)
        wdt = 0.5 + 3.5 * abs(a.get("weight", 0.0)) / wmax
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                   f'stroke="{SIDE_COLOUR.get(a.get("side"), "#000")}" stroke-width="{wdt:.2f}" '
                   f'stroke-opacity="0.6"><title>{escape(u)} -> {escape(v)} ({a.get("side")}, '
                   f'weight {a.get("weight", 0.0):.3g}, svs {escape(str(a.get("svs", "")))})</title></line>')
    for nid, a in g.nodes(data=True):
        x, y = xy(nid)
        label = nid.split("@")[0]
        fill = {"head": "#FFF3B0", "root": "#C7E9C0"}.get(a["kind"], "#E0E0E0")
        out.append(f'<g><rect x="{x - 22:.1f}" y="{y - 8:.1f}" width="44" height="16" rx="4" fill="{fill}" '
                   f'stroke="#555"/><text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle">{escape(label)}</text>'
                   f'<title>{escape(nid)} attention {a.get("attn_weight", -1):.3f}</title></g>')
    out.append("</svg>")
    return "\n".join(out)
