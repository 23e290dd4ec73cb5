"""From an interval to a status: held when the whole interval satisfies the bound, failed when
none of it does, otherwise inconclusive (the data cannot decide at this confidence)."""

from __future__ import annotations

from typing import Literal

from sadlang.lang.ast import Bound
from sadlang.lang.compare import holds

Decision = Literal["held", "failed", "inconclusive"]


def decide(lo: float, hi: float, bound: Bound) -> Decision:
    """The status of `value CMP X` when the value lies in [lo, hi]."""
    if bound.cmp == "==":
        if holds(lo, bound) and holds(hi, bound):
            return "held"
        return "failed" if not lo <= bound.value <= hi else "inconclusive"
    at_lo, at_hi = holds(lo, bound), holds(hi, bound)
    if at_lo and at_hi:
        return "held"
    if not at_lo and not at_hi:
        return "failed"
    return "inconclusive"


def decide_within(lo: float, hi: float, low: float, high: float) -> Decision:
    """The status of `low <= value <= high` when the value lies in [lo, hi]."""
    if lo >= low - 1e-12 and hi <= high + 1e-12:
        return "held"
    if hi < low or lo > high:
        return "failed"
    return "inconclusive"


def decide_all(failures: int) -> Decision:
    """`in all prompts`: one failing prompt is a counterexample; without one the claim holds over
    the prompts measured (their share's interval says how much of the distribution that backs)."""
    return "failed" if failures else "held"


# fp32 results move in their last digits between CPUs (kernels, threads, BLAS): measured up to
# ~1e-5 on the bundled model; tests/test_golden.py allows 1e-4 of max(1, |value|)
CPU_TOLERANCE = 1e-4


def near_note(lo: float, hi: float, threshold: float) -> str:
    """A note when an end of [lo, hi] lies within the CPU tolerance of the threshold: there,
    another machine's rounding could tip the verdict (empty otherwise)."""
    tol = CPU_TOLERANCE * max(1.0, abs(threshold))
    close = [x for x in (lo, hi) if abs(x - threshold) <= tol]
    if not close:
        return ""
    return (f"; note: {close[0]:.6g} lies within {tol:.1g} of the bound {threshold:g}, where another CPU's "
            f"fp32 rounding could change this verdict")
