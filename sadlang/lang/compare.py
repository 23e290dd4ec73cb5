"""What comparisons and quantifiers of the language mean: `>= 0.3` against a value, `in >= 80%
of prompts` against per-prompt results."""

from __future__ import annotations

from sadlang.lang.ast import Bound, Quantifier

OPS = {
    ">=": lambda a, b: a >= b - 1e-12, "<=": lambda a, b: a <= b + 1e-12,
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, "==": lambda a, b: abs(a - b) <= 1e-9,
}


def holds(value: float, bound: Bound) -> bool:
    return OPS[bound.cmp](value, bound.value)


def quantify(passed: list[bool], q: Quantifier) -> tuple[bool, float]:
    """(verdict, share of prompts that passed)."""
    if not passed:
        return False, 0.0
    share = sum(passed) / len(passed)
    if q.kind in ("all", "forall"):
        return all(passed), share
    if q.kind == "at_most":
        return share <= q.share + 1e-12, share
    return OPS[q.cmp](share, q.share), share
