"""`control signal of L.H is shared with L2.H2, ...`: the heads' control signals fall into one
prototype (average-linkage clustering by cosine distance)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, References, Work
from sadlang.lang import ast as A
from sadlang.lang.syntax import SemanticError, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class SharedClaim(A.ClaimBody):
    kind: Literal["shared"] = "shared"
    head: A.HeadRef
    others: list[A.HeadRef]


def _shared(meta: Any, ch: list[Any]) -> SharedClaim:
    if str(ch[0]) != "control":
        raise SemanticError("only control signals are shared: write `control signal of L.H ...`", ch[0])
    return SharedClaim(head=ch[1], others=ch[2], loc=loc(meta))


class SharedKind(ClaimKind):
    name = "shared"
    node = SharedClaim
    summary = "the heads' control signals belong to one prototype"
    examples = ("control signal of 1.0 is shared with 1.2 on plain",)
    failing = ("control signal of 1.0 is shared with 1.1 on plain",)

    def rules(self) -> dict[str, Builder]:
        return {"shared_claim": _shared}

    def work(self, body: SharedClaim) -> Work:
        return "signals"

    def describe(self, body: SharedClaim) -> str:
        return f"firings of {body.head.text()} onto default tokens, their signals and clustering"

    def references(self, body: SharedClaim) -> References:
        return References(heads=[(body.head, True)] + [(h, True) for h in body.others])

    def static_errors(self, body: SharedClaim) -> list[Problem]:
        texts = [body.head.text()] + [h.text() for h in body.others]
        return [(f"head {t} is listed twice", h.loc) for t, h in zip(texts[1:], body.others)
                if texts.count(t) > 1]

    def per_prompt(self, body: SharedClaim) -> bool:
        return False

    def claimed(self, body: SharedClaim) -> str:
        return "same control prototype as " + ", ".join(h.text() for h in body.others)

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        from sadlang.control.sinks import prototypes, sink_profile

        body: SharedClaim = claim.body  # type: ignore[assignment]
        thr, cut = settings.control_consistency, settings.prototype_cut
        heads = [body.head, *body.others]
        sigs, info = {}, {}
        for h in heads:
            prof = sink_profile(ev, *h.pair, lambda p: 0)
            info[h.text()] = prof.consistency
            signal = prof.control_signal
            if prof.is_control(thr) and signal is not None:
                sigs[h.pair] = signal
        not_control = [h.text() for h in heads if h.pair not in sigs]
        clusters = prototypes(sigs, cut) if sigs else []
        mine = next((c for c in clusters if body.head.pair in c), [])
        ok = not not_control and all(h.pair in mine for h in body.others)
        measured = "prototypes: " + "; ".join(
            "{" + ", ".join(f"{layer}.{head}" for layer, head in c) + "}" for c in clusters)
        if not_control:
            measured += f"; without a control signal: {', '.join(not_control)}"
        return Measurement(ok, measured, float(ok),
                           details={"consistency": {k: (None if math.isnan(v) else v) for k, v in info.items()}})


KIND = SharedKind()
