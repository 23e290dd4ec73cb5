"""OpenMP wait policy on this machine: torch's default threads spin-wait, which collapses when
another process shares a core. Each setting runs in a fresh process (the variables are read when
the OpenMP runtime starts), idle and beside a busy neighbour (a Python loop on one core), and
times one bridge forward pass of 12 IOI prompts plus one acc trace (medians).

    python benchmarks/wait_policy.py [--repeats 3] [--model smollm2-135m]
    python benchmarks/wait_policy.py --check specs/ioi.sad    # whole `sadlang check` runs instead

docs/benchmarks.md (*Torch threads*) records what it printed and what sadlang chose from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _neighbour import neighbour  # benchmarks/, on sys.path when run as a script

SETTINGS = {
    "default (spin)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=3000": {"GOMP_SPINCOUNT": "3000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=300": {"GOMP_SPINCOUNT": "300"},
    "1 thread": {"SADLANG_BENCH_THREADS": "1"},
}


def child(model_name: str, repeats: int) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    if os.environ.get("SADLANG_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["SADLANG_BENCH_THREADS"]))
    from sadlang.decomp.activations import run_batch
    from sadlang.models import load_model
    from sadlang.trace.tracer import trace

    model = load_model(model_name)
    prompt = "When Mary and John went to the store, John gave a drink to"
    tokens = [model.to_tokens(prompt)] * 12

    def once() -> float:
        t0 = time.perf_counter()
        run_batch(model, tokens)
        trace(model, prompt, " Mary", " John", method="acc")
        return time.perf_counter() - t0

    once()
    print(json.dumps({"seconds": statistics.median(once() for _ in range(repeats)),
                      "threads": torch.get_num_threads()}))


def whole_checks(spec: str) -> None:
    """`sadlang check SPEC` as a user runs it: one thread, two threads with sadlang's spin count, and
    sadlang's choice (that spin count, threads by the cores other processes leave free). torch's
    own default (300,000 spins, two threads) took 77.8 s idle and 726.6 s busy on this machine
    (docs/benchmarks.md); it is left out, as its busy run alone takes twelve minutes."""
    settings = {"1 thread (SADLANG_THREADS=1)": {"SADLANG_THREADS": "1"},
                "spin 3000, 2 threads": {"SADLANG_WATCH_CORES": "0"},
                "sadlang (spin 3000, threads by free cores)": {}}
    print(f"sadlang check {spec}: wall seconds, one run each")
    print(f"{'setting':<44} {'idle':>7} {'busy':>7}")
    for name, env in settings.items():
        base = {k: v for k, v in os.environ.items()
                if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "SADLANG_THREADS", "SADLANG_WATCH_CORES")}
        row = []
        for busy in (False, True):
            with neighbour(busy):
                t0 = time.perf_counter()
                cli = os.path.join(os.path.dirname(sys.executable), "sadlang")
                done = subprocess.run([cli, "check", spec], env={**base, **env}, capture_output=True, check=False)
                if done.returncode not in (0, 1):
                    raise SystemExit(f"sadlang check failed ({done.returncode}): {done.stderr.decode()[-500:]}")
                row.append(time.perf_counter() - t0)
        print(f"{name:<44} {row[0]:>7.1f} {row[1]:>7.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--check", metavar="SPEC", help="time whole `sadlang check SPEC` processes (one run each)")
    args = ap.parse_args()
    if args.child:
        child(args.model, args.repeats)
        return
    if args.check:
        whole_checks(args.check)
        return
    print(f"{os.cpu_count()} cores; forward of 12 prompts + one acc trace, median of {args.repeats} (s)")
    print(f"{'setting':<26} {'idle':>7} {'busy':>7} {'busy/idle':>9}")
    for name, env in SETTINGS.items():
        row = []
        for busy in (False, True):
            with neighbour(busy):
                out = subprocess.run([sys.executable, __file__, "--child", "--model", args.model,
                                      "--repeats", str(args.repeats)], env={**os.environ, **env},
                                     capture_output=True, text=True, check=True)
                row.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
        print(f"{name:<26} {row[0]:>7.2f} {row[1]:>7.2f} {row[1] / row[0]:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
