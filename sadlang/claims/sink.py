"""`head L.H sinks to P [by control signal]`: the head parks its attention on P (BOS, a
delimiter); with `by control signal`, because of a content-independent query signal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, References, Work, fmt
from sadlang.lang import ast as A
from sadlang.lang.syntax import SemanticError, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class SinkClaim(A.ClaimBody):
    kind: Literal["sink"] = "sink"
    head: A.HeadRef
    to: A.Pos
    by_control: bool = False


def _sink(meta: Any, ch: list[Any]) -> SinkClaim:
    if len(ch) > 2 and str(ch[2]) != "control":
        raise SemanticError("a sink is caused `by control signal`", ch[2])
    return SinkClaim(head=ch[0], to=ch[1], by_control=len(ch) > 2, loc=loc(meta))


class SinkKind(ClaimKind):
    name = "sink"
    node = SinkClaim
    summary = "the head's mean attention onto P is at least sink_share (and a control signal causes it)"
    examples = ("head 1.0 sinks to bos by control signal on plain",)
    failing = ("head 1.1 sinks to bos on plain",)

    def rules(self) -> dict[str, Builder]:
        return {"sink_claim": _sink}

    def work(self, body: SinkClaim) -> Work:
        return "signals"

    def describe(self, body: SinkClaim) -> str:
        return f"firings of {body.head.text()} onto default tokens, their signals and clustering"

    def references(self, body: SinkClaim) -> References:
        return References(heads=[(body.head, True)], positions=[body.to], sinks=[body.to])

    def static_errors(self, body: SinkClaim) -> list[Problem]:
        if body.to.role == "end" and body.to.shift >= 0:
            return [("nothing comes after `end`: a sink draws attention from later positions", body.to.loc)]
        return []

    def claimed(self, body: SinkClaim) -> str:
        return "sinks" + (" by a control signal" if body.by_control else "")

    def probe(self, ev: PromptSetEvidence, body: SinkClaim, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        from sadlang.evidence.roles import resolve

        P = resolve(body.to, ev.prompts[i])
        pattern = ev.acts(i).pattern[body.head.pair]
        share = float(pattern[P + 1:, P].mean()) if P + 1 < pattern.shape[-1] else float("nan")
        thr = settings.sink_share
        return share, share >= thr, f"mean attention onto position {P}: {share:.3f} (sink if >= {thr})"

    def shardable(self, body: SinkClaim) -> bool:
        return not body.by_control      # the control-signal look compares all prompts' signals

    def refine(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings,
               m: Measurement) -> Measurement:
        """With `by control signal`: the sink's query signals must be consistent across prompts
        and destinations, and survive slot swaps."""
        from sadlang.control.sinks import sink_options, sink_profile, swap_invariance
        from sadlang.evidence.roles import resolve

        body: SinkClaim = claim.body  # type: ignore[assignment]
        if not (body.by_control and m.decided == "held"):
            return m
        layer, head = body.head.pair
        prof = sink_profile(ev, layer, head, lambda p: resolve(body.to, p))
        thr = settings.control_consistency
        ok = prof.is_control(thr)
        inv, pairs = float("nan"), 0
        twins = ev.swapped()
        if twins is not None:
            twin = sink_profile(twins, layer, head, lambda p: resolve(body.to, p))
            inv, pairs = swap_invariance(prof, twin, twins.origin)
            ok = ok and not (pairs and inv < thr)
        m.details.update(consistency=prof.consistency, firings=prof.n_firings, control_threshold=thr,
                         swap_invariance=inv, swap_pairs=pairs,
                         aligned_at_layer=prof.aligned_at, writers=dict(prof.top_writers(3)))
        _, why = sink_options(ev.opts)
        if why:
            m.details["sink_method"] = why
        m.measured += f"; sink signal consistency {fmt(prof.consistency)} over {prof.n_firings} firings"
        if pairs:
            m.measured += f", {fmt(inv)} against slot-swapped twins ({pairs} firings)"
        if not ok:
            m.ok, m.status = False, "failed"
            m.measured += f" (control needs >= {thr})"
        m.measured += (f"; present from layer {prof.aligned_at}, written mostly by "
                       + ", ".join(f"{c} ({w:.0%})" for c, w in prof.top_writers(2)))
        return m


KIND = SinkKind()
