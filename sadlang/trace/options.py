"""Tracing options shared by the methods, with the published defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sadlang.trace.methods import METHODS, get_method


class TraceOptions(BaseModel):
    """How firings are found and explained.

    method: a name in the method registry (sadlang.trace.methods.METHODS).
    threshold: a fixed firing threshold overriding the method's own rule
      (sad: 0.5; acc: 1/(d+1); accpp: min(1, 2.5/(d+1))).
    term_fraction: the share of the (relative) score the selected singular terms must reach.
    edge_fraction: the cumulative share of the contributions that edges must cover (sad, acc).
    accpp_scale: the 2.5 of accpp's dynamic threshold.
    ig_steps: trapezoid intervals for accpp's integrated gradients.
    signals: store each edge's signal vector (d_model) on the graph.
    """

    model_config = ConfigDict(frozen=True)

    method: str = "acc"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    term_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    edge_fraction: float = Field(default=0.7, gt=0.0, le=1.0)
    accpp_scale: float = Field(default=2.5, gt=0.0)
    ig_steps: int = Field(default=64, ge=2, le=4096)
    signals: bool = False

    @field_validator("method")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
        return name

    def firing_threshold(self, d: int, keys: int | None = None) -> float:
        """The method's threshold at destination d, which has `keys` keys (d + 1 by default;
        fewer under a sliding window)."""
        return get_method(self.method).firing_threshold(d, self, keys)
