"""Where sadlang keeps caches (XDG user cache dir, overridable by SADLANG_CACHE_DIR)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    root = os.environ.get("SADLANG_CACHE_DIR") or platformdirs.user_cache_dir("sadlang")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The file's sha256. Remembered per process and, in `hashes.json` of the cache root,
    across processes for as long as the file's size, modification time and inode stay the
    same (a rewritten or truncated file is hashed again): a warm load of the bundled model
    then reads its 538 MB of weights once, not twice."""
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    key = str(path.resolve())
    if key in _HASHES and _HASHES[key][0] == stamp:
        return _HASHES[key][1]
    book = cache_root() / "hashes.json"
    try:
        known = json.loads(book.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), list) and known[key][0] == stamp:
        _HASHES[key] = (stamp, known[key][1])
        return known[key][1]
    digest = _sha256(path, chunk)
    _HASHES[key] = (stamp, digest)
    known[key] = [stamp, digest]
    tmp = book.with_name(f".hashes-{os.getpid()}.json")
    try:
        tmp.write_text(json.dumps(known))
        tmp.replace(book)            # atomic: concurrent processes never read half a file
    except OSError:
        pass
    return digest


_HASHES: dict[str, tuple[list[int], str]] = {}


def _sha256(path: Path, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()
