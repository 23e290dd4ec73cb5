"""A head scan as a heatmap: layers down, heads across, each cell shaded by its score (an SVG,
readable without a browser's scripts; `sadlang scan --svg`)."""

from __future__ import annotations

from html import escape

import torch


def scan_svg(scores: torch.Tensor, title: str) -> str:
    """(L, H) scores in [0, 1] -> an SVG heatmap with each cell's value in its tooltip."""
    n_layers, n_heads = scores.shape
    cell, left, top = 18, 44, 40
    width, height = left + cell * n_heads + 70, top + cell * n_layers + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="10">',
           f'<text x="{left}" y="16" font-size="13">{escape(title)}</text>',
           f'<text x="{left}" y="{top - 6}" fill="#555">head →</text>']
    for layer in range(n_layers):
        y = top + cell * layer
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" fill="#555">L{layer}</text>')
        for head in range(n_heads):
            v = min(max(float(scores[layer, head]), 0.0), 1.0)
            shade = round(255 * (1 - v))
            out.append(f'<rect x="{left + cell * head}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                       f'fill="rgb({shade},{shade},255)"><title>{layer}.{head}: {float(scores[layer, head]):.3f}'
                       f'</title></rect>')
    for i, v in enumerate((1.0, 0.5, 0.0)):
        shade = round(255 * (1 - v))
        x = left + cell * n_heads + 12
        out.append(f'<rect x="{x}" y="{top + 20 * i}" width="12" height="12" fill="rgb({shade},{shade},255)"/>'
                   f'<text x="{x + 16}" y="{top + 20 * i + 10}">{v:g}</text>')
    out.append("</svg>")
    return "\n".join(out)
