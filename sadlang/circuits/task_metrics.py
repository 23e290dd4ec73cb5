"""The registry of task metrics: F, the number a circuit claim measures on each prompt from the
(V,) logits at its last position (and the clean run's, for a divergence). `option metric` picks
one, `circuit C is faithful with NAME ...` names one per claim; circuit claims, random circuits
and discovery score every variant with it; the docs table and the option's domain are read off
this registry.

    METRICS["prob"].score(logits_end, clean_end, answer, against)
    METRICS["prob"].batched(logits_end, answers, against)     # (b,), differentiable (attribution)

How a circuit's faithfulness is read from F depends on the metric's `faithfulness`:

    ratio       higher is better, F(M) > 0:  F(C) / F(M)           (logit_diff, accuracy, prob)
    recovered   lower is better:  (F(empty) - F(C)) / (F(empty) - F(M))   (loss: loss recovered)
    divergence  lower is better, 0 on the clean run: F(C) itself, stated as `with kl <= X` (kl)

Adding one is adding a record here and running scripts/gen_docs.py; see docs/architecture.md.

Importing this module loads no tensor code (the settings read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sadlang.errors import one_of

if TYPE_CHECKING:
    import torch

Score = Callable[["torch.Tensor", "torch.Tensor", "int | None", "int | None"], float]
Faithfulness = Literal["ratio", "recovered", "divergence"]
# (b, V) logits at the end, (b,) answer ids, (b,) against ids (-1: none) -> (b,) values, differentiable
Batched = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class TaskMetric:
    """One task metric.

    name:     as written in `option metric = NAME`
    summary:  what one prompt's value is (docs)
    score:    (logits_end (V,), the clean run's logits_end (V,), answer id, against id or None)
              -> the prompt's value
    batched:  the same for a batch of rows as a differentiable tensor (attribution patching
              takes its gradient), or None where it has no useful gradient
    faithfulness: how circuit claims read faithfulness and necessity from F (module docstring)
    no_gradient:  why `batched` is None, for the refusal
    """

    name: str
    summary: str
    score: Score
    batched: Batched | None = None
    faithfulness: Faithfulness = "ratio"
    no_gradient: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.faithfulness != "ratio"


def _logit_diff(logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    from sadlang.evidence.metrics import logit_diff

    return logit_diff(logits_end, answer, against)


def _accuracy(logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    from sadlang.evidence.metrics import is_correct

    return float(is_correct(logits_end, answer))


def _prob(logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    if answer is None:
        raise ValueError("prob needs an answer token")
    return float(logits_end.double().softmax(-1)[answer])


def _loss(logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    if answer is None:
        raise ValueError("loss needs an answer token")
    return float(-logits_end.double().log_softmax(-1)[answer])


def _kl(logits_end: torch.Tensor, clean_end: torch.Tensor, answer: int | None, against: int | None) -> float:
    """KL(clean || run) in nats over the vocabulary, in float64 (a clean run scores exactly 0)."""
    p = clean_end.double().log_softmax(-1)
    q = logits_end.double().log_softmax(-1)
    return max(0.0, float((p.exp() * (p - q)).sum()))


def _batched_logit_diff(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    picked = logits_end.gather(1, answers[:, None])[:, 0]
    other = logits_end.gather(1, against.clamp(min=0)[:, None])[:, 0]
    return picked - other * (against >= 0).to(picked.dtype)


def _batched_prob(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    return logits_end.softmax(-1).gather(1, answers[:, None])[:, 0]


def _batched_loss(logits_end: torch.Tensor, answers: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    return -logits_end.log_softmax(-1).gather(1, answers[:, None])[:, 0]


METRICS: dict[str, TaskMetric] = {m.name: m for m in (
    TaskMetric("logit_diff", "logit(answer) − logit(against) (logit(answer) without `against`)", _logit_diff,
               _batched_logit_diff),
    TaskMetric("accuracy", "1 when the answer is the top token, else 0: the share of prompts solved", _accuracy,
               no_gradient="it is a step function"),
    TaskMetric("prob", "p(answer), the answer's probability under the model's softmax", _prob, _batched_prob),
    TaskMetric("loss", "−log p(answer), the answer's next-token loss (lower is better)", _loss, _batched_loss,
               "recovered"),
    TaskMetric("kl", "KL(clean ‖ run) over the vocabulary in nats, 0 on the clean run (lower is better)", _kl, None,
               "divergence",
               "its gradient is zero at the clean run, where attribution patching takes it"),
)}


def names_text() -> str:
    """The names, 'a, b or c', for messages and option descriptions."""
    return one_of(list(METRICS))


def differentiable_text() -> str:
    """The names of the metrics with a gradient, 'a or b', for messages."""
    return one_of([m.name for m in METRICS.values() if m.batched is not None])


def ratio_text() -> str:
    """The names of the higher-is-better (ratio) metrics, for messages."""
    return one_of([m.name for m in METRICS.values() if m.faithfulness == "ratio"])


def docs_table() -> str:
    """The task-metrics table of docs/language.md."""
    reading = {"ratio": "F(C) / F(M)", "recovered": "(F(empty) − F(C)) / (F(empty) − F(M)): the loss recovered",
               "divergence": "F(C) itself, in nats: `is faithful with kl <= X`"}
    rows = ["| metric | one prompt's value | faithfulness | gradient (discovery) |", "| --- | --- | --- | --- |"]
    rows += [f"| `{m.name}` | {m.summary} | {reading[m.faithfulness]} | "
             f"{'yes' if m.batched is not None else 'no: ' + (m.no_gradient or 'a step function')} |"
             for m in METRICS.values()]
    return "\n".join(rows)
