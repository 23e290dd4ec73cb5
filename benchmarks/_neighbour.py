"""A busy neighbour for benchmarks: a pure-Python loop on one core, as when pytest-xdist or a
second job shares the machine (imported by the scripts here, this folder on sys.path)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _spin(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        x += 1


@contextmanager
def neighbour(busy: bool) -> Iterator[None]:
    """Run the body beside a spinning process when `busy`, alone otherwise."""
    if not busy:
        yield
        return
    stop = mp.Event()
    spinner = mp.Process(target=_spin, args=(stop,))
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join()
