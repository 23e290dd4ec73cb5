"""`ablate control signal of L.H lowers attention to P by CMP X`: removing the query's terms on
the singular directions its sink firings selected lowers the head's attention onto P."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Problem, References, Work, bound_problems
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import SemanticError, amount, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class ControlAblate(A.ClaimBody):
    kind: Literal["control_ablate"] = "control_ablate"
    head: A.HeadRef
    to: A.Pos
    amount: A.Bound


def _control_ablate(meta: Any, ch: list[Any]) -> ControlAblate:
    action, cls, head, direction, metric, pos, cmp, size = ch
    if (str(action), str(cls), str(direction), str(metric)) != ("ablate", "control", "lowers", "attention"):
        raise SemanticError("write `ablate control signal of L.H lowers attention to POS by >= X`", action)
    value, _ = amount(size)
    return ControlAblate(head=head, to=pos, amount=A.Bound(cmp=str(cmp), value=value, loc=loc(cmp)), loc=loc(meta))


class ControlAblateKind(ClaimKind):
    name = "control_ablate"
    node = ControlAblate
    summary = "removing the head's control signal lowers its attention onto the sink"
    examples = ("ablate control signal of 1.0 lowers attention to bos by >= 0.5 on plain",)
    failing = ("ablate control signal of 1.0 lowers attention to bos by <= 0.01 on plain",)

    def rules(self) -> dict[str, Builder]:
        return {"control_ablate": _control_ablate}

    def work(self, body: ControlAblate) -> Work:
        return "signals"

    def describe(self, body: ControlAblate) -> str:
        return f"firings of {body.head.text()} onto default tokens, their signals and clustering"

    def references(self, body: ControlAblate) -> References:
        return References(heads=[(body.head, True)], positions=[body.to], sinks=[body.to])

    def static_errors(self, body: ControlAblate) -> list[Problem]:
        return bound_problems(body.amount, -1.0, 1.0, "a change of attention weight")[0]

    def vacuous(self, body: ControlAblate) -> list[Problem]:
        return bound_problems(body.amount, -1.0, 1.0, "a change of attention weight")[1]

    def claimed(self, body: ControlAblate) -> str:
        return f"attention drop {body.amount.text()}"

    def probe(self, ev: PromptSetEvidence, body: ControlAblate, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        from sadlang.control.sinks import control_ablation_drop
        from sadlang.evidence.roles import resolve

        P = resolve(body.to, ev.prompts[i])
        drop = control_ablation_drop(ev, i, *body.head.pair, P)
        if math.isnan(drop):
            return None, False, "the head never fires onto the sink here"
        return drop, holds(drop, body.amount), f"attention onto {P} drops by {drop:.3f}"


KIND = ControlAblateKind()
