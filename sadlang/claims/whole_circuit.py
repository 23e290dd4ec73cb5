"""`circuit C is faithful|necessary CMP X | is complete within X | is minimal CMP X | beats
random by [CMP] R x | matches D [with f1 CMP X, ...] [by zero|mean|resample ablation [from SET]]`:
a declared or traced circuit tested whole, by node ablations (sadlang/circuits/metrics.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sadlang.circuits.ablations import ABLATIONS
from sadlang.circuits.task_metrics import share
from sadlang.claims.base import (
    Builder,
    ClaimKind,
    Measurement,
    Problem,
    References,
    Work,
    ablation_source,
    bound_problems,
    counterfactual_problems,
    fmt,
    overlap,
    reference_problems,
    spec_option,
)
from sadlang.lang import ast as A
from sadlang.lang.compare import holds
from sadlang.lang.syntax import amount, bound, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence

Prop = Literal["faithful", "necessary", "complete", "minimal", "random", "matches", "as_faithful"]


class CircuitTest(A.ClaimBody):
    kind: Literal["circuit_test"] = "circuit_test"
    circuit: str
    prop: Prop
    bound: A.Bound | None = None                       # the headline comparison
    reference: str | None = None                       # matches, as_faithful: the other circuit
    metric: str | None = None                          # `with NAME`: the task metric (else option metric)
    level: Literal["node", "edge"] = "node"            # matches: compare node sets or edge sets
    bounds: dict[str, A.Bound] = Field(default_factory=dict)
    upper: A.Bound | None = None                       # `within LO..HI`: the upper bound (bound is LO)
    ablation: str | None = None                        # an ablation kind (circuits/ablations.py)
    counterfactual: str | None = None
    mean_over: str | None = None                       # `over SET`: the prompts a mean ablation averages


def _share_bound(cmp: Any, size: Any) -> A.Bound:
    value, _ = amount(size)
    return A.Bound(cmp=str(cmp), value=value, loc=loc(cmp))


def _task_metric(meta: Any, ch: list[Any]) -> tuple[str, str]:
    return ("metric", str(ch[0]))


def _with_metric(ch: list[Any]) -> tuple[Any, Any, str | None]:
    """(first, second, metric or None) from `[with NAME] CMP amount` or `[with NAME] within LO..HI`."""
    metric = ch[0][1] if ch and isinstance(ch[0], tuple) else None
    rest = ch[1:] if metric else ch
    return rest[0], rest[1], metric


def _faithful(meta: Any, ch: list[Any]) -> tuple[Any, ...]:
    cmp, size, metric = _with_metric(ch)
    return ("faithful", _share_bound(cmp, size), None, metric)


def _necessary(meta: Any, ch: list[Any]) -> tuple[Any, ...]:
    cmp, size, metric = _with_metric(ch)
    return ("necessary", _share_bound(cmp, size), None, metric)


def _as_faithful_prop(meta: Any, ch: list[Any]) -> tuple[Any, ...]:
    margin = amount(ch[1])[0] if len(ch) > 1 else 0.0
    return ("as_faithful", str(ch[0]), A.Bound(cmp=">=", value=-margin, loc=loc(meta)))


def _minimal(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return ("minimal", _share_bound(ch[0], ch[1]))


def _complete(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    value, _ = amount(ch[0])
    return ("complete", A.Bound(cmp="<=", value=value, loc=loc(meta)))


def _random(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    if len(ch) == 2:
        return ("random", bound(ch[0], ch[1]))
    return ("random", A.Bound(cmp=">=", value=float(ch[0]), loc=loc(meta)))


def _match(meta: Any, ch: list[Any]) -> tuple[str, str, dict[str, A.Bound], str]:
    name, rest = str(ch[0]), list(ch[1:])
    level = str(rest.pop(0)) if rest and getattr(rest[0], "type", None) == "LEVEL" else "node"
    return ("matches", name, dict(rest), level)


def _faithful_within(meta: Any, ch: list[Any]) -> tuple[Any, ...]:
    lo_tok, hi_tok, metric = _with_metric(ch)
    lo, _ = amount(lo_tok)
    hi, _ = amount(hi_tok)
    return ("faithful", A.Bound(cmp=">=", value=lo, loc=loc(meta)), A.Bound(cmp="<=", value=hi, loc=loc(meta)),
            metric)


def _ablation(meta: Any, ch: list[Any]) -> tuple[str, str, str | None, str | None]:
    source = ch[1] if len(ch) > 1 else ("", None)
    return ("ablation", str(ch[0]), source[1] if source[0] == "from" else None,
            source[1] if source[0] == "over" else None)


def _circuit_test(meta: Any, ch: list[Any]) -> CircuitTest:
    kw: dict[str, Any] = {"circuit": str(ch[0])}
    prop = ch[1]
    if prop[0] == "matches":
        kw.update(prop="matches", reference=prop[1], bounds=prop[2], level=prop[3])
    elif prop[0] == "as_faithful":
        kw.update(prop="as_faithful", reference=prop[1], bound=prop[2])
    elif prop[0] in ("faithful", "necessary"):
        kw.update(prop=prop[0], bound=prop[1], upper=prop[2], metric=prop[3])
    else:
        kw.update(prop=prop[0], bound=prop[1], upper=prop[2] if len(prop) > 2 else None)
    if len(ch) > 2:
        kw.update(ablation=ch[2][1], counterfactual=ch[2][2], mean_over=ch[2][3])
    return CircuitTest(loc=loc(meta), **kw)


class CircuitTestKind(ClaimKind):
    name = "circuit_test"
    node = CircuitTest
    summary = "a declared or traced circuit is faithful, necessary, complete, minimal, beats random or matches another"
    picture = "declared-circuit"
    examples = ("circuit planted_copy is faithful >= 99% by zero ablation on copy",
                "circuit planted_copy is necessary >= 50% by zero ablation on copy",
                "circuit planted_copy beats random by >= 5x by zero ablation on copy",
                "circuit planted_copy is complete within 10% by zero ablation on copy",
                "circuit planted_copy is minimal >= 20% by zero ablation on copy",
                "circuit planted_copy matches planted_copy with f1 >= 1 on copy",
                "circuit planted_copy is faithful with kl <= 0.1 by zero ablation on copy",
                "circuit planted_copy is faithful with loss >= 90% by zero ablation on copy",
                "circuit planted_copy is at least as faithful as half_copy by zero ablation on copy",
                "circuit planted_copy matches planted_copy at edge level with f1 >= 1 on copy")
    failing = ("circuit half_copy is faithful >= 80% by zero ablation on copy",
               "circuit key_only_copy is faithful >= 80% by zero ablation on copy",
               "circuit planted_copy is minimal >= 20% by mean ablation on copy",
               "circuit half_copy is faithful with kl <= 0.1 by zero ablation on copy",
               "circuit half_copy is faithful with loss >= 90% by zero ablation on copy",
               "circuit half_copy is at least as faithful as planted_copy by zero ablation on copy",
               "circuit key_only_copy matches planted_copy at edge level with f1 >= 0.9 on copy")

    def rules(self) -> dict[str, Builder]:
        return {"circuit_test": _circuit_test, "faithful_prop": _faithful, "necessary_prop": _necessary,
                "complete_prop": _complete, "minimal_prop": _minimal, "random_prop": _random,
                "circuit_match_prop": _match, "ablation_kind": _ablation, "faithful_within_prop": _faithful_within,
                "task_metric": _task_metric, "as_faithful_prop": _as_faithful_prop}

    def work(self, body: CircuitTest) -> Work:
        return "trace" if body.prop == "matches" else "intervention"

    def describe(self, body: CircuitTest) -> str:
        if body.prop == "matches":
            return f"{body.level} sets of circuits {body.circuit} and {body.reference}"
        if body.prop == "as_faithful":
            return (f"{body.ablation or 'option ablation'} ablations outside circuit {body.circuit} and outside "
                    f"{body.reference} (cut to {body.circuit}'s size, with its faithfulness curve, when it is "
                    f"discovered), batched passes")
        return (f"{body.ablation or 'option ablation'} ablations of the heads outside / inside circuit "
                f"{body.circuit}, batched passes")

    def references(self, body: CircuitTest) -> References:
        return References()

    def static_errors(self, body: CircuitTest) -> list[Problem]:
        from sadlang.circuits.task_metrics import METRICS, names_text

        errors = [p for b in body.bounds.values() for p in bound_problems(b, 0.0, 1.0, "a precision, recall or F1")[0]]
        if body.metric is not None and body.metric not in METRICS:
            errors.append((f"unknown task metric {body.metric!r}: `with` names {names_text()}", body.loc))
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
        if out:
            return out
        if body.prop == "as_faithful" and body.reference == body.circuit:
            out.append((f"circuit {body.circuit} is compared with itself: the difference is 0 whatever it does",
                        body.loc))
        return out + _metric_problems(spec, body) + _level_problems(spec, body)

    def plan_errors(self, spec: A.Spec, body: CircuitTest, prompt_set: str, prompts: list[Any]) -> list[Problem]:
        from sadlang.evidence.roles import RoleError, resolve

        if body.prop == "matches":
            return []
        errors = (counterfactual_problems(spec, body.counterfactual, body.ablation, prompt_set, body.loc)
                  + reference_problems(spec, body.mean_over, body.ablation, body.loc))
        decl = spec.circuits[body.circuit]
        nodes: list[A.CircuitNode | A.CircuitMlp] = [*decl.nodes, *decl.mlps]
        for node in nodes:
            if node.at is None:
                continue
            src = node.src if isinstance(node, A.CircuitNode) else None     # where a head looks
            for p in prompts:
                try:
                    d = resolve(node.at, p)
                    if src is not None and resolve(src, p) > d:
                        errors.append((f"circuit {decl.name} node {node.text()}: {src.text()} comes after "
                                       f"{node.at.text()} in {p.text!r}, and attention only looks back",
                                       src.loc or node.at.loc))
                        break
                except RoleError as exc:
                    errors.append((f"circuit {decl.name} node {node.text()}: {exc}", node.at.loc))
                    break
        return errors

    def needs_answers(self, body: CircuitTest) -> bool:
        return True

    def model_errors(self, spec: A.Spec, body: CircuitTest, info: Any) -> list[Problem]:
        """`beats random` needs, in every layer of a declared circuit, unused heads to draw from."""
        decl = spec.circuits.get(body.circuit)
        if body.prop != "random" or decl is None or decl.traced_from is not None:
            return []
        per_layer: dict[int, set[int]] = {}
        for n in decl.nodes:
            if n.head.concrete:
                layer, head = n.head.pair
                per_layer.setdefault(layer, set()).add(head)
        full = [layer for layer, heads in sorted(per_layer.items()) if len(heads) * 2 > info.n_heads]
        if full:
            layer = full[0]
            return [(f"circuit {decl.name} uses {len(per_layer[layer])} of layer {layer}'s {info.n_heads} heads: "
                     f"random circuits of its size would have to reuse its own heads there, so `beats random` "
                     f"could not tell it from chance", body.loc)]
        return []

    def uses_held_out_mean(self, body: CircuitTest, settings: Settings) -> bool:
        return (body.prop != "matches" and ABLATIONS[body.ablation or settings.ablation].source == "reference"
                and body.mean_over is None)

    def per_prompt(self, body: CircuitTest) -> bool:
        return False

    def claimed(self, body: CircuitTest) -> str:
        from sadlang.circuits.task_metrics import METRICS

        if body.prop == "matches":
            bounds = body.bounds or {"f1": A.Bound(cmp=">=", value=0.5)}
            level = "" if body.level == "node" else " (edges)"
            return f"matches {body.reference}{level}: " + ", ".join(f"{k} {b.text()}" for k, b in bounds.items())
        assert body.bound is not None
        value = body.bound.value
        if body.prop == "as_faithful":
            margin = f" within {A.percent(-value)}" if value else ""
            return f"at least as faithful as {body.reference}{margin}"
        record = METRICS.get(body.metric or "")
        if record is not None and record.reading.unit:
            within = f" within {value:g}..{body.upper.value:g}" if body.upper is not None else ""
            return f"{body.prop} with {record.name}" + (within or f" {body.bound.cmp} {value:g}{record.reading.unit}")
        if record is not None:
            within = f"within {A.percent(value)}..{A.percent(body.upper.value)}" if body.upper is not None else ""
            return f"{body.prop} with {record.name} " + (within or f"{body.bound.cmp} {A.percent(value)}")
        if body.prop == "random":
            return f"beats random circuits by {body.bound.cmp} {value:g}x"
        if body.prop == "complete":
            return f"complete within {A.percent(value)} of F(M)"
        if body.upper is not None:
            return f"{body.prop} within {A.percent(value)}..{A.percent(body.upper.value)}"
        return f"{body.prop} {body.bound.cmp} {A.percent(value)}"

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        from sadlang.circuits import metrics as M
        from sadlang.circuits.nodes import MLP, circuit_edges, node_name
        from sadlang.circuits.task_metrics import METRICS
        from sadlang.circuits.wiring import declared_edges, refuse_wiring

        body: CircuitTest = claim.body  # type: ignore[assignment]
        ws = ev.workspace
        assert ws is not None
        decls = ws.spec.circuits
        metric = body.metric or settings.metric
        record = METRICS[metric]

        nodes, names = _nodes_of(decls[body.circuit], ev, ws.sets, metric, settings)
        if body.prop == "matches":
            other = decls[body.reference or body.circuit]
            if body.level == "edge":
                def pairs(decl: A.CircuitDecl) -> set[str]:
                    found = circuit_edges(decl, ws.sets, metric, settings.batch_size, settings.eap_ig_steps)
                    return {f"{u} -> {v}" for u, v in found}
                return _matches(body, pairs(decls[body.circuit]), pairs(other), "edge")
            theirs = _nodes_of(other, ev, ws.sets, metric, settings)[0]
            return _matches(body, {node_name(n) for n in nodes[0]} if nodes else set(),
                            {node_name(n) for n in theirs[0]} if theirs else set(), "node")
        kind = body.ablation or settings.ablation
        cf_name = body.counterfactual or settings.counterfactual
        decl = decls[body.circuit]
        theirs_nodes: list[list[M.Node]] | None = None
        ranking = None
        if body.prop == "as_faithful":
            theirs_nodes, ranking = _reference_nodes(decls[body.reference or body.circuit], nodes, ev, ws.sets,
                                                     metric, settings)
        # MLPs are circuit nodes (ablated outside the circuit) when either circuit names one, or when a
        # circuit was discovered on the heads+MLPs graph
        with_mlps = any(unit == MLP for _, unit in M.units_of(nodes) | M.units_of(theirs_nodes or [])) \
            or decl.discovery is not None
        lab = M.CircuitLab(ev, kind, ablation_source(ev, kind, cf_name, body.mean_over), settings.batch_size,
                           metric, mlps=with_mlps)
        clean = lab.clean()
        f_m = M.mean(clean)
        edges = declared_edges(decl) if decl.traced_from is None else None
        if edges:
            refuse_wiring(ev.model)
        details: dict[str, Any] = {"F(M)": f_m, "metric": metric, "ablation": kind,
                                   "reference": lab.reference_text(), "prompts": len(ev),
                                   "level": "node" if edges is None else "edge", "nodes": len(names),
                                   "circuit": names}
        if edges is not None:
            details["edges"] = [e.text() for e in decl.edges]
        if ABLATIONS[kind].source == "counterfactual":
            details["counterfactual"] = cf_name
        level = "" if edges is None else f"edge-level ({len(decl.edges)} edge{'' if len(decl.edges) == 1 else 's'}); "
        source = "" if ABLATIONS[kind].source == "none" else f" ({lab.reference_text()})"
        prefix = f"F(M) = {f_m:.4g} ({metric}) over {len(ev)} prompts; {level}{kind} ablation{source}; "
        if not names:
            return Measurement(False, prefix + f"circuit {body.circuit} has no node: nothing to test", 0.0,
                               details=details, status="failed")
        if record.reading.needs_positive_model and not f_m > 0:
            return Measurement(False, prefix + "the whole model's F(M) is not positive, so no share of it can be "
                               "kept or lost: the claim cannot be judged on this task", f_m, details=details,
                               status="failed")
        if body.prop == "as_faithful":
            assert theirs_nodes is not None
            m = _as_faithful(body, lab, clean, nodes, edges, theirs_nodes, ranking, record, settings, details)
        else:
            m = _measure(body, lab, clean, nodes, names, edges, record, settings, details)
        if body.prop not in ("random", "as_faithful") or "ratio" in details:     # not when the p-value decided
            m.thresholds = [b.value for b in (body.bound, body.upper) if b is not None]
        details["forward_passes"] = lab.passes
        m.measured = prefix + m.measured
        return m


def _nodes_of(decl: A.CircuitDecl, ev: PromptSetEvidence, sets: dict[str, PromptSetEvidence], metric: str,
              settings: Settings) -> tuple[list[list[Any]], list[str]]:
    """Per prompt, a circuit's nodes, and their names: declared, discovered (its units at every
    position) or traced (its heads at every position)."""
    from sadlang.circuits.nodes import declared_nodes, discovered, node_name, traced_units

    if decl.traced_from is None:
        return ([declared_nodes(decl, p) for p in ev.prompts],
                [n.text() for n in decl.nodes] + [m.text() for m in decl.mlps])
    if decl.discovery is not None:
        units, _ = discovered(decl, sets, metric, settings.batch_size, settings.eap_ig_steps)
        nodes = [(layer, unit, None) for layer, unit in units]
        return [list(nodes) for _ in ev.prompts], [node_name(n) for n in nodes]
    units = traced_units(decl, sets[decl.traced_from])
    return ([[(layer, unit, None) for layer, unit in units] for _ in ev.prompts],
            [node_name((layer, unit, None)) for layer, unit in units])


def _reference_nodes(ref: A.CircuitDecl, nodes: list[list[Any]], ev: PromptSetEvidence,
                     sets: dict[str, PromptSetEvidence], metric: str,
                     settings: Settings) -> tuple[list[list[Any]], Any]:
    """The circuit `at least as faithful as` compares with, and its discovery Ranking (None when it
    was not discovered). A discovered circuit is taken at the claim's circuit's size: its strongest
    nodes, as many as the circuit has distinct units, and only heads when the circuit has no MLP."""
    from sadlang.circuits.nodes import MLP, discovered

    if ref.discovery is None:
        return _nodes_of(ref, ev, sets, metric, settings)[0], None
    _, ranking = discovered(ref, sets, metric, settings.batch_size, settings.eap_ig_steps)
    units = {(layer, unit) for layer, unit, _ in (nodes[0] if nodes else [])}
    heads_only = all(unit != MLP for _, unit in units)
    ranked = [u for u, _ in ranking.nodes if not (heads_only and u[1] == MLP)]
    picked = [(layer, unit, None) for layer, unit in sorted(ranked[: len(units)])]
    return [list(picked) for _ in ev.prompts], (ranking, ranked)


def _metric_problems(spec: A.Spec, body: CircuitTest) -> list[Problem]:
    """A lower-is-better metric reads faithfulness and necessity in its own way (circuits/task_metrics.py);
    the shares of F(M) that completeness, minimality and random circuits compare need a ratio metric."""
    from sadlang.circuits.task_metrics import METRICS, ratio_text

    record = METRICS.get(body.metric or spec_option(spec, "metric"))   # its own `with NAME`, else the option
    if record is None or body.prop in ("matches", "as_faithful"):
        return []
    if not record.reading.shares and body.prop in ("complete", "minimal", "random"):
        return [(f"`{_PROP_TEXT[body.prop]}` compares shares of F(M), which need a higher-is-better metric "
                 f"({ratio_text()}); this claim's metric is {record.name}: state it `by ... ablation` under "
                 f"`option metric = logit_diff`", body.loc)]
    reading = record.reading
    if reading.unit and body.metric is None:
        # a faithful circuit keeps the value on its better side, a necessary one's removal leaves the other
        better = (">=" if reading.higher_is_better else "<=") if body.prop == "faithful" else \
            ("<=" if reading.higher_is_better else ">=")
        return [(f"under metric {record.name} a circuit is {body.prop} by {reading.what} in{reading.unit}, "
                 f"not a share: write `circuit {body.circuit} is {body.prop} with {record.name} {better} X`",
                 body.loc)]
    return []


_PROP_TEXT = {"complete": "is complete", "minimal": "is minimal", "random": "beats random"}


def _level_problems(spec: A.Spec, body: CircuitTest) -> list[Problem]:
    """Edge-level matching needs edges on both sides."""
    if body.prop != "matches" or body.level != "edge":
        return []
    out = []
    for name in (body.circuit, body.reference or body.circuit):
        decl = spec.circuits[name]
        has_edges = bool(decl.edges) if decl.traced_from is None else decl.discovery is None or decl.top_nodes is None
        if not has_edges:
            what = "ranks nodes" if decl.discovery is not None else "declares no edges"
            out.append((f"circuit {name} {what}: compare it at node level (drop `at edge level`)", body.loc))
    return out


def _meets(value: float, body: CircuitTest) -> bool:
    """Does a point value satisfy the claim's bound (or both bounds of `within LO..HI`)?"""
    assert body.bound is not None
    if body.upper is not None:
        return body.bound.value - 1e-12 <= value <= body.upper.value + 1e-12
    return holds(value, body.bound)


