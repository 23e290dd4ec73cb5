"""Error types. Every error a user can cause is a `SadError` with a message meant for people.

Each class carries its exit code: `SpecError` -> 2, any other `SadError` -> 3. A broken
invariant of sadlang itself is an `InternalError` (also exit 3): not the user's fault, and its
message asks for a bug report.
"""

from __future__ import annotations

from dataclasses import dataclass


class SadError(Exception):
    """Base class: a problem the user can act on, with a readable message."""

    exit_code = 3


class InternalError(Exception):
    """An invariant of sadlang itself failed: a bug to report, never the user's mistake."""

    exit_code = 3

    def __init__(self, message: str):
        super().__init__(f"{message} (this is a bug in sadlang: please report it, with the output "
                         f"of the same command run with --debug)")


class UsageError(SadError):
    """A bad argument or input outside a spec file (a CLI flag, a prompt): exit 2."""

    exit_code = 2


class PromptLengthError(UsageError):
    """An empty prompt, or one longer than the model's context."""


class ModelLoadError(SadError):
    """A model reference that cannot be resolved or loaded."""


class UnsupportedModelError(ModelLoadError):
    """A model whose architecture the decomposition cannot handle exactly."""


class DecompositionError(SadError):
    """A numerical invariant of the decomposition failed (e.g. an SVD did not converge)."""


class TraceError(SadError):
    """A request to the tracer that cannot be honoured (bad head, position, token...)."""


_UNSAFE = {c for c in range(0x20) if c != 0x09} | set(range(0x7F, 0xA0)) | {0x2028, 0x2029}


def printable(text: str) -> str:
    """`text` safe to echo to a terminal: control characters (ANSI escapes, form feeds, line
    and paragraph separators) written as Python escapes; tabs kept."""
    return "".join(repr(ch)[1:-1] if ord(ch) in _UNSAFE else ch for ch in text)


def one_of(names: list[str] | tuple[str, ...], quote: bool = False) -> str:
    """'a, b or c': a registry's names for a message (quoted as 'a' with `quote`)."""
    items = [repr(n) if quote else n for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def source_lines(text: str) -> list[str]:
    """Lines as the grammar counts them: split on \\n alone (a \\r before it belongs to the
    line break), so U+2028, form feeds or U+0085 inside a line never shift line numbers."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def excerpt(line: str, column: int, width: int = 100) -> tuple[str, int]:
    """A window of at most `width` characters of `line` around 1-based `column`, made
    printable; returns (text, the column's 1-based offset in it)."""
    start = max(0, min(column - 1 - width // 2, len(line) - width))
    head, tail = "..." if start > 0 else "", "..." if start + width < len(line) else ""
    before = printable(line[start:column - 1])
    return head + before + printable(line[column - 1:start + width]) + tail, len(head) + len(before) + 1


@dataclass
class Span:
    """A place in a spec file (1-based line and column)."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(SadError):
    """An error in a .sad file: carries its span and renders the line with a caret."""

    exit_code = 2

    def __init__(self, message: str, span: Span | None = None, source: str | None = None,
                 hint: str | None = None):
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        message = printable(self.message)
        head = f"{self.span}: error: {message}" if self.span else f"error: {message}"
        lines = [head]
        if self.span and self.source is not None:
            src_lines = source_lines(self.source)
            if 1 <= self.span.line <= len(src_lines):
                text, col = excerpt(src_lines[self.span.line - 1], self.span.column)
                lines.append(f"  {self.span.line:>4} | {text}")
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, min(self.span.end_column - self.span.column, len(text) - col + 1))
                lines.append("       | " + " " * (col - 1) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class SpecErrors(SpecError):
    """Several spec errors found in one pass; rendered one after another."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        SadError.__init__(self, "\n".join(e.render() for e in errors))
        self.message = errors[0].message if errors else ""
        self.span = errors[0].span if errors else None
        self.source = None
        self.hint = None

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)
