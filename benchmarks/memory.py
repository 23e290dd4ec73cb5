"""Where the memory of a `sadlang check` (or a load, or a trace) goes: a sampler thread reads the
process's resident set every few milliseconds and, at each new peak, records where the main
thread is (its innermost sadlang frames). Prints the stages' RSS after each step and the top
peaks with their call sites.

    python benchmarks/memory.py [--spec specs/ioi.sad] [--what load|trace|check] [--interval 0.005]

`load` is `load_model` alone; `trace` loads and traces the reference IOI prompt once (method acc);
`check` loads, compiles and runs the spec. Peak = the highest RSS seen by the sampler (also
`ru_maxrss`, the kernel's own peak, which catches spikes between samples).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
import traceback
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def kernel_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def where(frame) -> str:   # type: ignore[no-untyped-def]
    """The innermost frames of the main thread that are sadlang's (or, else, the innermost)."""
    stack = traceback.extract_stack(frame)
    ours = [f for f in stack if "/sadlang/" in f.filename and "/benchmarks/" not in f.filename]
    pick = ours[-2:] + [f for f in stack[-2:] if f not in ours[-2:]]
    return " < ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(pick))


class Sampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.main = threading.main_thread().ident
        self.peak = 0.0
        self.peaks: list[tuple[float, str]] = []   # (rss, where) at each new peak of 16 MiB or more
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            now = rss_mib()
            if now > self.peak + 16:
                frame = sys._current_frames().get(self.main)
                self.peaks.append((now, where(frame) if frame else "?"))
                del frame          # a held frame would keep its function's locals (tensors) alive
            self.peak = max(self.peak, now)
            time.sleep(self.interval)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="specs/ioi.sad")
    ap.add_argument("--what", default="check", choices=["load", "trace", "check"])
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    from sadlang.runtime import calm_openmp

    calm_openmp()
    sampler = Sampler(args.interval)
    sampler.start()
    stages: list[tuple[str, float, float]] = []

    def stage(name: str) -> None:
        stages.append((name, rss_mib(), max(sampler.peak, kernel_peak_mib())))

    import torch  # noqa: F401
    import transformers  # noqa: F401

    from sadlang.models.lean_import import import_bridge

    import_bridge()                  # TransformerLens, imported as a load imports it
    stage("imports (torch, transformers, TransformerLens)")
    from sadlang.models.loader import load_model, use_default_threads

    use_default_threads()
    if args.what == "load":
        load_model()
        stage("load_model")
    elif args.what == "trace":
        from sadlang.trace.options import TraceOptions
        from sadlang.trace.tracer import trace

        model = load_model()
        stage("load_model")
        trace(model, ["When Mary and John went to the store, John gave a drink to"], [" Mary"], [" John"],
              options=TraceOptions(method="acc"))
        stage("trace (acc, reference prompt)")
    else:
        from sadlang.runner.executor import load_and_compile, run_plan

        _, model, plan = load_and_compile(args.spec)
        stage("load and compile")
        report = run_plan(plan, model)
        stage(f"run ({len(report.verdicts)} claims)")
    sampler.stop = True
    sampler.join()
    print(f"{'stage':<48} {'RSS MiB':>8} {'peak so far':>12}")
    for name, now, peak in stages:
        print(f"{name:<48} {now:>8.0f} {peak:>12.0f}")
    print(f"\npeak RSS {kernel_peak_mib():.0f} MiB (kernel), {sampler.peak:.0f} MiB (sampled)")
    print(f"\nlargest rises ({len(sampler.peaks)} steps of 16 MiB or more), where the main thread was:")
    steps = [(b[0] - a[0], b[0], b[1]) for a, b in zip([(stages[0][1], ""), *sampler.peaks], sampler.peaks)]
    for rise, at, site in sorted(steps, reverse=True)[: args.top]:
        print(f"  +{rise:6.0f} -> {at:6.0f} MiB  {site}")


if __name__ == "__main__":
    main()
