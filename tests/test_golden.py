"""Reports must not change under refactors: today's JSON equals the golden files."""

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


# How far fp32 results may move between CPUs without any change to sadlang. Kernels differ in the
# order of their sums by instruction set (ATEN_CPU_CAPABILITY default / avx2 / avx512), thread
# count and BLAS build. A value read from the bundled model is a difference of logits built by
# 30 layers of d_model = 576 long fp32 dot products: unit roundoff 2^-24 (6e-8), grown ~sqrt(576)
# = 24 per dot product and summed over 30 layers, is ~4e-5 of the logits' scale (~1 to 10). We
# allow 1e-4 of max(1, |value|). Measured: 7e-6 (a planted attention weight of 0.5) and 1.1e-5 (a
# logit difference of 3.85) between avx512 and avx2. A real change of sadlang's arithmetic (another
# reference mean, selection rule or ablation) moves results by 1e-3 or more, which still fails.
TOLERANCE = 1e-4


def close(actual: float, golden: float) -> bool:
    return abs(actual - golden) <= TOLERANCE * max(1.0, abs(golden))


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
        assert close(actual, golden), f"{where}: {actual} != {golden}"
    elif isinstance(golden, str):
        assert NUMBER.sub("#", actual) == NUMBER.sub("#", golden), f"{where}: {actual!r} != {golden!r}"
        for a, g in zip(NUMBER.findall(actual), NUMBER.findall(golden)):
            assert abs(float(a) - float(g)) <= 1.01 * _ulp(g) or close(float(a), float(g)), \
                f"{where}: {actual!r} != {golden!r}"
    else:
        assert actual == golden, f"{where}: {actual!r} != {golden!r}"


def _report(spec: str) -> dict:
    from sadlang.runner.executor import load_and_compile, run_plan
    from sadlang.runner.report import to_json

    cwd = os.getcwd()
    os.chdir(ROOT)            # the reports name the spec as given: specs/NAME.sad
    try:
        _, model, plan = load_and_compile(spec)
        return json.loads(to_json(run_plan(plan, model)))
    finally:
        os.chdir(cwd)


def test_the_comparison_is_strict():
    golden = {"a": 0.524216, "t": "attention 0.958 -> 0.015 (effect +0.943)"}
    assert_same({"a": 0.524227, "t": "attention 0.958 -> 0.016 (effect +0.943)"}, golden)   # another CPU
    for bad in ({"a": 0.5252, "t": golden["t"]}, {"a": 0.524216, "t": "attention 0.958 -> 0.017 (effect +0.943)"},
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
    # the fingerprint is checked for form here, and for what it covers in test_models
    for key in set(golden) - {"verdicts", "summary", "model_fingerprint"}:
        assert_same(report[key], golden[key], f"$.{key}")
    assert re.fullmatch(r"[0-9a-f]{16}", report["model_fingerprint"])


def test_planted_report_is_unchanged():
    assert_claims_unchanged(_report("specs/planted.sad"), json.loads((GOLDEN / "planted.json").read_text()))


def _capabilities() -> list[str]:
    """The ATEN_CPU_CAPABILITY levels this machine's CPU can run."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return ["default"] + (["avx2"] if " avx2" in flags else []) + (["avx512"] if " avx512f" in flags else [])


@pytest.mark.parametrize("capability", _capabilities())
def test_planted_golden_holds_under_every_cpu_kernel(capability):
    """The same comparison in a process that runs torch's kernels of one instruction set: a digit
    that depends on the CPU is found here, not on a user's machine."""
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, 'tests'); import test_golden as g; "
            "golden = json.loads((g.GOLDEN / 'planted.json').read_text()); "
            "g.assert_claims_unchanged(g._report('specs/planted.sad'), golden)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.bundled
def test_ioi_report_is_unchanged():
    assert_claims_unchanged(_report("specs/ioi.sad"), json.loads((GOLDEN / "ioi.json").read_text()))
