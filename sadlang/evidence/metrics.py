"""Task metrics, computed in one place."""

from __future__ import annotations

import torch


def logit_diff(logits_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    """logits[answer] - logits[against] (just logits[answer] without a competing token).

    logits_end: (V,) logits at the answer position.
    """
    if answer is None:
        raise ValueError("logit_diff needs an answer token")
    value = float(logits_end[answer])
    return value - float(logits_end[against]) if against is not None else value


def is_correct(logits_end: torch.Tensor, answer: int | None) -> bool:
    """Whether the top token at the answer position is the answer. logits_end: (V,)."""
    return answer is not None and int(torch.argmax(logits_end)) == answer
