"""Plain per-prompt records (pydantic), carried by verdicts into every report format."""

from __future__ import annotations

from pydantic import BaseModel


class PromptEvidence(BaseModel):
    """What one prompt showed for one claim."""

    index: int
    text: str
    value: float | None
    passed: bool | None           # None: the claim is not judged prompt by prompt (a mean)
    detail: str = ""
