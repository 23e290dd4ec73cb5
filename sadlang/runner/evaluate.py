"""Turn a claim into a verdict: its kind measures it (per prompt, then quantified; or over the
whole prompt set), and the verdict says what was claimed next to what was measured."""

from __future__ import annotations

import math

from sadlang.claims import ClaimKind, Measurement, kind_of
from sadlang.claims.base import fmt
from sadlang.evidence.records import PromptEvidence
from sadlang.evidence.store import PromptSetEvidence
from sadlang.lang import ast as A
from sadlang.lang.compare import quantify
from sadlang.runner.verdict import Verdict
from sadlang.settings import Settings
from sadlang.stats.decide import near_note


def claimed_text(claim: A.Claim) -> str:
    """The claim's bound in words, with its quantifier when it is measured per prompt."""
    kind = kind_of(claim.body)
    text = kind.claimed(claim.body)
    return f"{text}; {claim.quantifier.text()}" if kind.per_prompt(claim.body) else text


def location(spec: A.Spec, claim: A.Claim) -> str:
    loc = claim.loc
    return f"{spec.file}:{loc.line}:{loc.column}" if loc else spec.file


def verdict(spec: A.Spec, claim: A.Claim, m: Measurement, settings: Settings | None = None) -> Verdict:
    measured = m.measured
    if m.interval is not None and m.interval.method != "exact":
        measured += f"; {m.interval.method} interval {m.interval.text()}"
    if m.status == "inconclusive" and "inconclusive" not in measured:
        measured += "; the data cannot decide the claim at this confidence"
    lo, hi = (m.interval.lo, m.interval.hi) if m.interval is not None else (m.value, m.value)
    if lo is not None and hi is not None:
        measured += next((note for t in m.thresholds if (note := near_note(lo, hi, t))), "")
    value = m.value
    if value is not None and not math.isfinite(value):
        raise ValueError(f"claim {claim.name}: a verdict value must be finite, got {value}")
    n = m.interval.n if m.interval is not None else len(m.prompts)
    return Verdict(name=claim.name, kind=claim.body.kind, claim=claim.source_line,
                   location=location(spec, claim), status=m.decided,  # type: ignore[arg-type]
                   claimed=m.claimed if m.claimed is not None else claimed_text(claim),
                   measured=measured, value=value, prompts=m.prompts, details=m.details,
                   interval=m.interval, confidence=settings.confidence if settings else None, n_prompts=n)


def error_verdict(spec: A.Spec, claim: A.Claim, message: str) -> Verdict:
    return Verdict(name=claim.name, kind=claim.body.kind, claim=claim.source_line,
                   location=location(spec, claim), status="error", claimed=claimed_text(claim),
                   measured=message)


def shards(ev: PromptSetEvidence, claim: A.Claim) -> list[list[int]] | None:
    """The prompt shards a claim is measured in (the set's forward-pass batches), or None when
    its kind measures the whole set at once."""
    kind = kind_of(claim.body)
    return ev.batches() if kind.shardable(claim.body) else None


def measure_shard(ev: PromptSetEvidence, claim: A.Claim, settings: Settings,
                  indices: list[int]) -> list[PromptEvidence]:
    """Per-prompt evidence of one shard."""
    return kind_of(claim.body).measure(ev, claim.body, indices, settings)


def conclude(claim: A.Claim, evidence: list[PromptEvidence], settings: Settings) -> Measurement:
    """Quantify per-prompt evidence (in any order; it is sorted by prompt index): the share of
    prompts that passed, its exact binomial interval, and the verdict it decides (stats.quantified)."""
    from sadlang.stats.quantified import quantified

    if not evidence:
        return Measurement(False, "no prompts measured", 0.0, evidence)
    evidence = sorted(evidence, key=lambda e: e.index)
    ok, share = quantify([bool(e.passed) for e in evidence], claim.quantifier)
    vals = [e.value for e in evidence if e.value is not None and not math.isnan(e.value)]
    mean = sum(vals) / len(vals) if vals else None
    passed = sum(bool(e.passed) for e in evidence)
    text = f"held in {A.percent(share)} of {len(evidence)} prompts ({passed} passed; mean {fmt(mean)})"
    status, interval = quantified(passed, len(evidence), claim.quantifier, settings.confidence)
    q = claim.quantifier
    shares = [q.share] if q.kind in ("at_least", "at_most") else []
    return Measurement(ok, text, share, evidence, status=status, interval=interval, thresholds=shares)


def per_prompt_measurement(kind: ClaimKind, ev: PromptSetEvidence, claim: A.Claim,
                           settings: Settings) -> Measurement:
    """Measure every prompt (shard by shard where the kind allows, exactly as a distributed
    check does), quantify, and let the kind take a second look."""
    parts = shards(ev, claim) or [list(range(len(ev)))]
    evidence = [e for idx in parts for e in measure_shard(ev, claim, settings, idx)]
    return kind.refine(ev, claim, settings, conclude(claim, evidence, settings))


def evaluate(ev: PromptSetEvidence, claim: A.Claim, spec: A.Spec, settings: Settings) -> Verdict:
    kind = kind_of(claim.body)
    if kind.per_prompt(claim.body):
        m = per_prompt_measurement(kind, ev, claim, settings)
    else:
        m = kind.aggregate(ev, claim, settings)
    return verdict(spec, claim, m, settings)
