"""The report as it is seen, in a real browser (Debian Chromium via Playwright): labels drawn,
heatmap cells painted, every number the JSON report's, nodes in their columns and not on top of
each other, claimed and measured where they belong, failures red, edges coloured and dashed by
kind, graphs with room to draw. `seen_problems` checks all of it; each of eight deliberate
breakages of a copy of the viewer must be caught by it, so the checks test what a reader sees."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from browser import browser, open_report, require_chromium

from sadlang.html import check_page
from sadlang.html.views import collector
from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.runner.report import to_json

ROOT = Path(__file__).resolve().parent.parent

require_chromium()

SIDE_RGB = {"query": "rgb(214,39,40)", "key": "rgb(31,119,180)", "value": "rgb(44,160,44)",
            "seed": "rgb(136,136,136)", "all": "rgb(148,103,189)", "node": "rgb(187,187,187)"}
STATUS_RGB = {"held": "rgb(46, 125, 50)", "failed": "rgb(198, 40, 40)"}


@pytest.fixture(scope="module")
def new_page():
    with browser(1440, 900) as factory:
        yield factory


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Eleven claims of the planted spec's report, two of them failing: (html text, JSON report)."""
    extra = ("\nclaim impossible: logit_diff > 1000 on copy\n"
             "claim overlap: circuit key_only_copy matches half_copy on copy\n"
             "claim edge_overlap: circuit key_only_copy matches planted_copy at edge level on copy\n"
             "pool spots = \" store\" \" x\"\n"
             "prompts somewhere:\n  template \"When{A} went to the{S},{B} said\"\n  A, B from names distinct\n"
             "  S from spots\n  answer \"{A}\" against \"{B}\"\n  sample 2 seed 0\n"
             "claim sinks_anywhere: head 1.0 attends end -> bos with weight >= 0.5 forall up to 20 prompts "
             "on somewhere\n")
    spec = (ROOT / "specs" / "planted.sad").read_text() + extra
    folder = tmp_path_factory.mktemp("seen")
    (folder / "seen.sad").write_text(spec)
    _, model, plan = load_and_compile(folder / "seen.sad")
    views, observe = collector(plan.spec)
    # the claims whose cards draw each kind of picture: a failure, heatmaps and prompt values, a
    # combined trace, a declared circuit, a behaviour, an ablation table, two circuits compared by
    # nodes and by edges, edges present and absent, and a searched counterexample
    only = {"impossible", "reads_marker", "circuit", "faithful", "copies", "causal", "overlap", "edge_overlap",
            "key_edge", "orthogonal", "sinks_anywhere"}
    result = run_plan(plan, model, observe=observe, only=only)
    return check_page([result], [views], [{"seconds": 1.0, "seeds": {}}]), json.loads(to_json(result))


