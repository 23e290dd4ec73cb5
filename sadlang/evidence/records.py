"""Plain per-prompt records (pydantic), carried by verdicts into every report format."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PromptEvidence(BaseModel):
    """What one prompt showed for one claim."""

    index: int
    text: str
    value: float | None
    passed: bool | None           # None: the claim is not judged prompt by prompt (a mean)
    detail: str = ""


class Counterexample(PromptEvidence):
    """A searched prompt that fails the claim, with what it takes to show and re-run it: its
    tokens (decoded, BOS first) and token ids, the role of each labelled position, and the
    positions of each slot's occurrences."""

    tokens: list[str] = Field(default_factory=list)
    token_ids: list[int] = Field(default_factory=list)
    labels: dict[int, str] = Field(default_factory=dict)       # position -> role label
    roles: dict[str, list[int]] = Field(default_factory=dict)  # slot -> positions of its occurrences
    template: str = ""
