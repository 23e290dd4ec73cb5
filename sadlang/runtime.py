"""Process settings that must be made before torch loads.

OpenMP threads (libgomp, which torch's CPU builds use) spin-wait for work for a while before
they sleep: 300,000 spins by default. On a machine whose other core is busy, a spinning thread
burns the time slice the working thread needs, and a check runs several times slower.
`benchmarks/wait_policy.py` measured 0.75 s idle against 6.26 s busy with the default, on the
2-core machine. With 3,000 spins it measured 0.88 s and 1.37 s. The entry points (the CLI and
the pytest plugin) set that before torch loads unless the user set a wait policy of their own;
library callers keep their process as it is (docs/benchmarks.md, *Torch threads*).
"""

from __future__ import annotations

import os
import sys

SPINCOUNT = "3000"


def calm_openmp() -> None:
    """Shorten OpenMP's spin-wait (GOMP_SPINCOUNT) unless torch is already loaded or the user
    chose a wait policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT)."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