def _page(new_page, tmp_path: Path, html: str):
    path = tmp_path / "page.html"
    path.write_text(html)
    page = open_report(new_page, path)
    page.open_all()
    return page


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def seen_problems(page, data: dict) -> list[str]:
    """What a reader would see wrong on an opened report page (every card open), by kind."""
    out: list[str] = []
    p = page.page
    graphs = p.evaluate("""() => Object.values(window.sadlang.graphs).map(cy => ({
        nodes: cy.nodes().filter(n => n.data('kind') !== 'axis').map(n => ({
          id: n.id(), label: n.data('label'), shown: n.style('label'), column: n.data('column'),
          x: n.renderedPosition().x})),
        edges: cy.edges().map(e => ({side: e.data('side'), colour: e.style('line-color'),
                                     dash: e.style('line-style')})),
        box: (() => { const r = cy.container().getBoundingClientRect(); return [r.width, r.height]; })()}))""")
    if not graphs:
        out.append("graphs: none drawn")
    for g in graphs:
        if any(not n["shown"] or n["shown"] != n["label"] for n in g["nodes"]):
            out.append("labels: a node's drawn label is not its name")
        columns: dict[int, set[float]] = {}
        for n in g["nodes"]:
            columns.setdefault(n["column"], set()).add(round(n["x"]))
        order = sorted(columns)
        if any(max(columns[a]) >= min(columns[b]) for a, b in pairwise(order)):
            out.append("columns: nodes of a later token are not drawn right of an earlier one's")
        for e in g["edges"]:
            if e["side"] in SIDE_RGB and e["colour"].replace(" ", "") != SIDE_RGB[e["side"]]:
                out.append(f"edges: a {e['side']} edge is drawn {e['colour']}")
                break
        if g["box"][0] < 200 or g["box"][1] < 200:
            out.append(f"graph: {g['box'][0]:.0f} x {g['box'][1]:.0f} px to draw in")
    painted = p.evaluate("""() => Array.from(document.querySelectorAll('.heatmaps canvas')).map(c => {
        const n = JSON.parse(c.dataset.n || '0'), cell = 14, pad = 90;
        const img = c.getContext('2d').getImageData(pad, pad, n * cell, n * cell).data;
        let dark = 0;
        for (let i = 0; i < img.length; i += 4) {
          if (img[i + 3] > 0 && img[i] + img[i + 1] + img[i + 2] < 600) dark++;
        }
        return dark; })""")
    if not painted or min(painted) == 0:
        out.append("heatmaps: cells not painted")
    underlays = p.evaluate("""() => Object.values(window.sadlang.graphs).flatMap(
        cy => cy.edges('.claimed').map(e => parseFloat(e.style('underlay-opacity'))))""")
    if any(u < 0.2 for u in underlays):
        out.append("outlines: an edge the claim names is not outlined")
    for v in data["verdicts"]:
        card = p.locator(f"details.card[data-name='{v['name']}']")
        if card.locator("td.claimed").inner_text() != (v.get("claimed") or "—"):
            out.append(f"claimed: {v['name']}'s claimed text is not the report's")
        if card.locator("td.measured").inner_text() != v["measured"]:
            out.append(f"measured: {v['name']}'s measured text is not the report's")
        colour = card.evaluate("c => getComputedStyle(c).borderLeftColor")
        badge = card.locator(".badge").evaluate("b => getComputedStyle(b).backgroundColor")
        want = STATUS_RGB.get(v["status"])
        if want and (colour != want or badge != want):
            out.append(f"status: {v['name']} ({v['status']}) is styled {colour} / {badge}")
        c = v.get("counterexample")
        if c and card.locator(".counterexample .tok.role").count() != len(c["labels"]):
            out.append(f"counterexample: {v['name']}'s counterexample does not mark its {len(c['labels'])} roles")
        shown = card.locator("table.prompts tr:not(:first-child) td:nth-child(3)").all_inner_texts()
        for row, value in zip(v.get("prompts") or [], shown, strict=False):
            want_v, got = row.get("value"), _num(value)
            if isinstance(want_v, float) and got is not None and abs(got - want_v) > 1e-3 + 1e-3 * abs(want_v):
                out.append(f"values: {v['name']} shows {got} for {want_v}")
                break
    return sorted(set(out))


def test_the_planted_report_shows_what_its_json_says(new_page, report, tmp_path):
    html, data = report
    page = _page(new_page, tmp_path, html)
    assert seen_problems(page, data) == []
    assert page.problems == []


BREAKAGES = {
    "labels": ('"label": "data(label)"', '"label": ""'),
    "heatmaps": ("ctx.fillRect(pad + s * cell, pad + d * cell, cell - 1, cell - 1);", ""),
    "values": ('el("td", {text: fmt(p.value)})', 'el("td", {text: fmt(p.value * 1.1)})'),
    "columns": ("pos[n.id] = {x: start + k * (NODE_W + NODE_GAP), y: yOf[n.y]};", "pos[n.id] = {x: 0, y: yOf[n.y]};"),
    "claimed": ('el("td", {cls: "claimed", text: c.claimed || "—"})', 'el("td", {cls: "claimed", text: c.measured})'),
    "status": (".card.failed { border-left-color: #c62828; }", ".card.failed { border-left-color: #2e7d32; }"),
    "edges": ('"line-color": function (e) { return SIDE_COLOUR[e.data("side")] || "#000"; }', '"line-color": "#999"'),
    "graph": (".graph { flex: 1; height: 520px;", ".graph { flex: 1; height: 0px;"),
    # beyond the eight: what the claim names, drawn
    "counterexample": ("tokenLine(d.counterexample_tokens, d.counterexample_labels || {})",
                       "tokenLine(d.counterexample_tokens, {})"),
    "outlines": ('"underlay-color": "#1b5e20", "underlay-opacity": 0.35,',
                 '"underlay-color": "#1b5e20", "underlay-opacity": 0,'),
}


