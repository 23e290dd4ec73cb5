"""Claim evaluators: measure each claim per prompt, quantify, and explain the verdict."""

from __future__ import annotations

import math

import torch

from sadlang.check.batch import PromptBatch, RoleError, comp_matches, resolve
from sadlang.check.compare import holds, quantify
from sadlang.check.verdict import PromptEvidence, Verdict
from sadlang.control.sinks import (control_ablation_drop, mean_pairwise_cosine, paired_cosine,
                                   prototypes, sink_profile, swap_invariance)
from sadlang.intervene.edits import EdgeEdit, input_change, run_edits
from sadlang.intervene.signals import edge_signal
from sadlang.lang import ast as A
from sadlang.trace.graph import combine, heads_in


def _q(c: A.Claim) -> str:
    return c.quantifier.text()


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


# ---- per-prompt probes --------------------------------------------------------------------

def probe(batch: PromptBatch, claim: A.Claim, i: int, ctx: dict) -> PromptEvidence:
    """Measure a per-prompt claim on prompt i."""
    b = claim.body
    p = batch.prompts[i]
    try:
        value, passed, detail = _PROBES[b.kind](batch, b, i, ctx)
    except RoleError as exc:
        value, passed, detail = None, False, str(exc)
    return PromptEvidence(index=i, text=p.text, value=value, passed=passed, detail=detail)


def _p_attends(batch, b: A.Attends, i, ctx):
    p = batch.prompts[i]
    d, s = resolve(b.at.dest, p), resolve(b.at.src, p)
    a = float(batch.acts(i).pattern[b.head.layer, b.head.head, d, s])
    if b.fires:
        thr = batch.opts.firing_threshold(d)
        return a, a >= thr, f"A[{d}->{s}]={a:.3f}, threshold {thr:.3f}"
    bound = b.weight or A.Bound(cmp=">=", value=batch.opts.firing_threshold(d))
    return a, holds(a, bound), f"A[{d}->{s}]={a:.3f}"


def _p_edge(batch, b: A.EdgeClaim, i, ctx):
    found = batch.edges_into(i, b, b.side)
    if b.at is not None and not found:
        f = batch.firing(i, b.downstream.layer, b.downstream.head,
                         resolve(b.at.dest, batch.prompts[i]), resolve(b.at.src, batch.prompts[i]))
        why = (f"{b.downstream.text()} does not fire there (A={f.attention:.3f} < {f.threshold:.3f})"
               if f.attention < f.threshold else f"edges are {_edge_list(f)}")
    else:
        why = ""
    if found:
        f, e = max(found, key=lambda fe: fe[1].weight)
        detail = f"{e.component.label()} -> {f.layer}.{f.head}@{f.d}:{f.s} via {e.side}, weight {e.weight:.3g}, svs {e.svs}"
        value = e.weight
    else:
        detail, value = f"no matching edge; {why}".rstrip("; "), 0.0
    present = bool(found)
    return value, (not present) if b.negated else present, detail


def _edge_list(f) -> str:
    return ", ".join(f"{e.component.label()}({e.side})" for e in f.edges[:6]) or "none"


def _p_signal_rank(batch, b: A.SignalClaim, i, ctx):
    found = batch.edges_into(i, b, b.side)
    if not found:
        return None, False, "no such edge in this prompt"
    f, e = max(found, key=lambda fe: fe[1].weight)
    rank = len(e.svs)
    return float(rank), holds(rank, b.bound), f"rank {rank} (svs {e.svs}) on {e.side} side"


def _p_behaviour(batch, b: A.Behaviour, i, ctx):
    ld = batch.logit_diff(i)
    return ld, holds(ld, b.bound), f"logit_diff {ld:.3f}"


def _p_sink(batch, b: A.SinkClaim, i, ctx):
    P = resolve(b.to, batch.prompts[i])
    A_ = batch.acts(i).pattern[b.head.layer, b.head.head]
    share = float(A_[P + 1:, P].mean()) if P + 1 < A_.shape[-1] else float("nan")
    thr = float(ctx["settings"]["sink_share"])
    return share, share >= thr, f"mean attention onto position {P}: {share:.3f} (sink if >= {thr})"


