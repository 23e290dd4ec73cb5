"""The exactness checks that benchmarks print (benchmarks/trace.py, benchmarks/check.py), so that a
run on new hardware, a GPU above all, shows that the decomposition still sums to the model."""

from __future__ import annotations


def exactness(model, texts, answers, against) -> None:
    """The invariants a run on new hardware must keep (fp32, TF32 off): every traced firing's
    decomposed score row sums to the model's own hooked scores (bound 1e-3), and the residual
    stream's components sum to the hooked normalized residual (bound 1e-4), the bounds of
    tests/test_exactness.py. Prints the worst errors and exits 1 past a bound."""
    import sys

    import torch

    from sadlang.decomp.components import residual_components
    from sadlang.trace.tracer import trace

    if model.device.type == "cuda":
        print(f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}")
    worst_score, worst_resid = 0.0, 0.0
    for circuit in trace(model, texts, answers, against):
        dec = circuit.decomposition
        for layer, head, d, _ in circuit.firings:
            worst_score = max(worst_score, dec.scores_check(layer, head, d))
        acts = dec.acts
        for layer in range(model.info.n_layers):
            total = residual_components(acts, model.weights, layer).sum(0)
            worst_resid = max(worst_resid, float((total - acts.normalized[layer]).abs().max()))
    ok = worst_score < 1e-3 and worst_resid < 1e-4
    print(f"exactness: max |decomposed - hooked score| {worst_score:.2e} (bound 1e-3), max |sum of components "
          f"- normalized residual| {worst_resid:.2e} (bound 1e-4): {'ok' if ok else 'FAILED'}")
    if not ok:
        sys.exit(1)
