"""Tracing speed on the bundled model: setup, seconds per prompt per method, firings/s.

    python benchmarks/trace.py [--prompts 4] [--repeats 3] [--model smollm2-135m] [--device auto]
                               [--threads 1,0]

Setup = computing every head's QK SVD factors (no disk cache). Each method traces the same
IOI prompts (one forward pass per batch); medians over repeats. `--threads` lists torch thread
counts to measure each method with (0: torch's default, every core); the default `1,0` gives
the single-thread figures and the default's. The first prompt is the issue's reference one,
"When Mary and John went to the store, John gave a drink to". On a GPU the batch is traced on
the device and prompts/s is reported.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings

warnings.filterwarnings("ignore")

from _exactness import exactness  # noqa: E402  (benchmarks/, on sys.path when run as a script)
from _prompts import ioi_prompts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", default="sad,acc,accpp")
    ap.add_argument("--threads", default="1,0", help="comma-separated torch thread counts (0: torch's default)")
    args = ap.parse_args()

    import torch

    from sadlang.decomp.forms import compute_forms
    from sadlang.models import load_model
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import forms_for, trace

    model = load_model(args.model, args.device)
    setups = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        compute_forms(model.weights)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        setups.append(time.perf_counter() - t)
    forms_for(model)
    prompts = [("When Mary and John went to the store, John gave a drink to", " Mary", " John")]
    prompts += ioi_prompts(args.prompts - 1)
    texts, answers, against = [p[0] for p in prompts], [p[1] for p in prompts], [p[2] for p in prompts]
    default_threads = torch.get_num_threads()
    trace(model, texts[:1], answers[:1], against[:1])  # warm-up
    print(f"model {model.info.name} on {model.device}, {args.prompts} prompts, {args.repeats} repeats")
    print(f"setup (SVD of {model.info.n_layers * model.info.n_heads} heads): median {statistics.median(setups):.2f} s")
    print(f"{'method':<7} {'threads':>7} {'s/prompt':>9} {'prompts/s':>10} {'firings/prompt':>15} {'firings/s':>10}")
    runs = [(m, int(t)) for t in args.threads.split(",") for m in args.methods.split(",")]
    for method, threads in runs:
        torch.set_num_threads(threads or default_threads)
        times, firings = [], 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            circuits = trace(model, texts, answers, against, options=TraceOptions(method=method))
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            firings = sum(len(c.firings) for c in circuits)
        med = statistics.median(times)
        print(f"{method:<7} {torch.get_num_threads():>7} {med / len(texts):>9.3f} {len(texts) / med:>10.2f} "
              f"{firings / len(texts):>15.1f} {firings / med:>10.1f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if model.device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    exactness(model, texts, answers, against)


if __name__ == "__main__":
    main()
