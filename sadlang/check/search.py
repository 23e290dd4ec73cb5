"""Property search: hypothesis draws prompts from a prompt set's templates and pools,
looking for one that breaks a per-prompt claim; a failure is shrunk to a minimal prompt."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Found

from sadlang.check.batch import PromptBatch
from sadlang.check.evaluate import ablation_evidence, probe
from sadlang.check.verdict import PromptEvidence
from sadlang.lang import ast as A
from sadlang.strategies import prompt_strategy


class _Counterexample(AssertionError):
    pass


def search(model, spec: A.Spec, decl: A.PromptSetDecl, claim: A.Claim, opts, ctx, limit: int,
           seed_value: int = 0) -> tuple[int, PromptEvidence | None]:
    """Try up to `limit` prompts. Returns (examples tried, minimal counterexample or None)."""
    tried = 0
    last_fail: dict = {}

    def check(prompt) -> None:
        nonlocal tried
        tried += 1
        batch = PromptBatch(model, [prompt], opts)
        if claim.body.kind == "ablate":
            ev = ablation_evidence(batch, claim, [0], ctx)[0]
        else:
            ev = probe(batch, claim, 0, ctx)
        if not ev.passed:
            tokens = model.decode(prompt.tokens)
            roles = ", ".join(f"{k}={v}" for k, v in sorted(prompt.roles.items()))
            ev.detail = f"{ev.detail}; tokens {tokens}; roles {roles}"
            last_fail["ev"] = ev
            raise _Counterexample(ev.detail)

    runner = settings(max_examples=limit, derandomize=False, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink])(
        seed(seed_value)(given(prompt_strategy(spec, decl, model))(check)))
    try:
        runner()
    except _Counterexample:
        return tried, last_fail.get("ev")
    except Found:  # pragma: no cover
        return tried, last_fail.get("ev")
    return tried, None
