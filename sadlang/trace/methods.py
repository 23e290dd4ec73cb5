"""The registry of selection methods. A method owns its name, its firing threshold, its
`fires` pre-filter, its decompose function and the options it reads; everything else (CLI
choices, the compiler's checks, sinks, docs) asks this registry.

    get_method("acc").decompose(dec, layer, head, d, s, opts)

The registry itself imports no tensor code (the CLI reads the method names before torch loads);
each decompose function imports its engine when first called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sadlang.errors import TraceError

if TYPE_CHECKING:
    from sadlang.decomp.prompt import PromptDecomposition
    from sadlang.trace.firing import Firing
    from sadlang.trace.options import TraceOptions

Decompose = Callable[["PromptDecomposition", int, int, int, int, "TraceOptions"], "Firing"]
Rule = Callable[[int, "TraceOptions"], float]   # (keys n, options) -> the attention a firing needs


@dataclass(frozen=True)
class Method:
    """One way of explaining an attention decision.

    name:        as written in `method NAME` and `--method`
    explains:    what the selected terms add up to (docs)
    threshold:   the firing rule in words (docs)
    rule:        the firing rule: (keys n, opts) -> the attention a firing needs
    decompose:   (dec, layer, head, d, s, opts) -> Firing
    options:     the spec options this method reads
    terms:       which terms a firing keeps (docs)
    edges:       which upstream components become edges (docs)
    raw_sources: whether a firing must have a non-negative raw score and a non-BOS source
                 (the 2024 paper's rule); such a method cannot explain sinks onto BOS
    """

    name: str
    explains: str
    threshold: str
    rule: Rule
    decompose: Decompose
    options: tuple[str, ...]
    terms: str
    edges: str
    raw_sources: bool = False

    def firing_threshold(self, d: int, opts: TraceOptions, keys: int | None = None) -> float:
        """Attention at or above which the head fires at destination d, which has `keys` keys
        (d + 1 without a sliding window)."""
        if opts.threshold is not None:
            return opts.threshold
        return self.rule(d + 1 if keys is None else keys, opts)

    def fires(self, dec: PromptDecomposition, opts: TraceOptions, layer: int, head: int, d: int,
              s: int) -> bool:
        """Pre-filter of the tracer: is (layer, head, d -> s) a firing worth decomposing?"""
        if layer == 0 or d == 0 or s > d:
            return False
        if self.raw_sources and (s == 0 or float(dec.acts.scores[layer, head, d, s]) < 0):
            return False
        return float(dec.acts.pattern[layer, head, d, s]) >= self.firing_threshold(
            d, opts, dec.weights.n_keys(layer, d))


def _linear(relative: bool) -> Decompose:
    def run(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
            opts: TraceOptions) -> Firing:
        from sadlang.trace.firing import decompose_linear

        return decompose_linear(dec, layer, head, d, s, opts, relative=relative)
    return run


def _accpp(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
           opts: TraceOptions) -> Firing:
    from sadlang.trace.accpp import decompose_accpp

    return decompose_accpp(dec, layer, head, d, s, opts)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sad", "the raw score z(D,S) (needs z ≥ 0, S ≥ 1)", "0.5", lambda n, opts: 0.5, _linear(False),
           ("threshold", "term_fraction", "edge_fraction"), "fewest top terms reaching the score",
           "`edge_fraction` (70%) cumulative rule on contributions", raw_sources=True),
    Method("acc", "relative score: z(D,S) − mean of z over the other visible keys", "1/(D+1)",
           lambda n, opts: 1.0 / n, _linear(True), ("threshold", "term_fraction", "edge_fraction"),
           "fewest top terms reaching the relative total (a firing with total ≤ 0 has no signal, reported)",
           "`edge_fraction` (70%) cumulative rule, per side"),
    Method("accpp", "the softmax weight A(D,S)", "min(1, accpp_scale/(D+1)), accpp_scale 2.5",
           lambda n, opts: min(1.0, opts.accpp_scale / n), _accpp,
           ("threshold", "accpp_scale", "ig_steps"),
           "(component × singular direction) terms ranked by integrated gradients, deleted greedily until A "
           "falls below the threshold",
           "every component with a deleted term; weight = attention removed; per-edge singular sets"),
)}


def docs_table() -> str:
    """The methods table of docs/language.md."""
    rows = ["| method | explains | firing threshold | terms kept | edges | options |",
            "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| `{m.name}` | {m.explains} | {m.threshold} | {m.terms} | {m.edges} | "
             f"{', '.join(f'`{o}`' for o in m.options)} |" for m in METHODS.values()]
    return "\n".join(rows)


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise TraceError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}") from None


class DecomposeCounter:
    """Counts firing decompositions (for `sadlang check --profile`)."""

    calls = 0


def decompose(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
              opts: TraceOptions) -> Firing:
    """Decompose firing (layer, head, d -> s) of a prompt with the method in `opts`."""
    DecomposeCounter.calls += 1
    return get_method(opts.method).decompose(dec, layer, head, d, s, opts)
