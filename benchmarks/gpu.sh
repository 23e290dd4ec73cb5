#!/usr/bin/env bash
# Everything a user needs from a GPU machine, in one invocation (the device tool's run script):
#   bash benchmarks/gpu.sh [MODEL]        (default smollm2-135m; run from the repository root)
# Prints the device, then: exactness of the decomposition in fp32 and bf16 (every head, every
# position), tracing speed (prompts/s) and peak CUDA memory, and a whole check of specs/ioi.sad
# (wall seconds, claims' seconds, peak CUDA memory, exactness on its prompts). TF32 stays off.
set -euo pipefail
MODEL="${1:-smollm2-135m}"
DEVICE="${DEVICE:-cuda}"          # DEVICE=cpu runs the same script here
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" - <<'PYEOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU only)'}")
PYEOF
for dtype in fp32 bf16; do
  "$PY" -m sadlang.cli exactness --model "$MODEL" --device "$DEVICE" --dtype "$dtype" || echo "exactness ($dtype) exited $?"
done
"$PY" benchmarks/trace.py --model "$MODEL" --device "$DEVICE" --prompts 32 --repeats 3 --threads 0
"$PY" benchmarks/check.py --spec specs/ioi.sad --device "$DEVICE" --repeats 1
