"""`circuit C is faithful|necessary CMP X | is complete within X | is minimal CMP X | beats
random by [CMP] R x | matches D [with f1 CMP X, ...] [by zero|mean|resample ablation [from SET]]`:
a declared or traced circuit tested whole, by node ablations (sadlang/circuits/metrics.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sadlang.claims.base import (
    Builder,
    ClaimKind,
    Measurement,
    Problem,
    References,
    Work,
    bound_problems,
    counterfactual_problems,
    fmt,
    overlap,
)
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import amount, bound, loc

Prop = Literal["faithful", "necessary", "complete", "minimal", "random", "matches"]


class CircuitTest(A.ClaimBody):
    kind: Literal["circuit_test"] = "circuit_test"
    circuit: str
    prop: Prop
    bound: A.Bound | None = None                       # the headline comparison
    reference: str | None = None                       # matches: the other circuit
    bounds: dict[str, A.Bound] = Field(default_factory=dict)
    ablation: Literal["zero", "mean", "resample"] | None = None
    counterfactual: str | None = None


def _share_bound(cmp: Any, size: Any) -> A.Bound:
    value, _ = amount(size)
    return A.Bound(cmp=str(cmp), value=value, loc=loc(cmp))


def _faithful(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("faithful", _share_bound(ch[0], ch[1]))


def _necessary(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("necessary", _share_bound(ch[0], ch[1]))


def _minimal(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("minimal", _share_bound(ch[0], ch[1]))


def _complete(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    value, _ = amount(ch[0])
    return ("complete", A.Bound(cmp="<=", value=value, loc=loc(meta)))


def _random(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    if len(ch) == 2:
        return ("random", bound(ch[0], ch[1]))
    return ("random", A.Bound(cmp=">=", value=float(ch[0]), loc=loc(meta)))


def _match(meta: Any, ch: list[Any]) -> tuple[str, str, dict[str, A.Bound]]:
    return ("matches", str(ch[0]), dict(ch[1:]))


def _ablation(meta: Any, ch: list[Any]) -> tuple[str, str, str | None]:
    return ("ablation", str(ch[0]), ch[1][1] if len(ch) > 1 else None)


def _circuit_test(meta: Any, ch: list[Any]) -> CircuitTest:
    kw: dict[str, Any] = {"circuit": str(ch[0])}
    prop = ch[1]
    if prop[0] == "matches":
        kw.update(prop="matches", reference=prop[1], bounds=prop[2])
    else:
        kw.update(prop=prop[0], bound=prop[1])
    if len(ch) > 2:
        kw.update(ablation=ch[2][1], counterfactual=ch[2][2])
    return CircuitTest(loc=loc(meta), **kw)


class CircuitTestKind(ClaimKind):
    name = "circuit_test"
    node = CircuitTest
    summary = "a declared or traced circuit is faithful, necessary, complete, minimal, beats random or matches another"
    examples = ("circuit planted_copy is faithful >= 99% by zero ablation on copy",
                "circuit planted_copy is necessary >= 50% by zero ablation on copy",
                "circuit planted_copy beats random by >= 5x by zero ablation on copy",
                "circuit planted_copy is complete within 10% by zero ablation on copy",
                "circuit planted_copy is minimal >= 20% by zero ablation on copy",
                "circuit planted_copy matches planted_copy with f1 >= 1 on copy")
    failing = ("circuit half_copy is faithful >= 80% by zero ablation on copy",
               "circuit key_only_copy is faithful >= 80% by zero ablation on copy",
               "circuit planted_copy is minimal >= 20% by mean ablation on copy")

    def rules(self) -> dict[str, Builder]:
        return {"circuit_test": _circuit_test, "faithful_prop": _faithful, "necessary_prop": _necessary,
                "complete_prop": _complete, "minimal_prop": _minimal, "random_prop": _random,
                "circuit_match_prop": _match, "ablation_kind": _ablation}

    def work(self, body: CircuitTest) -> Work:
        return "trace" if body.prop == "matches" else "intervention"

    def describe(self, body: CircuitTest) -> str:
        if body.prop == "matches":
            return f"node sets of circuits {body.circuit} and {body.reference}"
        return (f"{body.ablation or 'option ablation'} ablations of the heads outside / inside circuit "
                f"{body.circuit}, batched passes")

    def references(self, body: CircuitTest) -> References:
        return References()

    def static_errors(self, body: CircuitTest) -> list[Problem]:
        errors = [p for b in body.bounds.values() for p in bound_problems(b, 0.0, 1.0, "a precision, recall or F1")[0]]
        if body.prop == "random":
            errors += bound_problems(body.bound, 0.0, 10_000.0, "a ratio to random circuits")[0]
        if body.prop == "complete" and body.bound is not None and body.bound.value < 0:
            errors.append(("completeness is within a non-negative share of F(M)", body.bound.loc))
        return errors

    def spec_errors(self, spec: A.Spec, body: CircuitTest) -> list[Problem]:
        import difflib

        out = []
        for name in (body.circuit, body.reference):
            if name is not None and name not in spec.circuits:
                close = difflib.get_close_matches(name, list(spec.circuits), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                out.append((f"undefined circuit {name!r} (circuits: {', '.join(spec.circuits) or 'none'}){hint}",
                            body.loc))
        return out

    def plan_errors(self, spec: A.Spec, body: CircuitTest, prompt_set: str, prompts: list[Any]) -> list[Problem]:
        from sadlang.evidence.roles import RoleError, resolve

        if body.prop == "matches":
            return []
        errors = counterfactual_problems(spec, body.counterfactual, body.ablation, prompt_set, body.loc)
        decl = spec.circuits[body.circuit]
        for node in decl.nodes:
            if node.at is None:
                continue
            for p in prompts:
                try:
                    resolve(node.at, p)
                except RoleError as exc:
                    errors.append((f"circuit {decl.name} node {node.text()}: {exc}", node.at.loc))
                    break
        return errors

    def needs_answers(self, body: CircuitTest) -> bool:
        return True

    def per_prompt(self, body: CircuitTest) -> bool:
        return False

    def claimed(self, body: CircuitTest) -> str:
        if body.prop == "matches":
            bounds = body.bounds or {"f1": A.Bound(cmp=">=", value=0.5)}
            return f"matches {body.reference}: " + ", ".join(f"{k} {b.text()}" for k, b in bounds.items())
        assert body.bound is not None
        value = body.bound.value
        if body.prop == "random":
            return f"beats random circuits by {body.bound.cmp} {value:g}x"
        if body.prop == "complete":
            return f"complete within {value:.0%} of F(M)"
        return f"{body.prop} {body.bound.cmp} {value:.0%}"

    def aggregate(self, ev, claim: A.Claim, settings) -> Measurement:
        from sadlang.circuits import metrics as M
        from sadlang.circuits.nodes import declared_nodes, traced_heads
        from sadlang.circuits.wiring import declared_edges

        body: CircuitTest = claim.body  # type: ignore[assignment]
        ws = ev.workspace
        assert ws is not None
        decls = ws.spec.circuits

        def nodes_of(name: str) -> tuple[list[list[M.Node]], list[str]]:
            decl = decls[name]
            if decl.traced_from is None:
                return [declared_nodes(decl, p) for p in ev.prompts], [n.text() for n in decl.nodes]
            heads = traced_heads(decl, ws.sets[decl.traced_from])
            return ([[(layer, head, None) for layer, head in heads] for _ in ev.prompts],
                    [f"{layer}.{head}" for layer, head in heads])

        nodes, names = nodes_of(body.circuit)
        if body.prop == "matches":
            return _matches(body, {n.split(" ")[0] for n in names},
                            {n.split(" ")[0] for n in nodes_of(body.reference or body.circuit)[1]})
        kind = body.ablation or settings.ablation
        cf_name = body.counterfactual or settings.counterfactual
        lab = M.CircuitLab(ev, kind, ws.sets.get(cf_name) if kind == "resample" and cf_name else None,
                           settings.batch_size, settings.metric)
        f_m = M.mean(lab.clean())
        decl = decls[body.circuit]
        edges = declared_edges(decl) if decl.traced_from is None else None
        details: dict[str, Any] = {"F(M)": f_m, "metric": settings.metric, "ablation": kind,
                                   "level": "node" if edges is None else "edge", "nodes": len(names),
                                   "circuit": names}
        if edges is not None:
            details["edges"] = [e.text() for e in decl.edges]
        if kind == "resample":
            details["counterfactual"] = cf_name
        measured, value, ok = _measure(body, lab, nodes, names, edges, f_m, settings, details)
        details["forward_passes"] = lab.passes
        metric = "" if settings.metric == "logit_diff" else f" ({settings.metric})"
        level = "" if edges is None else f"edge-level ({len(decl.edges)} edge{'' if len(decl.edges) == 1 else 's'}); "
        prefix = (f"F(M){metric} = {f_m:.4g}; {level}{kind} ablation"
                  f"{' from ' + str(cf_name) if kind == 'resample' else ''}; ")
        return Measurement(ok, prefix + measured, value, details=details)


def _measure(body: CircuitTest, lab: Any, nodes: list, names: list[str], edges: Any, f_m: float,
             settings: Any, details: dict[str, Any]) -> tuple[str, float, bool]:
    from sadlang.circuits import metrics as M
    from sadlang.circuits.wiring import without_edges

    assert body.bound is not None
    size = len(names)
    seed = settings.seed
    if body.prop in ("faithful", "necessary"):
        # per-node effects tell a failing claim which node to look at; past 16 nodes they would
        # cost more passes than the claim itself
        singles = [M.minus(nodes, {k}) for k in range(size)] if size <= 16 else []
        removed: M.Variant = (nodes, False) if edges is None else ([[] for _ in nodes], False, without_edges(edges))
        runs = lab.run([M.alone(nodes, edges), removed] + [M.alone(s, edges) for s in singles])
        f_c, f_without = M.mean(runs[0]), M.mean(runs[1])
        effects = {names[k]: M.ratio(M.mean(runs[2 + k]), f_m) for k in range(len(singles))}
        details.update({"F(C)": f_c, "F(M without C)": f_without,
                        "faithfulness without each node": dict(sorted(effects.items(), key=lambda kv: kv[1]))})
        weakest = min(effects, key=lambda k: effects[k]) if effects else "-"
        if body.prop == "faithful":
            value = M.ratio(f_c, f_m)
            text = f"F(C) = {f_c:.4g}: faithfulness {fmt(value)}; most needed node {weakest}"
        else:
            value = M.ratio(f_m - f_without, f_m)
            text = f"F(M without C) = {f_without:.4g}: necessity {fmt(value)}"
        return text, value, holds(value, body.bound)
    if body.prop == "random":
        randoms = M.random_circuits(nodes, lab.ev.model.info.n_heads, settings.random_draws, seed)
        runs = lab.run([M.alone(nodes, edges)] + [M.alone(r, M.renamed(edges, nodes, r)) for r in randoms])
        faith = M.ratio(M.mean(runs[0]), f_m)
        rand = [M.ratio(M.mean(r), f_m) for r in runs[1:]]
        base = M.mean(rand)
        value = faith / base if base > 1e-9 else (float("inf") if faith > 0 else 0.0)
        details.update({"faithfulness": faith, "random faithfulness": rand})
        return (f"faithfulness {fmt(faith)} vs {fmt(base)} for {len(rand)} random circuits of {size} heads: "
                f"{fmt(value)}x"), value, holds(value, body.bound)
    if body.prop == "complete":
        subsets = M.random_subsets(size, settings.completeness_draws, seed)
        gaps: dict[frozenset[int], float] = {}

        def gap_of(ks: list[set[int]]) -> None:
            runs = lab.run([v for k in ks for v in (M.alone(M.minus(nodes, k), edges), (M.pick(nodes, k), False))])
            for j, k in enumerate(ks):
                gaps[frozenset(k)] = abs(M.mean(runs[2 * j]) - M.mean(runs[2 * j + 1])) / abs(f_m)
        gap_of(subsets)
        worst: set[int] = set()
        for _ in range(min(3, size)):                    # greedy: grow the worst K a node at a time
            grow = [worst | {v} for v in range(size) if v not in worst]
            gap_of(grow)
            best = max(grow, key=lambda k: gaps[frozenset(k)])
            if worst and gaps[frozenset(best)] <= gaps[frozenset(worst)]:
                break
            worst = best
        key = max(gaps, key=lambda k: gaps[k])
        value = gaps[key]
        details["worst K"] = [names[k] for k in sorted(key)]
        return (f"incompleteness {fmt(value)} of F(M) at worst, for K = {{{', '.join(names[k] for k in sorted(key))}}} "
                f"({len(gaps)} subsets tried)"), value, holds(value, body.bound)
    # minimal
    scores: dict[str, float] = {}
    for v in range(size):
        ks = [{v}, *M.random_subsets(size, max(1, settings.completeness_draws // 2), seed + v, containing=v)]
        runs = lab.run([x for k in ks for x in (M.alone(M.minus(nodes, k - {v}), edges),
                                                 M.alone(M.minus(nodes, k), edges))])
        scores[names[v]] = max((M.mean(runs[2 * j]) - M.mean(runs[2 * j + 1])) / abs(f_m) for j in range(len(ks)))
    least = min(scores, key=lambda k: scores[k])
    details["node importance"] = dict(sorted(scores.items(), key=lambda kv: kv[1]))
    value = scores[least]
    return f"least important node {least}: {fmt(value)} of F(M)", value, holds(value, body.bound)


def _matches(body: CircuitTest, mine: set[str], theirs: set[str]) -> Measurement:
    vals, ok, _ = overlap(mine, theirs, body.bounds)
    return Measurement(ok, f"precision {vals['precision']:.3f}, recall {vals['recall']:.3f}, F1 {vals['f1']:.3f} "
                           f"({len(mine)} heads in {body.circuit}, {len(theirs)} in {body.reference})", vals["f1"],
                       details={**vals, "only here": sorted(mine - theirs), "only there": sorted(theirs - mine)})


KIND = CircuitTestKind()