def _decided(value: float, interval: Any, body: CircuitTest, settings: Any) -> tuple[bool, Any]:
    """(point verdict, status at the confidence) of the headline value against the claim's bound
    (or its two bounds). Without an interval at a stated confidence (a ratio undefined in too many
    resamples) the claim is inconclusive."""
    from sadlang.stats import decide, decide_within

    assert body.bound is not None
    ok = _meets(value, body)
    if interval is None:
        return ok, ("held" if ok else "failed") if settings.confidence is None else "inconclusive"
    if body.upper is not None:
        return ok, decide_within(interval.lo, interval.hi, body.bound.value, body.upper.value)
    return ok, decide(interval.lo, interval.hi, body.bound)


def _interval(columns: list[list[float]], stat: Any, settings: Any) -> Any:
    from sadlang.stats import bootstrap_interval

    if settings.confidence is None:
        return None
    return bootstrap_interval(columns, stat, settings.confidence, settings.seed)


def _claims_goodness(body: CircuitTest, record: Any) -> bool:
    """Does the claim say the circuit is faithful (so an empty circuit meeting it makes it vacuous)?"""
    assert body.bound is not None
    if body.upper is not None:
        return True
    return body.bound.cmp in ((">=", ">") if record.reading.higher_is_better else ("<=", "<"))


