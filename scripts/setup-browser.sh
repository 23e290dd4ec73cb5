#!/usr/bin/env bash
# The HTML report's browser tests (tests/test_html_browser.py) drive Debian's Chromium through
# Playwright, which cannot download its own browser offline. Install it when it is missing and
# we may (root, or passwordless sudo). scripts/test.sh runs this; `sadlang check` never needs it.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1 && [ -z "${SADLANG_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (apt) for the browser tests" >&2
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
  else
    echo "warning: chromium is missing and cannot be installed here (no root or apt); the browser tests will skip (and fail under CI=true)" >&2
  fi
fi
