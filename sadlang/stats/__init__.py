"""Statistics of verdicts: pure functions over per-prompt values (no torch, no model).

- `intervals`: the exact binomial (Clopper-Pearson) interval of a share, and a seeded, paired
  bootstrap interval of any statistic of per-prompt columns;
- `decide`: held / failed / inconclusive from an interval and a bound;
- `sequential`: the confidence of each look when a prompt set is sampled until decided;
- `baseline`: the permutation p-value of a score against random draws.
"""

from sadlang.stats.decide import Decision, decide, decide_all, decide_within
from sadlang.stats.intervals import Interval, binomial_interval, bootstrap_interval, mean_interval
from sadlang.stats.sequential import looks, per_look_confidence

__all__ = ["Decision", "Interval", "binomial_interval", "bootstrap_interval", "decide", "decide_all",
           "decide_within", "looks", "mean_interval", "per_look_confidence"]
