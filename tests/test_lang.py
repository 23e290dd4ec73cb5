"""The .sad language: parsing, errors with positions, claims evaluated on built-in models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sadlang.cli import main
from sadlang.errors import SpecError
from sadlang.language import parse_spec

ROOT = Path(__file__).resolve().parents[1]

HEADER = '''model tiny-gpt2
pool names = " Mary" " John" " Alice" " Bob"
prompts ioi:
  template "When{IO} and{S} went to the store,{S} gave a drink to"
  IO, S from names distinct
  answer "{IO}" against "{S}"
  sample 4 seed 0
'''


def test_every_shipped_spec_parses():
    for path in (ROOT / "specs").glob("*.sad"):
        spec = parse_spec(path.read_text(), str(path))
        assert spec.claims, path


def test_parse_shapes():
    spec = parse_spec(HEADER + 'claim a: head 1.2 attends end -> S#2+1 with weight >= 0.3 in >= 80% of prompts\n'
                      'claim b: no edge *.3 -> 2.* via key at end -> "store"\n'
                      'claim c: ablate edge mlp 1 -> 3.0 global lowers logit_diff by >= 5% and beats random by >= 2x\n'
                      'claim d: head 1.0 fires at end -> IO forall up to 7 prompts\n')
    a, b, c, d = spec.claims
    assert a.body.at.src.role == "S" and a.body.at.src.occurrence == 2 and a.body.at.src.shift == 1
    assert a.quantifier.kind == "at_least" and a.quantifier.share == pytest.approx(0.8)
    assert b.body.negated and b.body.upstream.head.layer is None and b.body.upstream.head.head == 3
    assert b.body.side == "key" and b.body.at.src.word == "store"
    assert c.body.mode == "global" and c.body.relative and c.body.amount.value == pytest.approx(0.05)
    assert c.body.upstream.kind == "mlp" and c.body.beats_random.value == 2
    assert d.quantifier.kind == "forall" and d.quantifier.limit == 7


GOLDEN = [
    ("modle tiny-gpt2\n", "1:1", "did you mean 'model'?"),
    (HEADER + "claim x: head 1.2 atends end -> IO\n", "8:19", "did you mean 'attends'?"),
    (HEADER + "claim x: head 1.2 attends end -> IO with weight >= \n", "8:52", "line ended early"),
    (HEADER + 'claim x: head 1.2 attends end -> "IO\n', "8:34", "unterminated string"),
    ("prompts p:\ntemplate \"x\"\n", "2:1", "expected an indented block"),
    (HEADER + "claim x: circuit contains 1.2,\n", "8:31", "line ended early"),
]


@pytest.mark.parametrize("text,where,phrase", GOLDEN)
def test_golden_syntax_errors(text, where, phrase):
    with pytest.raises(SpecError) as err:
        parse_spec(text, "bad.sad")
    msg = err.value.render()
    assert msg.startswith(f"bad.sad:{where}: error:"), msg
    assert phrase in msg, msg
    assert "^" in msg


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["claim", "head", "edge", "1.2", "->", '"x"', ":", "#", "%", ">=", "\n",
                                  " ", "  ", "\t", "model", "pool", "prompts", "=", "in", "of", "*.3", "S#2"]),
                max_size=30).map("".join))
def test_random_text_never_crashes_the_parser(text):
    try:
        parse_spec(text, "fuzz.sad")
    except SpecError as exc:
        assert exc.render().startswith("fuzz.sad:") or exc.render().startswith("error:")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_never_crash_the_parser(data):
    try:
        parse_spec(data.decode("utf-8", errors="replace"), "bytes.sad")
    except SpecError:
        pass


def _write(tmp_path, body, name="t.sad"):
    p = tmp_path / name
    p.write_text(HEADER + body)
    return str(p)


SEMANTIC = [
    ("claim x: head 9.1 attends end -> IO\n", "8:15", "layer 9 is out of range: tiny-gpt2 has layers 0..3"),
    ("claim x: head 1.7 attends end -> IO\n", "8:15", "head 7 is out of range"),
    ("claim x: head 1.2 attends end -> OI\n", "8:34", "unknown role 'OI'"),
    ("claim x: head 1.2 attends end -> S#3\n", "8:34", "does not exist in every prompt"),
    ("claim x: logit_diff > 0 on other\n", "8:1", "undefined prompt set 'other'"),
    ("option treshold = 0.3\n", "8:1", "did you mean 'threshold'?"),
    ("method acx\n", "8:8", "unknown method 'acx'"),
]


@pytest.mark.parametrize("body,where,phrase", SEMANTIC)
def test_semantic_errors_name_the_place_and_the_valid_range(tmp_path, capsys, body, where, phrase):
    code = main(["check", _write(tmp_path, body), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"t.sad:{where}: error:" in err and phrase in err, err
    assert "Traceback" not in err


def test_multi_token_slot_value_shows_its_tokens(tmp_path, capsys):
    p = tmp_path / "m.sad"
    p.write_text(HEADER.replace('" Bob"', '" Bobby"') + "claim x: logit_diff > 0\n")
    assert main(["check", str(p), "-q"]) == 2
    err = capsys.readouterr().err
    assert "is not a single token" in err and "m.sad:4:" in err


def test_claims_hold_and_fail_with_exit_codes(tmp_path, capsys):
    held = _write(tmp_path, "claim ok: head 1.2 attends end -> IO with weight >= 0.0\n", "h.sad")
    failed = _write(tmp_path, "claim no: head 1.2 attends end -> IO with weight >= 1\n", "f.sad")
    assert main(["check", held, "-q"]) == 2          # always true: a spec error ...
    assert "always true" in capsys.readouterr().err
    assert main(["check", held, "-q", "--lenient"]) == 0   # ... unless --lenient, which warns
    assert ": warning: `>= 0` is always true" in capsys.readouterr().err
    assert main(["check", failed, "-q"]) == 1
    out = capsys.readouterr().out
    assert "FAILED no" in out and "measured: held in 0% of 4 prompts" in out


def test_json_is_deterministic_and_junit_is_written(tmp_path):
    spec = _write(tmp_path, "claim a: head 1.2 attends end -> IO with weight >= 0.1 in >= 50% of prompts\n"
                            "claim b: circuit contains 1.*\n"
                            "claim c: edge *.* -> 3.1 at end -> IO in >= 10% of prompts\n")
    outs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "sadlang.cli", "check", spec, "--format", "json",
                            "--junit", str(tmp_path / "j.xml"), "-q"], capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    data = json.loads(outs[0])
    assert data["schema"] == 2 and [v["name"] for v in data["verdicts"]] == ["a", "b", "c"]
    assert data["exit_code"] == r.returncode
    assert "<testsuite" in (tmp_path / "j.xml").read_text()


def test_shipped_planted_spec_holds(capsys):
    assert main(["check", str(ROOT / "specs" / "planted.sad"), "-q"]) == 0


def test_gpt2_spec_fails_cleanly_offline(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["check", str(ROOT / "specs" / "gpt2-ioi.sad"), "-q"]) == 3
    assert "could not be found offline" in capsys.readouterr().err


def test_plan_prints_work_without_forward_passes(capsys):
    from sadlang.decomp.activations import ForwardCounter
    before = ForwardCounter.calls
    assert main(["plan", str(ROOT / "specs" / "planted.sad")]) == 0
    out = capsys.readouterr().out
    assert ForwardCounter.calls == before
    assert "[intervention]" in out and "[attention" in out and "forward  5 clean pass(es)" in out
    assert "circuit  planted_copy: 2 nodes, 3 edges" in out and "moved_swap (twins of moved)" in out


def test_trace_cli_writes_graph(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["trace", "--model", "tiny-gpt2", "--prompt", " When Mary and John went to the store",
                 "--answer", " Mary", "--against", " John", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert any(n["kind"] == "root" for n in data["nodes"])
    assert "graph" in capsys.readouterr().out


def test_trace_cli_rejects_multi_token_answer(capsys):
    assert main(["trace", "--model", "tiny-gpt2", "--prompt", " When Mary went", "--answer", " Maryanne"]) == 2
    assert "not a single token" in capsys.readouterr().err


def test_trace_cli_draws_an_svg_picture(tmp_path, capsys):
    from xml.etree import ElementTree as ET
    out = tmp_path / "g.svg"
    assert main(["trace", "--model", "planted", "--prompt", " When Mary went to the x, John said",
                 "--answer", " x", "--against", " y", "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "1.0" in texts and "0.0" in texts and "logit" in texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}line"))) >= 2


def test_trace_text_lists_every_edge_kind_with_the_graphs_node_ids(tmp_path, capsys):
    """Edges from embeddings and MLPs are listed beside head edges, nodes are named as in the
    saved graph (L.H@dest:src, embed@pos), and positions as token@index."""
    import networkx as nx

    out = tmp_path / "g.graphml"
    assert main(["trace", "--model", "planted", "--prompt", " When Mary went to the x, John said",
                 "--answer", " x", "--against", " y", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seeds    1.0@9:6 (+15.89)" in text
    assert "0.0@6:6 -> 1.0@9:6" in text and "' x'@6 <- ' x'@6 -> ' said'@9 <- ' x'@6" in text
    assert "embed@9 -> 1.0@9:6" in text
    graph = nx.read_graphml(out)
    assert {"0.0@6:6", "1.0@9:6", "embed@9"} <= set(graph.nodes)


def test_a_word_position_takes_a_shift_like_a_role(planted):
    """`"the"+1` is the token after the first "the"; `end-1` the one before the end."""
    from sadlang.evidence.roles import resolve
    from sadlang.prompts.build import build_prompt

    spec = parse_spec('model planted\nclaim a: head 1.0 attends end-1 -> "the"+1\n')
    body = spec.claims[0].body
    assert body.at.src.text() == '"the"+1' and body.at.dest.text() == "end-1"
    p = build_prompt(planted, " When Mary went to the x, John said", {})
    assert p.token_texts[resolve(body.at.src, p)] == " x"
    assert resolve(body.at.dest, p) == p.end - 1


def test_missing_or_unreadable_spec_is_a_spec_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.sad")]) == 2
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "cannot read spec file" in err and "Traceback" not in err


def test_readme_example_parses_and_compiles_against_the_bundled_model(smollm):
    import re

    from sadlang.plan.compile import compile_spec
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sad\n(.*?)```", text, re.S).group(1)
    spec = parse_spec(block, "README.md")
    plan = compile_spec(spec, smollm)
    assert [c.name for c, _ in plan.claims] == ["mover", "feeds", "lowrank", "causal", "sink", "shared",
                                                 "circuit", "search"]


PAIRED = '''model planted
pool pairs = " Mary": " John", " Alice": " Bob", " Tom": " Kate"
prompts p:
  template "When{A} went to the x,{B} said"
  A, B from pairs
  answer "{B}" against "{A}"
  sample 12 seed 0
prompts q from p:
  resample A
claim a: logit_diff > -100 on p
'''


def test_a_paired_pool_fills_its_two_slots_together(planted):
    """Every prompt's (A, B) is one of the pool's pairs, the answer follows the pair, a resample
    of A moves to another pair, and hypothesis draws pairs too."""
    from hypothesis import given, settings

    from sadlang.plan.compile import compile_spec
    from sadlang.strategies import assignment_strategy

    spec = parse_spec(PAIRED)
    pairs = set(spec.pools["pairs"].pairs)
    assert spec.pools["pairs"].values == [" Mary", " Alice", " Tom"] and len(pairs) == 3
    plan = compile_spec(spec, planted)
    clean, twins = plan.prompt_sets["p"].prompts, plan.prompt_sets["q"].prompts
    assert {(p.assignment["A"], p.assignment["B"]) for p in clean} <= pairs
    assert all(p.answer == planted.token_ids(p.assignment["B"])[0] for p in clean)
    for p, q in zip(clean, twins, strict=True):
        assert (q.assignment["A"], q.assignment["B"]) in pairs and q.assignment["A"] != p.assignment["A"]

    @settings(max_examples=20, database=None)
    @given(assignment_strategy(spec, spec.prompt_sets["p"]))
    def drawn(ta):
        assert (ta[1]["A"], ta[1]["B"]) in pairs

    drawn()


@pytest.mark.parametrize(("line", "words"), [("  A from pairs", "each draw fills two slots together"),
                                             ("  A, B from pairs distinct", "no `distinct`")])
def test_a_paired_pool_needs_exactly_two_slots(line, words):
    from sadlang.plan.validate import validate

    with pytest.raises(SpecError) as exc:
        validate(parse_spec(PAIRED.replace("  A, B from pairs", line), "pairs.sad"))
    assert exc.value.span.line == 5 and words in exc.value.message
