"""Problems of a spec as an editor shows them, from the same code paths as `sadlang check`:
syntax and semantic errors, validation warnings, and head/layer ranges when the model's
configuration is on this machine (sadlang/models/shapes.py: no weights are loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sadlang.errors import SpecError, SpecErrors


@dataclass(frozen=True)
class Problem:
    """1-based line and column, end exclusive, as sadlang's spans."""

    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    severity: Literal["error", "warning"] = "error"


def _flatten(exc: SpecError) -> list[SpecError]:
    return list(exc.errors) if isinstance(exc, SpecErrors) else [exc]


def _problem(exc: SpecError, severity: Literal["error", "warning"] = "error") -> Problem:
    span = exc.span
    message = exc.message + (f" ({exc.hint})" if exc.hint else "")
    if span is None:
        return Problem(1, 1, 1, 2, message, severity)
    end_line = span.end_line or span.line
    end_col = span.end_column or span.column + 1
    if (end_line, end_col) <= (span.line, span.column):
        end_line, end_col = span.line, span.column + 1
    return Problem(span.line, span.column, end_line, end_col, message, severity)


def check_text(text: str, file: str = "<editor>", models: bool = True) -> list[Problem]:
    """Every problem `sadlang check` would report before running the model."""
    from sadlang.language import parse_spec
    from sadlang.plan.validate import validate

    try:
        spec = parse_spec(text, file)
        warnings = validate(spec).warnings
    except SpecError as exc:
        return [_problem(e) for e in _flatten(exc)]
    out = [_problem(w, "warning") for w in warnings]
    if models:
        from sadlang.models.shapes import cached_shape
        from sadlang.plan.compile import head_errors

        try:
            shape = cached_shape(spec.model)
        except Exception:
            shape = None
        if shape is not None:
            out += [_problem(e) for e in head_errors(spec, shape)]
    return out
