"""One entry point for explaining a firing with any method (sad, acc, accpp)."""

from __future__ import annotations

from sadlang.decomp.prompt import PromptDecomposition
from sadlang.trace.accpp import decompose_accpp
from sadlang.trace.firing import Firing, decompose_linear
from sadlang.trace.options import TraceOptions


def decompose(dec: PromptDecomposition, layer: int, head: int, d: int, s: int,
              opts: TraceOptions) -> Firing:
    """Decompose firing (layer, head, d -> s) of a prompt with the method in `opts`."""
    if opts.method == "accpp":
        return decompose_accpp(dec, layer, head, d, s, opts)
    return decompose_linear(dec, layer, head, d, s, opts)
