"""The Python API and notebooks: `sadlang.check` on files, text and model objects already loaded,
the Report object's forms, the `%%sad` cell magic, and docs/notebook.ipynb executed end to end."""

import json
from pathlib import Path

import pytest
import torch

import sadlang
from sadlang.errors import SpecError
from sadlang.runner.executor import check_file

ROOT = Path(__file__).resolve().parents[1]
PLANTED = ROOT / "specs" / "planted.sad"


@pytest.fixture(scope="module")
def by_file():
    return sadlang.check(str(PLANTED))


def test_import_sadlang_is_cheap_and_names_load_on_first_use():
    import subprocess
    import sys

    code = "import sys, sadlang; print('torch' in sys.modules, callable(sadlang.check))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_check_a_file_gives_the_report_the_cli_gives(by_file):
    cli = check_file(PLANTED)
    assert [(v.name, v.status, v.value) for v in by_file.verdicts] == \
        [(v.name, v.status, v.value) for v in cli.verdicts]
    assert by_file.held and by_file.exit_code == 0
    assert by_file["reads_marker"].status == "held"
    with pytest.raises(KeyError, match="no claim 'nope'; claims: reads_marker"):
        by_file["nope"]
    assert repr(by_file).startswith(f"<sadlang Report {PLANTED} on planted: {len(cli.verdicts)} held")


def test_the_report_object_writes_every_form(by_file):
    data = json.loads(by_file.to_json())
    assert data["summary"]["held"] == len(by_file.verdicts) and data["schema"] == 2
    assert by_file.to_junit().startswith("<testsuite") and 'tests="29"' in by_file.to_junit()
    assert "HELD   reads_marker" in by_file.to_text() and str(by_file) == by_file.to_text()
    page = by_file.html()
    assert page.startswith("<!DOCTYPE html>") and "sad-card-0" in page and "planted_copy" in page
    frame = by_file._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame and "<script" not in frame


def test_a_model_object_of_the_session_is_used_without_loading_any(monkeypatch):
    """A LoadedModel is used as it is: no load happens (the loader is made to fail)."""
    from sadlang.models import loader

    model = loader.load_model("planted")
    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("the model was loaded again"))
    report = sadlang.check(PLANTED.read_text(), model=model)
    assert report.held and report.spec == "<python>"


def test_a_transformers_model_is_folded_as_a_copy_and_left_unchanged(by_file, caplog):
    from sadlang.models.builtin import build_hf_model, tokenizer

    hf = build_hf_model("planted")
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    with caplog.at_level("WARNING", logger="sadlang.models.loader"):
        report = sadlang.check(PLANTED, model=hf, tokenizer=tokenizer())
    assert all(torch.equal(before[k], v) for k, v in hf.state_dict().items())
    assert "folds a copy" in caplog.text and "unchanged" in caplog.text
    # the same weights: the same fingerprint and the same verdicts as loading it by name
    assert report.model_fingerprint == by_file.model_fingerprint
    assert [(v.name, v.status, v.value) for v in report.verdicts] == \
        [(v.name, v.status, v.value) for v in by_file.verdicts]


def test_a_transformers_model_without_a_tokenizer_is_a_clear_error():
    from sadlang.errors import ModelLoadError
    from sadlang.models.builtin import build_hf_model

    with pytest.raises(ModelLoadError, match=r"pass tokenizer=\.\.\. with the model"):
        sadlang.check(PLANTED, model=build_hf_model("planted"))


def test_a_model_object_with_a_half_precision_option_is_a_clear_error():
    from sadlang.errors import ModelLoadError
    from sadlang.models.builtin import build_hf_model, tokenizer

    with pytest.raises(ModelLoadError, match=r"option dtype = bf16 applies to models sadlang loads by name"):
        sadlang.check(PLANTED, model=build_hf_model("planted"), tokenizer=tokenizer(), dtype="bf16")


def test_a_folded_bridge_is_used_as_it_is(by_file):
    from sadlang.models import loader

    bridge = loader.load_model("planted").bridge
    model = loader.from_bridge(bridge)
    assert model.bridge is bridge
    report = sadlang.check(PLANTED, model=bridge)
    assert [v.status for v in report.verdicts] == [v.status for v in by_file.verdicts]


def test_keyword_options_override_option_lines_and_are_checked_like_them():
    text = PLANTED.read_text()
    point = sadlang.check(text, model="planted", confidence=None)
    assert all(v.interval is None for v in point.verdicts)
    with pytest.raises(SpecError, match="option batch_size = 0: input should be greater than or equal to 1"):
        sadlang.check(text, model="planted", batch_size=0)
    with pytest.raises(SpecError, match="unknown option 'bach_size'"):
        sadlang.check(text, model="planted", bach_size=8)


def test_spec_text_errors_carry_their_line():
    with pytest.raises(SpecError) as exc:
        sadlang.check("model planted\nclaim x: head 1.0 atends end -> bos\n")
    assert exc.value.span.file == "<python>" and exc.value.span.line == 2


def test_the_cell_magic_checks_the_cell_against_a_session_model(capsys):
    from sadlang.models import load_model
    from sadlang.notebook import run_cell

    ns = {"m": load_model("planted")}
    report = run_cell("--model m --option confidence=none --as r", PLANTED.read_text(), ns)
    assert report is not None and report.held and ns["r"] is report
    assert all(v.interval is None for v in report.verdicts)
    bad = PLANTED.read_text().replace("claim reads_marker: head 1.0", "claim reads_marker: head 9.0")
    assert run_cell("--model m", bad, ns) is None
    out = capsys.readouterr().out
    assert "<python>:" in out and "layer 9 is out of range" in out


def test_load_ext_registers_the_magic_in_ipython():
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "sadlang")
    ip.user_ns["m"] = sadlang.load_model("planted")
    report = ip.run_cell_magic("sad", "--model m", PLANTED.read_text())
    assert isinstance(report, sadlang.Report) and report.held


@pytest.mark.bundled
def test_the_docs_notebook_runs_end_to_end():
    """docs/notebook.ipynb, executed in a fresh kernel: no cell fails and the IOI claims hold."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    where = {"metadata": {"path": str(ROOT / "docs")}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=where).execute()
    texts = ["".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for o in c.get("outputs", [])) for c in nb.cells if c.cell_type == "code"]
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert "True" in texts[3] and "held" in texts[3]                        # every IOI claim held
    assert "1 held, 0 failed" in texts[5]


@pytest.mark.bundled
def test_the_tutorial_spec_holds_as_docs_tutorial_shows():
    """docs/tutorial.md ends with every claim of specs/tutorial.sad held after sequential looks."""
    report = sadlang.check(ROOT / "specs" / "tutorial.sad")
    assert {v.name: v.status for v in report.verdicts} == dict.fromkeys(
        ["solves", "prev_token", "duplicate", "suppressor", "k_comp", "causal"], "held")
    assert "6 held, 0 failed, 0 inconclusive, 0 errors" in (ROOT / "docs" / "tutorial.md").read_text()
