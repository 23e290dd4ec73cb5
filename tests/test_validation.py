"""The validation pass: every broken spec of tests/broken/corpus.txt is a spec error (exit 2)
pointing where its `‸` marker says, found without a forward pass; mutated specs never give an
internal error; a bad spec never loads its model."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sadlang.errors import SadError, SpecError, SpecErrors
from sadlang.language import parse_spec

ROOT = Path(__file__).resolve().parents[1]
MARK = "‸"


def _corpus() -> list[tuple[str, str, tuple[int, int]]]:
    cases = []
    for block in (ROOT / "tests" / "broken" / "corpus.txt").read_text().split("=== ")[1:]:
        name, _, text = block.partition("\n")
        i = text.index(MARK)
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        cases.append((name, text.replace(MARK, "", 1), (line, col)))
    return cases


CASES = _corpus()


def _errors(text: str, model) -> list[SpecError]:
    from sadlang.plan.compile import compile_spec

    try:
        compile_spec(parse_spec(text, "c.sad"), model)
    except SpecErrors as exc:
        return exc.errors
    except SpecError as exc:
        return [exc]
    return []


def test_the_corpus_is_large_and_names_are_unique():
    assert len(CASES) >= 150
    assert len({n for n, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name,text,where", CASES, ids=[c[0] for c in CASES])
def test_broken_spec_is_a_spec_error_at_its_marker(name, text, where, planted):
    errors = _errors(text, planted)
    assert errors, f"{name}: accepted"
    spans = [(e.span.line, e.span.column) if e.span else (1, 1) for e in errors]
    assert where in spans, f"{name}: expected an error at {where}, got " + "\n".join(e.render() for e in errors)
    for e in errors:
        assert e.exit_code == 2 and "Traceback" not in e.render()


def test_no_forward_pass_is_needed_to_find_them(planted, monkeypatch):
    """Validation and compilation never run the model: a broken spec costs no forward pass."""
    from sadlang.decomp import activations

    def forbidden(*a, **k):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(activations, "run_batch", forbidden)
    for _, text, _ in CASES[::10]:
        assert _errors(text, planted)


def test_a_bad_spec_never_loads_its_model(tmp_path):
    """The model name would take long to resolve (a hub name, offline): exit 2 comes first,
    and neither the model nor torch is loaded."""
    p = tmp_path / "bad.sad"
    p.write_text('model some-org/a-model-that-would-take-long\nprompts p:\n  prompt " a b" answer " a"\n'
                 "claim x: accuracy >= 1.5\n")
    code = ("import sys; from sadlang.cli import main; rc = main(['check', sys.argv[1]]); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert "bad.sad:4:19: error:" in out.stderr


def test_lenient_turns_vacuous_comparisons_into_warnings(planted):
    from sadlang.plan.compile import compile_spec

    text = CASES[0][1].split("claim c:")[0] + 'claim c: head 1.0 attends end -> "x" with weight >= 0\n'
    with pytest.raises(SpecError, match="always true"):
        compile_spec(parse_spec(text, "c.sad"), planted)
    plan = compile_spec(parse_spec(text, "c.sad"), planted, lenient=True)
    assert any("always true" in note for note in plan.notes)
    bad = text.replace(">= 0\n", ">= 1.5\n")     # out of the domain: an error even when lenient
    with pytest.raises(SpecError, match="outside the domain"):
        compile_spec(parse_spec(bad, "c.sad"), planted, lenient=True)


# ---- fuzz: parse + validate + plan never give an internal error
WORDS = ["claim", "head", "1.0", "1.1", "0.0", "*.*", "attends", "fires", "edge", "no", "via", "key", "query", "at",
         "->", "end", "bos", "A", "B#2", "A+1", '"x"', "with", "weight", ">=", "<", "==", "0.5", "1.5", "-1", "1e999",
         "80%", "150%", "in", "of", "prompts", "forall", "up", "to", "0", "signal", "rank", "stable", "is", "data",
         "control", "circuit", "contains", "matches", "f1", "ablate", "boost", "by", "2x", "lowers", "attention",
         "logit_diff", "mean", "accuracy", "sinks", "shared", "option", "seed", "=", "{", "}", "{A}", "{}", ":",
         "\n", "\n  ", "\t", "#", "sample", "answer", "template", "prompts", "pool", "model", "method", ",", "\\q"]
SEEDS = [text for _, text, _ in CASES[::6]] + [(ROOT / "specs" / "planted.sad").read_text()]
FUZZ_EXAMPLES = int(os.environ.get("SADLANG_FUZZ_EXAMPLES", "300"))


def mutate(text: str, rnd: random.Random, steps: int) -> str:
    for _ in range(steps):
        lines = text.split("\n")
        i = rnd.randrange(len(lines))
        op = rnd.randrange(5)
        if op == 0 and lines[i]:                          # drop a word
            words = lines[i].split(" ")
            del words[rnd.randrange(len(words))]
            lines[i] = " ".join(words)
        elif op == 1:                                     # insert a word
            words = lines[i].split(" ")
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(WORDS))
            lines[i] = " ".join(words)
        elif op == 2:                                     # duplicate a line
            lines.insert(i, lines[i])
        elif op == 3 and len(lines) > 1:                  # drop a line
            del lines[i]
        else:                                             # replace a word
            words = lines[i].split(" ")
            words[rnd.randrange(len(words))] = rnd.choice(WORDS)
            lines[i] = " ".join(words)
        text = "\n".join(lines)
    return text


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(SEEDS), st.integers(0, 2**32 - 1), st.integers(0, 4))
def test_mutated_specs_never_give_an_internal_error(planted, seed_text, seed, steps):
    from sadlang.plan.compile import compile_spec

    text = mutate(seed_text, random.Random(seed), steps)
    try:
        compile_spec(parse_spec(text, "f.sad"), planted)
    except SadError:
        pass
