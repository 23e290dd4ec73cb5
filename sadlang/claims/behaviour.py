"""`logit_diff CMP X` (per prompt), `mean logit_diff CMP X`, `accuracy CMP X`: what the model
does on the task, read from the logits at the answer position."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from lark import Token

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, Work, bound_problems
from sadlang.evidence.records import PromptEvidence
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import SemanticError, bound, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class Behaviour(A.ClaimBody):
    kind: Literal["behaviour"] = "behaviour"
    metric: Literal["logit_diff", "accuracy"]
    mean: bool = False
    bound: A.Bound


def _behaviour(meta: Any, ch: list[Any]) -> Behaviour:
    mean = isinstance(ch[0], Token) and ch[0].type == "MEAN"
    rest = ch[1:] if mean else ch
    if str(rest[0]) != "logit_diff":
        raise SemanticError(f"behaviour claims bound logit_diff or accuracy, not {rest[0]}", rest[0])
    return Behaviour(metric="logit_diff", mean=mean, bound=bound(rest[1], rest[2]), loc=loc(meta))


def _accuracy(meta: Any, ch: list[Any]) -> Behaviour:
    return Behaviour(metric="accuracy", mean=True, bound=bound(ch[0], ch[1]), loc=loc(meta))


class BehaviourKind(ClaimKind):
    name = "behaviour"
    node = Behaviour
    summary = "the logit difference (per prompt or its mean) or the accuracy on the task"
    examples = ("logit_diff > 1 on copy", "mean logit_diff > 1 on copy", "accuracy >= 0.25 on copy")
    failing = ("logit_diff < 0 on copy", "mean logit_diff >= 1000 on copy", "accuracy <= 0.2 on copy")

    def rules(self) -> dict[str, Builder]:
        return {"behaviour": _behaviour, "accuracy": _accuracy}

    def work(self, body: Behaviour) -> Work:
        return "behaviour"

    def describe(self, body: Behaviour) -> str:
        return "read logits at end (no decomposition)"

    def needs_answers(self, body: Behaviour) -> bool:
        return True

    def static_errors(self, body: Behaviour) -> list[Problem]:
        return bound_problems(body.bound, 0.0, 1.0, "an accuracy")[0] if body.metric == "accuracy" else []

    def vacuous(self, body: Behaviour) -> list[Problem]:
        return bound_problems(body.bound, 0.0, 1.0, "an accuracy")[1] if body.metric == "accuracy" else []

    def per_prompt(self, body: Behaviour) -> bool:
        return not body.mean and body.metric == "logit_diff"

    def claimed(self, body: Behaviour) -> str:
        mean = "mean " if body.mean and body.metric == "logit_diff" else ""
        return f"{mean}{body.metric} {body.bound.text()}"

    def probe(self, ev: PromptSetEvidence, body: Behaviour, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        ld = ev.logit_diff(i)
        return ld, holds(ld, body.bound), f"logit_diff {ld:.3f}"

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        """The mean over the prompts, with its interval: exact binomial for accuracy (a share of
        correct prompts), a bootstrap over prompts for the mean logit difference. The prompts'
        values are listed, none judged alone (the claim is about their mean)."""
        from sadlang.stats import binomial_interval, decide, mean_interval

        body: Behaviour = claim.body  # type: ignore[assignment]
        if body.metric == "accuracy":
            vals = [1.0 if ev.correct(i) else 0.0 for i in range(len(ev))]
        else:
            vals = [ev.logit_diff(i) for i in range(len(ev))]
        mean = sum(vals) / len(vals)
        prompts = [PromptEvidence(index=i, text=ev.prompts[i].text, value=x, passed=None,
                                  detail=f"{body.metric} {x:.3f}") for i, x in enumerate(vals)]
        interval = status = None
        if settings.confidence is not None:
            interval = (binomial_interval(int(sum(vals)), len(vals), settings.confidence) if body.metric == "accuracy"
                        else mean_interval(vals, settings.confidence, settings.seed))
            status = decide(interval.lo, interval.hi, body.bound)
        return Measurement(holds(mean, body.bound), f"{body.metric} = {mean:.4g} over {len(vals)} prompts",
                           mean, prompts, status=status, interval=interval, thresholds=[body.bound.value])


KIND = BehaviourKind()
