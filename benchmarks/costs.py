"""How the cost of checking and tracing grows: with prompt length, prompts per set, claims per
spec and model size. Every point runs in a fresh process (its peak memory is its own).

    python benchmarks/costs.py [--curves length prompts claims models] [--out docs/scaling]
                               [--lengths 16 32 64 128] [--prompts 12 48 192 768]
                               [--claims 1 4 16] [--models tiny-llama smollm2-135m]

Prints a table per curve with seconds and peak RSS, and the fitted exponent k of cost ~ x^k
(least squares on logs) of each column; writes `costs.json` and, when matplotlib is installed
(`pip install matplotlib`), one PNG per curve into --out. Measured quantities:
- length: on the bundled model, one forward pass of 12 prompts of that many tokens, and an acc
  trace of one of them (the decomposition's tables grow as layers x heads x n^2);
- prompts: `sadlang check` of a spec with five per-prompt claims (behaviour, attention, a firing,
  two edges) on a set of N prompts, in process after the load;
- claims: the same set of 12 prompts with K distinct edge claims (each decomposes its own head);
- models: load, a forward pass of 12 IOI prompts and an acc trace of one, per model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
FILLER = " The weather had been warm and quiet for most of the week, and nobody was in a hurry."
HEADER = '''model {model}
method acc
pool names   = " Mary" " John" " Alice" " Bob" " Sarah" " James" " Tom" " Anna"
pool places  = " store" " garden" " school" " office"
pool objects = " drink" " ring" " book" " snack"
prompts ioi:
  template "When{{IO}} and{{S}} went to the{{place}},{{S}} gave a{{object}} to"
  template "Then,{{S}} and{{IO}} went to the{{place}}.{{S}} gave a{{object}} to"
  IO, S from names distinct
  place from places
  object from objects
  answer "{{IO}}" against "{{S}}"
  sample {n} seed 0
option confidence = none
'''
PER_PROMPT = '''claim solves:   logit_diff > 0 in >= 50% of prompts
claim prev:     head 16.0 attends S+1 -> S with weight >= 0.3 in >= 50% of prompts
claim mover:    head 23.0 fires at end -> IO in >= 10% of prompts
claim k_comp:   edge 16.0 -> 17.4 via key at S#2 -> S+1 in >= 10% of prompts
claim q_comp:   edge 8.0 -> 17.4 via query at S#2 -> S+1 in >= 10% of prompts
'''


# ---- one point, in its own process
def _peak_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def point_length(tokens: int) -> dict:
    from sadlang.models import load_model

    model = load_model("smollm2-135m")
    base = "When Mary and John went to the store, John gave a drink to"
    text = base
    while len(model.to_tokens(text)) < tokens:
        text = FILLER + text
    ids = model.to_tokens(text)
    ids = [ids[0], *ids[len(ids) - tokens + 1:]]                 # BOS + the last tokens - 1
    text = "".join(model.decode(ids[1:]))
    forward, traced = _forward_and_trace(model, [ids] * 12, text)
    return {"x": len(ids), "forward_12_s": forward, "trace_s": traced, "peak_mib": _peak_mib()}


def _forward_and_trace(model, batch: list[list[int]], text: str) -> tuple[float, float]:
    """(seconds of one forward pass over `batch`, seconds of a warm acc trace of `text`)."""
    import torch

    from sadlang.decomp.activations import run_prompts
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import trace

    start = time.perf_counter()
    with torch.no_grad():
        run_prompts(model, batch)
    forward = time.perf_counter() - start
    trace(model, [text], [" Mary"], [" John"], options=TraceOptions(method="acc"))   # forms, warm
    start = time.perf_counter()
    trace(model, [text], [" Mary"], [" John"], options=TraceOptions(method="acc"))
    return forward, time.perf_counter() - start


def _check(spec_text: str) -> dict:
    from sadlang.runner.executor import load_and_compile, run_plan

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cost.sad"
        path.write_text(spec_text)
        _, model, plan = load_and_compile(path)
        loaded = _peak_mib()
        start = time.perf_counter()
        report = run_plan(plan, model)
        seconds = time.perf_counter() - start
    errors = [v.name for v in report.verdicts if v.status == "error"]
    if errors:
        raise SystemExit(f"claims ended in errors: {errors}")
    return {"check_s": seconds, "peak_mib": _peak_mib(), "after_load_mib": loaded}


def point_prompts(n: int) -> dict:
    return {"x": n, **_check(HEADER.format(model="smollm2-135m", n=n) + PER_PROMPT)}


EDGE_HEADS = [(17, 4), (23, 0), (23, 3), (19, 5), (21, 2), (25, 1), (27, 6), (29, 8),
              (18, 1), (20, 3), (22, 7), (24, 2), (26, 5), (28, 0), (17, 1), (23, 8)]


def point_claims(k: int) -> dict:
    claims = "".join(f"claim e{i}: edge 16.0 -> {layer}.{head} via key at end -> S+1 in >= 10% of prompts\n"
                     for i, (layer, head) in enumerate(EDGE_HEADS[:k]))
    return {"x": k, **_check(HEADER.format(model="smollm2-135m", n=12) + claims)}


def point_model(name: str) -> dict:
    from sadlang.models import load_model

    start = time.perf_counter()
    model = load_model(name)
    load = time.perf_counter() - start
    texts = [f"When{a} and{b} went to the store,{b} gave a drink to" for a, b in
             [(" Mary", " John"), (" Alice", " Bob"), (" Sarah", " James")] * 4]
    forward, traced = _forward_and_trace(model, [model.to_tokens(t) for t in texts], texts[0])
    params = sum(p.numel() for p in model.bridge.original_model.parameters())
    return {"x": params, "model": name, "load_s": load, "forward_12_s": forward, "trace_s": traced,
            "peak_mib": _peak_mib()}


POINTS = {"length": point_length, "prompts": point_prompts, "claims": point_claims, "models": point_model}


def run_point(curve: str, value: str) -> dict:
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, __file__, "--point", curve, value], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        return {"x": value, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- fitting and drawing
def exponent(xs: list[float], ys: list[float]) -> float | None:
    """k of y ~ x^k by least squares on logs (None with fewer than 2 positive points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def draw(curve: str, rows: list[dict], columns: list[str], out: Path, xlabel: str) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ok = [r for r in rows if "error" not in r]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4))
    for ax, col in zip(axes if len(columns) > 1 else [axes], columns):
        xs, ys = [float(r["x"]) for r in ok], [float(r[col]) for r in ok]
        ax.loglog(xs, ys, "o-", color="#2b6cb0")
        k = exponent(xs, ys)
        ax.set_title(f"{col}" + (f"  (~x^{k:.2f})" if k is not None else ""), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    fig.suptitle(f"sadlang cost vs {xlabel} (2-core CPU, fp32)", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cost-{curve}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CURVES = {"length": ("prompt length (tokens)", ["forward_12_s", "trace_s", "peak_mib"]),
          "prompts": ("prompts in the set", ["check_s", "peak_mib"]),
          "claims": ("edge claims in the spec", ["check_s", "peak_mib"]),
          "models": ("parameters", ["load_s", "forward_12_s", "trace_s", "peak_mib"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--point", nargs=2, metavar=("CURVE", "VALUE"), help=argparse.SUPPRESS)
    ap.add_argument("--curves", nargs="+", default=list(CURVES), choices=list(CURVES))
    ap.add_argument("--lengths", nargs="+", default=["16", "32", "64", "128"])
    ap.add_argument("--prompts", nargs="+", default=["12", "48", "192", "768"])
    ap.add_argument("--claims", nargs="+", default=["1", "4", "16"])
    ap.add_argument("--models", nargs="+", default=["tiny-llama", "smollm2-135m"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "scaling"))
    args = ap.parse_args()
    if args.point:
        from sadlang.models.loader import use_default_threads
        from sadlang.runtime import calm_openmp

        calm_openmp()
        use_default_threads()
        curve, value = args.point
        print(json.dumps(POINTS[curve](value if curve == "models" else int(value))))
        return
    values = {"length": args.lengths, "prompts": args.prompts, "claims": args.claims, "models": args.models}
    results: dict[str, list[dict]] = {}
    out = Path(args.out)
    for curve in args.curves:
        xlabel, columns = CURVES[curve]
        rows = []
        for v in values[curve]:
            row = run_point(curve, v)
            rows.append(row)
            print(f"  {curve} {v}: " + ", ".join(f"{k} {val:.3g}" if isinstance(val, float) else f"{k} {val}"
                                                  for k, val in row.items()), flush=True)
        results[curve] = rows
        ok = [r for r in rows if "error" not in r]
        print(f"\n{curve} ({xlabel})")
        print("  " + " ".join(f"{c:>14}" for c in ["x", *columns]))
        for r in ok:
            print("  " + " ".join(f"{float(r[c]):>14.4g}" for c in ["x", *columns]))
        print("  fitted k (cost ~ x^k): " + ", ".join(
            f"{c} {k:.2f}" for c in columns if (k := exponent([float(r['x']) for r in ok],
                                                               [float(r[c]) for r in ok])) is not None))
        path = draw(curve, rows, columns, out, xlabel)
        if path:
            print(f"  wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        print(flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "costs.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
