"""Evidence and verdicts: plain data that serializes to stable JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sadlang.evidence.records import PromptEvidence

__all__ = ["PromptEvidence", "Report", "Status", "Verdict"]

Status = Literal["held", "failed", "error"]


class Verdict(BaseModel):
    name: str
    kind: str
    claim: str                      # the claim as written
    location: str                   # file:line:col
    status: Status
    claimed: str                    # the bound and quantifier in words
    measured: str                   # what was measured, in words
    value: float | None = None      # the headline number (share, mean, F1...)
    prompts: list[PromptEvidence] = Field(default_factory=list)
    counterexample: PromptEvidence | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def held(self) -> bool:
        return self.status == "held"

    def worst(self, k: int = 3) -> list[PromptEvidence]:
        failing = [p for p in self.prompts if not p.passed]
        return failing[:k]


class Report(BaseModel):
    spec: str
    model: str
    model_fingerprint: str
    method: str
    verdicts: list[Verdict]

    @property
    def exit_code(self) -> int:
        if any(v.status == "error" for v in self.verdicts):
            return 3
        return 0 if all(v.held for v in self.verdicts) else 1