@pytest.mark.parametrize("broken", sorted(BREAKAGES))
def test_each_breakage_of_the_viewer_is_seen(new_page, report, tmp_path, broken):
    html, data = report
    old, new = BREAKAGES[broken]
    assert html.count(old) == 1, f"the breakage {broken!r} no longer applies: update it with the viewer"
    page = _page(new_page, tmp_path, html.replace(old, new))
    problems = seen_problems(page, data)
    assert any(p.startswith(broken) for p in problems), problems


@pytest.fixture(scope="module")
def dense_trace(tmp_path_factory):
    """A trace page of tiny-llama at a low threshold: more edges than the viewer draws at first."""
    from sadlang.html import trace_page
    from sadlang.html.views import trace_graph_view
    from sadlang.models import load_model
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import trace

    model = load_model("tiny-llama")
    text = " When Mary and John went to the store, John gave a drink to"
    circuit = trace(model, text, " Mary", " John", options=TraceOptions(method="acc", threshold=0.02))[0]
    graph = trace_graph_view(circuit.graph, model.decode(circuit.tokens), dict(circuit.roles), model.info.n_layers,
                             text)
    assert len(graph.edges) > 40
    path = tmp_path_factory.mktemp("dense") / "trace.html"
    path.write_text(trace_page("trace", {"prompt": text, "model": "tiny-llama", "method": "acc"}, graph, []))
    return path, graph


def _boxes(page) -> list[list[float]]:
    return page.page.evaluate("""() => window.sadlang.graphs[0].nodes().filter(n => n.data('kind') !== 'axis')
        .map(n => { const b = n.renderedBoundingBox({includeLabels: false}); return [b.x1, b.y1, b.x2, b.y2]; })""")


def test_the_strongest_edges_are_drawn_legibly_without_overlap(new_page, dense_trace):
    """By default the 40 strongest edges, with their nodes and no others; no two nodes overlap;
    labels are drawn at 10 px or more; `show more` doubles the edges and the layout stays clear."""
    path, graph = dense_trace
    page = open_report(new_page, path)
    count = page.page.locator(".edge-count")
    assert int(count.get_attribute("data-visible")) == 40
    page.screenshot("trace-dense-top40", page.page.locator("details.card"))
    drawn = page.page.evaluate("() => window.sadlang.graphs[0].edges().map(e => e.data('id'))")
    strongest = sorted(graph.edges, key=lambda e: -abs(e["weight"]))[:40]
    assert set(drawn) == {e["id"] for e in strongest}
    zoom = float(page.page.locator(".graph").get_attribute("data-zoom"))
    assert 13 * zoom >= 10
    for boxes in (_boxes(page),):
        overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
        assert overlaps == []
    page.page.locator("button.show-more").click()
    assert int(count.get_attribute("data-visible")) == min(80, len(graph.edges))
    page.screenshot("trace-dense-more", page.page.locator("details.card"))
    boxes = _boxes(page)
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
    assert page.problems == []


