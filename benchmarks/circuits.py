"""Cost of testing a circuit whole: wall seconds and forward passes of each circuit claim.

    python benchmarks/circuits.py [--spec specs/planted.sad] [--repeats 3]

Runs every circuit claim of the spec (kinds circuit_test and node_ablate) `repeats` times on a
warm model and prints, per claim, the median seconds and the forward passes its verdict reports
(`details.forward_passes`; per-prompt node ablations count one pass per length group).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="specs/planted.sad")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from sadlang.decomp.activations import ForwardCounter
    from sadlang.runner.executor import load_and_compile, run_plan

    _, model, plan = load_and_compile(args.spec)
    names = [c.name for c, cp in plan.claims if cp.kind in ("circuit_test", "node_ablate")]
    print(f"{args.spec}: {len(names)} circuit claims, model {model.info.name}, "
          f"{sum(len(ps.prompts) for ps in plan.prompt_sets.values())} prompts in all")
    print(f"{'claim':<18} {'median s':>9} {'passes':>7}  measured")
    for name in names:
        secs, passes, measured = [], 0, ""
        for _ in range(args.repeats):
            start_calls = ForwardCounter.calls
            t0 = time.perf_counter()
            verdict = run_plan(plan, model, only={name}).verdicts[0]   # fresh stores: clean passes count too
            secs.append(time.perf_counter() - t0)
            passes = ForwardCounter.calls - start_calls
            measured = verdict.measured
        print(f"{name:<18} {statistics.median(secs):>9.2f} {passes:>7}  {measured[:90]}")


if __name__ == "__main__":
    main()
