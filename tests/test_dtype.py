"""`option dtype = bf16 | fp16`: half-precision models, fp32 decompositions, and the exactness they
reach, measured; and every claim kind on a model whose circuit is elsewhere gives verdicts, never
an internal error."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sadlang.models import load_model
from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.trace.exactness import RESIDUAL_BOUND, SCORE_BOUND, measure_texts

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["When Mary and John went to the store, John gave a drink to"]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_a_half_precision_model_runs_half_and_decomposes_in_fp32(dtype):
    model = load_model("tiny-llama", "cpu", dtype=dtype)
    fp32 = load_model("tiny-llama", "cpu")
    assert model is not fp32 and model.info.dtype == dtype and fp32.info.dtype == "fp32"
    assert model.info.fingerprint != fp32.info.fingerprint          # other weights, other caches
    assert next(model.bridge.original_model.parameters()).dtype == {"bf16": torch.bfloat16,
                                                                    "fp16": torch.float16}[dtype]
    assert model.weights.W_Q.dtype == torch.float32
    half, full = measure_texts(model, TEXTS), measure_texts(fp32, TEXTS)
    assert full.within_fp32_bounds and full.score < SCORE_BOUND and full.residual < RESIDUAL_BOUND
    # half precision: the decomposition sums to the model only to its rounding, and says how far
    assert math.isfinite(half.score) and half.score > full.score and half.residual > full.residual
    assert half.score < 0.05 * half.score_scale and half.residual < 0.05 * half.residual_scale
    assert dtype in half.text()


def test_every_claim_kind_runs_on_a_bf16_model(tmp_path):
    spec = (ROOT / "specs" / "planted.sad").read_text().replace("method acc\n", "method acc\noption dtype = bf16\n", 1)
    path = tmp_path / "planted_bf16.sad"
    path.write_text(spec)
    _, model, plan = load_and_compile(path)
    assert model.info.dtype == "bf16"
    report = run_plan(plan, model)
    assert [v.name for v in report.verdicts if v.status == "error"] == []
    assert all(v.status == "held" for v in report.verdicts), [v.name for v in report.verdicts if v.status != "held"]


def test_a_bad_dtype_is_a_spec_error_naming_the_choices(tmp_path):
    path = tmp_path / "bad.sad"
    path.write_text("model tiny-llama\noption dtype = fp8\n")
    done = subprocess.run([sys.executable, "-m", "sadlang.cli", "check", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"{path}:2:" in done.stderr and "fp32" in done.stderr and "bf16" in done.stderr


def test_the_exactness_command_reports_bounds_and_passes_fp32():
    command = [sys.executable, "-m", "sadlang.cli", "exactness", "--model", "tiny-llama", "--dtype", "bf16"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "bf16" in done.stdout and "PAST the fp32 bounds" in done.stdout
    done = subprocess.run([sys.executable, "-m", "sadlang.cli", "exactness", "--model", "tiny-gpt2"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "within the fp32 bounds" in done.stdout


def test_signal_claims_without_the_edge_fail_with_a_finite_value():
    """On a model without the planted circuit the signal claims' edge is absent: they fail and say
    so (they used to raise on a NaN consistency, and `is data` could hold with no edge at all)."""
    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad", model_override="tiny-gpt2")
    report = run_plan(plan, model, only={"stable", "data"})
    for v in report.verdicts:
        assert v.status == "failed" and v.value is not None and math.isfinite(v.value)
        assert "the edge is in 0 of" in v.measured
    assert not [v for v in run_plan(plan, model).verdicts if "internal error" in v.measured]
