"""`patch edge L.H -> L2.H2 via query|key from SET lowers|raises logit_diff by CMP X[%]`: path
patching: the sender's output comes from the aligned counterfactual prompt only in the
receiver's query or key input (sadlang/circuits/paths.py); the effect on the logit difference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, Problem, References, Work, counterfactual_problems, judged_effect
from sadlang.evidence.records import PromptEvidence
from sadlang.lang import ast as A
from sadlang.lang.syntax import SemanticError, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class PathPatch(A.ClaimBody):
    kind: Literal["path_patch"] = "path_patch"
    sender: A.HeadRef
    receiver: A.HeadRef
    side: Literal["query", "key"]
    counterfactual: str
    direction: Literal["lowers", "raises"]
    amount: A.Bound
    relative: bool = False


def _path_patch(meta: Any, ch: list[Any]) -> PathPatch:
    sender, receiver, via, source, effect = ch
    _, direction, metric, amount, relative = effect
    if metric != "logit_diff":
        raise SemanticError("a path patch is measured on logit_diff", source[2])
    return PathPatch(sender=sender, receiver=receiver, side=via[1], counterfactual=source[1], direction=direction,
                     amount=amount, relative=relative, loc=loc(meta))


class PathPatchKind(ClaimKind):
    name = "path_patch"
    node = PathPatch
    summary = "patching one head-to-head edge from counterfactual prompts changes the logit difference"
    examples = ("patch edge 0.0 -> 1.0 via key from moved_swap lowers logit_diff by >= 90% on moved",)
    failing = ("patch edge 0.0 -> 1.0 via query from moved_swap lowers logit_diff by >= 50% on moved",)
    searchable = False

    def rules(self) -> dict[str, Builder]:
        return {"path_patch": _path_patch}

    def work(self, body: PathPatch) -> Work:
        return "intervention"

    def describe(self, body: PathPatch) -> str:
        return (f"{body.sender.text()}'s output from {body.counterfactual} in {body.receiver.text()}'s "
                f"{body.side} input only; one pass per length group")

    def references(self, body: PathPatch) -> References:
        return References(heads=[(body.sender, True), (body.receiver, True)])

    def static_errors(self, body: PathPatch) -> list[Problem]:
        if body.sender.concrete and body.receiver.concrete and body.sender.pair[0] >= body.receiver.pair[0]:
            return [(f"{body.sender.text()} cannot feed {body.receiver.text()}: the sender must sit in an earlier "
                     f"layer", body.receiver.loc)]
        return []

    def plan_errors(self, spec: A.Spec, body: PathPatch, prompt_set: str, prompts: list[Any]) -> list[Problem]:
        return counterfactual_problems(spec, body.counterfactual, "resample", prompt_set, body.loc)

    def needs_answers(self, body: PathPatch) -> bool:
        return True

    def claimed(self, body: PathPatch) -> str:
        size = f"{body.amount.cmp} {body.amount.value:.0%}" if body.relative else body.amount.text()
        return f"{body.direction} logit_diff by {size}"

    def measure(self, ev: PromptSetEvidence, body: PathPatch, indices: list[int],
                settings: Settings) -> list[PromptEvidence]:
        from sadlang.circuits.paths import patched_logits
        from sadlang.evidence.metrics import logit_diff

        assert ev.workspace is not None
        cf = ev.workspace.sets[body.counterfactual]
        logits = patched_logits(ev, cf, body.sender.pair, body.receiver.pair, body.side, settings.batch_size)
        out = []
        for i in indices:
            p = ev.prompts[i]
            clean, patched = ev.logit_diff(i), logit_diff(logits[i], p.answer, p.against)
            value, passed, note = judged_effect(clean, patched, body.direction, body.relative, body.amount)
            out.append(PromptEvidence(index=i, text=p.text, value=value, passed=passed,
                                      detail=f"logit_diff {clean:.3f} -> {patched:.3f} with {body.sender.text()} -> "
                                             f"{body.receiver.text()} ({body.side}) from {cf.prompts[i].text!r}{note}"))
        return out


KIND = PathPatchKind()
