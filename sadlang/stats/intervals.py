"""Intervals at a stated confidence, from per-prompt values.

Two kinds, both two-sided and equal-tailed (each tail holds at most (1 - confidence) / 2):

- `binomial_interval(k, n)`: the exact (Clopper-Pearson) interval of a share of prompts;
- `bootstrap_interval(columns, statistic)`: a seeded percentile bootstrap over prompts. The same
  resampled prompts serve every column (paired: F(C) and F(M) of one prompt move together, as do
  a prompt and its counterfactual twin, whose values sit in the same row). The percentile is
  expanded for small samples (Hesterberg 2015: the tail probability of a t interval scaled by
  sqrt(n / (n - 1))), since the plain percentile interval undercovers at a dozen prompts.

Pure functions: no torch, no model. numpy only for the resampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel

BOOTSTRAP_DRAWS = 2000


class Interval(BaseModel):
    """[lo, hi] at `confidence`, from `n` prompts by `method` (binomial, bootstrap, exact)."""

    lo: float
    hi: float
    confidence: float
    n: int
    method: str

    def text(self, digits: int = 4) -> str:
        return f"[{self.lo:.{digits}g}, {self.hi:.{digits}g}] at {self.confidence:.4g}"


# ---- the regularized incomplete beta function and its inverse (no scipy on this stack)
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_quantile(p: float, a: float, b: float) -> float:
    """x with I_x(a, b) = p (bisection to 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with `dof` degrees of freedom (p in (0.5, 1))."""
    def upper(t: float) -> float:          # P(T > t) for t >= 0
        return 0.5 * betainc(dof / 2.0, 0.5, dof / (dof + t * t))
    lo, hi = 0.0, 1.0
    while upper(hi) > 1.0 - p:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if upper(mid) > 1.0 - p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---- intervals
def binomial_interval(k: int, n: int, confidence: float) -> Interval:
    """The exact Clopper-Pearson interval of a share k / n: each tail at most (1 - confidence) / 2."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"binomial interval of {k} out of {n}")
    tail = (1.0 - confidence) / 2.0
    lo = 0.0 if k == 0 else beta_quantile(tail, k, n - k + 1)
    hi = 1.0 if k == n else beta_quantile(1.0 - tail, k + 1, n - k)
    return Interval(lo=lo, hi=hi, confidence=confidence, n=n, method="binomial")


def expanded_tail(n: int, confidence: float) -> float:
    """The tail probability of the expanded percentile bootstrap at n values."""
    alpha = 1.0 - confidence
    if n < 2:
        return alpha / 2
    z = math.sqrt(n / (n - 1)) * t_quantile(1.0 - alpha / 2, n - 1)
    return 1.0 - NormalDist().cdf(z)


Statistic = Callable[[np.ndarray], np.ndarray]   # (..., k) column means -> (...) values


def bootstrap_interval(columns: Sequence[Sequence[float]], statistic: Statistic, confidence: float,
                       seed: int = 0, draws: int = BOOTSTRAP_DRAWS) -> Interval | None:
    """Bootstrap interval of `statistic` (a function of the k column means) over n prompts.

    columns:   k sequences of n per-prompt values; row i of every column is prompt i (paired).
    statistic: maps an array (..., k) of column means to (...) values (NaN or inf where undefined,
               a ratio whose denominator is 0, say).
    Returns None when the statistic is undefined in more resamples than a tail may hold: then no
    interval at this confidence exists (the caller reports the claim as undecided).
    """
    data = np.asarray(columns, dtype=np.float64)             # (k, n)
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError("bootstrap over no prompts")
    n = data.shape[1]
    tail = expanded_tail(n, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(draws, n))                # (B, n) resampled prompts
    means = data[:, idx].mean(-1).T                          # (B, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(statistic(means), dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.mean() > tail:
        return None
    # undefined resamples count as the most extreme on both sides: the interval only widens
    lo_vals = np.where(bad, -np.inf, values)
    hi_vals = np.where(bad, np.inf, values)
    lo = float(np.quantile(lo_vals, tail, method="lower"))
    hi = float(np.quantile(hi_vals, 1.0 - tail, method="higher"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return Interval(lo=lo, hi=hi, confidence=confidence, n=n, method="bootstrap")


def mean_interval(values: Sequence[float], confidence: float, seed: int = 0) -> Interval:
    """Interval of the mean of per-prompt values: the hull of the bootstrap interval and Student's
    t interval. At a handful of prompts the bootstrap alone undercovers light-tailed values (6
    uniform values: 5% false HELDs at 0.95, measured in tests/test_verdicts.py); t alone
    undercovers skewed ones; the hull keeps both guarantees."""
    out = bootstrap_interval([values], lambda m: m[..., 0], confidence, seed)
    assert out is not None          # a mean is always defined
    n = len(values)
    if n >= 2:
        mean = math.fsum(values) / n
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
        half = t_quantile(1.0 - (1.0 - confidence) / 2, n - 1) * sd / math.sqrt(n)
        out = out.model_copy(update={"lo": min(out.lo, mean - half), "hi": max(out.hi, mean + half)})
    return out


def exact(value: float, n: int, confidence: float) -> Interval:
    """The interval of a number that sampling does not move (a set overlap, an exact count)."""
    return Interval(lo=value, hi=value, confidence=confidence, n=n, method="exact")
