"""The verdict of a per-prompt claim from how many of its prompts passed.

- `in >= p of prompts` / `in > p`: the exact binomial interval of the share decides against p;
- `in at most p of prompts`: the same interval against `<= p`;
- `in >= K prompts`: a count of the measured prompts, decided on the count itself;
- `in all prompts` and `forall`: a universal claim. One failing prompt is a counterexample and
  fails it; with none it holds over the prompts measured, and its interval (the share of the
  prompt distribution that n passes back at the confidence, lower bound (alpha/2)^(1/n)) is
  reported beside it. No finite sample can show a share of exactly 1.
"""

from __future__ import annotations

from sadlang.lang.ast import Bound, Quantifier
from sadlang.lang.compare import OPS
from sadlang.stats.decide import Decision, decide, decide_all
from sadlang.stats.intervals import Interval, binomial_interval


def quantified(passed: int, n: int, q: Quantifier, confidence: float | None) -> tuple[Decision, Interval | None]:
    """(status, interval of the share of prompts that pass); confidence None: point verdicts."""
    share = passed / n
    interval = None if confidence is None else binomial_interval(passed, n, confidence)
    if q.kind in ("all", "forall"):
        return decide_all(n - passed), interval
    if q.kind == "count":           # a number of the measured prompts: a fact of the sample
        return ("held" if OPS[q.cmp](float(passed), float(q.count)) else "failed"), interval
    bound = Bound(cmp="<=", value=q.share) if q.kind == "at_most" else Bound(cmp=q.cmp, value=q.share)
    lo, hi = (share, share) if interval is None else (interval.lo, interval.hi)
    return decide(lo, hi, bound), interval
