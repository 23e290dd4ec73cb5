"""The language server's stdio loop: LSP's framing (`Content-Length` headers, then a JSON body),
held to the protocol where a client or a stream misbehaves. pygls' own loop logs a traceback and
answers nothing when a request's params do not fit their type (the client then waits forever),
reads a `Content-Length: 99999999999` into memory, and stops at the first malformed header. Here:

- a header block without a usable `Content-Length` is skipped, with one log line, and reading
  goes on at the next header (also when the header sits right after a body on the same line);
- a body over `MAX_BODY` is not read: the stream is searched for the next header instead;
- a body that is not JSON gets the JSON-RPC parse error (-32700, id null);
- a request whose params cannot be read gets -32602 (invalid params) with its id, and one whose
  handler fails gets -32603 (internal error): every request is answered;
- diagnostics are published when no message is waiting (`server.sad_flush`), so a burst of edits
  is checked once, at its last text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import sys
import threading
from typing import Any, BinaryIO

from pygls.io_ import StdoutWriter

log = logging.getLogger("sadlang.lsp")

MAX_BODY = 64 * 2**20                  # 64 MiB: far above any spec a person edits
HEADER = re.compile(rb"Content-Length:[ \t]*(\d{1,20})", re.IGNORECASE)

PARSE_ERROR, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32602, -32603


def send_error(writer: Any, msg_id: Any, code: int, message: str) -> None:
    """Write one JSON-RPC error response, framed."""
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}).encode()
    writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    if hasattr(writer, "_stdout"):
        writer._stdout.flush()


def handle(protocol: Any, body: bytes, writer: Any, flush: Any = None) -> None:
    """One message body: handed to pygls when it is well formed, else answered with its error.
    Diagnostics still due are published before `shutdown` (`flush`)."""
    try:
        raw = json.loads(body)
    except ValueError as exc:
        log.warning("lsp: a message body is not JSON (%s); answered with a parse error", exc)
        send_error(writer, None, PARSE_ERROR, f"Parse error: {exc}")
        return
    request = isinstance(raw, dict) and "id" in raw and "method" in raw
    if flush is not None and isinstance(raw, dict) and raw.get("method") in ("shutdown", "exit"):
        flush()
    try:
        message = json.loads(body, object_hook=protocol.structure_message)
    except Exception as exc:  # cattrs and lsprotocol raise many types for mistyped params
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("lsp: %s: params do not fit the protocol (%s)", raw.get("method") if request else "?", first)
        if request:
            send_error(writer, raw["id"], INVALID_PARAMS, f"Invalid params for {raw['method']}: {first}")
        return
    try:
        protocol.handle_message(message)
    except Exception as exc:
        log.warning("lsp: %s failed: %s", raw.get("method") if isinstance(raw, dict) else "?", exc)
        if request:
            send_error(writer, raw["id"], INTERNAL_ERROR, f"Internal error: {exc}")


class Stream:
    """Lines and exact reads over a file descriptor with a buffer of our own, so that we can tell
    whether another message is already waiting (`waiting`) without blocking: Python's buffered
    stdin hides what it has read ahead from `select`."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.buf = bytearray()
        self.eof = False
        try:
            self.fd: int | None = source.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = os.read(self.fd, 1 << 16) if self.fd is not None else self.source.read(1 << 16)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self) -> bytes:
        while b"\n" not in self.buf and self._fill():
            pass
        end = self.buf.find(b"\n") + 1 or len(self.buf)
        line = bytes(self.buf[:end])
        del self.buf[:end]
        return line

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def waiting(self) -> bool:
        if self.buf:
            return True
        if self.fd is None or self.eof:
            return False
        try:
            return bool(select.select([self.fd], [], [], 0)[0])
        except (OSError, ValueError):
            return False


def serve(server: Any, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Read framed messages from stdin until it closes (or the server stops)."""
    stream = Stream(stdin or sys.stdin.buffer)
    writer = StdoutWriter(stdout or sys.stdout.buffer)
    server.protocol.set_writer(writer)
    stop = threading.Event()
    server._stop_event = stop
    length: int | None = None
    try:
        while not stop.is_set():
            line = stream.readline()
            if not line:
                break
            found = HEADER.search(line)
            if found:
                length = int(found.group(1))
                continue
            if line.strip():
                continue                   # another header (Content-Type), or debris before one
            if length is None:
                log.warning("lsp: a message without a Content-Length header; skipped")
                continue
            if length > MAX_BODY:
                log.warning("lsp: Content-Length %d is over the %d-byte limit; skipped, reading on at the "
                            "next header", length, MAX_BODY)
                length = None
                continue
            body = stream.read(length)
            length = None
            if body is None or len(body) == 0:
                break
            flush = getattr(server, "sad_flush", None)
            handle(server.protocol, body, writer, flush)
            if flush is not None and not stream.waiting():
                flush()
        flush = getattr(server, "sad_flush", None)
        if flush is not None:
            flush()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        server.shutdown()
