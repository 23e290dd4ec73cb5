"""Checks on a local Ray cluster (`ray.init(num_cpus=2)`): the same bytes as a local check, an
actor killed mid-run changes nothing, and a spec error never starts an actor.

Ray is a test extra (`pip install -e '.[test]'`); under CI=true a missing Ray fails these tests
instead of skipping them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest
import torch
from test_verdicts import PLANTED

from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.runner.report import to_json

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("CI") == "true":
    import ray
else:
    ray = pytest.importorskip("ray", reason="Ray is a test extra: pip install -e '.[test]'")

from sadlang.runner.ray_executor import FAULT_ENV, RayConfig, RayStats, run_plan_ray  # noqa: E402

# claims of specs/ioi.sad that cover every way a claim runs on Ray: sharded per-prompt kinds
# (behaviour, attends, local ablation with random controls), a search, a set-wide
# aggregate, a control-signal sink and a mean node ablation (the circuit tests of the planted
# spec cover the rest)
IOI_CLAIMS = {"solves", "margin", "suppressor", "prev_all", "k_causal", "sink", "suppressor_node"}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _local(plan, model, only: set[str] | None = None):
    """The single-process report with the actors' torch threads (num_cpus = 1): CPU kernels
    round differently with other thread counts (docs/scaling.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_plan(plan, model, only=only)
    finally:
        torch.set_num_threads(threads)


def _both(spec: str, only: set[str] | None = None, stats: RayStats | None = None) -> tuple[str, str, object]:
    """(local JSON, Ray JSON, Ray report) of a spec, named as the CLI names it."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        _, model, plan = load_and_compile(spec)
        local = _local(plan, model, only)
        remote = run_plan_ray(plan, model, RayConfig(actors=2), only=only, stats=stats)
    finally:
        os.chdir(cwd)
    return to_json(local), to_json(remote), remote


def _complete(report_json: str) -> None:
    """Every per-prompt verdict of a JSON report has each prompt of its set exactly once, in order."""
    for v in json.loads(report_json)["verdicts"]:
        if v.get("prompts"):
            assert [p["index"] for p in v["prompts"]] == list(range(len(v["prompts"]))), v["name"]


@pytest.mark.bundled
def test_reduced_ioi_report_is_byte_identical_on_ray(cluster, tmp_path):
    # the spec's first look at a fixed sample (test_sampling_up_to_... covers the looks on Ray)
    fixed = tmp_path / "ioi.sad"
    fixed.write_text((ROOT / "specs" / "ioi.sad").read_text().replace("sample 12 up to 96", "sample 12"))
    stats = RayStats()
    local, remote, report = _both(str(fixed), IOI_CLAIMS, stats)
    assert remote == local
    assert {v.name for v in report.verdicts} == IOI_CLAIMS
    assert stats.tasks == {"shard": 2, "search": 1, "claim": 3}   # 12 prompts of 2 lengths: 2 shards
    _complete(remote)


# the planted copy task of tests/test_verdicts.py, sampled 4 up to 16 prompts
UP_TO = PLANTED.replace("sample SAMPLE seed 0", "sample 4 up to 16 seed 0") + """
claim acc:      accuracy >= 0.7
claim margin:   mean logit_diff >= 5
claim reads:    head 1.0 attends end -> "x" with weight >= 0.9 in >= 70% of prompts
claim faithful: circuit planted_copy is faithful >= 90% by zero ablation
"""


def test_sampling_up_to_a_cap_gives_the_same_report_on_ray(cluster, tmp_path):
    """Look by look on the actors as in the local executor: the same verdicts, looks and prompts."""
    spec = tmp_path / "up_to.sad"
    spec.write_text(UP_TO)
    local, remote, report = _both(str(spec))
    assert remote == local
    looks = {v.name: v.details["look"]["index"] for v in report.verdicts}
    assert looks["margin"] == 1 and looks["acc"] > 1 and all(v.status == "held" for v in report.verdicts)


def test_a_spec_error_is_reported_before_any_actor_starts(tmp_path, monkeypatch, capsys):
    from sadlang.cli import main

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a spec with an error")

    monkeypatch.setattr(ray, "init", no_ray)
    bad = tmp_path / "bad.sad"
    bad.write_text("model planted\nprompts p:\n  template \"a b x\"\n"
                   "claim c: head 9.0 attends 2 -> 0 with weight >= 0.5 in all prompts\n")
    assert main(["check", str(bad), "--ray", "--actors", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err and "head 9.0" in err


@pytest.fixture(scope="module")
def planted_on_ray(cluster, tmp_path_factory):
    """specs/planted.sad checked through the CLI, the spec asking for Ray itself (`option
    executor = ray`), while the first shard task kills its actor (the test hook); and the
    single-process report. One Ray run serves both tests below (actors take seconds to start)."""
    from sadlang.cli import main

    tmp = tmp_path_factory.mktemp("planted")
    marker, spec, out = tmp / "killed", tmp / "planted.sad", tmp / "r.json"
    src = (ROOT / "specs" / "planted.sad").read_text()
    spec.write_text(src.replace("model planted\n", "model planted\noption executor = ray\noption actors = 2\n", 1))
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setenv(FAULT_ENV, str(marker))
        code = main(["check", str(spec), "--json-out", str(out), "--profile", "-q"])
    _, model, plan = load_and_compile(spec)
    return {"code": code, "err": err.getvalue(), "killed": marker.exists(), "ray": out.read_text(),
            "local": to_json(_local(plan, model))}


def test_planted_report_is_byte_identical_on_ray(planted_on_ray):
    assert planted_on_ray["code"] == 0
    # both actors worked; the injected fault replaces one, and a loaded machine may replace more
    found = re.search(r"on Ray; 2 actors \((\d+) processes\)", planted_on_ray["err"])
    assert found and int(found.group(1)) >= 2, planted_on_ray["err"]
    assert planted_on_ray["ray"] == planted_on_ray["local"]
    assert '"held": 29' in planted_on_ray["ray"]


def test_a_killed_actor_is_restarted_and_its_batch_retried(planted_on_ray):
    assert planted_on_ray["killed"]                                  # the crash happened...
    assert planted_on_ray["ray"] == planted_on_ray["local"]          # ...and changed nothing
    _complete(planted_on_ray["ray"])                                 # no prompt lost or counted twice
