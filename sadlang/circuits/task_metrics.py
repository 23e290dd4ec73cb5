"""The registry of task metrics: F, the number a circuit claim measures on each prompt from the
(V,) logits at its last position. `option metric` picks one; circuit claims, node ablations and
random circuits score every variant with it; the docs table and the option's domain are read
off this registry.

    METRICS["prob"].score(logits_end, answer, against)
    METRICS["prob"].batched(logits_end, answers, against)     # (b,), differentiable (attribution)

A metric is higher-is-better and its clean value must be positive for faithfulness ratios to
mean anything (claims check that). Adding one is adding a record here and running
scripts/gen_docs.py; see docs/architecture.md.

Importing this module loads no tensor code (the settings read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sadlang.errors import one_of

if TYPE_CHECKING:
    import torch

Score = Callable[["torch.Tensor", "int | None", "int | None"], float]
# (b, V) logits at the end, (b,) answer ids, (b,) against ids (-1: none) -> (b,) values, differentiable
Batched = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class TaskMetric:
    """One task metric.

    name:     as written in `option metric = NAME`
    summary:  what one prompt's value is (docs)
    score:    (logits_end (V,), answer id, against id or None) -> the prompt's value
    batched:  the same for a batch of rows as a differentiable tensor (attribution patching
              takes its gradient), or None for a step function
    """

    name: str
    summary: str
    score: Score
    batched: Batched | None = None


def _logit_diff(logits_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    from sadlang.evidence.metrics import logit_diff

    return logit_diff(logits_end, answer, against)


def _accuracy(logits_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    from sadlang.evidence.metrics import is_correct

    return float(is_correct(logits_end, answer))


def _prob(logits_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    if answer is None:
        raise ValueError("prob needs an answer token")
    return float(logits_end.double().softmax(-1)[answer])


def _batched_logit_diff(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    picked = logits_end.gather(1, answers[:, None])[:, 0]
    other = logits_end.gather(1, against.clamp(min=0)[:, None])[:, 0]
    return picked - other * (against >= 0).to(picked.dtype)


def _batched_prob(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    return logits_end.softmax(-1).gather(1, answers[:, None])[:, 0]


METRICS: dict[str, TaskMetric] = {m.name: m for m in (
    TaskMetric("logit_diff", "logit(answer) − logit(against) (logit(answer) without `against`)", _logit_diff,
               _batched_logit_diff),
    TaskMetric("accuracy", "1 when the answer is the top token, else 0: the share of prompts solved", _accuracy),
    TaskMetric("prob", "p(answer), the answer's probability under the model's softmax", _prob, _batched_prob),
)}


def names_text() -> str:
    """The names, 'a, b or c', for messages and option descriptions."""
    return one_of(list(METRICS))


def differentiable_text() -> str:
    """The names of the metrics with a gradient, 'a or b', for messages."""
    return one_of([m.name for m in METRICS.values() if m.batched is not None])


def docs_table() -> str:
    """The task-metrics table of docs/language.md."""
    rows = ["| metric | one prompt's value |", "| --- | --- |"]
    rows += [f"| `{m.name}` | {m.summary} |" for m in METRICS.values()]
    return "\n".join(rows)
