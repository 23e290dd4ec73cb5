"""Process settings of sadlang's entry points: the OpenMP spin-wait, set before torch loads, and
torch's thread count, re-chosen while a check runs (`CoreWatch`).

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


class CoreWatch:
    """Torch threads for the cores other processes leave free, re-chosen between units of work.

    Beside a busy process, two torch threads on two cores wait on each other and a check ran
    several times slower, where one thread ran at its idle speed (benchmarks/threads.py); on an
    idle machine two threads are faster. So between units of work (after the model loads, and
    between claims) the watch reads how much CPU other processes used since the last look
    (/proc/stat less this process's own time, /proc/self/stat) and sets torch's threads to the
    cores they left free. Linux only; elsewhere, when the user chose a thread count
    (SADLANG_THREADS), when pytest-xdist split the cores, or with SADLANG_WATCH_CORES=0, it does
    nothing."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.last = self._sample()
        self.threads: int | None = None
        self.choices: list[tuple[float, int]] = []       # (cores busy elsewhere, threads), per look

    @staticmethod
    def _sample() -> tuple[int, int, int] | None:
        """(busy jiffies of all CPUs, all jiffies, this process's jiffies), or None off Linux."""
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]) - idle, sum(fields[:8]), int(own[11]) + int(own[12])

    def others(self) -> float | None:
        """Cores' worth of CPU that other processes used since the last look (None: unknown)."""
        now = self._sample()
        before, self.last = self.last, now
        if now is None or before is None or now[1] <= before[1]:
            return None
        busy, total, own = (a - b for a, b in zip(now, before))
        return max(0.0, (busy - own) / total * self.cores)

    def adjust(self) -> None:
        """Set torch's threads to the cores other processes left free since the last look."""
        others = self.others()
        if others is None:
            return
        threads = max(1, self.cores - int(others + 0.5))
        self.choices.append((round(others, 2), threads))
        if threads != self.threads:
            import torch

            torch.set_num_threads(threads)
            self.threads = threads


WATCH: CoreWatch | None = None


def watch_cores() -> None:
    """Entry points call this (CLI, pytest plugin): from now on `between_work` re-chooses torch's
    threads, unless the user or pytest-xdist already chose them."""
    global WATCH
    if os.environ.get("SADLANG_THREADS", "").strip() or os.environ.get("PYTEST_XDIST_WORKER_COUNT") or \
            os.environ.get("SADLANG_WATCH_CORES", "1") == "0":
        return
    if WATCH is None and (os.cpu_count() or 1) > 1:
        WATCH = CoreWatch()


def between_work() -> None:
    """A point between units of work (after loading, between claims): re-choose the threads."""
    if WATCH is not None:
        WATCH.adjust()


def release_free_memory() -> bool:
    """Hand memory the process has freed back to the system (glibc's `malloc_trim`). A load frees
    what folding and stacking replaced (the untied unembedding's source, each layer's projections
    before they moved into stacks), but glibc keeps freed blocks below its mmap threshold in its
    heap, where the resident set still counts them. False where there is no glibc."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