def _p_control_ablate(batch, b: A.ControlAblate, i, ctx):
    P = resolve(b.to, batch.prompts[i])
    drop = control_ablation_drop(batch, i, b.head.layer, b.head.head, P)
    if math.isnan(drop):
        return None, False, "the head never fires onto the sink here"
    return drop, holds(drop, b.amount), f"attention onto {P} drops by {drop:.3f}"


_PROBES = {"attends": _p_attends, "edge": _p_edge, "signal": _p_signal_rank, "behaviour": _p_behaviour,
           "sink": _p_sink, "control_ablate": _p_control_ablate}

PER_PROMPT = {"attends", "edge", "behaviour", "sink", "control_ablate"}


def is_per_prompt(claim: A.Claim) -> bool:
    b = claim.body
    if b.kind == "behaviour":
        return not b.mean and b.metric == "logit_diff"
    if b.kind == "signal":
        return b.prop == "rank"
    return b.kind in PER_PROMPT or b.kind == "ablate"


# ---- verdict builders ---------------------------------------------------------------------

def _verdict(claim: A.Claim, spec, status_ok: bool, claimed: str, measured: str, value=None,
             prompts=None, details=None) -> Verdict:
    loc = claim.loc
    return Verdict(name=claim.name, kind=claim.body.kind, claim=claim.source_line,
                   location=f"{spec.file}:{loc.line}:{loc.column}" if loc else spec.file,
                   status="held" if status_ok else "failed", claimed=claimed, measured=measured,
                   value=value, prompts=prompts or [], details=details or {})


def claimed_text(claim: A.Claim) -> str:
    b = claim.body
    parts = []
    if b.kind == "attends":
        parts.append(f"weight {b.weight.text()}" if b.weight else "fires")
    elif b.kind == "behaviour":
        parts.append(f"{'mean ' if b.mean and b.metric == 'logit_diff' else ''}{b.metric} {b.bound.text()}")
    elif b.kind == "edge":
        parts.append("no edge" if b.negated else "edge present")
    elif b.kind == "signal" and b.bound:
        parts.append(f"{b.prop} {b.bound.text()}")
    elif b.kind == "signal":
        parts.append(f"signal is {b.signal_class}")
    elif b.kind == "ablate":
        amount = f"{b.amount.cmp} {b.amount.value:.0%}" if b.relative else b.amount.text()
        parts.append(f"{b.direction} {b.metric} by {amount}")
        if b.beats_random:
            parts.append(f"beats random by {b.beats_random.text()}x")
    elif b.kind == "sink":
        parts.append("sinks" + (" by a control signal" if b.by_control else ""))
    elif b.kind == "control_ablate":
        parts.append(f"attention drop {b.amount.text()}")
    elif b.kind == "shared":
        parts.append("same control prototype as " + ", ".join(h.text() for h in b.others))
    elif b.kind == "circuit":
        parts.append(f"{b.op} " + ", ".join(c.text() for c in b.components))
    if is_per_prompt(claim):
        parts.append(_q(claim))
    return "; ".join(parts)


def evaluate_per_prompt(batch: PromptBatch, claim: A.Claim, spec, ctx) -> Verdict:
    if claim.body.kind == "ablate":
        evidence = ablation_evidence(batch, claim, list(range(len(batch))), ctx)
    else:
        evidence = [probe(batch, claim, i, ctx) for i in range(len(batch))]
    ok, share = quantify([e.passed for e in evidence], claim.quantifier)
    vals = [e.value for e in evidence if e.value is not None and not math.isnan(e.value)]
    mean = sum(vals) / len(vals) if vals else None
    measured = f"held in {share:.0%} of {len(evidence)} prompts (mean {_fmt(mean)})"
    v = _verdict(claim, spec, ok, claimed_text(claim), measured, share, evidence)
    if claim.body.kind == "sink" and claim.body.by_control and ok:
        v = _sink_control(batch, claim, spec, ctx, v)
    return v


