"""Tracing speed per model family: seconds per prompt for each tiny family model, and for the
opt-in gemma3-270m when its packages are installed.

    python benchmarks/families.py [--prompts 4] [--repeats 3] [--methods acc,accpp]

Each model traces the same IOI-style prompts (one forward pass per batch, SVD factors computed
before timing); the table gives medians over repeats and the firings decomposed per prompt.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

warnings.filterwarnings("ignore")

from _prompts import ioi_prompts  # noqa: E402  (benchmarks/, on sys.path when run as a script)

TINY = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-neox", "tiny-gemma2", "tiny-gemma3"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="acc,accpp")
    args = ap.parse_args()

    from sadlang.models import gemma3, load_model
    from sadlang.models.tiny_tokenizer import NAMES
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import forms_for, trace

    models = TINY + ([gemma3.NAME] if gemma3.installed() else [])
    methods = args.methods.split(",")
    print(f"{args.prompts} prompts, {args.repeats} repeats, medians; s/prompt (firings per prompt)")
    print("| model | layers x heads | " + " | ".join(methods) + " |")
    print("| --- | --- |" + " --- |" * len(methods))
    for name in models:
        model = load_model(name)
        forms_for(model)
        names = [" Mary", " John", " Alice", " Bob"] if name == gemma3.NAME else [" " + n for n in NAMES[:6]]
        ps = ioi_prompts(args.prompts, names=names)
        texts, answers, against = [p[0] for p in ps], [p[1] for p in ps], [p[2] for p in ps]
        cells = []
        for method in methods:
            opts = TraceOptions(method=method)
            trace(model, texts[:1], answers[:1], against[:1], options=opts)      # warm-up
            times, firings = [], 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                circuits = trace(model, texts, answers, against, options=opts)
                times.append((time.perf_counter() - t) / len(texts))
                firings = sum(len(c.firings) for c in circuits) // len(circuits)
            cells.append(f"{statistics.median(times):.3f} ({firings})")
        info = model.info
        print(f"| {name} | {info.n_layers} x {info.n_heads} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
