"""`signal UP -> L.H [via ...] [at D -> S] rank CMP K | stable CMP X | is data|control`: the
low-rank signal an edge carries: its rank per prompt, its stability across prompts, and
whether it is a data or a control signal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, References, Work, bound_problems, fmt
from sadlang.claims.edge import edge_references
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import bound, edge_parts, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class SignalClaim(A.EdgeSelector):
    kind: Literal["signal"] = "signal"
    prop: Literal["rank", "stable", "class"]
    bound: A.Bound | None = None
    signal_class: Literal["data", "control"] | None = None


def _signal(meta: Any, ch: list[Any]) -> SignalClaim:
    side, at, rest = edge_parts(ch)
    prop, value = rest[2]
    return SignalClaim(upstream=rest[0], downstream=rest[1], side=side, at=at, prop=prop,
                       bound=value if prop != "class" else None,
                       signal_class=value if prop == "class" else None, loc=loc(meta))


def _rank(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("rank", bound(ch[0], ch[1]))


def _stable(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("stable", bound(ch[0], ch[1]))


def _class(meta: Any, ch: list[Any]) -> tuple[str, str]:
    return ("class", str(ch[0]))


def edge_signals(ev: Any, body: A.EdgeSelector) -> dict[int, Any]:
    """prompt index -> the strongest matching edge's signal vector (D,)."""
    from sadlang.intervene.signals import edge_signal

    out = {}
    for i in range(len(ev)):
        fe = ev.strongest_edge(i, body)
        if fe is not None:
            f, e = fe
            out[i] = edge_signal(ev.dec(i), f.layer, f.head, e.component, e.side, e.at, e.svs)
    return out


class SignalKind(ClaimKind):
    name = "signal"
    node = SignalClaim
    summary = "the rank, stability or data/control class of an edge's signal"
    picture = "firing-edges"
    examples = ('signal 0.0 -> 1.0 via key at end -> "x" rank <= 1 on marker',
                'signal 0.0 -> 1.0 via key at end -> "x" stable >= 0.99 on marker',
                "signal 0.1 -> 1.1 via query at A#2 -> A is data on marker")
    failing = ("signal 0.1 -> 1.1 via query at A#2 -> A rank <= 1 on marker",
               "signal 0.1 -> 1.1 via query at A#2 -> A stable >= 0.99 on marker",
               "signal 0.1 -> 1.1 via query at A#2 -> A is control on marker")

    def rules(self) -> dict[str, Builder]:
        return {"signal_claim": _signal, "rank_prop": _rank, "stable_prop": _stable, "class_prop": _class}

    def work(self, body: SignalClaim) -> Work:
        return "signals" if body.at else "trace"

    def describe(self, body: SignalClaim) -> str:
        where = f" at {body.at.dest.text()} -> {body.at.src.text()}" if body.at else " (found by full traces)"
        return f"decompose {body.downstream.text()}{where} and extract signals of {body.upstream.text()}"

    def references(self, body: SignalClaim) -> References:
        return edge_references(body, concrete=True)

    def _domain(self, body: SignalClaim) -> tuple[list[Problem], list[Problem]]:
        if body.prop == "rank":
            return bound_problems(body.bound, 1, float("inf"), "a signal's rank (singular directions, >= 1)")
        return bound_problems(body.bound, -1.0, 1.0, "a mean pairwise cosine")

    def static_errors(self, body: SignalClaim) -> list[Problem]:
        return self._domain(body)[0]

    def vacuous(self, body: SignalClaim) -> list[Problem]:
        return self._domain(body)[1]

    def per_prompt(self, body: SignalClaim) -> bool:
        return body.prop == "rank"

    def claimed(self, body: SignalClaim) -> str:
        return f"{body.prop} {body.bound.text()}" if body.bound else f"signal is {body.signal_class}"

    def probe(self, ev: PromptSetEvidence, body: SignalClaim, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        fe = ev.strongest_edge(i, body)
        if fe is None:
            return None, False, "no such edge in this prompt"
        _, e = fe
        rank = len(e.svs)
        assert body.bound is not None
        return float(rank), holds(rank, body.bound), f"rank {rank} (svs {e.svs}) on {e.side} side"

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        from sadlang.control.sinks import mean_pairwise_cosine, paired_cosine

        body: SignalClaim = claim.body  # type: ignore[assignment]
        by_prompt = edge_signals(ev, body)
        sigs = list(by_prompt.values())
        if len(sigs) < 2:      # no pair to compare: neither stable nor of a class (never "data" by default)
            return Measurement(False, f"the edge is in {len(sigs)} of {len(ev)} prompts: a signal's consistency "
                                      f"needs it in 2 or more (value 0: no pair of signals to compare)", 0.0,
                               details={"prompts_with_edge": len(sigs)})
        cons = mean_pairwise_cosine(sigs)
        if body.prop == "stable":
            assert body.bound is not None
            return Measurement(holds(cons, body.bound),
                               f"mean pairwise cosine {fmt(cons)} over {len(sigs)} prompts with the edge",
                               cons)
        thr = settings.control_consistency
        inv, pairs = float("nan"), 0
        twins = ev.swapped()
        if twins is not None:
            theirs = {twins.origin[j]: v for j, v in edge_signals(twins, body).items()}
            inv, pairs = paired_cosine(by_prompt, theirs)
        cls = "control" if cons >= thr and not (pairs and inv < thr) else "data"
        measured = f"{cls}: consistency {fmt(cons)} across {len(sigs)} prompts"
        if pairs:
            measured += f", {fmt(inv)} between {pairs} prompts and their slot-swapped twins"
        measured += f" (control if both >= {thr})"
        return Measurement(cls == body.signal_class, measured, cons,
                           details={"class": cls, "consistency": cons, "swap_invariance": inv,
                                    "swap_pairs": pairs})


KIND = SignalKind()
