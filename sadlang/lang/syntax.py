"""Helpers that turn Lark tokens and sub-trees into AST values. Shared by the parser and by
every claim kind's builders (sadlang/claims), so each number form is read in one place."""

from __future__ import annotations

import ast as pyast
import math
import re
from collections.abc import Callable
from typing import Any, Literal, cast

from lark import Token

from sadlang.lang import ast as A

Side = Literal["query", "key"]

Builder = Callable[[Any, list[Any]], Any]   # a claim rule's builder: (rule meta, children) -> AST value


class SemanticError(Exception):
    """Raised by a builder for a form the grammar accepts but the language does not; carries
    the offending token so the parser can point at it."""

    def __init__(self, message: str, token: Any):
        super().__init__(message)
        self.token = token


def loc(meta_or_tok: Any) -> A.Loc | None:
    """The source span of a Lark token or rule meta (None if it has none)."""
    try:
        return A.Loc(line=meta_or_tok.line, column=meta_or_tok.column,
                     end_line=meta_or_tok.end_line, end_column=meta_or_tok.end_column)
    except AttributeError:
        return None


def token_at(where: Any) -> Token | None:
    """A stand-in token at `where` (a Loc or a rule meta), for errors about a whole line or a
    value whose own token is gone; None for no location."""
    if where is None:
        return None
    return Token("LINE", "", line=getattr(where, "line", 1), column=getattr(where, "column", 1),
                 end_line=getattr(where, "end_line", None), end_column=getattr(where, "end_column", None))


def unquote(tok: Any) -> str:
    """The value of a STRING token (Python string escapes)."""
    bad = re.search(r"\\([^\\'\"abfnrtvxuUN0-7])", str(tok))
    if bad:
        raise SemanticError(f"unknown escape \\{bad.group(1)} in string {str(tok)[:40]!r}: use \\\\ for a "
                            f"backslash", tok)
    try:
        value = pyast.literal_eval(tok)
    except (SyntaxError, ValueError):
        raise SemanticError(f"bad escape in string {str(tok)[:40]!r}: use \\\\, \\\", \\n, \\t or "
                            f"\\uXXXX", tok) from None
    if "\x00" in value:
        raise SemanticError("strings cannot contain NUL characters", tok)
    return str(value)


def bound(cmp: Token, value: Any, at: Any = None) -> A.Bound:
    """`CMP number` -> Bound, located at the comparison (or at `at`)."""
    return A.Bound(cmp=str(cmp), value=float(value), loc=loc(at if at is not None else cmp))


def is_percent(tok: Any) -> bool:
    return isinstance(tok, Token) and tok.type == "PERCENT"


def amount(tok: Any) -> tuple[float, bool]:
    """An `amount` (number or percentage) -> (value, given in percent). 5% -> (0.05, True)."""
    value, percent = (float(tok[:-1]) / 100.0, True) if is_percent(tok) else (float(tok), False)
    if not math.isfinite(value):
        raise SemanticError(f"{tok} is not a finite number", tok)
    return value, percent


def share(tok: Any, where: Any = None) -> float:
    """A quantifier's share of prompts as a fraction: 80% and 0.8 both give 0.8. A bare number
    above 1 is refused: `80` could mean 80% or 80 prompts."""
    value, percent = amount(tok)
    if not percent and value > 1:
        whole = float(value).is_integer()
        count = f", or `in >= {int(value)} prompts` for a count" if whole else ""
        raise SemanticError(f"a share of prompts is written {value:g}% or {value / 100:g} (a fraction), not "
                            f"{value:g}{count}", tok if where is None or hasattr(tok, "line") else where)
    return value


def edge_parts(children: list[Any]) -> tuple[Side | None, A.FiringAt | None, list[Any]]:
    """Split the children of an edge-like rule into (side, firing position, the rest)."""
    side: Side | None = None
    at, rest = None, []
    for c in children:
        if isinstance(c, tuple) and c and c[0] == "via":
            side = cast(Side, c[1])
        elif isinstance(c, A.FiringAt):
            at = c
        else:
            rest.append(c)
    return side, at, rest
