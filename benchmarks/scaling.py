"""How a check scales on Ray: the per-prompt claims of specs/ioi.sad on a larger prompt set, run
in this process and on 1..K Ray actors (a local Ray instance).

    python benchmarks/scaling.py [--prompts 48] [--actors 1 2] [--repeats 1] [--device cpu|cuda]
                                 [--num-cpus 1] [--num-gpus 0]

Prints, per run: seconds to start the actors (each loads the model), seconds to check, prompts/s,
the actors' summed task seconds per prompt (the cost of one prompt on one actor) and the peak
memory per actor. The reports of all runs must be identical (the script says so). Medians over
repeats. On a GPU machine give --device cuda --num-gpus 1: one actor per GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
# the per-prompt claims of specs/ioi.sad that shard (behaviour, attention, edges, a local
# ablation with random controls): the part of a check that grows with the prompt count
CLAIMS = {"solves", "suppressor", "mover", "duplicate", "k_comp", "feeds", "k_causal"}


def spec_with(prompts: int) -> str:
    """specs/ioi.sad with its `ioi` set sampled `prompts` times."""
    src = (ROOT / "specs" / "ioi.sad").read_text()
    out, n = re.subn(r"(prompts ioi:.*?\n  sample )12( seed 0)", rf"\g<1>{prompts}\g<2>", src, count=1, flags=re.S)
    if n != 1:
        raise SystemExit("specs/ioi.sad no longer has `sample 12 seed 0` in its ioi set")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--num-cpus", type=float, default=1.0)
    ap.add_argument("--num-gpus", type=float, default=0.0)
    args = ap.parse_args()

    import ray
    import torch

    from sadlang.models.loader import use_default_threads
    from sadlang.runner.executor import load_and_compile, run_plan
    from sadlang.runner.ray_executor import RayConfig, RayStats, run_plan_ray
    from sadlang.runner.report import to_json

    use_default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ioi-scaled.sad"
        path.write_text(spec_with(args.prompts))
        _, model, plan = load_and_compile(path, device=args.device)
        n = len(plan.prompt_sets["ioi"].prompts)
        print(f"{n} IOI prompts, claims {', '.join(sorted(CLAIMS))}; {model.info.name} on {model.device}; "
              f"{os.cpu_count()} cores; medians of {args.repeats}")
        print("| run | start s | check s | prompts/s | actor s per prompt | peak MiB per actor |")
        print("| --- | --- | --- | --- | --- | --- |")
        times, reports = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            reports.append(to_json(run_plan(plan, model, only=CLAIMS)))
            times.append(time.perf_counter() - t)
        check = statistics.median(times)
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| this process ({torch.get_num_threads()} threads) | - | {check:.1f} | {n / check:.2f} | "
              f"{check / n:.3f} | {rss:.0f} |")
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            for k in args.actors:
                starts, checks, per_prompt, peaks = [], [], [], []
                for _ in range(args.repeats):
                    stats = RayStats()
                    t = time.perf_counter()
                    cfg = RayConfig(actors=k, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
                    reports.append(to_json(run_plan_ray(plan, model, cfg, only=CLAIMS, device_override=args.device,
                                                        stats=stats)))
                    total = time.perf_counter() - t
                    starts.append(stats.start_seconds)
                    checks.append(total - stats.start_seconds)
                    per_prompt.append(sum(stats.task_seconds.values()) / n)
                    peaks.append(max(stats.peak_mib))
                c = statistics.median(checks)
                print(f"| Ray, {k} actor{'s' if k > 1 else ''} x {args.num_cpus:g} CPU"
                      f"{f' x {args.num_gpus:g} GPU' if args.num_gpus else ''} | {statistics.median(starts):.1f} | "
                      f"{c:.1f} | {n / c:.2f} | {statistics.median(per_prompt):.3f} | {statistics.median(peaks):.0f} |")
        finally:
            ray.shutdown()
        same = all(r == reports[0] for r in reports)
        print(f"reports identical across all runs: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
