"""One self-contained HTML page: the vendored graph library, the page's own script and style, and
the data as embedded JSON, all inlined, so the file works from file:// with no network.

Data layout: `sad-data` holds the reports' summaries and the claims' headlines; each claim's
detail (prompts, heatmaps, circuit graph) sits in its own `sad-card-N` block, parsed only when
its card is opened; each prompt set's attention bank (html/patterns.py) sits once in a
`sad-bank-K` block that its cards name, parsed when a card draws a head from it.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any

from sadlang.html.patterns import PatternBank
from sadlang.html.views import ClaimView, GraphView, Heatmap
from sadlang.runner.report import json_safe, summary_counts
from sadlang.runner.verdict import Report

if TYPE_CHECKING:
    from sadlang.runner.verdict import Verdict

ORDER = {"error": 0, "failed": 1, "inconclusive": 2, "held": 3}


def _asset(name: str) -> str:
    return resources.files("sadlang.html").joinpath("assets", name).read_text(encoding="utf-8")


def vendored_versions() -> dict[str, str]:
    """name -> version of each vendored library (assets/vendor/VERSIONS)."""
    out = {}
    for line in _asset("vendor/VERSIONS").splitlines():
        name, _, version = line.partition("=")
        if version:
            out[name.strip()] = version.strip()
    return out


def _json_block(block_id: str, data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{block_id}">{text}</script>'


def _claim_entry(v: Verdict, view: ClaimView | None, card: int,
                 banks: list[PatternBank]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The claim's headline and its card's detail. A view's attention bank joins `banks` (once:
    the cards of one set share it) and the card names it by index."""
    head = {"card": card, "name": v.name, "kind": v.kind, "status": v.status, "claim": v.claim,
            "location": v.location, "claimed": v.claimed, "measured": v.measured, "value": v.value,
            "n_prompts": v.n_prompts or len(v.prompts),
            "interval": v.interval.model_dump() if v.interval else None, "confidence": v.confidence,
            "has_graph": bool(view and (view.graph or view.head_grid)),
            "counterexample": v.counterexample.model_dump() if v.counterexample else None}
    detail: dict[str, Any] = {"details": json.loads(json.dumps(v.details, default=str)),
                              "prompts": [p.model_dump() for p in (view.prompts if view else [])]
                              or [p.model_dump() for p in v.prompts]}
    if view is not None:
        detail.update(heatmaps=[h.model_dump() for h in view.heatmaps],
                      graph=view.graph.model_dump() if view.graph else None,
                      head_grid=view.head_grid.model_dump() if view.head_grid else None,
                      counterexample_tokens=view.counterexample_tokens,
                      counterexample_labels=view.counterexample_labels,
                      counterexample_heatmaps=[h.model_dump() for h in view.counterexample_heatmaps],
                      note=view.note, bank=_bank_index(view.bank, banks),
                      bank_extra=[b.model_dump() for b in view.bank_extra], bank_cells=view.bank_cells,
                      pick=list(view.pick), bank_shape=list(view.bank_shape))
    return head, detail


def _bank_index(bank: PatternBank | None, banks: list[PatternBank]) -> int | None:
    if bank is None:
        return None
    for k, known in enumerate(banks):
        if known is bank:
            return k
    banks.append(bank)
    return len(banks) - 1


def _page(title: str, data: dict[str, Any], cards: list[dict[str, Any]], banks: list[PatternBank]) -> str:
    blocks = [_json_block("sad-data", json_safe(data))]
    blocks += [_json_block(f"sad-card-{i}", json_safe(c)) for i, c in enumerate(cards)]
    blocks += [_json_block(f"sad-bank-{k}", b.model_dump()) for k, b in enumerate(banks)]
    versions = ", ".join(f"{k} {v}" for k, v in vendored_versions().items())
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_asset('style.css')}</style>",
        "</head><body>",
        f'<header><h1>{escape(title)}</h1><div id="summary"></div></header>',
        '<main id="cards"></main>',
        f'<footer>made by sadlang; graphs drawn with {escape(versions)} (MIT license, inlined)</footer>',
        *blocks,
        f"<script>{_asset('vendor/cytoscape.min.js')}</script>",
        f"<script>{_asset('app.js')}</script>",
        "</body></html>",
    ])


def check_page(reports: list[Report], views: list[dict[str, ClaimView]], meta: list[dict[str, Any]]) -> str:
    """The page for `sadlang check --html`: one section per report (spec); failing claims first.
    `meta[i]`: extra summary fields of report i (seconds, seeds)."""
    data: dict[str, Any] = {"kind": "check", "reports": []}
    cards: list[dict[str, Any]] = []
    banks: list[PatternBank] = []
    for report, rviews, extra in zip(reports, views, meta):
        claims = []
        for v in sorted(report.verdicts, key=lambda v: ORDER[v.status]):
            head, detail = _claim_entry(v, rviews.get(v.name), len(cards), banks)
            claims.append(head)
            cards.append(detail)
        data["reports"].append({"spec": report.spec, "model": report.model,
                                "fingerprint": report.model_fingerprint, "method": report.method,
                                "summary": summary_counts(report), "exit_code": report.exit_code,
                                "claims": claims, **extra})
    names = ", ".join(r.spec for r in reports)
    return _page(f"sadlang check {names}", data, cards, banks)


def trace_page(title: str, info: dict[str, Any], graph: GraphView, heatmaps: list[Heatmap],
               bank: PatternBank | None = None) -> str:
    """The page for `sadlang trace --html`: one prompt's circuit, its heads' attention, and
    (with `bank`) any head's attention on the prompt."""
    data = {"kind": "trace", "trace": info,
            "reports": [{"spec": info.get("prompt", ""), "model": info.get("model", ""),
                         "fingerprint": info.get("fingerprint", ""), "method": info.get("method", ""),
                         "summary": None, "claims": [{
                             "card": 0, "name": "trace", "kind": info.get("method", ""), "status": "trace",
                             "claim": info.get("prompt", ""), "location": "", "claimed": "",
                             "measured": info.get("measured", ""), "value": None, "n_prompts": 1,
                             "has_graph": True, "counterexample": None}]}]}
    cards = [{"details": {}, "prompts": [], "heatmaps": [h.model_dump() for h in heatmaps],
              "heatmap_title": "attention of the heads whose traced writes weigh most",
              "graph": graph.model_dump(), "counterexample_tokens": [], "note": "",
              "bank": None if bank is None else 0, "bank_extra": [], "bank_cells": {},
              "pick": [heatmaps[0].head if heatmaps else "0.0", "0"],
              "bank_shape": [0, 0] if bank is None else [bank.n_layers, bank.n_heads]}]
    return _page(title, data, cards, [] if bank is None else [bank])
