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


class ModelLoadError(SadError):
    """A model reference that cannot be resolved or loaded."""


class UnsupportedModelError(ModelLoadError):
    """A model whose architecture the decomposition cannot handle exactly."""


class DecompositionError(SadError):
    """A numerical invariant of the decomposition failed (e.g. an SVD did not converge)."""


class TraceError(SadError):
    """A request to the tracer that cannot be honoured (bad head, position, token...)."""


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
        head = f"{self.span}: error: {self.message}" if self.span else f"error: {self.message}"
        lines = [head]
        if self.span and self.source is not None:
            src_lines = self.source.splitlines()
            if 1 <= self.span.line <= len(src_lines):
                text = src_lines[self.span.line - 1]
                lines.append(f"  {self.span.line:>4} | {text}")
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - self.span.column)
                lines.append("       | " + " " * (self.span.column - 1) + "^" * width)
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
