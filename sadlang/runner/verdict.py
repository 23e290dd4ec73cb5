"""Evidence and verdicts: plain data that serializes to stable JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sadlang.evidence.records import Counterexample, PromptEvidence
from sadlang.stats.intervals import Interval

__all__ = ["STATUSES", "Counterexample", "Interval", "PromptEvidence", "Report", "Status", "Verdict"]

# inconclusive: the interval of the measured value straddles the claimed bound, so the data
# cannot decide the claim at the spec's confidence (more prompts, or `sample N up to M`, may)
Status = Literal["held", "failed", "inconclusive", "error"]
STATUSES: tuple[Status, ...] = ("held", "failed", "inconclusive", "error")


class Verdict(BaseModel):
    name: str
    kind: str
    claim: str                      # the claim as written
    location: str                   # file:line:col
    status: Status
    claimed: str                    # the bound and quantifier in words
    measured: str                   # what was measured, in words
    value: float | None = None      # the headline number (share, mean, F1...); None only on errors
    interval: Interval | None = None  # the value's interval at `confidence` (None: not sampled)
    confidence: float | None = None   # the spec's confidence (per look under `up to`); None: point verdicts
    n_prompts: int = 0              # the prompts the verdict used
    prompts: list[PromptEvidence] = Field(default_factory=list)
    counterexample: Counterexample | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def held(self) -> bool:
        return self.status == "held"

    def worst(self, k: int = 3) -> list[PromptEvidence]:
        failing = [p for p in self.prompts if p.passed is False]
        return failing[:k]


class Report(BaseModel):
    spec: str
    model: str
    model_fingerprint: str
    method: str
    verdicts: list[Verdict]

    @property
    def exit_code(self) -> int:
        return self.exit_code_with()

    def exit_code_with(self, allow_inconclusive: bool = False) -> int:
        """3 on any error, else 1 on any failure (or undecided claim, unless allowed), else 0."""
        if any(v.status == "error" for v in self.verdicts):
            return 3
        ok = ("held", "inconclusive") if allow_inconclusive else ("held",)
        return 0 if all(v.status in ok for v in self.verdicts) else 1
