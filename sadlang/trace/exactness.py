"""How exactly the decomposition sums to a loaded model's own hooked activations, measured.

The tests prove the invariants on tiny models in fp32; a user's model, hardware or dtype can only
be measured: `sadlang exactness` (and benchmarks/_exactness.py) run this on a few prompts. In fp32
the bounds are those of tests/test_exactness.py; a bf16 or fp16 model computes its own activations
in half precision while the decomposition reads fp32 copies, so the sums agree only to the
model's rounding, and this says how far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sadlang.decomp.activations import PromptActivations
from sadlang.models.loader import LoadedModel

# the fp32 bounds of tests/test_exactness.py: a score row, and a component sum of the residual
SCORE_BOUND = 1e-3
RESIDUAL_BOUND = 1e-4


@dataclass(frozen=True)
class Exactness:
    """Worst absolute errors over every head, layer, destination and prompt measured, and the
    largest hooked magnitudes they compare with."""

    score: float         # max |decomposed score row - hooked scores|
    residual: float      # max |sum of residual components - hooked normalized residual|
    score_scale: float   # max |hooked score|
    residual_scale: float
    prompts: int
    dtype: str

    @property
    def within_fp32_bounds(self) -> bool:
        return self.score < SCORE_BOUND and self.residual < RESIDUAL_BOUND

    def text(self) -> str:
        verdict = "within the fp32 bounds" if self.within_fp32_bounds else "PAST the fp32 bounds"
        return (f"{self.dtype}, {self.prompts} prompt(s): max |decomposed - hooked score| {self.score:.2e} "
                f"(bound {SCORE_BOUND:g}; scores up to {self.score_scale:.3g}), max |sum of components - "
                f"normalized residual| {self.residual:.2e} (bound {RESIDUAL_BOUND:g}; values up to "
                f"{self.residual_scale:.3g}): {verdict}")


def measure(model: LoadedModel, acts: list[PromptActivations], heads: list[tuple[int, int]] | None = None) -> Exactness:
    """Exactness over `acts` (clean runs of `model`), for `heads` (default: every head), at every
    destination of every prompt."""
    from sadlang.decomp.components import residual_components
    from sadlang.trace.tracer import decomposition

    info = model.info
    heads = heads if heads is not None else [(layer, h) for layer in range(info.n_layers) for h in range(info.n_heads)]
    score = residual = score_scale = residual_scale = 0.0
    for a in acts:
        dec = decomposition(model, a)
        for layer, head in heads:
            for d in range(a.n):
                score = max(score, dec.scores_check(layer, head, d))
                hooked = a.scores[layer, head, d, model.weights.key_start(layer, d): d + 1]
                score_scale = max(score_scale, float(hooked.abs().max()))
        for layer in range(info.n_layers):
            total = residual_components(a, model.weights, layer).sum(0)
            residual = max(residual, float((total - a.normalized[layer]).abs().max()))
            residual_scale = max(residual_scale, float(a.normalized[layer].abs().max()))
        del dec
    return Exactness(score, residual, score_scale, residual_scale, len(acts), info.dtype)


def measure_texts(model: LoadedModel, texts: list[str], heads: list[tuple[int, int]] | None = None) -> Exactness:
    """`measure` on the clean runs of `texts` (one forward pass per length)."""
    from sadlang.decomp.activations import run_prompts

    with torch.no_grad():
        return measure(model, run_prompts(model, [model.to_tokens(t) for t in texts]), heads)
