"""Verdicts that can be trusted: intervals, three statuses, sound baselines (issue: trustworthy
verdicts). Statistics are checked on synthetic per-prompt values with a known truth; the rules
that decide circuit claims on the planted model, whose circuit is known."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sadlang.lang.ast import Bound, Quantifier
from sadlang.stats import binomial_interval, bootstrap_interval, decide, looks, mean_interval, per_look_confidence
from sadlang.stats.baseline import permutation_p
from sadlang.stats.quantified import quantified

ROOT = Path(__file__).resolve().parents[1]


# ---- intervals against known values
def test_binomial_interval_is_clopper_pearson():
    iv = binomial_interval(6, 12, 0.95)            # textbook: [0.2109, 0.7891]
    assert abs(iv.lo - 0.21094) < 1e-4 and abs(iv.hi - 0.78906) < 1e-4
    all12 = binomial_interval(12, 12, 0.95)         # lower bound (0.025)^(1/12)
    assert abs(all12.lo - 0.025 ** (1 / 12)) < 1e-9 and all12.hi == 1.0
    assert binomial_interval(0, 5, 0.9).lo == 0.0


def test_bootstrap_is_seeded_paired_and_exact_for_constants():
    a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert mean_interval(a, 0.95, seed=3) == mean_interval(a, 0.95, seed=3)
    assert mean_interval([2.5] * 7, 0.95).lo == mean_interval([2.5] * 7, 0.95).hi == 2.5
    # paired: a column and itself plus one give a ratio interval that does not move
    b = [x + 1.0 for x in a]
    iv = bootstrap_interval([a, b], lambda m: m[..., 1] - m[..., 0], 0.95)
    assert iv is not None and abs(iv.lo - 1.0) < 1e-12 and abs(iv.hi - 1.0) < 1e-12
    # a ratio whose denominator is mostly zero has no interval
    assert bootstrap_interval([[0.0] * 5, [1.0] * 5], lambda m: np.where(m[..., 0] > 0, 1.0, np.nan), 0.95) is None


def test_decisions_need_the_whole_interval():
    ge = Bound(cmp=">=", value=0.5)
    assert decide(0.55, 0.9, ge) == "held" and decide(0.1, 0.45, ge) == "failed"
    assert decide(0.40, 0.64, ge) == "inconclusive"     # necessity 0.517 [0.40, 0.64] is not HELD
    le = Bound(cmp="<=", value=0.1)
    assert decide(0.0, 0.05, le) == "held" and decide(0.2, 0.3, le) == "failed"
    assert decide(0.05, 0.2, le) == "inconclusive"


def test_quantifiers():
    at_least = Quantifier(kind="at_least", share=0.8, cmp=">=")
    assert quantified(12, 12, at_least, 0.95)[0] == "inconclusive"   # 12/12 backs only >= 73.5%
    assert quantified(60, 60, at_least, 0.95)[0] == "held"
    assert quantified(3, 12, at_least, 0.95)[0] == "failed"
    assert quantified(12, 12, at_least, None)[0] == "held"          # confidence none: point verdicts
    every = Quantifier(kind="all")
    assert quantified(11, 12, every, 0.95)[0] == "failed" and quantified(12, 12, every, 0.95)[0] == "held"
    at_most = Quantifier(kind="at_most", share=0.5)
    assert quantified(0, 30, at_most, 0.95)[0] == "held" and quantified(30, 30, at_most, 0.95)[0] == "failed"


def test_permutation_p_never_zero():
    assert permutation_p(1.0, [0.0] * 19) == 1 / 20
    assert permutation_p(0.0, [0.0] * 19) == 1.0


# ---- coverage: when the truth sits on the wrong side of the bound, HELD is rare
SEEDS = 400
CONFIDENCE = 0.95


def _draw(rng: np.random.Generator, family: str, n: int, mean: float) -> np.ndarray:
    if family == "normal":
        return rng.normal(mean, 1.0, n)
    if family == "exponential":                       # skewed: the hard case for a bootstrap
        return rng.exponential(1.0, n) - 1.0 + mean
    return rng.uniform(-1.0, 1.0, n) + mean


@pytest.mark.parametrize("family", ["normal", "exponential", "uniform"])
@pytest.mark.parametrize("n", [6, 12, 40])
def test_mean_claims_hold_falsely_at_most_one_minus_confidence(family, n):
    """Truth exactly at the bound (the worst case of 'below'): `mean >= 0` HELD in at most 5%."""
    bound = Bound(cmp=">=", value=0.0)
    held = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        iv = mean_interval(list(_draw(rng, family, n, 0.0)), CONFIDENCE, seed)
        held += decide(iv.lo, iv.hi, bound) == "held"
    assert held / SEEDS <= 1 - CONFIDENCE, f"{held} of {SEEDS}"


@pytest.mark.parametrize("n", [12, 50])
def test_share_claims_hold_falsely_at_most_one_minus_confidence(n):
    q = Quantifier(kind="at_least", share=0.8, cmp=">=")
    rng = random.Random(0)
    held = sum(quantified(sum(rng.random() < 0.8 - 1e-9 for _ in range(n)), n, q, CONFIDENCE)[0] == "held"
               for _ in range(2000))
    assert held / 2000 <= 1 - CONFIDENCE


def _sequential(values_of, bound: Bound, first: int, cap: int, confidence: float) -> str:
    """The `sample first up to cap` procedure: looks at doubling sizes, stop when decided."""
    sizes = looks(first, cap)
    c = per_look_confidence(confidence, len(sizes))
    status = "inconclusive"
    for n in sizes:
        iv = mean_interval(values_of(n), c, 0)
        status = decide(iv.lo, iv.hi, bound)
        if status != "inconclusive":
            break
    return status


@pytest.mark.parametrize("family", ["normal", "exponential"])
def test_optional_stopping_keeps_false_helds_under_one_minus_confidence(family):
    bound = Bound(cmp=">=", value=0.0)
    held = 0
    for seed in range(SEEDS):
        data = _draw(np.random.default_rng(seed), family, 96, 0.0)
        held += _sequential(lambda n, data=data: list(data[:n]), bound, 12, 96, CONFIDENCE) == "held"
    assert held / SEEDS <= 1 - CONFIDENCE, f"{held} of {SEEDS}"


def test_optional_stopping_decides_a_clear_truth_early():
    data = np.random.default_rng(0).normal(1.0, 1.0, 96)
    assert _sequential(lambda n: list(data[:n]), Bound(cmp=">=", value=0.0), 12, 96, CONFIDENCE) == "held"
    assert looks(12, 96) == [12, 24, 48, 96] and looks(12, 100) == [12, 24, 48, 96, 100] and looks(12, None) == [12]


# ---- baselines on the planted model (its circuit is known)
PLANTED = '''model planted
method acc

pool names  = " Mary" " John" " Alice" " Bob" " Tom" " Kate"

prompts copy:
  template "When{A} went to the x,{B} said"
  A, B from names distinct
  answer " x" against " y"
  sample SAMPLE seed 0

circuit idle:
  0.2
  1.2

circuit planted_copy:
  0.0
  1.0 at end -> "x"
  edge 0.0 -> 1.0 via key
  edge 0.0 -> 1.0 via value
  edge 1.0 -> logits

circuit same_layer:
  1.0
  1.1
  1.2

'''


def _check(planted, text: str):
    from sadlang.language import parse_spec
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    plan = compile_spec(parse_spec(text, "v.sad"), planted)
    return plan, {v.name: v for v in run_plan(plan, planted).verdicts}


@pytest.mark.parametrize("sample", [2, 3, 4, 16])
def test_a_circuit_of_idle_heads_is_never_faithful_by_mean_ablation(planted, sample):
    """The leak regression: a mean taken over the measured prompts kept the prompt in its own mean.
    Now the mean is a held-out draw, disjoint from the measured prompts, and a claim the empty
    circuit meets as well is vacuous."""
    from sadlang.circuits.ablation import mean_members

    plan, v = _check(planted, PLANTED.replace("SAMPLE", str(sample))
                     + "claim idle: circuit idle is faithful >= 30% by mean ablation\n"
                     + "claim empty: circuit idle is faithful >= 30% by zero ablation\n")
    assert v["idle"].status == "failed" and "VACUOUS" in v["idle"].measured
    assert v["empty"].status == "failed" and abs(v["empty"].details["empty faithfulness"]) < 1e-3
    ref = plan.prompt_sets["copy:reference"]
    measured = {p.text for p in plan.prompt_sets["copy"].prompts}
    assert len(ref.prompts) == min(32, 30 - len(measured)) and not measured & {p.text for p in ref.prompts}
    assert "copy:reference" in v["idle"].details["reference"]
    for p in plan.prompt_sets["copy"].prompts:         # even the set itself as reference leaves p out
        from sadlang.evidence.store import PromptSetEvidence

        ev = PromptSetEvidence(planted, plan.prompt_sets["copy"].prompts, plan.options, name="copy")
        assert all(ev.prompts[j].tokens != p.tokens for j in mean_members(p, ev, "copy"))


def test_random_circuits_have_exactly_the_claimed_size():
    from sadlang.circuits.metrics import RandomCircuitError, random_circuits

    nodes = [[(3, 0, 5), (3, 1, 5), (3, 1, 7), (5, 2, None)]] * 3
    draws = random_circuits(nodes, 8, 50, seed=1)
    assert len(draws) == 50
    for d in draws:
        heads = {(layer, head) for layer, head, _ in d[0]}
        assert len(heads) == 3 and not heads & {(3, 0), (3, 1), (5, 2)}
        assert sorted(layer for layer, _ in heads) == [3, 3, 5]
        assert [pos for _, _, pos in d[0]] == [5, 5, 7, None] and d[0][1][:2] == d[0][2][:2]
    with pytest.raises(RandomCircuitError, match="uses 2 of layer 3"):
        random_circuits([[(3, 0, None), (3, 1, None)]], 3, 5, seed=0)


def test_beats_random_fails_for_a_null_circuit_and_no_value_is_infinite(planted):
    _, v = _check(planted, PLANTED.replace("SAMPLE", "8")
                  + "claim null: circuit idle beats random by >= 2x by zero ablation\n"
                  + "claim huge: circuit planted_copy beats random by >= 10000x by zero ablation\n"
                  + "claim real: circuit planted_copy is faithful within 90%..110% by zero ablation\n"
                  + "claim off:  circuit planted_copy is faithful within 20%..50% by zero ablation\n")
    assert v["null"].status == "failed"
    assert v["null"].details["random circuits"] == 20 and v["null"].details["p-value"] > 0.05
    for verdict in v.values():
        assert verdict.value is not None and math.isfinite(verdict.value)
    assert v["real"].status == "held" and v["off"].status == "failed"
    assert v["real"].interval is not None and v["real"].n_prompts == 8


def test_a_layer_without_free_heads_is_a_spec_error(planted):
    from sadlang.errors import SpecError

    with pytest.raises(SpecError, match="uses 3 of layer 1's 4 heads"):
        _check(planted, PLANTED.replace("SAMPLE", "4")
               + "claim full: circuit same_layer beats random by >= 2x by zero ablation\n")


def _cli(tmp_path, body: str, *args: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "u.sad"
    spec.write_text(PLANTED.replace("SAMPLE", "4") + body)
    return subprocess.run([sys.executable, "-m", "sadlang.cli", "check", str(spec), "-q", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_inconclusive_is_a_third_status_everywhere(tmp_path):
    junit = tmp_path / "j.xml"
    r = _cli(tmp_path, "claim unsure: accuracy >= 0.5\nclaim sure: logit_diff > 1\n", "--format", "json",
             "--junit", str(junit))
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    unsure = next(v for v in data["verdicts"] if v["name"] == "unsure")
    assert unsure["status"] == "inconclusive" and unsure["confidence"] == 0.95 and unsure["n_prompts"] == 4
    assert unsure["interval"]["lo"] < 0.5 <= unsure["interval"]["hi"]
    assert data["summary"]["inconclusive"] == 1 and data["exit_code"] == 1
    assert 'skipped="1"' in junit.read_text() and "<skipped" in junit.read_text()
    assert _cli(tmp_path, "claim unsure: accuracy >= 0.5\n", "--allow-inconclusive").returncode == 0
    text = _cli(tmp_path, "claim unsure: accuracy >= 0.5\n").stdout
    assert "INCONCLUSIVE unsure" in text and "1 inconclusive" in text
    assert _cli(tmp_path, "option confidence = none\nclaim unsure: accuracy >= 0.5\n").returncode == 0


def test_mean_claims_judge_no_prompt_alone(tmp_path):
    r = _cli(tmp_path, "claim m: mean logit_diff >= 1000\n", "-v")
    assert r.returncode == 1 and "FAILED m" in r.stdout
    assert " bad prompt" not in r.stdout and " ok  prompt" not in r.stdout and "prompt 0" in r.stdout


def test_thresholds_are_shown_as_written(tmp_path):
    r = _cli(tmp_path, "claim f: circuit planted_copy is faithful >= 99.62% by zero ablation\n"
                       "claim q: logit_diff > 1 in >= 99.5% of prompts\n")
    assert "faithful >= 99.62%" in r.stdout and "in >= 99.5% of prompts" in r.stdout


def test_over_names_the_reference_and_only_for_mean(tmp_path):
    r = _cli(tmp_path, "claim f: circuit idle is faithful >= 30% by zero ablation over copy\n")
    assert r.returncode == 2 and "reference of a mean ablation" in r.stderr
    r = _cli(tmp_path, "claim f: circuit idle is faithful >= 30% by mean ablation over nowhere\n")
    assert r.returncode == 2 and "undefined reference prompt set 'nowhere'" in r.stderr
    r = _cli(tmp_path, "claim f: circuit planted_copy is faithful >= 90% by mean ablation over copy\n", "-v")
    assert "mean over copy (4 prompts" in r.stdout


LEAK = '''model {model}
method acc

pool names  = " Mary" " John" " Alice" " Bob" " Tom" " Kate"

prompts copy:
  template "When{{A}} went to the x,{{B}} said"
  A, B from names distinct
  answer "{{A}}" against "{{B}}"
  sample {sample} seed 0

prompts others:
  template "When{{A}} went to the x,{{B}} said"
  A, B from names distinct
  answer "{{A}}" against "{{B}}"
  sample 12 seed 5

claim a: logit_diff > -1000 on copy
'''


@pytest.mark.parametrize("model_name", ["planted", "tiny-gpt2", "tiny-llama"])
def test_the_values_a_mean_ablation_writes_do_not_depend_on_the_measured_prompts(model_name):
    """The leak, engine-level: with the prompt in its own mean, prompt 0's replacement values moved
    with the number of prompts measured beside it (its weight was 1/g). Now they are the mean over
    the reference alone, the same for 2 or 16 measured prompts, and never contain prompt 0."""
    from sadlang.circuits.ablation import head_z
    from sadlang.circuits.metrics import CircuitLab
    from sadlang.language import parse_spec
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import evidence_stores

    model = load_model(model_name)
    values = []
    for sample in (2, 16):
        plan = compile_spec(parse_spec(LEAK.format(model=model_name, sample=sample), "leak.sad"), model)
        stores = evidence_stores(plan, model)
        lab = CircuitLab(stores["copy"], "mean", stores["others"], 8)
        values.append(lab.values[0])
        first = stores["copy"].prompts[0]
        members = [j for j, q in enumerate(stores["others"].prompts) if q.tokens != first.tokens]
        expected = torch.stack([head_z(stores["others"].acts(j), model) for j in members]).mean(0)
        assert torch.allclose(values[-1], expected, atol=1e-6)
    assert torch.equal(values[0], values[1])


def test_up_to_decides_each_claim_at_its_own_look(planted):
    text = PLANTED.replace("sample SAMPLE seed 0", "sample 4 up to 32 seed 0")
    _, v = _check(planted, text + "claim acc: accuracy >= 0.8\nclaim margin: mean logit_diff >= 5\n")
    # 4 looks (4, 8, 16, 32) at 1 - 0.05 / 4 each: 32 of 32 back >= 85.3%, 16 of 16 only 72.8%
    assert v["acc"].status == "held" and v["acc"].n_prompts == 32 and v["acc"].details["look"]["index"] == 4
    assert v["acc"].confidence == pytest.approx(0.9875)
    assert v["margin"].status == "held" and v["margin"].n_prompts == 4 and "look 1 of 4" in v["margin"].measured


@pytest.mark.parametrize("line,why", [("sample 4 up to 4 seed 0", "the cap must be above 4"),
                                      ("sample 4 up to 99999 seed 0", "over the limit")])
def test_up_to_is_validated(tmp_path, line, why):
    spec = tmp_path / "u.sad"
    spec.write_text(PLANTED.replace("sample SAMPLE seed 0", line) + "claim a: logit_diff > 1\n")
    r = subprocess.run([sys.executable, "-m", "sadlang.cli", "check", str(spec)], capture_output=True, text=True)
    assert r.returncode == 2 and why in r.stderr and ":10:3:" in r.stderr


@pytest.mark.parametrize("quantifier,error", [
    ("in >= 80 of prompts", "written 80% or 0.8 (a fraction), not 80, or `in >= 80 prompts` for a count"),
    ("in >= 1.5 of prompts", "written 1.5% or 0.015"),
    ("in >= 2.5 prompts", "a whole number, not 2.5"),
    ("in >= 2 prompts", None), ("in >= 80% of prompts", None), ("in >= 0.8 of prompts", None),
])
def test_shares_are_unambiguous_and_counts_are_counts(tmp_path, quantifier, error):
    r = _cli(tmp_path, f"claim q: logit_diff > 1 {quantifier}\n")
    if error is None:
        assert r.returncode in (0, 1) and "error" not in r.stderr, r.stderr
        if "prompts" in quantifier and "of" not in quantifier:
            assert "in >= 2 prompts" in r.stdout and "HELD" in r.stdout
    else:
        line = PLANTED.replace("SAMPLE", "4").count("\n") + 1            # the claim's line
        assert r.returncode == 2 and error in r.stderr and f"u.sad:{line}:" in r.stderr, r.stderr


def test_a_relative_effect_needs_a_positive_clean_value():
    from sadlang.claims.base import judged_effect

    bound = Bound(cmp=">=", value=0.5)
    assert judged_effect(2.0, 0.5, "lowers", True, bound) == (0.75, True, "")
    value, passed, note = judged_effect(-0.2, -1.3, "lowers", True, bound)   # was +550%
    assert value is None and not passed and "not positive" in note
    assert judged_effect(-0.2, -1.3, "lowers", False, bound)[:2] == (pytest.approx(1.1), True)


def test_a_value_within_cpu_tolerance_of_its_bound_says_so(tmp_path):
    from sadlang.stats.decide import near_note

    assert near_note(0.80003, 0.95, 0.8) and not near_note(0.81, 0.95, 0.8)
    assert "another CPU" in near_note(0.5, 2.00001, 2.0)
    # the planted copy circuit keeps 1.003477 of F(M) on these 4 prompts, the same in every resample
    r = _cli(tmp_path, "claim f: circuit planted_copy is faithful >= 100.347% by zero ablation\n"
                       "claim g: circuit planted_copy is faithful >= 99% by zero ablation\n")
    near = r.stdout.split("HELD   g")[0]
    assert "HELD   f" in r.stdout and "another CPU's fp32 rounding could change this verdict" in near
    assert "another CPU" not in r.stdout.split("HELD   g")[1]