def _sink_control(batch, claim, spec, ctx, v: Verdict) -> Verdict:
    b = claim.body
    prof = sink_profile(batch, b.head.layer, b.head.head, lambda p: resolve(b.to, p))
    thr = float(ctx["settings"]["control_consistency"])
    ok = prof.is_control(thr)
    swapped = ctx.get("swapped", lambda name: None)(batch.name)
    inv, pairs = float("nan"), 0
    if swapped is not None:
        twin = sink_profile(swapped, b.head.layer, b.head.head, lambda p: resolve(b.to, p))
        inv, pairs = swap_invariance(prof, twin, swapped.origin)
        ok = ok and not (pairs and inv < thr)
    v.details.update(consistency=prof.consistency, firings=prof.n_firings, control_threshold=thr,
                     swap_invariance=inv, swap_pairs=pairs,
                     aligned_at_layer=prof.aligned_at, writers=dict(prof.top_writers(3)))
    v.measured += f"; sink signal consistency {_fmt(prof.consistency)} over {prof.n_firings} firings"
    if pairs:
        v.measured += f", {_fmt(inv)} against slot-swapped twins ({pairs} firings)"
    if not ok:
        v.status = "failed"
        v.measured += f" (control needs >= {thr})"
    v.measured += (f"; present from layer {prof.aligned_at}, written mostly by "
                   + ", ".join(f"{c} ({w:.0%})" for c, w in prof.top_writers(2)))
    return v


def evaluate(batch: PromptBatch, claim: A.Claim, spec, ctx) -> Verdict:
    b = claim.body
    if is_per_prompt(claim):
        return evaluate_per_prompt(batch, claim, spec, ctx)
    if b.kind == "behaviour":
        if b.metric == "accuracy":
            vals = [1.0 if batch.correct(i) else 0.0 for i in range(len(batch))]
        else:
            vals = [batch.logit_diff(i) for i in range(len(batch))]
        mean = sum(vals) / len(vals)
        ev = [PromptEvidence(index=i, text=batch.prompts[i].text, value=x, passed=True, detail="")
              for i, x in enumerate(vals)]
        return _verdict(claim, spec, holds(mean, b.bound), claimed_text(claim),
                        f"{b.metric} = {mean:.4g} over {len(vals)} prompts", mean, ev)
    if b.kind == "signal":
        return _signal_aggregate(batch, claim, spec, ctx)
    if b.kind == "circuit":
        return _circuit(batch, claim, spec, ctx)
    if b.kind == "shared":
        return _shared(batch, claim, spec, ctx)
    raise AssertionError(b.kind)


def _edge_signals(batch, b) -> dict[int, torch.Tensor]:
    """prompt index -> the strongest matching edge's signal vector."""
    out = {}
    for i in range(len(batch)):
        found = batch.edges_into(i, b, b.side)
        if found:
            f, e = max(found, key=lambda fe: fe[1].weight)
            out[i] = edge_signal(batch.dec(i), f.layer, f.head, e.component, e.side, e.at, e.svs)
    return out


def _signal_aggregate(batch, claim, spec, ctx) -> Verdict:
    b = claim.body
    by_prompt = _edge_signals(batch, b)
    sigs = list(by_prompt.values())
    cons = mean_pairwise_cosine(sigs)
    if b.prop == "stable":
        ok = len(sigs) >= 2 and holds(cons, b.bound)
        return _verdict(claim, spec, ok, claimed_text(claim),
                        f"mean pairwise cosine {_fmt(cons)} over {len(sigs)} prompts with the edge", cons)
    thr = float(ctx["settings"]["control_consistency"])
    inv, pairs = float("nan"), 0
    swapped = ctx.get("swapped", lambda name: None)(batch.name)
    if swapped is not None:
        theirs = {swapped.origin[j]: v for j, v in _edge_signals(swapped, b).items()}
        inv, pairs = paired_cosine(by_prompt, theirs)
    cls = "control" if len(sigs) >= 2 and cons >= thr and not (pairs and inv < thr) else "data"
    measured = f"{cls}: consistency {_fmt(cons)} across {len(sigs)} prompts"
    if pairs:
        measured += f", {_fmt(inv)} between {pairs} prompts and their slot-swapped twins"
    measured += f" (control if both >= {thr})"
    return _verdict(claim, spec, len(sigs) >= 2 and cls == b.signal_class, claimed_text(claim), measured,
                    cons, details={"class": cls, "consistency": cons, "swap_invariance": inv, "swap_pairs": pairs})


