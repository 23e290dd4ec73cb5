"""Where sadlang keeps caches (XDG user cache dir, overridable by SADLANG_CACHE_DIR)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    root = os.environ.get("SADLANG_CACHE_DIR") or platformdirs.user_cache_dir("sadlang")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()
