"""`ablate head L.H|mlp L [at P] [zero|mean|resample] [from SET] lowers|raises logit_diff by CMP X[%]`:
the effect on the task of removing one head's or one MLP's output (at destination P, or everywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from lark import Token

from sadlang.circuits.ablations import ABLATIONS
from sadlang.claims.base import (
    Builder,
    ClaimKind,
    Problem,
    References,
    Work,
    ablation_source,
    counterfactual_problems,
    judged_effect,
    reference_problems,
)
from sadlang.evidence.records import PromptEvidence
from sadlang.lang import ast as A
from sadlang.lang.syntax import SemanticError, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class NodeAblate(A.ClaimBody):
    kind: Literal["node_ablate"] = "node_ablate"
    head: A.HeadRef | None = None              # the head ablated, or
    mlp: int | None = None                     # the layer whose MLP is ablated
    at: A.Pos | None = None
    ablation: str | None = None                # an ablation kind; None: the spec's `option ablation`
    counterfactual: str | None = None
    reference: str | None = None               # `over SET`: the prompts a mean ablation averages
    direction: Literal["lowers", "raises"]
    amount: A.Bound
    relative: bool = False


def _cf_source(meta: Any, ch: list[Any]) -> tuple[str, str, Any]:
    return ("from", str(ch[0]), ch[0])


def _ref_source(meta: Any, ch: list[Any]) -> tuple[str, str, Any]:
    return ("over", str(ch[0]), ch[0])


def _node_ablate(meta: Any, ch: list[Any]) -> NodeAblate:
    if str(ch[0]) != "ablate":
        raise SemanticError("a head's or MLP's output is ablated, not boosted: write `ablate head L.H ...` or "
                            "`ablate mlp L ...`", ch[0])
    kw: dict[str, Any] = {"head": ch[1]} if isinstance(ch[1], A.HeadRef) else {"mlp": int(ch[1])}
    for c in ch[2:]:
        if isinstance(c, A.Pos):
            kw["at"] = c
        elif isinstance(c, Token) and c.type == "ABLATION":
            kw["ablation"] = str(c)
        elif isinstance(c, tuple) and c[0] == "from":
            kw["counterfactual"] = c[1]
        elif isinstance(c, tuple) and c[0] == "over":
            kw["reference"] = c[1]
        elif isinstance(c, tuple) and c[0] == "effect":
            _, direction, metric, amount, relative = c
            if metric != "logit_diff":
                raise SemanticError("a node ablation is measured on logit_diff (attention belongs to a firing: "
                                    "use `ablate edge ...`)", ch[0])
            kw.update(direction=direction, amount=amount, relative=relative)
    return NodeAblate(loc=loc(meta), **kw)


def _target(body: NodeAblate, word: bool = True) -> str:
    """'head L.H' or 'mlp L' (without `word`, a head is just 'L.H')."""
    if body.head is None:
        return f"mlp {body.mlp}"
    return f"head {body.head.text()}" if word else body.head.text()


class NodeAblateKind(ClaimKind):
    name = "node_ablate"
    node = NodeAblate
    summary = "ablating one head's or MLP's output (zero, mean or resampled) changes the logit difference"
    examples = ('ablate head 1.0 at end zero lowers logit_diff by >= 50% on copy',
                'ablate mlp 1 zero lowers logit_diff by <= 1% on copy')     # the planted MLPs are zero
    failing = ('ablate head 0.2 zero lowers logit_diff by >= 50% on copy',
               'ablate mlp 1 mean lowers logit_diff by >= 50% on copy')
    searchable = False     # its reference values (mean, resample) come from the whole prompt set

    def rules(self) -> dict[str, Builder]:
        return {"node_ablate": _node_ablate, "cf_source": _cf_source, "ref_source": _ref_source}

    def work(self, body: NodeAblate) -> Work:
        return "intervention"

    def describe(self, body: NodeAblate) -> str:
        where = f" at {body.at.text()}" if body.at else ""
        return f"{body.ablation or 'option ablation'} ablation of {_target(body)}{where}, batched passes"

    def references(self, body: NodeAblate) -> References:
        positions = [body.at] if body.at else []
        if body.head is None:
            return References(components=[A.CompRef(kind="mlp", layer=body.mlp, loc=body.loc)], positions=positions)
        return References(heads=[(body.head, True)], positions=positions)

    def plan_errors(self, spec: A.Spec, body: NodeAblate, prompt_set: str, prompts: list[Any]) -> list[Problem]:
        return (counterfactual_problems(spec, body.counterfactual, body.ablation, prompt_set, body.loc)
                + reference_problems(spec, body.reference, body.ablation, body.loc))

    def uses_held_out_mean(self, body: NodeAblate, settings: Settings) -> bool:
        return ABLATIONS[body.ablation or settings.ablation].source == "reference" and body.reference is None

    def needs_answers(self, body: NodeAblate) -> bool:
        return True

    def claimed(self, body: NodeAblate) -> str:
        size = f"{body.amount.cmp} {body.amount.value:.0%}" if body.relative else body.amount.text()
        return f"{body.direction} logit_diff by {size}"

    def measure(self, ev: PromptSetEvidence, body: NodeAblate, indices: list[int],
                settings: Settings) -> list[PromptEvidence]:
        from sadlang.circuits.metrics import CircuitLab
        from sadlang.circuits.nodes import MLP
        from sadlang.evidence.roles import resolve

        kind = body.ablation or settings.ablation
        source = ablation_source(ev, kind, body.counterfactual or settings.counterfactual, body.reference)
        lab = CircuitLab(ev, kind, source, settings.batch_size)
        layer, head = (int(body.mlp or 0), MLP) if body.head is None else body.head.pair
        nodes = [[(layer, head, None if body.at is None else resolve(body.at, p))] for p in ev.prompts]
        ablated = lab.run([(nodes, False)])[0]
        out = []
        where = f" at {body.at.text()}" if body.at else ""
        for i in indices:
            clean = ev.logit_diff(i)
            value, passed, note = judged_effect(clean, ablated[i], body.direction, body.relative, body.amount)
            out.append(PromptEvidence(index=i, text=ev.prompts[i].text, value=value, passed=passed,
                                      detail=f"logit_diff {clean:.3f} -> {ablated[i]:.3f} ({kind} ablation of "
                                             f"{_target(body, False)}{where}){note}"))
        return out


KIND = NodeAblateKind()