def _component_set(g, refs: list[A.CompRef]) -> tuple[set, set]:
    """(matched reference items, circuit items of the kinds the reference names)."""
    heads = heads_in(g)
    mlps = {a["layer"] for _, a in g.nodes(data=True) if a["kind"] == "mlp"}
    ours: set = set(("head",) + h for h in heads)
    if any(r.kind == "mlp" for r in refs):
        ours |= {("mlp", m) for m in mlps}
    ref_items: set = set()
    for r in refs:
        if r.kind == "head":
            if r.head.concrete:
                ref_items.add(("head", r.head.layer, r.head.head))
            else:
                ref_items |= {("head",) + h for h in heads if r.head.matches(*h)}
        elif r.kind == "mlp":
            ref_items.add(("mlp", r.layer))
    return ref_items, ours


def _circuit(batch, claim, spec, ctx) -> Verdict:
    b = claim.body
    g = combine(batch.graphs(), b.frequency)
    heads = heads_in(g)
    present = lambda r: any(comp_matches(r, _node_comp(a)) for _, a in g.nodes(data=True) if _node_comp(a))
    if b.op in ("contains", "excludes"):
        hits = {r.text(): present(r) for r in b.components}
        ok = all(hits.values()) if b.op == "contains" else not any(hits.values())
        missing = [k for k, v in hits.items() if (not v if b.op == "contains" else v)]
        measured = (f"{len(heads)} heads at frequency >= {b.frequency}: "
                    f"{', '.join(f'{l}.{h}' for l, h in sorted(heads)[:20])}{' ...' if len(heads) > 20 else ''}")
        if missing:
            measured += f"; {'missing' if b.op == 'contains' else 'present'}: {', '.join(missing)}"
        return _verdict(claim, spec, ok, claimed_text(claim), measured, float(ok),
                        details={"heads": [f"{l}.{h}" for l, h in sorted(heads)]})
    ref, ours = _component_set(g, b.components)
    inter = len(ref & ours)
    prec = inter / len(ours) if ours else 0.0
    rec = inter / len(ref) if ref else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    vals = {"precision": prec, "recall": rec, "f1": f1}
    bounds = b.bounds or {"f1": A.Bound(cmp=">=", value=0.5)}
    ok = all(holds(vals[k], bd) for k, bd in bounds.items())
    return _verdict(claim, spec, ok, ", ".join(f"{k} {bd.text()}" for k, bd in bounds.items()),
                    f"precision {prec:.3f}, recall {rec:.3f}, F1 {f1:.3f} ({len(ours)} in circuit, "
                    f"{len(ref)} in reference)", f1, details=vals)


def _node_comp(a):
    from sadlang.decomp.components import Component
    if a["kind"] == "head":
        return Component(kind="head", layer=a["layer"], head=a["head"], src=0)
    if a["kind"] in ("mlp", "bias"):
        return Component(kind=a["kind"], layer=a["layer"])
    if a["kind"] in ("embed", "offset"):
        return Component(kind=a["kind"])
    return None


def _shared(batch, claim, spec, ctx) -> Verdict:
    b = claim.body
    thr = float(ctx["settings"]["control_consistency"])
    cut = float(ctx["settings"]["prototype_cut"])
    heads = [b.head] + list(b.others)
    sigs, info = {}, {}
    for h in heads:
        prof = sink_profile(batch, h.layer, h.head, lambda p: 0)
        info[h.text()] = prof.consistency
        if prof.is_control(thr):
            sigs[(h.layer, h.head)] = prof.control_signal
    not_control = [h.text() for h in heads if (h.layer, h.head) not in sigs]
    clusters = prototypes(sigs, cut) if sigs else []
    mine = next((c for c in clusters if (b.head.layer, b.head.head) in c), [])
    ok = not not_control and all((h.layer, h.head) in mine for h in b.others)
    measured = "prototypes: " + "; ".join("{" + ", ".join(f"{l}.{h}" for l, h in c) + "}" for c in clusters)
    if not_control:
        measured += f"; without a control signal: {', '.join(not_control)}"
    return _verdict(claim, spec, ok, claimed_text(claim), measured, float(ok),
                    details={"consistency": {k: (None if math.isnan(v) else v) for k, v in info.items()}})


