"""`some head in 15.*-17.*, 20.3 attends D -> S [with weight CMP X]`: a hypothesis that names a
pattern before it names a head. Every candidate head is tested as `head L.H attends D -> S ...`
would be, with the claim's quantifier. The claim holds when at least one candidate holds, fails
when every one fails, and is inconclusive otherwise.

`heads in SPAN that attend|fire D -> S [...] are 16.0, 17.3` names the heads as well: it holds
when exactly the listed candidates hold and every other candidate fails, fails when a listed
head fails or another holds, and is inconclusive otherwise.

Testing K candidates and keeping the best would flatter the winner, so each candidate is decided
at confidence 1 - (1 - c)/K (Bonferroni). With point verdicts (`option confidence = none`) the
point shares decide. The report names the heads that hold, best first; `sadlang scan` ranks the
same heads without a claim.

A span `A-B` covers the heads from A to B in (layer, head) order, where `*` is the first head of
A's layer and the last head of B's. A list of spans and patterns covers their union.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, References, Work, bound_problems
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence

SHOWN = 5     # heads listed in the report


class HeadSpan(A.Node):
    """A head pattern (`16.*`, `20.3`), or the span `first-last` between two of them."""
    first: A.HeadRef
    last: A.HeadRef | None = None

    def text(self) -> str:
        return self.first.text() + (f"-{self.last.text()}" if self.last is not None else "")

    def heads(self, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
        every = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
        if self.last is None:
            return [(layer, head) for layer, head in every if self.first.matches(layer, head)]
        lo = (self.first.layer or 0, self.first.head or 0)
        hi = (n_layers - 1 if self.last.layer is None else self.last.layer,
              n_heads - 1 if self.last.head is None else self.last.head)
        return [pair for pair in every if lo <= pair <= hi]


class SomeHead(A.ClaimBody):
    kind: Literal["some_head"] = "some_head"
    spans: list[HeadSpan] = Field(default_factory=list)
    fires: bool
    at: A.FiringAt
    weight: A.Bound | None = None
    exactly: list[A.HeadRef] | None = None       # `heads in ... are H, ...`: the heads that must hold

    def candidates(self, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
        """Every head the spans cover, once, in (layer, head) order."""
        return sorted({pair for span in self.spans for pair in span.heads(n_layers, n_heads)})


def _some_head(meta: Any, ch: list[Any]) -> SomeHead:
    spans = [c for c in ch if isinstance(c, HeadSpan)]
    verb, d, s, *rest = [c for c in ch if not isinstance(c, HeadSpan)]
    return SomeHead(spans=spans, fires=str(verb) == "fires", at=A.FiringAt(dest=d, src=s, loc=d.loc),
                    weight=rest[0] if rest else None, loc=loc(meta))


def _heads_are(meta: Any, ch: list[Any]) -> SomeHead:
    *front, listed = ch
    body = _some_head(meta, front)
    return body.model_copy(update={"fires": str(front[len(body.spans)]) == "fire", "exactly": list(listed)})


def _head_span(meta: Any, ch: list[Any]) -> HeadSpan:
    return HeadSpan(first=ch[0], last=ch[1] if len(ch) > 1 else None, loc=loc(meta))


class SomeHeadKind(ClaimKind):
    name = "some_head"
    node = SomeHead
    summary = "at least one head of a set attends from D to S as claimed (each candidate decided at a Bonferroni " \
              "confidence)"
    picture = "head-scores"
    examples = ('some head in 1.* attends end -> "x" with weight >= 0.9 on marker',
                "some head in 0.0-1.3 fires at A#2 -> A on marker",
                'heads in 0.*-1.* that attend end -> "x" with weight >= 0.9 are 1.0, 1.2 on marker')
    failing = ('some head in 0.*, 1.3 attends end -> "x" with weight >= 0.5 on marker',
               'heads in 0.*-1.* that attend end -> "x" with weight >= 0.9 are 1.0 on marker')

    def rules(self) -> dict[str, Builder]:
        return {"some_head": _some_head, "heads_are": _heads_are, "head_span": _head_span}

    def work(self, body: SomeHead) -> Work:
        return "attention"

    def describe(self, body: SomeHead) -> str:
        return f"read attention of every head in {', '.join(s.text() for s in body.spans)} (no decomposition)"

    def references(self, body: SomeHead) -> References:
        heads = [(span.first, False) for span in body.spans] + [(span.last, False) for span in body.spans if span.last]
        heads += [(h, True) for h in body.exactly or []]
        return References(heads=heads, positions=[body.at.dest, body.at.src], firings=[body.at])

    def static_errors(self, body: SomeHead) -> list[Problem]:
        errors = bound_problems(body.weight, 0.0, 1.0, "an attention weight")[0]
        for span in body.spans:
            if span.last is not None and (span.first.layer or 0, span.first.head or 0) > \
                    (span.last.layer if span.last.layer is not None else 10**9,
                     span.last.head if span.last.head is not None else 10**9):
                errors.append((f"the span {span.text()} runs backwards: write the lower head first", span.loc))
        return errors

    def model_errors(self, spec: A.Spec, body: SomeHead, info: Any) -> list[Problem]:
        covered = set(body.candidates(info.n_layers, info.n_heads))
        return [(f"{h.text()} is not among the candidates {', '.join(s.text() for s in body.spans)}", h.loc)
                for h in body.exactly or [] if h.concrete and h.pair not in covered]

    def vacuous(self, body: SomeHead) -> list[Problem]:
        return bound_problems(body.weight, 0.0, 1.0, "an attention weight")[1]

    def per_prompt(self, body: SomeHead) -> bool:
        return False

    def claimed(self, body: SomeHead) -> str:
        what = f"with weight {body.weight.text()}" if body.weight else "firing"
        if body.exactly is not None:
            return f"exactly {', '.join(h.text() for h in body.exactly)} {what}"
        return f"some head {what}"

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        from sadlang.evidence.roles import resolve
        from sadlang.stats.quantified import quantified

        body: SomeHead = claim.body  # type: ignore[assignment]
        info = ev.model.info
        heads = body.candidates(info.n_layers, info.n_heads)
        if not heads:
            return Measurement(False, f"{', '.join(s.text() for s in body.spans)} covers no head of {info.name}",
                               0.0, status="failed")
        confidence = None if settings.confidence is None else 1 - (1 - settings.confidence) / len(heads)
        where = [(resolve(body.at.dest, p), resolve(body.at.src, p)) for p in ev.prompts]
        results = []
        for layer, head in heads:
            weights, passed = [], 0
            for i, (d, s) in enumerate(where):
                a = float(ev.acts(i).pattern[layer, head, d, s])
                limit = body.weight or A.Bound(cmp=">=", value=ev.opts.firing_threshold(
                    d, keys=ev.model.weights.n_keys(layer, d)))
                weights.append(a)
                passed += holds(a, limit)
            status, interval = quantified(passed, len(where), claim.quantifier, confidence)
            results.append((status, passed / len(where), sum(weights) / len(weights), (layer, head), interval))
        if body.exactly is not None:
            return self._exactly(body, results, heads, confidence)
        results.sort(key=lambda r: (r[0] != "held", -r[1], -r[2]))
        held = [r for r in results if r[0] == "held"]
        best = results[0]
        status = "held" if held else ("failed" if all(r[0] == "failed" for r in results) else "inconclusive")
        shown = ", ".join(f"{layer}.{head} ({share:.0%}, mean {w:.3f})"
                          for _, share, w, (layer, head), _ in (held or results)[:SHOWN])
        at = "" if confidence is None else f" at {confidence:.4g} each"
        text = (f"{len(held)} of {len(heads)} candidate heads hold{at}: {shown}" if held else
                f"none of {len(heads)} candidate heads holds{at}; closest: {shown}")
        details = {"candidates": len(heads), "holding": [f"{layer}.{head}" for *_, (layer, head), _ in held],
                   "per_head_confidence": confidence, "shares": _shares(results)}
        return Measurement(status == "held", text, best[1], details=details, status=status, interval=best[4],
                           thresholds=[claim.quantifier.share] if claim.quantifier.kind in ("at_least", "at_most")
                           else [])

    def _exactly(self, body: SomeHead, results: list[Any], heads: list[tuple[int, int]],
                 confidence: float | None) -> Measurement:
        """`heads in ... are H, ...`: the listed candidates must hold and every other must fail."""
        listed = {h.pair for h in body.exactly or []}
        by_head = {pair: (status, share) for status, share, _, pair, _ in results}
        # the listed head nearest to failing: its share and interval back the verdict
        weakest = min((r for r in results if r[3] in listed),
                      key=lambda r: (r[4].lo if r[4] is not None else r[1], r[3]))
        wrong = [p for p in heads if (by_head[p][0] == "failed") == (p in listed)
                 and by_head[p][0] != "inconclusive"]
        open_ = [p for p in heads if by_head[p][0] == "inconclusive"]
        status: Literal["held", "failed", "inconclusive"] = "failed" if wrong else (
            "inconclusive" if open_ else "held")
        name = lambda p: f"{p[0]}.{p[1]}"  # noqa: E731
        holding = [name(p) for p in heads if by_head[p][0] == "held"]
        at = "" if confidence is None else f" at {confidence:.4g} each"
        text = f"holding{at}: {', '.join(holding) or 'none'} of {len(heads)} candidates"
        if wrong:
            text += "; not as claimed: " + ", ".join(
                f"{name(p)} {'fails' if p in listed else 'holds'} ({by_head[p][1]:.0%})" for p in wrong)
        if open_:
            text += f"; undecided: {', '.join(name(p) for p in open_)}"
        text += f"; weakest listed head {name(weakest[3])} passes in {weakest[1]:.0%} of prompts"
        as_claimed = sum(1 for p in heads if (by_head[p][0] == "held") == (p in listed)) / len(heads)
        return Measurement(status == "held", text, weakest[1], status=status, interval=weakest[4],
                           details={"candidates": len(heads), "holding": holding, "per_head_confidence": confidence,
                                    "shares": _shares(results), "as_claimed": as_claimed})


def _shares(results: list[Any]) -> dict[str, float]:
    """Head -> its share of passing prompts, in (layer, head) order (the report's grid)."""
    return {f"{layer}.{head}": share for _, share, _, (layer, head), _ in sorted(results, key=lambda r: r[3])}


KIND = SomeHeadKind()
