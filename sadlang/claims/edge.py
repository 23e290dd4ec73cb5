"""`[no] edge UP -> L.H [via query|key] [at D -> S]`: UP is (not) among the edges that explain
a firing of L.H in the prompt (at D -> S, or at any firing of L.H in the full trace)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sadlang.claims.base import Builder, ClaimKind, References, Work
from sadlang.lang import ast as A
from sadlang.lang.syntax import edge_parts, loc
from sadlang.settings import Settings

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence


class EdgeClaim(A.EdgeSelector):
    kind: Literal["edge"] = "edge"
    negated: bool = False


def _edge(meta: Any, ch: list[Any], negated: bool = False) -> EdgeClaim:
    side, at, rest = edge_parts(ch)
    return EdgeClaim(negated=negated, upstream=rest[0], downstream=rest[1], side=side, at=at,
                     loc=loc(meta))


def _no_edge(meta: Any, ch: list[Any]) -> EdgeClaim:
    return _edge(meta, ch, negated=True)


def edge_references(body: A.EdgeSelector, concrete: bool) -> References:
    """What an edge-like body names: the downstream head (concrete when `concrete`), an
    upstream head pattern or component, and the firing's positions."""
    heads = [(body.downstream, concrete)]
    if body.upstream.kind == "head" and body.upstream.head is not None:
        heads.append((body.upstream.head, False))
    positions = [body.at.dest, body.at.src] if body.at else []
    return References(heads=heads, positions=positions, components=[body.upstream],
                      firings=[body.at] if body.at else [])


def _edge_list(f: Any) -> str:
    return ", ".join(f"{e.component.label()}({e.side})" for e in f.edges[:6]) or "none"


class EdgeKind(ClaimKind):
    name = "edge"
    node = EdgeClaim
    summary = "an upstream component is (or with `no`, is not) an edge into a firing of the head"
    picture = "firing-edges"
    examples = ('edge 0.0 -> 1.0 via key at end -> "x" on marker',
                'no edge 0.2 -> 1.0 at end -> "x" on marker')
    failing = ('edge 0.2 -> 1.0 via key at end -> "x" on marker',
               'no edge 0.0 -> 1.0 via key at end -> "x" on marker')

    def rules(self) -> dict[str, Builder]:
        return {"edge_claim": _edge, "no_edge_claim": _no_edge}

    def work(self, body: EdgeClaim) -> Work:
        return "firing" if body.at else "trace"

    def describe(self, body: EdgeClaim) -> str:
        if body.at:
            return f"decompose firing {body.downstream.text()} at {body.at.dest.text()} -> {body.at.src.text()}"
        return f"full trace, edges into {body.downstream.text()}"

    def references(self, body: EdgeClaim) -> References:
        return edge_references(body, concrete=body.at is not None)

    def claimed(self, body: EdgeClaim) -> str:
        return "no edge" if body.negated else "edge present"

    def probe(self, ev: PromptSetEvidence, body: EdgeClaim, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        from sadlang.evidence.roles import resolve
        from sadlang.evidence.store import strongest

        found = ev.edges_into(i, body)
        why = ""
        if body.at is not None and not found:
            p = ev.prompts[i]
            f = ev.firing(i, *body.downstream.pair, resolve(body.at.dest, p), resolve(body.at.src, p))
            why = (f"{body.downstream.text()} does not fire there (A={f.attention:.3f} < {f.threshold:.3f})"
                   if f.attention < f.threshold else f"edges are {_edge_list(f)}")
        if found:
            f, e = strongest(found)
            detail = (f"{e.component.label()} -> {f.layer}.{f.head}@{f.d}:{f.s} via {e.side}, "
                      f"weight {e.weight:.3g}, svs {e.svs}")
            value = e.weight
        else:
            detail, value = f"no matching edge; {why}".rstrip("; "), 0.0
        present = bool(found)
        return value, (not present) if body.negated else present, detail


KIND = EdgeKind()
