#!/usr/bin/env bash
# README command 1: set up, then check the IOI circuit of the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sadlang check specs/ioi.sad "$@"
