"""Value paths: the exact value shares of a head's output, and traced circuits extended with the
heads that feed a traced head's values, on `planted-values` (head 0.2 matters only through
1.0's values, so an attention trace cannot find it)."""

import pytest
import torch

from tests.test_attribution import DISCOVER

PREAMBLE = DISCOVER.split("circuit truth")[0].replace("model planted-mlp", "model planted-values")
VALUES_SPEC = PREAMBLE + '''circuit truth:
  0.0
  0.2
  1.0
circuit acc = trace of copy at frequency 0.5
circuit acc_v = trace of copy at frequency 0.5 with values above 50%
claim acc_misses:    circuit acc matches truth with f1 >= 0.99 on copy
claim acc_v_finds:   circuit acc_v matches truth with f1 >= 0.99 on copy
claim acc_edges:     circuit acc_v matches acc at edge level with f1 >= 0.99 on copy
claim acc_faithful:  circuit acc is faithful >= 80% by resample ablation from nomark on copy
claim accv_faithful: circuit acc_v is faithful >= 80% by resample ablation from nomark on copy
claim need02:        ablate head 0.2 zero lowers logit_diff by >= 50% in all prompts on copy
'''


@pytest.fixture(scope="module")
def planted_values():
    from sadlang.models import load_model
    return load_model("planted-values")


def test_the_value_feeder_is_found_and_makes_the_traced_circuit_faithful(planted_values):
    """The attention trace finds {0.0, 1.0} and is not faithful (0.2 is ablated); extended with
    value feeders it is {0.0, 0.2, 1.0}, the planted truth, and faithful; its edges gain exactly
    0.2 -> 1.0."""
    from sadlang.language import parse_spec
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    report = run_plan(compile_spec(parse_spec(VALUES_SPEC, "v.sad"), planted_values), planted_values)
    v = {x.name: x for x in report.verdicts}
    assert {k: x.status for k, x in v.items()} == {
        "acc_misses": "failed", "acc_v_finds": "held", "acc_edges": "failed", "acc_faithful": "failed",
        "accv_faithful": "held", "need02": "held"}, [x.measured for x in report.verdicts]
    assert v["acc_misses"].details["only there"] == ["0.2"]
    assert v["acc_edges"].details["only here"] == ["0.2 -> 1.0"] and v["acc_edges"].details["only there"] == []
    assert v["acc_faithful"].value < 0.01 and v["accv_faithful"].value == pytest.approx(1.0, abs=1e-3)


def test_the_planted_value_share_is_one_and_the_key_feeder_s_is_zero(planted_values):
    """At the end, 1.0's output is f2 copied from the marker: 0.2's share is 1, 0.0's (which 1.0
    reads through its key only) is 0, up to the attention 1.0 leaves on other positions."""
    from sadlang.circuits.values import unit_shares, value_shares
    from sadlang.decomp.activations import run_prompts
    from sadlang.decomp.components import ComponentTable
    from sadlang.decomp.readers import value_outputs

    m = planted_values
    acts = run_prompts(m, [m.to_tokens(" When Mary went to the x, John said")])[0]
    shares = value_shares(acts, m.weights, value_outputs(acts, m.weights), 1, 0, acts.n - 1)
    assert float(shares.sum()) == pytest.approx(1.0, abs=1e-5)
    units = unit_shares(shares, ComponentTable(1, m.info.n_heads, acts.n))
    assert units[(0, 2)] == pytest.approx(1.0, abs=1e-3)
    assert abs(units[(0, 0)]) < 1e-3
    assert torch.isfinite(shares).all()


@pytest.mark.parametrize(("line", "message"), [
    ("circuit c = trace of copy with values above 0%", "(0%, 100%]"),
    ("circuit c = trace of copy with values above 150%", "(0%, 100%]"),
])
def test_value_share_out_of_range_is_a_spec_error(line, message):
    from sadlang.errors import SpecError
    from sadlang.language import parse_spec

    text = VALUES_SPEC.split("circuit truth")[0] + line + "\nclaim ok: logit_diff > 0 on copy\n"
    with pytest.raises(SpecError) as err:
        parse_spec(text, "v.sad")
    assert message in str(err.value) and err.value.span is not None and err.value.span.line == 13


def test_sadlang_circuit_prints_the_value_feeders(tmp_path, capsys):
    from sadlang.cli import main

    spec = tmp_path / "v.sad"
    spec.write_text(VALUES_SPEC)
    assert main(["circuit", str(spec), "acc_v"]) == 0
    out = capsys.readouterr().out
    assert "values   1 unit(s) added" in out and "1.0 <- 0.2" in out, out