# ---- interventions ------------------------------------------------------------------------

def ablation_evidence(batch: PromptBatch, claim: A.Claim, indices: list[int], ctx) -> list[PromptEvidence]:
    """Run the claim's edge intervention (and random controls) on prompts, batched by length."""
    b: A.AblateClaim = claim.body
    draws = int(ctx["settings"]["random_draws"])
    gen = torch.Generator().manual_seed(int(ctx["settings"]["seed"]))
    sign = -1.0 if b.action == "ablate" else float(b.factor)
    plans: dict[int, tuple] = {}
    evidence: dict[int, PromptEvidence] = {}
    r = batch.model.info.d_head
    for i in indices:
        found = batch.edges_into(i, b, b.side)
        if not found:
            evidence[i] = PromptEvidence(index=i, text=batch.prompts[i].text, value=None, passed=False,
                                         detail="the edge is not in this prompt's trace")
            continue
        f, e = max(found, key=lambda fe: fe[1].weight)
        edit = EdgeEdit(f.layer, f.head, f.d, f.s, e.component, e.side, e.svs, b.mode, sign)
        randoms = []
        for _ in range(draws):
            others = [k for k in range(r) if k not in e.svs]
            size = len(e.svs) if len(e.svs) <= r // 2 else r - len(e.svs)
            perm = torch.randperm(len(others), generator=gen)[:size]
            randoms.append(EdgeEdit(f.layer, f.head, f.d, f.s, e.component, e.side,
                                    sorted(others[int(j)] for j in perm), b.mode, sign))
        plans[i] = (f, e, edit, randoms)
    by_len: dict[int, list[int]] = {}
    for i in plans:
        by_len.setdefault(len(batch.prompts[i].tokens), []).append(i)
    results: dict[int, dict] = {i: {"rand_ld": [], "rand_att": []} for i in plans}
    for _, idxs in sorted(by_len.items()):
        decs = [batch.dec(i) for i in idxs]
        reads = [plans[i][0].key for i in idxs]
        logits, att = run_edits(batch.model, decs, [[plans[i][2]] for i in idxs], reads)
        for j, i in enumerate(idxs):
            results[i]["ld"] = _ld(batch, i, logits[j])
            results[i]["att"] = float(att[j])
        for k in range(draws):
            logits, att = run_edits(batch.model, decs, [[plans[i][3][k]] for i in idxs], reads)
            for j, i in enumerate(idxs):
                results[i]["rand_ld"].append(_ld(batch, i, logits[j]))
                results[i]["rand_att"].append(float(att[j]))
    for i, (f, e, _, _) in plans.items():
        res = results[i]
        if b.metric == "logit_diff":
            clean, new, rand = batch.logit_diff(i), res["ld"], sum(res["rand_ld"]) / draws
        else:
            clean, new, rand = f.attention, res["att"], sum(res["rand_att"]) / draws
        sgn = 1.0 if b.direction == "lowers" else -1.0
        effect = sgn * (clean - new)
        rand_effect = sgn * (clean - rand)
        value = effect / abs(clean) if b.relative and clean != 0 else effect
        ok = holds(value, b.amount)
        ratio_in, cos_in = input_change(batch.dec(i), plans[i][2])
        detail = (f"{b.metric} {clean:.3f} -> {new:.3f} (effect {effect:+.3f}); random subspace -> "
                  f"{rand:.3f} (effect {rand_effect:+.3f}); {e.side} input norm ratio {ratio_in:.3f}, "
                  f"cosine {cos_in:.3f}")
        if b.beats_random is not None:
            ratio = effect / rand_effect if rand_effect > 1e-9 else (math.inf if effect > 0 else 0.0)
            ok = ok and holds(ratio, b.beats_random)
            detail += f"; ratio {ratio:.3g}x"
        evidence[i] = PromptEvidence(index=i, text=batch.prompts[i].text, value=value, passed=ok, detail=detail)
    return [evidence[i] for i in indices]


def _ld(batch, i, logits_end) -> float:
    p = batch.prompts[i]
    v = float(logits_end[p.answer])
    return v - float(logits_end[p.against]) if p.against is not None else v
