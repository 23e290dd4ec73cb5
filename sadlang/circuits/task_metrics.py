"""The registry of task metrics: F, the number a circuit claim measures on each prompt from the
(V,) logits at its last position (and the clean run's, for a divergence). `option metric` picks
one, `circuit C is faithful with NAME ...` names one per claim; circuit claims, random circuits
and discovery score every variant with it; the docs table and the option's domain are read off
this registry.

    METRICS["prob"].score(logits_end, clean_end, answer, against)
    METRICS["prob"].batched(logits_end, answers, against)     # (b,), differentiable (attribution)

How a circuit's faithfulness is read from F depends on the metric's reading (`READINGS`):

    ratio       F higher is better, F(M) > 0:  F(C) / F(M)           (logit_diff, accuracy, prob)
    recovered   F lower is better:  (F(empty) - F(C)) / (F(empty) - F(M))   (loss: loss recovered)
    divergence  F lower is better, 0 on the clean run: F(C) itself, stated as `with kl <= X` (kl)

Each reading says how faithfulness and necessity are computed from the means, which way is
better, its unit and the words of its headline; circuit claims (claims/whole_circuit.py) read
everything from it. Adding a metric is adding a record here and running scripts/gen_docs.py;
see docs/architecture.md.

Importing this module loads no tensor code (the settings read it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sadlang.errors import one_of

if TYPE_CHECKING:
    import torch

Score = Callable[["torch.Tensor", "torch.Tensor", "int | None", "int | None"], float]
Faithfulness = Literal["ratio", "recovered", "divergence"]
# (b, V) logits at the end, (b,) answer ids, (b,) against ids (-1: none) -> (b,) values, differentiable
Batched = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


# (F(M), F(C), F(M without C), F(empty)) means, floats or numpy arrays alike -> a value (NaN where
# undefined: `share` guards its denominators)
ReadingOf = Callable[[Any, Any, Any, Any], Any]


def share(num: Any, den: Any) -> Any:
    """num / den where den > 0, else NaN (floats or numpy arrays)."""
    import numpy as np

    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class Reading:
    """How circuit claims read faithfulness and necessity from a metric's F.

    formula:        the faithfulness formula (docs table)
    faithfulness:   means -> the faithful claim's value
    necessity:      means -> the necessary claim's value
    higher_is_better: a larger value is the better circuit (a divergence is better smaller)
    unit:           what values are stated in (" nats"); "" for shares, stated as percentages. A
                    reading with a unit must be named per claim: `is faithful with kl <= 0.5`
    what:           its values in words, for messages ("a divergence")
    headline:       a faithful claim's value in words; `{metric}` becomes the metric's name
    necessity_headline: a necessary claim's value in words
    shares:         values are shares of F(M), which completeness, minimality and random circuits
                    compare
    needs_positive_model: undefined unless F(M) > 0 (checked before any run)
    needs_empty_above_model: undefined unless F(empty) > F(M) (checked once the empty circuit ran)
    metric_lower_is_better: the metric's F itself is better smaller
    """

    name: str
    formula: str
    faithfulness: ReadingOf
    necessity: ReadingOf
    higher_is_better: bool = True
    unit: str = ""
    what: str = "a share"
    headline: str = "faithfulness"
    necessity_headline: str = "necessity"
    shares: bool = False
    needs_positive_model: bool = False
    needs_empty_above_model: bool = False
    metric_lower_is_better: bool = True


READINGS: dict[str, Reading] = {r.name: r for r in (
    Reading("ratio", "F(C) / F(M)",
            lambda m, c, w, e: share(c, m), lambda m, c, w, e: share(m - w, m),
            shares=True, needs_positive_model=True, metric_lower_is_better=False),
    Reading("recovered", "(F(empty) − F(C)) / (F(empty) − F(M)): the loss recovered",
            lambda m, c, w, e: share(e - c, e - m), lambda m, c, w, e: share(w - m, e - m),
            headline="{metric} recovered", needs_empty_above_model=True),
    Reading("divergence", "F(C) itself, in nats: `is faithful with kl <= X`",
            lambda m, c, w, e: c + 0.0 * m, lambda m, c, w, e: w + 0.0 * m,
            higher_is_better=False, unit=" nats", what="a divergence", headline="{metric}",
            necessity_headline="{metric}"),
)}


@dataclass(frozen=True)
class TaskMetric:
    """One task metric.

    name:     as written in `option metric = NAME`
    summary:  what one prompt's value is (docs)
    score:    (logits_end (V,), the clean run's logits_end (V,), answer id, against id or None)
              -> the prompt's value
    batched:  the same for a batch of rows as a differentiable tensor (attribution patching
              takes its gradient), or None where it has no useful gradient
    faithfulness: the name of its reading in `READINGS`: how circuit claims read faithfulness
                  and necessity from F
    no_gradient:  why `batched` is None, for the refusal
    """

    name: str
    summary: str
    score: Score
    batched: Batched | None = None
    faithfulness: Faithfulness = "ratio"
    no_gradient: str = ""

    @property
    def reading(self) -> Reading:
        return READINGS[self.faithfulness]

    @property
    def lower_is_better(self) -> bool:
        return self.reading.metric_lower_is_better


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
    return one_of([m.name for m in METRICS.values() if m.reading.shares])


def docs_table() -> str:
    """The task-metrics table of docs/language.md."""
    rows = ["| metric | one prompt's value | faithfulness | gradient (discovery) |", "| --- | --- | --- | --- |"]
    rows += [f"| `{m.name}` | {m.summary} | {m.reading.formula} | "
             f"{'yes' if m.batched is not None else 'no: ' + (m.no_gradient or 'a step function')} |"
             for m in METRICS.values()]
    return "\n".join(rows)
