"""File hashes are remembered only while a file's size, mtime and inode stay the same."""

from __future__ import annotations

import hashlib
import os

from sadlang.models import cache_dir


def test_a_remembered_hash_is_dropped_when_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SADLANG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_dir, "_HASHES", {})
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    first = cache_dir.sha256_file(f)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert (tmp_path / "cache" / "hashes.json").is_file()
    # another process: nothing in memory, the book on disk answers without reading the file
    monkeypatch.setattr(cache_dir, "_HASHES", {})
    monkeypatch.setattr(cache_dir, "_sha256", lambda *a: "read again")
    assert cache_dir.sha256_file(f) == first
    # same size, new content and mtime: hashed again
    f.write_bytes(b"b" * 1000)
    os.utime(f, ns=(1, 1))
    assert cache_dir.sha256_file(f) == "read again"
