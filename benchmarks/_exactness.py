"""The exactness checks that benchmarks print (benchmarks/trace.py, benchmarks/check.py), so that a
run on new hardware, a GPU above all, shows that the decomposition still sums to the model."""

from __future__ import annotations


def exactness(model, texts, answers, against) -> None:
    """The invariants a run on new hardware must keep (fp32, TF32 off), measured by
    `sadlang.trace.exactness` (what `sadlang exactness` runs) on the heads the traces of `texts`
    name, at every destination: the decomposed score rows sum to the model's own hooked scores,
    and the residual stream's components to the hooked normalized residual, within the bounds of
    tests/test_exactness.py. Prints the worst errors and exits 1 past a bound."""
    import sys

    import torch

    from sadlang.trace.exactness import measure
    from sadlang.trace.tracer import trace

    if model.device.type == "cuda":
        print(f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}")
    circuits = trace(model, texts, answers, against)
    heads = sorted({(layer, head) for c in circuits for layer, head, _, _ in c.firings})
    result = measure(model, [c.decomposition.acts for c in circuits], heads)
    print(f"exactness (traced heads, every position): {result.text()}")
    if not result.within_fp32_bounds:
        sys.exit(1)
