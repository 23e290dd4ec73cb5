"""The HTML report in a real browser (Debian Chromium via Playwright): it loads offline with no
console errors, its numbers are the JSON report's, and the circuit viewer's edges, filters and
paths behave. One screenshot per view goes to build/screenshots/ (not committed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from browser import browser, open_report, require_chromium

from sadlang.claims import KINDS
from sadlang.html import check_page, trace_page
from sadlang.html.views import collector, combined_graph_view, trace_graph_view
from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.runner.report import to_json
from sadlang.trace.graph import combine
from sadlang.trace.graph import to_json as graph_json
from sadlang.trace.options import TraceOptions
from sadlang.trace.tracer import trace

ROOT = Path(__file__).resolve().parent.parent

require_chromium()

PROMPT = "When Mary went to the x, John said"


@pytest.fixture(scope="module")
def new_page():
    with browser() as factory:
        yield factory


def _check_html(spec: Path, out: Path, only: set[str] | None = None) -> tuple[Path, dict]:
    _, model, plan = load_and_compile(spec)
    views, observe = collector(plan.spec)
    report = run_plan(plan, model, only=only, observe=observe)
    out.write_text(check_page([report], [views], [{"seconds": 1.0, "seeds": {}}]))
    return out, json.loads(to_json(report))


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory):
    return _check_html(ROOT / "specs" / "planted.sad", tmp_path_factory.mktemp("html") / "planted.html")


@pytest.fixture(scope="module")
def planted_trace(planted, tmp_path_factory):
    """A trace page of the planted model with its JSON trace beside it."""
    circuit = trace(planted, PROMPT, " x", " y", options=TraceOptions(method="acc", signals=True))[0]
    toks = planted.decode(circuit.tokens)
    graph = trace_graph_view(circuit.graph, toks, dict(circuit.roles), planted.info.n_layers, PROMPT)
    path = tmp_path_factory.mktemp("trace") / "trace.html"
    path.write_text(trace_page("trace", {"prompt": PROMPT, "model": "planted", "method": "acc"}, graph, []))
    return path, graph_json(circuit.graph), graph


def test_planted_report_loads_offline_without_console_errors(new_page, planted_report):
    path, data = planted_report
    page = open_report(new_page, path)
    page.open_all()
    page.page.wait_for_timeout(200)
    assert page.problems == []
    assert page.page.locator("details.card").count() == len(data["verdicts"]) == 29
    circuits = [v for v in data["verdicts"] if KINDS[v["kind"]].picture is not None]
    assert page.page.locator(".graph").count() == len(circuits) == 18     # circuits, edges, signals, ablations
    assert page.page.locator(".heatmaps canvas").count() > 0
    page.screenshot("report-planted-full", page.page)


def test_summary_counts_equal_the_json_report(new_page, planted_report):
    path, data = planted_report
    page = open_report(new_page, path)
    for status in ("held", "failed", "error"):
        shown = page.page.locator(f".count-{status}").inner_text()
        assert int(shown) == data["summary"][status]
    assert data["summary"]["held"] == 29
    statuses = page.page.eval_on_selector_all("details.card", "cs => cs.map(c => c.dataset.status)")
    assert statuses == ["held"] * 29
    page.screenshot("report-planted-summary", page.page.locator("header"))


def test_prompt_rows_mark_roles(new_page, planted_report):
    path, data = planted_report
    page = open_report(new_page, path)
    card = page.open_card("reads_marker")
    rows = card.locator("table.prompts tr.ok")
    assert rows.count() == len(next(v for v in data["verdicts"] if v["name"] == "reads_marker")["prompts"])
    roles = card.locator("table.prompts tr.ok").first.locator(".tok.role sub").all_inner_texts()
    assert {"A", "B", "end"} <= set(roles)
    page.screenshot("report-planted-prompts", card)


def test_clicking_an_edge_shows_the_traces_singular_directions(new_page, planted_trace):
    path, traced, _ = planted_trace
    page = open_report(new_page, path)
    key = next(e for e in traced["edges"] if e["side"] == "key")
    svs = json.loads(key["svs"])
    assert svs, "the planted key edge carries a signal"
    page.click_graph(0, f"edge[source = '{key['source']}'][target = '{key['target']}']")
    info = page.page.locator(".edge-info")
    assert json.loads(info.locator(".v-singular-directions").inner_text()) == svs
    assert info.locator(".v-side").inner_text() == "key"
    assert float(info.locator(".v-weight").inner_text()) == pytest.approx(key["weight"], rel=1e-3)
    norm = sum(x * x for x in key["signal"]) ** 0.5
    assert float(info.locator(".v-signal-norm").inner_text()) == pytest.approx(norm, rel=1e-3)
    page.screenshot("trace-planted-edge", page.page.locator("details.card"))


def test_weight_filter_hides_the_edges_below_it(new_page, planted_trace):
    path, traced, _ = planted_trace
    page = open_report(new_page, path)
    weights = sorted(abs(e["weight"]) for e in traced["edges"])
    cut = (weights[0] + weights[-1]) / 2
    page.set_slider("trace", "weight-filter", cut)
    visible = int(page.page.locator(".edge-count").get_attribute("data-visible"))
    assert visible == sum(w >= cut for w in weights) < len(weights)
    assert page.problems == []


def test_clicking_a_node_highlights_its_path_to_the_logit(new_page, planted_trace):
    path, _, _ = planted_trace
    page = open_report(new_page, path)
    page.click_graph(0, "node[layer = 0][kind = 'head']", what="node")
    # 0.0 -> 1.0 -> logit
    assert page.page.locator(".graph").get_attribute("data-path") == "3"
    page.screenshot("trace-planted-path", page.page.locator("details.card"))


def test_frequency_filter_on_combined_traces(new_page, tmp_path):
    """Traces of the marker prompts combined by role: the frequency slider keeps the nodes seen in
    at least that share of prompts, and the edges between them."""
    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")
    from sadlang.evidence.store import PromptSetEvidence

    ps = plan.prompt_sets["marker"]
    ev = PromptSetEvidence(model, ps.prompts, plan.options.model_copy(update={"threshold": 0.05}))
    g = combine(ev.graphs(), 0.0)
    freqs = {n: a["frequency"] for n, a in g.nodes(data=True)}
    assert len(set(freqs.values())) > 1, "the test needs nodes of several frequencies"
    cut = sorted(set(freqs.values()))[1]
    graph = combined_graph_view(g, ps.prompts[0], model.info.n_layers, "marker", 0.0)
    path = tmp_path / "combined.html"
    path.write_text(trace_page("combined", {"prompt": "marker"}, graph, []))
    page = open_report(new_page, path)
    page.set_slider("trace", "freq-filter", cut)
    expected = sum(freqs[u] >= cut and freqs[v] >= cut for u, v in g.edges())
    assert int(page.page.locator(".edge-count").get_attribute("data-visible")) == expected < g.number_of_edges()
    page.screenshot("combined-marker-frequency", page.page.locator("details.card"))


def test_failing_claim_comes_first_and_open(new_page, tmp_path):
    spec = (ROOT / "specs" / "planted.sad").read_text()
    spec += "\nclaim impossible: logit_diff > 1000 on copy\n"
    (tmp_path / "bad.sad").write_text(spec)
    path, data = _check_html(tmp_path / "bad.sad", tmp_path / "bad.html", only={"copies", "impossible", "exact"})
    assert data["summary"]["failed"] == 1
    page = open_report(new_page, path)
    first = page.page.locator("details.card").first
    assert first.get_attribute("data-name") == "impossible"
    assert first.get_attribute("open") is not None
    assert first.locator("table.prompts tr.bad").count() == 4
    assert page.problems == []
    page.screenshot("report-failing-first", first)


def test_a_head_set_claim_draws_its_candidates_as_a_layers_by_heads_grid(new_page, tmp_path):
    """The grid has one cell per head; the heads that hold are outlined (their pixels are red),
    the others not, and the caption names them."""
    spec = (ROOT / "specs" / "planted.sad").read_text()
    spec += '\nclaim which: some head in 0.*-1.* attends end -> "x" with weight >= 0.9 on marker\n'
    (tmp_path / "grid.sad").write_text(spec)
    path, data = _check_html(tmp_path / "grid.sad", tmp_path / "grid.html", only={"which"})
    assert data["verdicts"][0]["details"]["holding"] == ["1.0", "1.2"]
    page = open_report(new_page, path)
    page.open_all()
    card = page.page.locator("details.card").first
    grid = card.locator("canvas.head-grid")
    assert grid.count() == 1 and "hold (1.0, 1.2)" in card.locator("figcaption").first.inner_text()
    red = page.page.evaluate("""() => {
      const c = document.querySelector('canvas.head-grid'), cell = 16, pad = 34;
      const img = c.getContext('2d').getImageData(0, 0, c.width, c.height);    // one readback
      const at = (l, h) => {
        const i = 4 * ((pad + l * cell + 6) * c.width + pad + h * cell + 1);
        return Array.from(img.data.slice(i, i + 4));
      };
      return {"1.0": at(1, 0), "1.2": at(1, 2), "0.0": at(0, 0)};
    }""")
    assert red["1.0"][0] > 150 and red["1.0"][2] < 100 and red["1.2"][0] > 150      # outlined in red
    assert red["0.0"][0] < 150                                                        # not outlined
    assert page.problems == []
    page.screenshot("report-head-grid", card)


@pytest.mark.bundled
def test_ioi_report_size_and_picture(new_page, tmp_path):
    """The IOI report (the claims with pictures) stays small, draws without errors, and its
    screenshot is the README's picture (written to docs/ when SADLANG_UPDATE_DOCS=1)."""
    path, data = _check_html(ROOT / "specs" / "ioi.sad", tmp_path / "ioi.html",
                             only={"circuit", "paths_faithful", "k_causal", "suppressor"})
    assert path.stat().st_size < 5_000_000 and data["summary"]["held"] == 4
    page = open_report(new_page, path)
    page.open_all()
    assert page.problems == []
    card = page.open_card("circuit")
    page.set_slider("circuit", "freq-filter", 0.9)
    page.screenshot("report-ioi-traced", card)
    shot = page.screenshot("report-ioi-paths", page.open_card("paths_faithful"))
    if os.environ.get("SADLANG_UPDATE_DOCS"):
        (ROOT / "docs" / "ioi-report.png").write_bytes(shot.read_bytes())
