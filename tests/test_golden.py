"""Reports must not change under refactors: today's JSON equals the golden files."""

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _ulp(text: str) -> float:
    """One unit of the last printed digit of a number written as `text`."""
    mantissa = text.lower().split("e")[0]
    digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exp = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    return 10.0 ** (exp - digits)


def assert_same(actual, golden, where="$"):
    assert type(actual) is type(golden) or {type(actual), type(golden)} <= {int, float}, where
    if isinstance(golden, dict):
        assert sorted(actual) == sorted(golden), f"{where}: keys differ"
        for k in golden:
            assert_same(actual[k], golden[k], f"{where}.{k}")
    elif isinstance(golden, list):
        assert len(actual) == len(golden), f"{where}: lengths differ"
        for i, (a, g) in enumerate(zip(actual, golden)):
            assert_same(a, g, f"{where}[{i}]")
    elif isinstance(golden, float) or isinstance(actual, float):
        assert abs(actual - golden) <= 1.5e-6 + 1e-6 * abs(golden), f"{where}: {actual} != {golden}"
    elif isinstance(golden, str):
        assert NUMBER.sub("#", actual) == NUMBER.sub("#", golden), f"{where}: {actual!r} != {golden!r}"
        for a, g in zip(NUMBER.findall(actual), NUMBER.findall(golden)):
            assert abs(float(a) - float(g)) <= 1.01 * _ulp(g), f"{where}: {actual!r} != {golden!r}"
    else:
        assert actual == golden, f"{where}: {actual!r} != {golden!r}"


def _report(spec: str) -> dict:
    from sadlang.check.executor import load_and_compile, run_plan
    from sadlang.check.report import to_json

    cwd = os.getcwd()
    os.chdir(ROOT)            # the reports name the spec as given: specs/NAME.sad
    try:
        _, model, plan = load_and_compile(spec)
        return json.loads(to_json(run_plan(plan, model)))
    finally:
        os.chdir(cwd)


def test_the_comparison_is_strict():
    golden = {"a": 0.524216, "t": "attention 0.958 -> 0.015 (effect +0.943)"}
    assert_same({"a": 0.524217, "t": "attention 0.958 -> 0.016 (effect +0.943)"}, golden)
    for bad in ({"a": 0.52422, "t": golden["t"]}, {"a": 0.524216, "t": "attention 0.958 -> 0.017 (effect +0.943)"},
                {"a": 0.524216, "t": "attention 0.958 => 0.015 (effect +0.943)"}):
        with pytest.raises(AssertionError):
            assert_same(bad, golden)


def assert_claims_unchanged(report: dict, golden: dict) -> None:
    """Every claim of the golden report comes out the same; claims added to the spec since
    only add verdicts (and counts)."""
    by_name = {v["name"]: v for v in report["verdicts"]}
    assert set(by_name) >= {v["name"] for v in golden["verdicts"]}
    for v in golden["verdicts"]:
        assert_same(by_name[v["name"]], v, f"$.verdicts[{v['name']}]")
    for key in set(golden) - {"verdicts", "summary"}:
        assert_same(report[key], golden[key], f"$.{key}")


def test_planted_report_is_unchanged():
    assert_claims_unchanged(_report("specs/planted.sad"), json.loads((GOLDEN / "planted.json").read_text()))


@pytest.mark.bundled
def test_ioi_report_is_unchanged():
    assert_claims_unchanged(_report("specs/ioi.sad"), json.loads((GOLDEN / "ioi.json").read_text()))
