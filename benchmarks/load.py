"""Cold and warm load time of the bundled model, and peak memory, beside the floor. Prints a table.

    python benchmarks/load.py [--repeats 3]

Cold = the fp32 cache is rebuilt from the GGUF (run in a fresh cache dir); warm = loaded from
the cache; floor = importing the same stack (torch, transformers, TransformerLens and its bridge
module as a load imports them, models/lean_import.py, and the model's transformers classes,
which reading its config imports) and reading the same cached
weights with `safetensors.torch.load_file`, which any load must do. Each load runs
in a fresh subprocess so nothing is memoized; medians are shown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, time, warnings
warnings.filterwarnings("ignore")
t = time.perf_counter()
from sadlang.models import load_model
m = load_model("smollm2-135m")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FLOOR = r"""
import json, resource, time, warnings
warnings.filterwarnings("ignore")
t = time.perf_counter()
import torch, transformers
from safetensors.torch import load_file
from sadlang.models.lean_import import import_bridge
import_bridge()          # TransformerLens and its bridge module, imported as a load imports them
from sadlang.models.bundled import WEIGHTS, bundled_cache_dir
# the model's own transformers classes belong to the stack: a Llama config pulls in most of them
transformers.AutoConfig.from_pretrained(str(bundled_cache_dir()))
state = load_file(str(bundled_cache_dir() / WEIGHTS))
total = sum(float(v.sum()) for v in state.values())     # touch every weight, as a load does
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(cache: str, child: str = CHILD) -> dict:
    env = dict(os.environ, SADLANG_CACHE_DIR=cache, TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cold, warm, floor = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            cold.append(run(d))
            warm.append(run(d))
            floor.append(run(d, FLOOR))
    print(f"{'load':<6} {'median s':>9} {'min s':>7} {'peak MiB':>9}")
    for name, rows in (("cold", cold), ("warm", warm), ("floor", floor)):
        secs = [r["seconds"] for r in rows]
        print(f"{name:<6} {statistics.median(secs):>9.2f} {min(secs):>7.2f} "
              f"{statistics.median(r['peak_mib'] for r in rows):>9.0f}")
    ratio = statistics.median(r["seconds"] for r in warm) / statistics.median(r["seconds"] for r in cold)
    print(f"warm/cold ratio: {ratio:.2f}")
    for what, key in (("seconds", "seconds"), ("peak memory", "peak_mib")):
        w = statistics.median(r[key] for r in warm) / statistics.median(r[key] for r in floor)
        print(f"warm/floor {what}: {w:.2f}")


if __name__ == "__main__":
    main()
