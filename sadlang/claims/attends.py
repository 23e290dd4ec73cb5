"""`head L.H attends D -> S [with weight CMP X]` and `head L.H fires at D -> S`: the head's
attention weight A[D, S] (no decomposition)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Problem, References, Work, bound_problems
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import bound, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class Attends(A.ClaimBody):
    kind: Literal["attends"] = "attends"
    head: A.HeadRef
    fires: bool  # "fires": weight >= the method's firing threshold
    at: A.FiringAt
    weight: A.Bound | None = None


def _attends(meta: Any, ch: list[Any]) -> Attends:
    head, verb, d, s = ch[0], ch[1], ch[2], ch[3]
    weight = ch[4] if len(ch) > 4 else None
    return Attends(head=head, fires=str(verb) == "fires", at=A.FiringAt(dest=d, src=s, loc=d.loc),
                   weight=weight, loc=loc(meta))


def _weight_bound(meta: Any, ch: list[Any]) -> A.Bound:
    return bound(ch[0], ch[1])


class AttendsKind(ClaimKind):
    name = "attends"
    node = Attends
    summary = "the head's attention weight from D to S compares so (or reaches the firing threshold)"
    examples = ('head 1.0 attends end -> "x" with weight >= 0.9 on marker',
                "head 1.1 fires at A#2 -> A on marker")
    failing = ("head 1.0 attends end -> bos with weight >= 0.5 on marker",)

    def rules(self) -> dict[str, Builder]:
        return {"attends": _attends, "weight_bound": _weight_bound}

    def work(self, body: Attends) -> Work:
        return "attention"

    def describe(self, body: Attends) -> str:
        return f"read attention of {body.head.text()} (no decomposition)"

    def references(self, body: Attends) -> References:
        return References(heads=[(body.head, True)], positions=[body.at.dest, body.at.src], firings=[body.at])

    def static_errors(self, body: Attends) -> list[Problem]:
        return bound_problems(body.weight, 0.0, 1.0, "an attention weight")[0]

    def vacuous(self, body: Attends) -> list[Problem]:
        return bound_problems(body.weight, 0.0, 1.0, "an attention weight")[1]

    def claimed(self, body: Attends) -> str:
        return f"weight {body.weight.text()}" if body.weight else "fires"

    def probe(self, ev: PromptSetEvidence, body: Attends, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        from sadlang.evidence.roles import resolve

        p = ev.prompts[i]
        d, s = resolve(body.at.dest, p), resolve(body.at.src, p)
        a = float(ev.acts(i).pattern[(*body.head.pair, d, s)])
        thr = ev.opts.firing_threshold(d, keys=ev.model.weights.n_keys(body.head.pair[0], d))
        if body.fires:
            return a, a >= thr, f"A[{d}->{s}]={a:.3f}, threshold {thr:.3f}"
        limit = body.weight or A.Bound(cmp=">=", value=thr)
        return a, holds(a, limit), f"A[{d}->{s}]={a:.3f}"


KIND = AttendsKind()
