"""The HTML report without a browser: the page is self-contained, its embedded data is the
report's, and views place graphs on the tokens x layers grid. (tests/test_html_browser.py
drives the same pages in Chromium.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sadlang.claims import KINDS
from sadlang.cli import main
from sadlang.html import check_page
from sadlang.html.page import vendored_versions
from sadlang.html.views import collector, declared_graph_view, trace_graph_view
from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.runner.report import to_json
from sadlang.trace.graph import combine
from sadlang.trace.options import TraceOptions
from sadlang.trace.tracer import trace

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "sadlang" / "html" / "assets" / "vendor"
PROMPT = "When Mary went to the x, John said"


def _blocks(html: str) -> dict[str, object]:
    found = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', html, flags=re.S)
    return {k: json.loads(v) for k, v in found}


@pytest.fixture(scope="module")
def planted_page():
    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")
    views, observe = collector(plan.spec)
    report = run_plan(plan, model, observe=observe)
    return check_page([report], [views], [{"seconds": 2.5, "seeds": {"copy": 0}}]), report, views


def test_page_is_self_contained(planted_page):
    html, _, _ = planted_page
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', html), "every script and style is inlined"
    assert "cytoscape" in html and vendored_versions()["cytoscape"] in html
    assert html.count("<script>") == 2        # the vendored library and the page's own script


def test_vendored_library_is_recorded_with_its_license():
    version = vendored_versions()["cytoscape"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f'"{version}"' in (VENDOR / "cytoscape.min.js").read_text()
    assert "Permission is hereby granted" in (VENDOR / "cytoscape.LICENSE").read_text()
    assert (ROOT / "scripts" / "vendor_js.sh").is_file()


def test_embedded_data_is_the_report(planted_page):
    html, report, _ = planted_page
    blocks = _blocks(html)
    data = blocks["sad-data"]
    saved = json.loads(to_json(report))
    r = data["reports"][0]
    assert r["summary"] == saved["summary"] and r["fingerprint"] == saved["model_fingerprint"]
    assert r["seconds"] == 2.5 and r["seeds"] == {"copy": 0}
    assert sorted(c["name"] for c in r["claims"]) == sorted(v["name"] for v in saved["verdicts"])
    for c in r["claims"]:
        card = blocks[f"sad-card-{c['card']}"]
        verdict = next(v for v in saved["verdicts"] if v["name"] == c["name"])
        assert [p["text"] for p in card["prompts"]] == [p["text"] for p in verdict["prompts"]]
        assert c["has_graph"] == (KINDS[verdict["kind"]].picture is not None)


def test_prompt_views_carry_roles(planted_page, planted):
    _, _, views = planted_page
    row = views["reads_marker"].prompts[0]
    assert row.tokens == planted.decode(planted.to_tokens(row.text))
    assert set(row.labels.values()) >= {"A", "B", "end"}
    heat = views["reads_marker"].heatmaps[0]
    assert heat.head == "1.0" and len(heat.weights) == len(heat.tokens)
    assert all(abs(sum(row) - 1) < 1e-3 for row in heat.weights)             # softmax rows


def test_trace_view_is_on_the_token_layer_grid(planted):
    circuit = trace(planted, PROMPT, " x", " y", options=TraceOptions(signals=True))[0]
    toks = planted.decode(circuit.tokens)
    view = trace_graph_view(circuit.graph, toks, dict(circuit.roles), planted.info.n_layers, "t")
    by_id = {n["id"]: n for n in view.nodes}
    assert len(view.columns) == len(toks)
    heads = [n for n in view.nodes if n["kind"] == "head"]
    assert {n["layer"] for n in heads} == {0, 1}
    low, high = (next(n for n in heads if n["layer"] == k) for k in (0, 1))
    assert high["y"] < low["y"]                                   # later layers higher on the page
    root = next(n for n in view.nodes if n["kind"] == "root")
    assert root["y"] < high["y"]
    key = next(e for e in view.edges if e["side"] == "key")
    assert by_id[key["source"]]["layer"] == 0 and key["svs"] == [0] and key["signal_norm"] > 0


def test_declared_circuit_view(planted):
    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")
    decl = plan.spec.circuits["planted_copy"]
    view = declared_graph_view(decl, plan.prompt_sets["copy"].prompts[0], model.info.n_layers)
    sides = sorted(e["side"] for e in view.edges)
    assert sides == ["all", "key", "value"]                        # `edge 1.0 -> logits` has no side
    assert [n["label"] for n in view.nodes if n["kind"] == "head"] == ["0.0", "1.0"]
    end = next(n for n in view.nodes if n["label"] == "1.0")
    assert view.columns[end["column"]].endswith("(end)")          # kept at `end` only
    assert next(n for n in view.nodes if n["label"] == "0.0")["column"] == 0   # every position


def test_combined_edges_keep_the_singular_directions(planted):
    graphs = [trace(planted, p, " x", " y")[0].graph for p in (PROMPT, "When Alice went to the x, Bob said")]
    g = combine(graphs)
    key = [a for _, _, a in g.edges(data=True) if a["side"] == "key"]
    assert key and all(json.loads(a["svs"]) == [0] for a in key)


def test_cli_writes_html(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["check", str(ROOT / "specs" / "planted.sad"), "-q", "--claim", "exact", "--html", str(out)]) == 0
    assert "sad-data" in out.read_text()
    seconds = _blocks(out.read_text())["sad-data"]["reports"][0]["claim_seconds"]     # time per claim, shown
    assert set(seconds) == {"exact"} and seconds["exact"] >= 0
    trace_out = tmp_path / "t.html"
    assert main(["trace", "--model", "planted", "--prompt", PROMPT, "--answer", " x", "--against", " y",
                 "--html", str(trace_out)]) == 0
    data = _blocks(trace_out.read_text())
    assert data["sad-data"]["kind"] == "trace" and data["sad-card-0"]["graph"]["edges"]
    # the heatmaps are of the heads whose traced writes weigh most: the planted circuit 0.0 and 1.0
    assert {m["head"] for m in data["sad-card-0"]["heatmaps"][:2]} == {"0.0", "1.0"}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["check", str(ROOT / "specs" / "planted.sad"), "--html", str(tmp_path / "r.txt")])
    assert exc.value.code == 2 and "one of .html" in capsys.readouterr().err


def test_a_card_whose_picture_fails_still_shows_its_verdict(monkeypatch):
    """A bug while drawing one card's pictures becomes a note on that card; the check and the
    other cards go on."""
    import sadlang.html.views as views_mod

    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")

    def broken(ev, claim, v, spec, banks=None):
        if claim.name == "exact":
            raise IndexError("boom")
        return real(ev, claim, v, spec, banks)

    real = views_mod.claim_view
    monkeypatch.setattr(views_mod, "claim_view", broken)
    views, observe = collector(plan.spec)
    report = run_plan(plan, model, only={"exact", "reads_marker"}, observe=observe)
    assert [v.status for v in report.verdicts] == ["held", "held"]
    assert "internal error (IndexError: boom)" in views["exact"].note
    assert views["reads_marker"].heatmaps and not views["reads_marker"].note
    html = check_page([report], [views], [{}])
    assert "IndexError: boom" in html


def test_unlabelled_positions_are_named_by_role_so_templates_combine_by_role():
    """Positions without a label are named by their offset from the labelled one before them
    (`A+1`), so traces of two templates are combined and placed by role: the same name is the
    same place relative to a slot, drawn at that place in the first prompt."""
    from sadlang.html.views import _role_column
    from sadlang.trace.graph import role_of

    roles = {0: "bos", 2: "A", 6: "place", 9: "end"}
    assert [role_of(roles, p) for p in range(10)] == [
        "bos", "bos+1", "A", "A+1", "A+2", "A+3", "place", "place+1", "place+2", "end"]
    assert role_of({4: "S"}, 1) == "S-3" and role_of({}, 3) == "p3"
    column = _role_column({0: "bos", 3: "A", 7: "end"}, 8)          # the first prompt: A at 3
    assert column({"dest_role": "A+2"}) == 5 and column({"dest_role": "bos+1"}) == 1
    assert column({"dest_role": "A+9"}) == 7                         # past the end: the last column


def test_the_attention_bank_reads_back_every_head_to_half_a_step():
    """packed -> unpacked returns each head's lower triangle within 1/510 and zero above it, in
    the (layer, head, d, s) layout the page's script reads."""
    import torch

    from sadlang.html.patterns import packed, unpacked

    torch.manual_seed(0)
    pattern = torch.softmax(torch.randn(3, 4, 7, 7).masked_fill(torch.ones(7, 7).triu(1).bool(), -1e9), dim=-1)
    text = packed(pattern)
    for layer in range(3):
        for head in range(4):
            got = torch.tensor(unpacked(text, 3, 4, 7, layer, head))
            assert (got - pattern[layer, head]).abs().max() <= 1 / 510 + 1e-7
            assert got.triu(1).abs().max() == 0
