"""`circuit [of SET] [at frequency F] contains|excludes|matches C, ...`: the prompts' traced
graphs, combined by role and cut at a node frequency, against a list of components."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from lark import Token
from pydantic import Field

from sadlang.claims.base import Builder, ClaimKind, Measurement, Problem, References, Work, bound_problems, overlap
from sadlang.lang import ast as A
from sadlang.lang.syntax import SemanticError, bound, loc, token_at
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class CircuitClaim(A.ClaimBody):
    kind: Literal["circuit"] = "circuit"
    prompt_set: str | None = None
    frequency: float = 0.0
    op: Literal["contains", "excludes", "matches"]
    components: list[A.CompRef]
    bounds: dict[str, A.Bound] = Field(default_factory=dict)


def _circuit(meta: Any, ch: list[Any]) -> CircuitClaim:
    pset, freq = None, 0.0
    for c in ch[:-1]:
        if isinstance(c, Token):
            pset = str(c)
        else:
            freq = float(c)
    op, comps, bounds = ch[-1]
    if not 0.0 <= freq <= 1.0:
        where = next((c for c in ch[:-1] if not isinstance(c, Token)), None)
        raise SemanticError(f"frequency {freq:g} is outside [0, 1] (the share of prompts whose trace has "
                            f"a node)", getattr(where, "token", None) or token_at(meta))
    return CircuitClaim(prompt_set=pset, frequency=freq, op=op, components=comps, bounds=bounds,
                        loc=loc(meta))


def _contains(meta: Any, ch: list[Any]) -> tuple[str, list[A.CompRef], dict[str, A.Bound]]:
    return ("contains", ch[0], {})


def _excludes(meta: Any, ch: list[Any]) -> tuple[str, list[A.CompRef], dict[str, A.Bound]]:
    return ("excludes", ch[0], {})


def _matches(meta: Any, ch: list[Any]) -> tuple[str, list[A.CompRef], dict[str, A.Bound]]:
    bounds: dict[str, A.Bound] = {}
    for name, b in ch[1:]:
        if name in bounds:
            raise SemanticError(f"{name} is bounded twice", token_at(b.loc))
        bounds[name] = b
    return ("matches", ch[0], bounds)


def _bound(meta: Any, ch: list[Any]) -> tuple[str, A.Bound]:
    return (str(ch[0]), bound(ch[1], ch[2]))


def _node_comp(a: dict[str, Any]) -> Any:
    from sadlang.decomp.components import Component

    if a["kind"] == "head":
        return Component(kind="head", layer=a["layer"], head=a["head"], src=0)
    if a["kind"] in ("mlp", "bias"):
        return Component(kind=a["kind"], layer=a["layer"])
    if a["kind"] in ("embed", "offset"):
        return Component(kind=a["kind"])
    return None


def _component_set(g: Any, refs: list[A.CompRef]) -> tuple[set, set]:
    """(matched reference items, circuit items of the kinds the reference names)."""
    from sadlang.trace.graph import heads_in

    heads = heads_in(g)
    mlps = {a["layer"] for _, a in g.nodes(data=True) if a["kind"] == "mlp"}
    ours: set = {("head", *h) for h in heads}
    if any(r.kind == "mlp" for r in refs):
        ours |= {("mlp", m) for m in mlps}
    ref_items: set = set()
    for r in refs:
        if r.kind == "head" and r.head is not None:
            if r.head.concrete:
                ref_items.add(("head", r.head.layer, r.head.head))
            else:
                ref_items |= {("head", *h) for h in heads if r.head.matches(*h)}
        elif r.kind == "mlp":
            ref_items.add(("mlp", r.layer))
    return ref_items, ours


class CircuitKind(ClaimKind):
    name = "circuit"
    node = CircuitClaim
    summary = "the traced circuit of a prompt set contains, excludes or matches components"
    picture = "combined-traces"
    examples = ("circuit of copy at frequency 1.0 contains 1.0, 0.0",
                "circuit of copy matches 1.0, 0.0 with precision >= 1, recall >= 1",
                "circuit of copy excludes 0.2, 1.1, 1.2")
    failing = ("circuit of copy contains 1.1", "circuit of copy excludes 0.0",
               "circuit of copy matches 1.0, 1.1, 1.2 with precision >= 1, recall >= 1")

    def rules(self) -> dict[str, Builder]:
        return {"circuit_claim": _circuit, "contains": _contains, "excludes": _excludes,
                "matches": _matches, "bound": _bound}

    def work(self, body: CircuitClaim) -> Work:
        return "trace"

    def describe(self, body: CircuitClaim) -> str:
        return "full trace of every prompt, combined by node frequency"

    def references(self, body: CircuitClaim) -> References:
        heads = [(x.head, False) for x in body.components if x.kind == "head" and x.head is not None]
        return References(heads=heads, components=list(body.components))

    def needs_answers(self, body: CircuitClaim) -> bool:
        return True

    def static_errors(self, body: CircuitClaim) -> list[Problem]:
        return [p for b in body.bounds.values() for p in bound_problems(b, 0.0, 1.0, "a precision, recall or F1")[0]]

    def vacuous(self, body: CircuitClaim) -> list[Problem]:
        return [p for b in body.bounds.values() for p in bound_problems(b, 0.0, 1.0, "a precision, recall or F1")[1]]

    def prompt_set(self, body: CircuitClaim) -> str | None:
        return body.prompt_set

    def per_prompt(self, body: CircuitClaim) -> bool:
        return False

    def claimed(self, body: CircuitClaim) -> str:
        return f"{body.op} " + ", ".join(c.text() for c in body.components)

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        from sadlang.evidence.roles import comp_matches
        from sadlang.trace.graph import combine, heads_in

        body: CircuitClaim = claim.body  # type: ignore[assignment]
        g = combine(ev.graphs(), body.frequency)
        heads = heads_in(g)
        comps = [c for c in (_node_comp(a) for _, a in g.nodes(data=True)) if c is not None]
        if body.op in ("contains", "excludes"):
            hits = {r.text(): any(comp_matches(r, c) for c in comps) for r in body.components}
            ok = all(hits.values()) if body.op == "contains" else not any(hits.values())
            missing = [k for k, v in hits.items() if (not v if body.op == "contains" else v)]
            shown = ", ".join(f"{layer}.{head}" for layer, head in sorted(heads)[:20])
            measured = (f"{len(heads)} heads at frequency >= {body.frequency}: "
                        f"{shown}{' ...' if len(heads) > 20 else ''}")
            if missing:
                measured += f"; {'missing' if body.op == 'contains' else 'present'}: {', '.join(missing)}"
            return Measurement(ok, measured, float(ok),
                               details={"heads": [f"{layer}.{head}" for layer, head in sorted(heads)]})
        ref, ours = _component_set(g, body.components)
        vals, ok, bounds = overlap(ours, ref, body.bounds)
        return Measurement(ok, f"precision {vals['precision']:.3f}, recall {vals['recall']:.3f}, F1 {vals['f1']:.3f} "
                               f"({len(ours)} in circuit, {len(ref)} in reference)", vals["f1"], details=vals,
                           claimed=", ".join(f"{k} {bd.text()}" for k, bd in bounds.items()))


KIND = CircuitKind()
