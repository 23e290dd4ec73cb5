"""`ablate|boost edge UP -> L.H [via ...] [at D -> S] [local|global] [by F x] lowers|raises
logit_diff|attention by CMP X[%] [and beats random by [CMP] R x]`: the effect of removing (or
adding) an edge's signal, against the same intervention on random subspaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from lark import Token

from sadlang.claims.base import (
    Builder,
    ClaimKind,
    Problem,
    References,
    Work,
    bound_problems,
    effect_size,
    judged_effect,
)
from sadlang.claims.edge import edge_references
from sadlang.evidence.records import PromptEvidence
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import amount, bound, edge_parts, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class AblateClaim(A.EdgeSelector):
    kind: Literal["ablate"] = "ablate"
    action: Literal["ablate", "boost"]
    mode: Literal["local", "global"] = "local"
    factor: float = 1.0
    direction: Literal["lowers", "raises"]
    metric: Literal["logit_diff", "attention"]
    amount: A.Bound
    relative: bool = False  # amount given in percent of the clean value
    beats_random: A.Bound | None = None


def _factor(meta: Any, ch: list[Any]) -> tuple[str, float]:
    return ("factor", float(ch[0]))


def _effect(meta: Any, ch: list[Any]) -> tuple[str, str, str, A.Bound, bool]:
    value, relative = amount(ch[3])
    return ("effect", str(ch[0]), str(ch[1]), A.Bound(cmp=str(ch[2]), value=value, loc=loc(ch[2])), relative)


def _beats(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    if len(ch) == 2:
        return ("beats", bound(ch[0], ch[1]))
    return ("beats", A.Bound(cmp=">=", value=float(ch[0]), loc=loc(meta)))


def _ablate(meta: Any, ch: list[Any]) -> AblateClaim:
    side, at, rest = edge_parts(ch[1:])
    kw: dict[str, Any] = {}
    comps = []
    for c in rest:
        if isinstance(c, Token) and c.type == "MODE":
            kw["mode"] = str(c)
        elif isinstance(c, tuple) and c[0] == "factor":
            kw["factor"] = c[1]
        elif isinstance(c, tuple) and c[0] == "effect":
            kw.update(direction=c[1], metric=c[2], amount=c[3], relative=c[4])
        elif isinstance(c, tuple) and c[0] == "beats":
            kw["beats_random"] = c[1]
        else:
            comps.append(c)
    action = cast(Literal["ablate", "boost"], str(ch[0]))
    return AblateClaim(action=action, upstream=comps[0], downstream=comps[1], side=side, at=at,
                       loc=loc(meta), **kw)


MAX_BOOST = 1000.0     # a signal boosted 1000x already dominates its receiver's input


class AblateKind(ClaimKind):
    name = "ablate"
    node = AblateClaim
    summary = "removing (or boosting) an edge's signal changes logit_diff or attention, beyond random"
    picture = "firing-edges"
    examples = ('ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by >= 0.5 '
                "and beats random by >= 10x on marker",
                'boost edge 0.0 -> 1.0 via key at end -> "x" global by 1x raises logit_diff by >= 0.0 on copy')
    failing = ('ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by <= 0.01 on marker',)
    max_ratio = 10_000.0    # beyond this a ratio against averaged random draws is noise

    def rules(self) -> dict[str, Builder]:
        return {"ablate_claim": _ablate, "factor": _factor, "effect": _effect, "beats": _beats}

    def work(self, body: AblateClaim) -> Work:
        return "intervention" if body.at else "trace"

    def describe(self, body: AblateClaim) -> str:
        return (f"{body.mode} {body.action} of {body.upstream.text()} -> {body.downstream.text()} "
                f"(+ random controls), batched forward passes")

    def references(self, body: AblateClaim) -> References:
        return edge_references(body, concrete=True)

    def _domain(self, body: AblateClaim) -> tuple[list[Problem], list[Problem]]:
        errors: list[Problem] = []
        vac: list[Problem] = []
        if body.metric == "attention" and not body.relative:
            e, v = bound_problems(body.amount, -1.0, 1.0, "a change of attention weight")
            errors, vac = errors + e, vac + v
        e, v = bound_problems(body.beats_random, 0.0, self.max_ratio, "a ratio to the random control")
        return errors + e, vac + v

    def static_errors(self, body: AblateClaim) -> list[Problem]:
        errors = self._domain(body)[0]
        if body.mode == "global" and body.upstream.kind == "offset":
            errors.append(("an offset has no place in the residual stream: use a local ablation", body.upstream.loc))
        if body.factor <= 0:
            errors.append((f"a boost factor is > 0, not {body.factor:g} (to remove a signal, write `ablate`)",
                           body.loc))
        elif body.factor > MAX_BOOST:
            errors.append((f"a boost factor is at most {MAX_BOOST:g}x, not {body.factor:g}x: past that the edited "
                           f"activations leave fp32's useful range", body.loc))
        elif body.action == "ablate" and body.factor != 1.0:
            errors.append(("`by F x` sets how much a boost adds; an ablation removes the signal once", body.loc))
        return errors

    def vacuous(self, body: AblateClaim) -> list[Problem]:
        return self._domain(body)[1]

    def needs_answers(self, body: AblateClaim) -> bool:
        return True

    def claimed(self, body: AblateClaim) -> str:
        size = f"{body.amount.cmp} {body.amount.value:.0%}" if body.relative else body.amount.text()
        text = f"{body.direction} {body.metric} by {size}"
        if body.beats_random:
            text += f"; beats random by {body.beats_random.text()}x"
        return text

    def measure(self, ev: PromptSetEvidence, body: AblateClaim, indices: list[int],
                settings: Settings) -> list[PromptEvidence]:
        """The edge intervention and its random controls on `indices`. A local edit measured on
        attention is computed from the decomposition (no pass); otherwise the edit and every
        random draw of all prompts of one length share passes of up to `batch_size` rows."""
        import torch

        from sadlang.decomp.activations import batches
        from sadlang.evidence.metrics import logit_diff
        from sadlang.intervene.controls import random_edit
        from sadlang.intervene.edits import EdgeEdit, input_change, local_attention, run_edits

        draws = settings.random_draws
        sign = -1.0 if body.action == "ablate" else float(body.factor)
        r = ev.model.info.d_head
        plans: dict[int, tuple] = {}
        evidence: dict[int, PromptEvidence] = {}
        for i in indices:
            fe = ev.strongest_edge(i, body)
            if fe is None:
                evidence[i] = PromptEvidence(index=i, text=ev.prompts[i].text, value=None, passed=False,
                                             detail="the edge is not in this prompt's trace")
                continue
            f, e = fe
            edit = EdgeEdit(f.layer, f.head, f.d, f.s, e.component, e.side, e.svs, body.mode, sign)
            # each prompt's draws come from its own seed: they do not depend on which other
            # prompts are measured with it (a shard, a search batch, the whole set)
            gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + i)
            plans[i] = (f, e, edit, [random_edit(edit, r, gen) for _ in range(draws)])
        results: dict[int, dict] = {i: {"rand_ld": [], "rand_att": []} for i in plans}

        def ld(i: int, logits_end: torch.Tensor) -> float:
            return logit_diff(logits_end, ev.prompts[i].answer, ev.prompts[i].against)

        def record(k: int, i: int, value: float, att: float) -> None:
            if k == 0:
                results[i]["ld"], results[i]["att"] = value, att
            else:
                results[i]["rand_ld"].append(value)
                results[i]["rand_att"].append(att)

        if body.metric == "attention" and body.mode == "local":
            # a local edit changes only the head it reads: no forward pass (local_attention)
            for i, (f, _, edit, draws_i) in plans.items():
                for k, variant in enumerate([edit, *draws_i]):
                    record(k, i, float("nan"), local_attention(ev.dec(i), [variant], f.key))
        else:
            # the edit and every random draw of every prompt of one length share passes of up to
            # batch_size rows: row (k, i) is prompt i under variant k (0: the edit, k: draw k)
            rows = [(k, i) for k in range(draws + 1) for i in plans]
            for batch in batches([len(ev.prompts[i].tokens) for _, i in rows], settings.batch_size):
                chunk = [rows[j] for j in batch]
                edits = [[plans[i][2] if k == 0 else plans[i][3][k - 1]] for k, i in chunk]
                # an attention claim needs no logits: its pass stops after the head it reads
                logits, att = run_edits(ev.model, [ev.dec(i) for _, i in chunk], edits,
                                        [plans[i][0].key for _, i in chunk],
                                        need_logits=body.metric == "logit_diff")
                assert att is not None                  # the firings' weights were asked for
                for j, (k, i) in enumerate(chunk):
                    record(k, i, ld(i, logits[j]) if logits is not None else float("nan"), float(att[j]))
        for i, (f, e, edit, _) in plans.items():
            res = results[i]
            if body.metric == "logit_diff":
                clean, new, rand = ev.logit_diff(i), res["ld"], sum(res["rand_ld"]) / draws
            else:
                clean, new, rand = f.attention, res["att"], sum(res["rand_att"]) / draws
            effect, _ = effect_size(clean, new, body.direction, body.relative)
            value, ok, note = judged_effect(clean, new, body.direction, body.relative, body.amount)
            rand_effect, _ = effect_size(clean, rand, body.direction, False)
            ratio_in, cos_in = input_change(ev.dec(i), edit)
            detail = (f"{body.metric} {clean:.3f} -> {new:.3f} (effect {effect:+.3f}); random subspace -> "
                      f"{rand:.3f} (effect {rand_effect:+.3f}); {e.side} input norm ratio {ratio_in:.3f}, "
                      f"cosine {cos_in:.3f}{note}")
            if body.beats_random is not None:
                if rand_effect > 1e-9:
                    ratio = effect / rand_effect
                    ok = ok and holds(ratio, body.beats_random)
                    detail += f"; ratio {ratio:.3g}x"
                else:
                    # no ratio to a random effect that is not positive: the edge must move the
                    # value the claimed way where random subspaces do not
                    ok = ok and effect > 1e-9
                    detail += "; random effect not positive: no ratio, the edge's own effect decides"
            evidence[i] = PromptEvidence(index=i, text=ev.prompts[i].text, value=value, passed=ok, detail=detail)
        return [evidence[i] for i in indices]


KIND = AblateKind()
