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
    if q.kind == "count":
        return OPS[q.cmp](float(sum(passed)), float(q.count)), share
    return OPS[q.cmp](share, q.share), share


def vacuous(bound: Bound, lo: float, hi: float, what: str) -> str | None:
    """Why `what CMP value` is always or never true when `what` lies in [lo, hi] (None if it
    can go either way)."""
    v, cmp = bound.value, bound.cmp
    never = ((cmp == ">=" and v > hi) or (cmp == ">" and v >= hi) or (cmp == "<=" and v < lo)
             or (cmp == "<" and v <= lo) or (cmp == "==" and not lo <= v <= hi))
    always = ((cmp == ">=" and v <= lo) or (cmp == ">" and v < lo) or (cmp == "<=" and v >= hi)
              or (cmp == "<" and v > hi))
    if never or always:
        return (f"`{cmp} {v:g}` is {'never' if never else 'always'} true: {what} is in "
                f"[{lo:g}, {hi:g}] (use --lenient to run it anyway)")
    return None