def _point(f: Any, *means: float) -> float:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return float(f(*(np.float64(x) for x in means)))


def _measure(body: CircuitTest, lab: Any, clean: list[float], nodes: list, names: list[str], edges: Any,
             record: Any, settings: Any, details: dict[str, Any]) -> Measurement:
    """The claim's headline value from per-prompt runs, with a bootstrap interval over prompts
    (paired: every run of a prompt moves together with its F(M))."""
    from sadlang.circuits import metrics as M
    from sadlang.circuits.wiring import without_edges

    assert body.bound is not None
    size = len(names)
    seed = settings.seed
    f_m = M.mean(clean)
    if body.prop in ("faithful", "necessary"):
        # per-node effects tell a failing claim which node to look at; past 16 nodes they would
        # cost more passes than the claim itself
        singles = [M.minus(nodes, {k}) for k in range(size)] if size <= 16 else []
        removed: M.Variant = (nodes, False) if edges is None else ([[] for _ in nodes], False, without_edges(edges))
        empty = M.alone([[] for _ in nodes], edges)
        runs = lab.run([M.alone(nodes, edges), removed, empty] + [M.alone(s, edges) for s in singles])
        f_c, f_without, f_empty = M.mean(runs[0]), M.mean(runs[1]), M.mean(runs[2])
        reading = record.reading
        faith, need, unit = reading.faithfulness, reading.necessity, reading.unit
        effects = {names[k]: _point(faith, f_m, M.mean(runs[3 + k]), f_without, f_empty) for k in range(len(singles))}
        normalised = M.ratio(f_c - f_empty, f_m - f_empty)
        details.update({"F(C)": f_c, "F(M without C)": f_without, "F(empty)": f_empty,
                        "normalised faithfulness": normalised,
                        "faithfulness without each node": dict(sorted(effects.items(), key=lambda kv: kv[1],
                                                                      reverse=not reading.higher_is_better))})
        pick_weakest = min if reading.higher_is_better else max
        weakest = pick_weakest(effects, key=lambda k: effects[k]) if effects else "-"
        columns = [clean, runs[0], runs[1], runs[2]]
        if reading.needs_empty_above_model and not f_empty > f_m:
            return Measurement(False, f"F(empty) = {f_empty:.4g} is not above F(M): ablating every node does not "
                                      f"raise the {record.name}, so no share of it can be recovered: the claim "
                                      f"cannot be judged on this task", f_empty, details=details, status="failed")
        if body.prop == "faithful":
            value = _point(faith, f_m, f_c, f_without, f_empty)
            interval = _interval(columns, lambda x: faith(x[..., 0], x[..., 1], x[..., 2], x[..., 3]), settings)
            norm_iv = _interval(columns, lambda x: share(x[..., 1] - x[..., 3], x[..., 0] - x[..., 3]), settings)
            head = reading.headline.format(metric=record.name)
            text = (f"F(C) = {f_c:.4g}: {head} {fmt(value)}{unit}; F(empty) = {f_empty:.4g}: normalised "
                    f"(F(C) - F(empty)) / (F(M) - F(empty)) = {fmt(normalised)}"
                    f"{' ' + norm_iv.text() if norm_iv else ''}; most needed node {weakest}")
            ok, status = _decided(value, interval, body, settings)
            empty_value = _point(faith, f_m, f_empty, f_without, f_empty)
            details["empty faithfulness"] = empty_value
            if _claims_goodness(body, record) and _meets(empty_value, body):
                text += (f"; VACUOUS: the empty circuit (every head ablated) has {head} {fmt(empty_value)}{unit} "
                         f"and meets the claim too")
                ok, status = False, "failed"
            if interval is None and settings.confidence is not None:
                text += "; no interval: the reading is undefined in too many resamples of the prompts"
            return Measurement(ok, text, value, details=details, status=status, interval=interval)
        value = _point(need, f_m, f_c, f_without, f_empty)
        interval = _interval(columns, lambda x: need(x[..., 0], x[..., 1], x[..., 2], x[..., 3]), settings)
        ok, status = _decided(value, interval, body, settings)
        head = reading.necessity_headline.format(metric=record.name)
        return Measurement(ok, f"F(M without C) = {f_without:.4g}: {head} {fmt(value)}{unit}", value,
                           details=details, status=status, interval=interval)
    if body.prop == "random":
        return _beats_random(body, lab, clean, nodes, edges, settings, details)
    if body.prop == "complete":
        subsets = M.random_subsets(size, settings.completeness_draws, seed)
        gaps: dict[frozenset[int], tuple[float, list[float], list[float]]] = {}

        def gap_of(ks: list[set[int]]) -> None:
            runs = lab.run([v for k in ks for v in (M.alone(M.minus(nodes, k), edges), (M.pick(nodes, k), False))])
            for j, k in enumerate(ks):
                a, b = runs[2 * j], runs[2 * j + 1]
                gaps[frozenset(k)] = (abs(M.mean(a) - M.mean(b)) / abs(f_m), a, b)
        gap_of(subsets)
        worst: set[int] = set()
        for _ in range(min(3, size)):                    # greedy: grow the worst K a node at a time
            grow = [worst | {v} for v in range(size) if v not in worst]
            gap_of(grow)
            best = max(grow, key=lambda k: gaps[frozenset(k)][0])
            if worst and gaps[frozenset(best)][0] <= gaps[frozenset(worst)][0]:
                break
            worst = best
        key = max(gaps, key=lambda k: gaps[k][0])
        value, a, b = gaps[key]
        details["worst K"] = [names[k] for k in sorted(key)]
        interval = _interval([clean, a, b], lambda x: abs(x[..., 1] - x[..., 2]) / abs(x[..., 0]), settings)
        ok, status = _decided(value, interval, body, settings)
        worst_k = ", ".join(names[k] for k in sorted(key))
        return Measurement(ok, f"incompleteness {fmt(value)} of F(M) at worst, for K = {{{worst_k}}} ({len(gaps)} "
                               f"subsets tried; the interval is that K's, chosen on these prompts)", value,
                           details=details, status=status, interval=interval)
    # minimal
    scores: dict[str, tuple[float, list[float], list[float]]] = {}
    for v in range(size):
        ks = [{v}, *M.random_subsets(size, max(1, settings.completeness_draws // 2), seed + v, containing=v)]
        runs = lab.run([x for k in ks for x in (M.alone(M.minus(nodes, k - {v}), edges),
                                                 M.alone(M.minus(nodes, k), edges))])
        scores[names[v]] = max(((M.mean(runs[2 * j]) - M.mean(runs[2 * j + 1])) / abs(f_m), runs[2 * j],
                                runs[2 * j + 1]) for j in range(len(ks)))
    least = min(scores, key=lambda k: scores[k][0])
    details["node importance"] = dict(sorted(((k, s[0]) for k, s in scores.items()), key=lambda kv: kv[1]))
    value, a, b = scores[least]
    interval = _interval([clean, a, b], lambda x: (x[..., 1] - x[..., 2]) / abs(x[..., 0]), settings)
    ok, status = _decided(value, interval, body, settings)
    return Measurement(ok, f"least important node {least}: {fmt(value)} of F(M) (the interval is of its most "
                           f"telling K, chosen on these prompts)", value, details=details, status=status,
                       interval=interval)


def _beats_random(body: CircuitTest, lab: Any, clean: list[float], nodes: list, edges: Any, settings: Any,
                  details: dict[str, Any]) -> Measurement:
    """C against `random_circuits` circuits of exactly its size (each head replaced by a distinct
    unused head of its layer). The ratio of faithfulness to the random circuits' mean is defined
    only when that mean is positive; the permutation p-value (the share of random circuits at least
    as faithful as C) must also be significant. With a non-positive random mean the claim is
    decided on the p-value alone, and says so."""
    import math
    import statistics

    from sadlang.circuits import metrics as M
    from sadlang.stats.baseline import permutation_p

    assert body.bound is not None
    alpha = 1.0 - (settings.confidence if settings.confidence is not None else 0.95)
    # enough draws that the p-value can go below alpha (1 / (1 + draws) < alpha), also per look
    draws = max(settings.random_circuits, math.ceil(1.0 / alpha))
    randoms = M.random_circuits(nodes, lab.ev.model.info.n_heads, draws, settings.seed)
    runs = lab.run([M.alone(nodes, edges)] + [M.alone(r, M.renamed(edges, nodes, r)) for r in randoms])
    f_m = M.mean(clean)
    faith = M.mean(runs[0]) / f_m
    rand = [M.mean(r) / f_m for r in runs[1:]]
    base, spread = statistics.fmean(rand), statistics.pstdev(rand)
    p = permutation_p(faith, rand)
    size = len(nodes[0]) if nodes else 0
    details.update({"faithfulness": faith, "random faithfulness": rand, "random mean": base,
                    "random spread (sd)": spread, "p-value": p, "random circuits": len(rand),
                    "random circuit size": size, "alpha": alpha})
    head = (f"faithfulness {fmt(faith)} vs random circuits of {size} nodes: mean {fmt(base)}, sd {fmt(spread)} "
            f"over {len(rand)} draws; p = {p:.4g} (share of random circuits at least as faithful)")
    columns = [runs[0], *runs[1:]]
    interval = None if base <= 0 else _interval(columns, lambda x: share(x[..., 0], x[..., 1:].mean(-1)), settings)
    if base <= 0 or (interval is None and settings.confidence is not None):
        why = ("the random mean is not positive" if base <= 0 else
               "the random mean is not clearly positive across resampled prompts")
        ok = p <= alpha and faith > base
        return Measurement(ok, head + f"; {why}, so no ratio is defined: decided on the p-value against "
                                      f"{alpha:.4g}", p, details=details, status="held" if ok else "failed")
    value = faith / base
    details["ratio"] = value
    ok, status = _decided(value, interval, body, settings)
    ok = ok and p <= alpha
    text = head + f"; ratio {fmt(value)}x"
    if status == "held" and p > alpha:
        status = "inconclusive"
        text += f"; the ratio clears the bound but p = {p:.4g} > {alpha:.4g}: not told apart from random circuits"
    return Measurement(ok, text, value, details=details, status=status, interval=interval)


def curve_sizes(total: int, also: int) -> list[int]:
    """The sizes a faithfulness curve is measured at: 0, 1, 2, 5, 10, 20, 50, ... below `total`,
    `also` (the compared circuit's size) and `total` itself."""
    ks, base = {0, total, also}, 1
    while base < total:
        ks |= {k for k in (base, 2 * base, 5 * base) if k < total}
        base *= 10
    return sorted(k for k in ks if 0 <= k <= total)


def _area(points: list[tuple[int, float]], total: int) -> float:
    """Trapezoid area under (k / total, value) from k = 0 to total."""
    from itertools import pairwise

    return sum((k1 - k0) / total * (v0 + v1) / 2 for (k0, v0), (k1, v1) in pairwise(points))


def _as_faithful(body: CircuitTest, lab: Any, clean: list[float], nodes: list, edges: Any, theirs: list,
                 ranking: Any, record: Any, settings: Any, details: dict[str, Any]) -> Measurement:
    """C against the reference circuit D (a discovered one taken at C's size): the difference of
    their faithfulness under the claim's metric, oriented so that positive means C is the more
    faithful (for a divergence, F(D) - F(C)), with a paired bootstrap interval over prompts. For a
    discovered D, the faithfulness curve of its ranking (at 0, 1, 2, 5, 10, ... nodes, up to all
    it ranks) and the curve's area are reported too, measured in the same passes."""
    from sadlang.circuits import metrics as M
    from sadlang.circuits.nodes import node_name
    from sadlang.circuits.wiring import declared_edges

    assert body.bound is not None
    ws = lab.ev.workspace
    ref = ws.spec.circuits[body.reference]
    their_edges = declared_edges(ref) if ref.traced_from is None else None
    f_m = M.mean(clean)
    empty: list[list[M.Node]] = [[] for _ in nodes]
    variants: list[M.Variant] = [M.alone(nodes, edges), M.alone(theirs, their_edges), (empty, True)]
    sizes: list[int] = []
    if ranking is not None:
        ranked = ranking[1]
        sizes = [k for k in curve_sizes(len(ranked), len(nodes[0]) if nodes else 0) if k > 0]
        for k in sizes:
            top: list[M.Node] = [(layer, unit, None) for layer, unit in ranked[:k]]
            variants.append(([list(top) for _ in nodes], True))
    runs = lab.run(variants)
    faith = record.reading.faithfulness
    f_e = M.mean(runs[2])

    def faith_of(run: list[float]) -> float:
        return _point(faith, f_m, M.mean(run), f_m, f_e)

    sign = 1.0 if record.reading.higher_is_better else -1.0
    mine, their = faith_of(runs[0]), faith_of(runs[1])
    value = sign * (mine - their)
    interval = _interval([clean, runs[0], runs[1], runs[2]],
                         lambda x: sign * (faith(x[..., 0], x[..., 1], x[..., 0], x[..., 3])
                                           - faith(x[..., 0], x[..., 2], x[..., 0], x[..., 3])), settings)
    ok, status = _decided(value, interval, body, settings)
    unit = record.reading.unit
    size_c, size_d = (_count(len(n[0]) if n else 0, "node") for n in (nodes, theirs))
    details.update({"faithfulness": mine, "reference faithfulness": their, "difference": value,
                    "reference": body.reference, "reference nodes": [node_name(n) for n in theirs[0]] if theirs else [],
                    "F(empty)": f_e})
    text = (f"{body.circuit} ({size_c}) {fmt(mine)}{unit}, {body.reference} "
            f"({'its top ' if ranking is not None else ''}{size_d}) {fmt(their)}{unit}: difference "
            f"{fmt(value)}{unit} in {body.circuit}'s favour")
    if ranking is not None:
        points = [(0, faith_of(runs[2]))] + [(k, faith_of(r)) for k, r in zip(sizes, runs[3:], strict=True)]
        area = _area(points, len(ranking[1]))
        details["faithfulness curve"] = {str(k): v for k, v in points}
        details["curve area"] = area
        text += (f"; {ranking[0].method}'s faithfulness curve over {len(ranking[1])} ranked nodes: "
                 + ", ".join(f"{k}: {fmt(v)}" for k, v in points) + f" (area {fmt(area)})")
    if interval is None and settings.confidence is not None:
        text += "; no interval: the reading is undefined in too many resamples of the prompts"
    return Measurement(ok, text, value, details=details, status=status, interval=interval)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _matches(body: CircuitTest, mine: set[str], theirs: set[str], what: str) -> Measurement:
    """Node-set or edge-set overlap: exact given the two circuits (no interval of its own)."""
    vals, ok, _ = overlap(mine, theirs, body.bounds)
    text = (f"precision {vals['precision']:.3f}, recall {vals['recall']:.3f}, F1 {vals['f1']:.3f} "
            f"({_count(len(mine), what)} in {body.circuit}, {len(theirs)} in {body.reference})")
    return Measurement(ok, text, vals["f1"],
                       details={**vals, "level": what, "only here": sorted(mine - theirs),
                                "only there": sorted(theirs - mine),
                                **({"circuit": sorted(mine)} if what == "node" else {})})


KIND = CircuitTestKind()
