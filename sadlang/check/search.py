"""Property search: hypothesis draws prompts from a prompt set's templates and pools,
looking for one that breaks a per-prompt claim; a failure is shrunk to a minimal prompt."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Found

from sadlang.claims import kind_of
from sadlang.evidence.records import PromptEvidence
from sadlang.evidence.store import PromptSetEvidence
from sadlang.lang import ast as A
from sadlang.plan.settings import Settings
from sadlang.strategies import prompt_strategy
from sadlang.trace.options import TraceOptions


class _Counterexample(AssertionError):
    pass


def search(model, spec: A.Spec, decl: A.PromptSetDecl, claim: A.Claim, opts: TraceOptions,
           config: Settings, limit: int) -> tuple[int, PromptEvidence | None]:
    """Try up to `limit` prompts. Returns (examples tried, minimal counterexample or None)."""
    kind = kind_of(claim.body)
    tried = 0
    last_fail: dict[str, PromptEvidence] = {}

    def check(prompt) -> None:
        nonlocal tried
        tried += 1
        ev = kind.measure(PromptSetEvidence(model, [prompt], opts), claim.body, [0], config)[0]
        if not ev.passed:
            tokens = model.decode(prompt.tokens)
            roles = ", ".join(f"{k}={v}" for k, v in sorted(prompt.roles.items()))
            ev.detail = f"{ev.detail}; tokens {tokens}; roles {roles}"
            last_fail["ev"] = ev
            raise _Counterexample(ev.detail)

    runner = settings(max_examples=limit, derandomize=False, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink])(
        seed(config.seed)(given(prompt_strategy(spec, decl, model))(check)))
    try:
        runner()
    except _Counterexample:
        return tried, last_fail.get("ev")
    except Found:  # pragma: no cover
        return tried, last_fail.get("ev")
    return tried, None
