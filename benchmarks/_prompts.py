"""IOI-style prompts shared by the benchmark scripts (run as `python benchmarks/X.py`, which puts
this folder on sys.path)."""

from __future__ import annotations

import random

NAMES = [" Mary", " John", " Alice", " Bob", " Sarah", " James", " Tom", " Anna"]


def ioi_prompts(n: int, seed: int = 0, names: list[str] | None = None) -> list[tuple[str, str, str]]:
    """n (prompt, IO, S) triples of one template, names drawn with `seed`."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.sample(names or NAMES, 2)
        out.append((f"When{a} and{b} went to the store,{b} gave a drink to", a, b))
    return out
