"""Writing report files (--json-out, --junit, --html): checked before any model loads, written
atomically (a temporary file in the target's directory, then a rename), never over an input of
the run, never into something that is not a regular file (a FIFO would block the run, a device
or /proc file would take or lose the bytes), and with OS errors as one-line messages."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sadlang.errors import UsageError


def output_problem(text: str) -> str | None:
    """Why `text` cannot be an output file (None when it can), without writing anything."""
    path = Path(text)
    if len(path.name.encode()) > 255:
        return f"{text[:60]!r}...: the file name is longer than 255 bytes"
    try:
        return _problem(path, text)
    except OSError as exc:
        return f"{text!r}: {exc.strerror or exc}"


def _problem(path: Path, text: str) -> str | None:
    if path.is_symlink() and not path.exists():
        return f"{text!r} is a dangling symbolic link"
    if path.is_dir():
        return f"{text!r} is a directory"
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            return f"{text!r} is not a regular file (a FIFO, device or socket): write the report to a file"
        if str(path.resolve()).startswith(("/proc/", "/sys/")):
            return f"{text!r} is a kernel file, not a place for a report"
        if not os.access(path, os.W_OK):
            return f"{text!r} is not writable"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"{text!r}: directory {str(parent)!r} does not exist"
    if not os.access(parent, os.W_OK):
        return f"{text!r} is not writable (its directory is not)"
    return None


def refuse_inputs(outputs: dict[str, str | None], inputs: list[str]) -> None:
    """A report file must not replace an input of the run (a spec) or another report file."""
    seen: dict[Path, str] = {}
    for path in inputs:
        if path != "-":
            seen[Path(path).resolve()] = f"the spec {path!r}"
    for flag, out in outputs.items():
        if out is None:
            continue
        where = Path(out).resolve()
        if where in seen:
            raise UsageError(f"{flag} {out!r} would overwrite {seen[where]}")
        seen[where] = f"the {flag} file"


def write_output(text_path: str, content: str, flag: str) -> None:
    """Write `content` to `text_path` atomically; errors become UsageError naming the flag."""
    why = output_problem(text_path)
    if why:
        raise UsageError(f"{flag}: {why}")
    path = Path(text_path)
    parent = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=parent, prefix=f".{path.name[:64]}.",
                                         suffix=".tmp", delete=False) as handle:
            tmp = handle.name
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {text_path!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
