"""Planning without weights: `sadlang plan` compiles from the config and tokenizer alone, and the
prompts it builds are the loaded model's, token for token."""

from pathlib import Path

import pytest

from sadlang.models.families import tiny_models
from sadlang.models.planning import planning_model

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [" When Mary and John went to the store, John gave a drink to", "Hello world", " x"]


def _agrees(ref: str) -> None:
    from sadlang.models import load_model

    light, model = planning_model(ref), load_model(ref)
    assert light is not None
    assert [light.to_tokens(t) for t in TEXTS] == [model.to_tokens(t) for t in TEXTS]
    assert light.n_ctx == model.n_ctx
    keys = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "architecture")
    assert {k: getattr(light.info, k) for k in keys} == {k: getattr(model.info, k) for k in keys}


@pytest.mark.parametrize("ref", ["planted", "planted-neox", *tiny_models()])
def test_planning_tokens_and_shape_equal_the_loaded_models(ref):
    _agrees(ref)


@pytest.mark.bundled
def test_planning_the_bundled_model_equals_loading_it():
    _agrees("smollm2-135m")


def test_plan_loads_no_weights_and_builds_the_same_prompts(monkeypatch, capsys):
    from sadlang.cli import main
    from sadlang.language import parse_file
    from sadlang.models import loader
    from sadlang.plan.compile import compile_spec

    spec = parse_file(ROOT / "specs" / "planted.sad")
    loaded = compile_spec(spec, loader.load_model("planted"))
    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("sadlang plan loaded the weights"))
    assert main(["plan", str(ROOT / "specs" / "planted.sad")]) == 0
    assert "planned from its config and tokenizer; weights not loaded" in capsys.readouterr().out
    light = compile_spec(spec, planning_model("planted"))
    assert {n: [p.tokens for p in ps.prompts] for n, ps in light.prompt_sets.items()} == \
        {n: [p.tokens for p in ps.prompts] for n, ps in loaded.prompt_sets.items()}


def test_a_model_whose_files_are_not_here_has_no_planning_view():
    assert planning_model("no-such-org/no-such-model") is None


def test_check_reports_model_dependent_spec_errors_before_loading_weights(tmp_path, monkeypatch, capsys):
    """A head out of range is exit 2 with its location, and the weights are never read."""
    from sadlang.cli import main
    from sadlang.models import loader

    bad = tmp_path / "bad.sad"
    bad.write_text((ROOT / "specs" / "planted.sad").read_text().replace(
        "claim reads_marker: head 1.0", "claim reads_marker: head 5.0"))
    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("the weights were loaded"))
    assert main(["check", str(bad)]) == 2
    assert "layer 5 is out of range: planted has layers 0..1" in capsys.readouterr().err
