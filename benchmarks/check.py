"""What a whole `sadlang check` costs: wall seconds of the command (a fresh process: interpreter,
imports, warm model load, the claims) and in-process seconds of the claims on a loaded model.

    python benchmarks/check.py [--spec specs/ioi.sad] [--repeats 3] [--device auto|cpu|cuda]
                               [--threads N]

Medians over repeats. The in-process runs use fresh evidence each time (every forward pass is
counted). Run it once beforehand so the model cache is warm. On a GPU, it also prints the peak
CUDA memory and runs with TF32 off (as the loader sets it). Last, the exactness checks on 4
prompts of the spec's first set (benchmarks/_exactness.py; exits 1 when they fail).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def wall(spec: str, device: str, threads: int | None) -> float:
    env = dict(os.environ)
    if threads:
        env["SADLANG_THREADS"] = str(threads)
    cli = Path(sys.executable).with_name("sadlang")
    cmd = [str(cli) if cli.exists() else "sadlang", "check", spec, "-q", "--format", "json", "--device", device]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise SystemExit(f"sadlang check exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="specs/ioi.sad")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: sadlang's default)")
    args = ap.parse_args()

    import torch

    from sadlang.decomp.activations import ForwardCounter
    from sadlang.models.loader import use_default_threads
    from sadlang.runner.executor import load_and_compile, run_plan

    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        use_default_threads()
    walls = [wall(args.spec, args.device, args.threads) for _ in range(args.repeats)]
    _, model, plan = load_and_compile(args.spec, device=args.device)
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    inproc, passes, held = [], 0, ""
    for _ in range(args.repeats):
        calls = ForwardCounter.calls
        t = time.perf_counter()
        report = run_plan(plan, model)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        inproc.append(time.perf_counter() - t)
        passes = ForwardCounter.calls - calls
        held = f"{sum(v.held for v in report.verdicts)}/{len(report.verdicts)} held"
    print(f"{args.spec} on {model.info.name} ({model.device}, {torch.get_num_threads()} threads), "
          f"{len(plan.claims)} claims, {args.repeats} repeats, medians")
    print("| measure | median s | min s |\n| --- | --- | --- |")
    print(f"| `sadlang check` wall (fresh process, warm cache) | {statistics.median(walls):.1f} | {min(walls):.1f} |")
    print(f"| claims in-process (loaded model, fresh evidence) | {statistics.median(inproc):.1f} | {min(inproc):.1f} |")
    print(f"forward passes per check: {passes}; {held}")
    if model.device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    from _exactness import exactness  # benchmarks/, on sys.path when run as a script

    first = next(iter(plan.prompt_sets.values())).prompts[:4]
    exactness(model, [p.text for p in first], [model.decode([p.answer])[0] for p in first],
              [model.decode([p.against])[0] if p.against is not None else None for p in first])


if __name__ == "__main__":
    main()
