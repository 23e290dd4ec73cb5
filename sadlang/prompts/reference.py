"""The held-out reference draw of a templated prompt set: what mean ablations average over.

A mean taken over the measured prompts contains each prompt itself, and with few prompts per
template that share keeps much of what the ablation should remove (a circuit of heads that do
nothing kept 0.65 / 0.42 / 0.13 of the logit difference at 2 / 4 / 16 prompts per template). The
reference set is a second draw of the same templates and pools, with its own seed, from which
every prompt equal to a measured one is left out.
"""

from __future__ import annotations

SUFFIX = ":reference"


def reference_name(prompt_set: str) -> str:
    """The plan's name of a set's held-out reference draw (':' cannot start a user's name)."""
    return prompt_set + SUFFIX


def reference_seed(seed: int) -> int:
    """The held-out draw's seed: fixed by the set's seed, never equal to it."""
    return (seed * 1_000_003 + 7_919) % (2**31 - 1) + 1


def held_out(samples: list[tuple[int, dict[str, str]]], measured: list[tuple[int, dict[str, str]]],
             size: int) -> list[tuple[int, dict[str, str]]]:
    """The first `size` distinct samples that are not measured prompts (in draw order)."""
    seen = {(t, tuple(sorted(a.items()))) for t, a in measured}
    out = []
    for t, a in samples:
        key = (t, tuple(sorted(a.items())))
        if key in seen:
            continue
        seen.add(key)
        out.append((t, a))
        if len(out) == size:
            break
    return out
