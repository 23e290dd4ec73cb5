"""The registry of task metrics: F, the number a circuit claim measures on each prompt from the
(V,) logits at its last position. `option metric` picks one; circuit claims, node ablations and
random circuits score every variant with it; the docs table and the option's domain are read
off this registry.

    METRICS["prob"].score(logits_end, answer, against)

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


@dataclass(frozen=True)
class TaskMetric:
    """One task metric.

    name:     as written in `option metric = NAME`
    summary:  what one prompt's value is (docs)
    score:    (logits_end (V,), answer id, against id or None) -> the prompt's value
    """

    name: str
    summary: str
    score: Score


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


METRICS: dict[str, TaskMetric] = {m.name: m for m in (
    TaskMetric("logit_diff", "logit(answer) − logit(against) (logit(answer) without `against`)", _logit_diff),
    TaskMetric("accuracy", "1 when the answer is the top token, else 0: the share of prompts solved", _accuracy),
    TaskMetric("prob", "p(answer), the answer's probability under the model's softmax", _prob),
)}


def names_text() -> str:
    """The names, 'a, b or c', for messages and option descriptions."""
    return one_of(list(METRICS))


def docs_table() -> str:
    """The task-metrics table of docs/language.md."""
    rows = ["| metric | one prompt's value |", "| --- | --- |"]
    rows += [f"| `{m.name}` | {m.summary} |" for m in METRICS.values()]
    return "\n".join(rows)
