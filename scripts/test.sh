#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (tests/ and the shipped specs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-browser.sh
# developer habits first: lint (pyflakes, bugbear, isort, pyupgrade) and types (see pyproject)
.venv/bin/ruff check sadlang tests benchmarks scripts
.venv/bin/mypy
# shipped specs stay in `sadlang fmt` layout
.venv/bin/sadlang fmt --check specs/*.sad
# two workers, a test file each at a time (a file's tests share its model loads and its Ray
# cluster), the longest files first (tests/conftest.py); the plugin gives each worker
# cores / 2 torch threads (docs/benchmarks.md)
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder "$@"
