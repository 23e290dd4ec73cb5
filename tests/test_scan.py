"""Head scans: the patterns, the scores (equal to TransformerLens' head detector where it has the
pattern), and `sadlang scan` on the planted model, whose sink heads are known."""

import pytest
import torch

from sadlang.cli import main
from sadlang.evidence.scans import PATTERNS, head_scores, induction, previous_token, scan_heads

PROMPT = " When Mary went to the x, Mary said x"


def test_patterns_mark_the_keys_their_heads_attend_to():
    tokens = [0, 5, 6, 5, 7]                      # BOS a b a c: the second a (3) repeats 1
    assert previous_token(tokens)[3].tolist() == [0, 0, 1, 0, 0]
    assert PATTERNS["duplicate-token"](tokens)[3].tolist() == [0, 1, 0, 0, 0]
    assert induction(tokens)[3].tolist() == [0, 0, 1, 0, 0]            # the token after the earlier a
    assert PATTERNS["sink"](tokens)[:, 0].tolist() == [0, 1, 1, 1, 1]
    for build in PATTERNS.values():
        marked = build(tokens)
        assert torch.equal(marked, torch.tril(marked)) and set(marked.unique().tolist()) <= {0.0, 1.0}


def test_a_head_that_does_exactly_the_pattern_scores_one_where_it_applies():
    tokens = [0, 5, 6, 5, 7]
    marked = induction(tokens)
    pattern = torch.eye(5)[None, None].clone()                            # (1, 1, n, n): attends to itself
    pattern[0, 0, 3] = marked[3]                                          # ...except where induction applies
    assert float(head_scores(pattern, marked, focused=True)) == 1.0
    assert float(head_scores(pattern, marked)) == pytest.approx(1 / 5)   # TransformerLens counts every query


@pytest.mark.parametrize("model_name", ["planted", "tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize(("ours", "theirs"), [("prev-token", "previous_token_head"),
                                              ("duplicate-token", "duplicate_token_head"),
                                              ("induction", "induction_head")])
def test_scores_equal_transformer_lens_head_detector(model_name, ours, theirs):
    from transformer_lens.head_detector import detect_head

    from sadlang.decomp.activations import run_prompts
    from sadlang.models import load_model

    model = load_model(model_name)
    tokens = model.to_tokens(PROMPT)
    scores = scan_heads([run_prompts(model, [tokens])[0].pattern], [tokens], ours)
    expected = detect_head(model.bridge, PROMPT, theirs).to(scores.dtype)
    # both read the same hooked pattern; the sums differ only in float rounding
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)


@pytest.fixture(autouse=True)
def own_scan_cache(tmp_path, monkeypatch):
    """Scans are remembered in the user cache: keep these tests' scans out of the real one."""
    monkeypatch.setenv("SADLANG_CACHE_DIR", str(tmp_path / "cache"))


def test_scan_cli_ranks_the_planted_sink_heads_first_and_draws_them(tmp_path, capsys):
    svg = tmp_path / "sink.svg"
    assert main(["scan", "--model", "planted", "--prompt", " When Mary went to the x, John said",
                 "--pattern", "sink", "--top", "2", "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert {row[1] for row in rows} == {"1.0", "1.2"}                      # the planted sinks (specs/planted.sad)
    assert "<title>1.0:" in svg.read_text() and "L1" in svg.read_text()


def test_scan_cli_reads_a_specs_prompt_set_and_refuses_what_it_cannot_scan(capsys):
    assert main(["scan", "--model", "planted", "--prompts", "specs/planted.sad:marker", "--pattern",
                 "duplicate-token", "--top", "3"]) == 0
    assert "on 6 prompts of marker" in capsys.readouterr().out
    assert main(["scan", "--model", "planted", "--prompts", "specs/planted.sad:nope", "--pattern", "sink"]) == 2
    assert "has no prompt set 'nope'" in capsys.readouterr().err
    assert main(["scan", "--model", "planted", "--pattern", "sink"]) == 2
    assert main(["scan", "--model", "planted", "--prompt", " When Mary went", "--pattern", "induction"]) == 2
    assert "induction pattern marks" in capsys.readouterr().err


def test_a_scan_is_remembered_for_the_editors_hover_on_heads(capsys):
    from pathlib import Path

    from sadlang.editor import assist

    assert main(["scan", "--model", "planted", "--prompt", " When Mary went to the x, John said",
                 "--pattern", "sink"]) == 0
    text = (Path(__file__).resolve().parents[1] / "specs" / "planted.sad").read_text()
    lines = text.split("\n")
    n = next(i for i, line in enumerate(lines) if line.startswith("claim reads_marker"))
    hover = assist.hover(text, n, lines[n].index("1.0") + 1)
    import re

    assert re.search(r"- sink: 0\.\d{3} \(rank 1 of 8; 1 prompt\(s\)\)", hover), hover
