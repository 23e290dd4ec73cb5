"""Torch thread settings on this machine: one bridge forward pass of 12 IOI prompts and one acc
trace, with 1 and with all threads, on an idle machine and with a busy neighbour process
(a pure-Python loop on another core, as when pytest-xdist or a second job runs).

    python benchmarks/threads.py [--repeats 5] [--model smollm2-135m]

Prints medians; the `SADLANG_THREADS` default in sadlang/models/loader.py comes from these.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

from _neighbour import neighbour  # benchmarks/, on sys.path when run as a script

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()

    import torch

    from sadlang.decomp.activations import run_batch
    from sadlang.models import load_model
    from sadlang.trace.tracer import trace

    model = load_model(args.model)
    prompt = "When Mary and John went to the store, John gave a drink to"
    tokens = [model.to_tokens(prompt)] * 12
    cores = os.cpu_count() or 1

    def median(fn) -> float:
        fn()
        xs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - t0)
        return statistics.median(xs)

    print(f"{cores} cores, torch {torch.__version__}, default threads {torch.get_num_threads()}")
    print(f"{'neighbour':<10} {'threads':>7} {'forward 12 prompts s':>21} {'acc trace s':>12}")
    for busy in (False, True):
        with neighbour(busy):
            for threads in sorted({1, cores}):
                torch.set_num_threads(threads)
                fwd = median(lambda: run_batch(model, tokens))
                tr = median(lambda: trace(model, prompt, " Mary", " John"))
                print(f"{'busy' if busy else 'idle':<10} {threads:>7} {fwd:>21.3f} {tr:>12.3f}")


if __name__ == "__main__":
    main()
