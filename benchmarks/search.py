"""What a failing counterexample search costs next to a passing one of the same size.

    python benchmarks/search.py [--limit 200] [--repeats 3] [--claims pass fail rare]

On the bundled model and specs/ioi.sad's prompt set `ioi`, each claim is checked alone with
`forall up to LIMIT prompts`, in this process on the loaded model: `pass` holds on every drawn
prompt; `fail` fails on many; `rare` on few (a shrinker that must first find a failure by drawing
one prompt at a time pays most for it). Prints per claim: the verdict, prompts measured, forward
passes, median seconds, and the ratio to the passing search.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
CLAIMS = {
    "pass": "head 16.0 attends S+1 -> S with weight >= 0.2",
    "fail": "head 16.0 attends S+1 -> S with weight >= 0.9",
    "rare": "head 16.0 attends S+1 -> S with weight >= 0.88",
}


def spec_text(claim: str, limit: int) -> str:
    """specs/ioi.sad's model, pools and `ioi` set (sampled once), with one forall claim."""
    src = (ROOT / "specs" / "ioi.sad").read_text()
    head = src[: src.index("prompts traced:")]
    head = re.sub(r"sample 12 up to 96 seed 0", "sample 12 seed 0", head)
    return f"{head}\nclaim c: {claim} forall up to {limit} prompts\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--claims", nargs="+", default=list(CLAIMS), choices=list(CLAIMS))
    args = ap.parse_args()
    from sadlang.decomp.activations import ForwardCounter
    from sadlang.models.loader import use_default_threads
    from sadlang.runner.executor import load_and_compile, run_plan
    from sadlang.runtime import calm_openmp

    calm_openmp()
    use_default_threads()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.claims:
            path = Path(d) / f"{name}.sad"
            path.write_text(spec_text(CLAIMS[name], args.limit))
            _, model, plan = load_and_compile(path)
            times, passes, verdict = [], 0, None
            for _ in range(args.repeats):
                before, t = ForwardCounter.calls, time.perf_counter()
                verdict = run_plan(plan, model).verdicts[0]
                times.append(time.perf_counter() - t)
                passes = ForwardCounter.calls - before
            assert verdict is not None
            found = verdict.counterexample.text if verdict.counterexample else "-"
            rows.append((name, verdict.status, int(verdict.details.get("searched", 0)), passes,
                         statistics.median(times), found))
    base = next((r[4] for r in rows if r[0] == "pass"), None)
    print(f"{'claim':<6} {'verdict':<8} {'prompts':>8} {'passes':>7} {'median s':>9} {'x pass':>7}  counterexample")
    for name, status, searched, passes, sec, found in rows:
        ratio = f"{sec / base:.2f}" if base else "-"
        print(f"{name:<6} {status:<8} {searched:>8} {passes:>7} {sec:>9.2f} {ratio:>7}  {found!r}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
