"""Plain per-prompt records (pydantic), carried by verdicts into every report format."""

from __future__ import annotations

from pydantic import BaseModel


class PromptEvidence(BaseModel):
    """What one prompt showed for one claim."""

    index: int
    text: str
    value: float | None
    passed: bool
    detail: str = ""