def test_filters_leave_no_orphan_nodes(new_page, dense_trace):
    path, graph = dense_trace
    page = open_report(new_page, path)
    weights = sorted(abs(e["weight"]) for e in graph.edges)
    page.set_slider("trace", "weight-filter", weights[len(weights) // 2])
    orphans = page.page.evaluate("""() => window.sadlang.graphs[0].nodes()
        .filter(n => !['axis', 'root'].includes(n.data('kind')) && n.degree() === 0).length""")
    assert orphans == 0
    cut = float(page.page.locator("input.weight-filter").input_value())     # as the slider's step rounds it
    shown = int(page.page.locator(".edge-count").get_attribute("data-visible"))
    assert shown == min(40, sum(w >= cut for w in weights))


def test_a_real_click_picks_what_is_under_the_pointer_and_shows_it_selected(new_page, dense_trace):
    """A mouse click on a node selects that node and lists its inputs and outputs (all of them,
    ranked); a click on the strongest edge selects that edge and draws it black."""
    path, graph = dense_trace
    page = open_report(new_page, path)
    strongest = max(graph.edges, key=lambda e: abs(e["weight"]))
    ranked = sorted(graph.edges, key=lambda e: -abs(e["weight"]))[:40]      # drawn; a node with inputs and outputs
    node = next(n for n in graph.nodes if any(e["target"] == n["id"] for e in ranked)
                and any(e["source"] == n["id"] for e in ranked))
    center = "id => { const cy = window.sadlang.graphs[0]; cy.center(cy.$id(id)); }"    # returns nothing to serialise
    page.page.evaluate(center, node["id"])
    page.click_graph(0, f"node[id = '{node['id']}']", what="node")
    picked = page.page.evaluate("() => window.sadlang.graphs[0].$(':selected').map(x => x.id())")
    assert picked == [node["id"]]
    ins = page.page.locator(".node-table.inputs tr").count()
    outs = page.page.locator(".node-table.outputs tr").count()
    assert ins == sum(e["target"] == node["id"] for e in graph.edges) > 0
    assert outs == sum(e["source"] == node["id"] for e in graph.edges)
    page.page.evaluate(center, strongest["id"])
    page.click_graph(0, f"edge[id = '{strongest['id']}']")
    assert page.page.locator(".edge-info").get_attribute("data-edge") == strongest["id"]
    colour = page.page.evaluate(f"() => window.sadlang.graphs[0].$id('{strongest['id']}').style('line-color')")
    assert colour.replace(" ", "") == "rgb(0,0,0)"


def test_edges_are_reachable_by_keyboard_and_kinds_differ_by_dash(new_page, dense_trace):
    path, _ = dense_trace
    page = open_report(new_page, path)
    assert page.page.locator(".graph").get_attribute("role") == "img"
    assert page.page.locator(".graph").get_attribute("aria-label")
    page.page.locator("details.edge-list-box summary").click()
    first = page.page.locator("ol.edge-list li").first
    first.focus()
    page.page.keyboard.press("Enter")
    assert page.page.locator(".edge-info").get_attribute("data-edge") == first.get_attribute("data-edge")
    dashes = page.page.evaluate("""() => { const out = {}; window.sadlang.graphs[0].edges().forEach(e => {
        out[e.data('side')] = e.style('line-style'); }); return out; }""")
    assert {dashes.get("query"), dashes.get("key")} - {None} <= {"solid", "dashed"}
    if "query" in dashes and "key" in dashes:
        assert dashes["query"] != dashes["key"]


def test_text_meets_wcag_aa_contrast(new_page, report, tmp_path):
    html, _ = report
    page = _page(new_page, tmp_path, html)
    pairs = page.page.evaluate("""() => {
      const rgb = s => s.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
      const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      const lum = c => 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
      const bg = el => {
        for (let e = el; e; e = e.parentElement) {
          const b = getComputedStyle(e).backgroundColor;
          if (!b.startsWith('rgba(0, 0, 0, 0)') && b !== 'transparent') return rgb(b);
        }
        return [255, 255, 255]; };
      const out = [];
      for (const sel of ['.badge', '.count', '.kind', '.loc', 'footer', '.tok sub', 'td.why', 'table.kv th']) {
        document.querySelectorAll(sel).forEach(el => {
          const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
          out.push([sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
        });
      }
      return out; }""")
    low = [(sel, round(r, 2)) for sel, r in pairs if r < 4.5]
    assert pairs and low == []


def test_the_phone_layout_gives_the_graph_the_width_and_never_scrolls_sideways(new_page, report, tmp_path):
    html, _ = report
    path = tmp_path / "phone.html"
    path.write_text(html)

    def phone():
        pg = new_page()
        pg.set_viewport_size({"width": 390, "height": 844})
        return pg
    page = open_report(phone, path)
    page.open_all()
    width = page.page.evaluate("() => document.documentElement.scrollWidth")
    graph = page.page.locator(".graph").first.bounding_box()
    assert width <= 391 and graph is not None and graph["width"] >= 300
    page.screenshot("report-phone", page.page)


def test_a_traced_circuit_claim_outlines_the_heads_it_names(new_page, report, tmp_path):
    html, data = report
    page = _page(new_page, tmp_path, html)
    contains = next(v for v in data["verdicts"] if v["kind"] == "circuit" and "contains" in v["claim"])
    card = page.open_card(contains["name"])
    cid = page.graph_card_id(contains["name"])
    outlined = page.page.evaluate(f"() => window.sadlang.graphs[{cid}].nodes('.claimed').map(n => n.data('label'))")
    assert outlined and "claimed nodes outlined" in card.locator("h4").first.inner_text()
    width = page.page.evaluate(f"() => window.sadlang.graphs[{cid}].nodes('.claimed')[0].style('border-width')")
    assert float(width.replace("px", "")) >= 3


def test_a_heatmap_marks_the_claimed_cell_and_reads_out_weights(new_page, report, tmp_path):
    """An `attends end -> "x"` claim's heatmaps outline the (end, x) cell in red, and hovering a
    cell reads out its weight from the data."""
    html, data = report
    page = _page(new_page, tmp_path, html)
    name = next(v["name"] for v in data["verdicts"] if v["kind"] == "attends")
    card = page.open_card(name)
    canvas = card.locator(".heatmaps canvas").first
    cell = page.page.evaluate("""(c) => {
        const d = JSON.parse(document.getElementById('sad-card-' + c).textContent).heatmaps[0];
        return {marked: d.marked, n: d.tokens.length, w: d.weights}; }""", page.graph_card_id(name))
    assert cell["marked"], "the claim names a cell"
    dest, src = cell["marked"][0]
    red = canvas.evaluate("""(c, [d, s]) => { const cell = 14, pad = 90;
        return Array.from(c.getContext('2d').getImageData(pad + s * cell - 1, pad + d * cell + 5, 1, 1).data); }""",
                          [dest, src])
    assert red[0] > 150 and red[1] < 100
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.page.mouse.move(box["x"] + 90 + src * 14 + 7, box["y"] + 90 + dest * 14 + 7)
    readout = card.locator(".heat-value").first
    assert readout.get_attribute("data-cell") == f"{dest},{src}"
    assert float(readout.inner_text().rsplit(": ", 1)[1]) == pytest.approx(cell["w"][dest][src], abs=1e-3)


def test_claims_can_be_searched_filtered_and_reached_from_a_table_of_contents(new_page, report, tmp_path):
    html, data = report
    page = _page(new_page, tmp_path, html)
    p = page.page
    n = len(data["verdicts"])
    assert p.locator("nav.toc li").count() == n
    assert int(p.locator(".shown-count").get_attribute("data-shown")) == n
    p.locator("input.claim-search").fill("impossible")
    visible = p.eval_on_selector_all("details.card", "cs => cs.filter(c => !c.hidden).map(c => c.dataset.name)")
    assert visible == ["impossible"]
    p.locator("input.claim-search").fill("")
    p.locator("label.status-filter input[value='held']").uncheck()
    visible = p.eval_on_selector_all("details.card", "cs => cs.filter(c => !c.hidden).map(c => c.dataset.status)")
    assert visible == ["failed"] * sum(v["status"] == "failed" for v in data["verdicts"])
    p.locator("label.status-filter input[value='held']").check()
    kind = next(v["kind"] for v in data["verdicts"] if v["kind"] == "circuit_test")
    p.locator("select.kind-filter").select_option(kind)
    shown = int(p.locator(".shown-count").get_attribute("data-shown"))
    assert shown == sum(v["kind"] == kind for v in data["verdicts"])


def test_a_graph_and_a_prompt_table_export_what_is_drawn(new_page, dense_trace, tmp_path):
    """CSV and JSON hold the drawn edges, SVG draws every drawn node's label, PNG is a PNG."""
    path, graph = dense_trace
    page = open_report(new_page, path)
    drawn = int(page.page.locator(".edge-count").get_attribute("data-visible"))
    saved = {}
    for fmt in ("csv", "json", "svg", "png"):
        with page.page.expect_download() as info:
            page.page.locator(f"button.export-{fmt}").click()
        saved[fmt] = Path(info.value.path()).read_bytes()
    rows = saved["csv"].decode().strip().splitlines()
    assert rows[0] == "source,target,side,weight,frequency" and len(rows) == drawn + 1
    doc = json.loads(saved["json"])
    assert len(doc["edges"]) == drawn and {e["id"] for e in doc["edges"]} <= {e["id"] for e in graph.edges}
    svg = saved["svg"].decode()
    assert svg.startswith("<svg") and svg.count("<line") == drawn
    assert all(f">{n['label']}</text>" in svg for n in doc["nodes"])
    assert saved["png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_the_per_prompt_table_exports_as_csv(new_page, report, tmp_path):
    html, data = report
    page = _page(new_page, tmp_path, html)
    v = next(v for v in data["verdicts"] if v["name"] == "impossible")
    card = page.open_card("impossible")
    with page.page.expect_download() as info:
        card.locator("button.export-prompts").click()
    import csv as csvlib
    rows = list(csvlib.reader(Path(info.value.path()).read_text().splitlines()))
    assert rows[0] == ["index", "prompt", "value", "passed", "evidence"] and len(rows) == len(v["prompts"]) + 1
    assert [float(r[2]) for r in rows[1:]] == pytest.approx([p["value"] for p in v["prompts"]], rel=1e-9)


def test_a_matches_card_marks_shared_nodes_and_the_ones_only_one_circuit_has(new_page, report, tmp_path):
    """key_only_copy {0.0, 1.0} against half_copy {1.0}: 1.0 outlined as shared, 0.0 dashed as only here."""
    html, data = report
    page = _page(new_page, tmp_path, html)
    v = next(v for v in data["verdicts"] if v["name"] == "overlap")
    assert v["details"]["only here"] == ["0.0"] and v["details"]["only there"] == []
    page.open_card("overlap")
    cid = page.graph_card_id("overlap")
    marks = page.page.evaluate(f"""() => {{ const cy = window.sadlang.graphs[{cid}];
        return {{shared: cy.nodes('.claimed').map(n => n.data('label')),
                 only: cy.nodes('.extra').map(n => n.data('label')),
                 dash: cy.nodes('.extra')[0].style('border-style')}}; }}""")
    assert marks == {"shared": ["1.0"], "only": ["0.0"], "dash": "dashed"}


def test_a_counterexample_shows_its_roles_and_the_claimed_heads_attention_on_it(new_page, report, tmp_path):
    """The searched counterexample of `head 1.0 attends end -> bos ... forall`: its tokens carry the
    roles the search built it with, and head 1.0's attention on it is drawn with (end, bos) outlined."""
    html, data = report
    v = next(v for v in data["verdicts"] if v["name"] == "sinks_anywhere")
    c = v["counterexample"]
    assert v["status"] == "failed" and c["tokens"][int(c["roles"]["S"][0])] == " x"
    assert {c["labels"][str(p)] for p in c["roles"]["A"]} == {"A"} and len(c["token_ids"]) == len(c["tokens"])
    page = _page(new_page, tmp_path, html)
    card = page.open_card("sinks_anywhere")
    subs = card.locator(".counterexample .tok.role sub").all_inner_texts()
    assert sorted(subs) == sorted(c["labels"].values())
    canvas = card.locator(".counterexample-heatmaps canvas")
    assert canvas.count() == 1 and canvas.get_attribute("data-prompt") == "0"
    end = len(c["tokens"]) - 1
    red = canvas.evaluate("""(c, [d, s]) => { const cell = 14, pad = 90;
        return Array.from(c.getContext('2d').getImageData(pad + s * cell - 1, pad + d * cell + 5, 1, 1).data); }""",
                          [end, 0])
    assert red[0] > 150 and red[1] < 100, "the claimed (end, bos) cell is outlined"
    assert card.locator(".pick-prompt").input_value() == "counterexample"


def test_any_head_on_any_prompt_is_drawn_from_the_bank_with_its_weights(new_page, report, tmp_path):
    """The picker draws head L.H on a chosen prompt from the page's byte-quantized bank: the hover
    readout equals the exact heatmap of the same head and prompt to within half a step (1/510);
    a head out of range names the valid ranges instead of drawing."""
    html, _ = report
    page = _page(new_page, tmp_path, html)
    card = page.open_card("reads_marker")
    exact = page.page.evaluate("""(c) => JSON.parse(
        document.getElementById('sad-card-' + c).textContent).heatmaps[0]""", page.graph_card_id("reads_marker"))
    layer, head = exact["head"].split(".")
    card.locator(".pick-layer").fill(layer)
    card.locator(".pick-head").fill(head)
    card.locator(".pick-prompt").select_option(str(exact["prompt"]))
    card.locator(".pick-show").click()
    canvas = card.locator(".picked canvas")
    assert canvas.get_attribute("data-head") == exact["head"]
    assert canvas.get_attribute("data-prompt") == str(exact["prompt"])
    n = len(exact["tokens"])
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    for d, s in [(n - 1, 0), (n - 1, n - 5), (3, 1)]:
        page.page.mouse.move(box["x"] + 90 + s * 14 + 7, box["y"] + 90 + d * 14 + 7)
        readout = card.locator(".picked .heat-value")
        assert readout.get_attribute("data-cell") == f"{d},{s}"
        shown = float(readout.inner_text().rsplit("≈ ", 1)[1])
        assert shown == pytest.approx(exact["weights"][d][s], abs=1 / 510 + 1e-3)   # + the readout's rounding
    in_bank = page.page.evaluate("""(c) => { const d = JSON.parse(document.getElementById('sad-card-' + c).textContent);
        return JSON.parse(document.getElementById('sad-bank-' + d.bank).textContent).prompts.length; }""",
                                 page.graph_card_id("reads_marker"))
    assert card.locator(".pick-prompt option").count() == in_bank == 6       # the marker set's six prompts
    card.locator(".pick-head").fill("9")
    card.locator(".pick-show").click()
    assert card.locator(".pick-note").inner_text() == "layers are 0–1, heads 0–3"
    assert card.locator(".picked canvas").count() == 0


def test_edges_a_claim_names_are_outlined_and_missing_ones_named(new_page, report, tmp_path):
    """`edge 0.0 -> 1.0 via key at end -> "x"`: the firing's edges with that one outlined in green;
    `no edge 0.2 -> 1.0`: the title says there is none; an edge-level `matches` outlines the edge
    both circuits have and names the one only the other has."""
    html, _ = report
    page = _page(new_page, tmp_path, html)
    p = page.page
    page.open_card("key_edge")
    cid = page.graph_card_id("key_edge")
    marked = p.evaluate(f"""() => window.sadlang.graphs[{cid}].edges('.claimed').map(e => [
        e.source().data('label'), e.target().data('label'), e.data('side'), e.style('underlay-color')])""")
    assert marked == [["0.0", "1.0", "key", "rgb(27,94,32)"]]
    card = page.open_card("orthogonal")
    assert "0.2 -> 1.0 is no edge, and it is none" in card.locator("h4").first.inner_text()
    card = page.open_card("edge_overlap")
    cid = page.graph_card_id("edge_overlap")
    shared = p.evaluate(f"""() => window.sadlang.graphs[{cid}].edges('.claimed').map(e => [
        e.source().data('label'), e.target().data('label')])""")
    assert shared == [["0.0", "1.0"]]
    assert "only the other has: 1.0 -> logits" in card.locator("h4").first.inner_text()
