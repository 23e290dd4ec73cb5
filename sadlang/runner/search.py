"""Property search over a prompt set's templates and pools for a prompt that breaks a
per-prompt claim. First `limit` prompts are drawn (seeded) and measured together, in shared
batched passes; when one fails, the least failing draw is shrunk, round by round in shared
passes, to a minimal prompt (first template, earliest pool values: runner/shrink.py). The same
space is a hypothesis strategy for property tests of one's own (sadlang/strategies.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sadlang.claims import kind_of
from sadlang.evidence.records import Counterexample, PromptEvidence
from sadlang.evidence.store import PromptSetEvidence
from sadlang.lang import ast as A
from sadlang.runner.shrink import Point, Space, shrink
from sadlang.settings import Settings
from sadlang.trace.options import TraceOptions

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel
    from sadlang.prompts.build import BuiltPrompt


def _drawn(model: LoadedModel, space: Space, n: int, seed: int) -> list[tuple[Point, BuiltPrompt]]:
    """n points of the set drawn with `seed`, with their prompts (values that are not single
    tokens are skipped)."""
    from sadlang.prompts.build import PromptError, sample_assignments

    spec, decl = space.spec, space.decl
    groups = [(g.slots, spec.pools[g.pool].rows(), g.distinct) for g in decl.slots]
    out = []
    for t, assignment in sample_assignments(groups, n, seed, len(decl.templates)):
        point = space.point_of(t, assignment)
        try:
            out.append((point, space.build(model, point)))
        except PromptError:
            continue
    return out


def search(model: LoadedModel, spec: A.Spec, decl: A.PromptSetDecl, claim: A.Claim, opts: TraceOptions,
           config: Settings, limit: int) -> tuple[int, Counterexample | None]:
    """Try up to `limit` drawn prompts in shared passes; on a failure, shrink it in shared passes
    (runner/shrink.py) to a minimal prompt. Returns (prompts tried, counterexample or None)."""
    kind = kind_of(claim.body)
    space = Space(spec, decl)
    drawn = _drawn(model, space, limit, config.seed + 1)
    prompts = [p for _, p in drawn]

    def failing(batch_prompts: list[BuiltPrompt]) -> list[PromptEvidence]:
        batch = PromptSetEvidence(model, batch_prompts, opts, config.batch_size)
        return [e for e in kind.measure(batch, claim.body, list(range(len(batch_prompts))), config)
                if not e.passed]

    fails = failing(prompts)
    if not fails:
        return len(prompts), None
    start = min(fails, key=lambda e: drawn[e.index][0])
    tried, point, counter = shrink(model, space, drawn[start.index][0], failing)
    if counter is None:        # no simpler prompt fails: the least drawn failure is the counterexample
        counter, prompt = start, prompts[start.index]
    else:
        prompt = space.build(model, point)
    return len(prompts) + tried, counterexample(model, prompt, counter)


def counterexample(model: LoadedModel, prompt: BuiltPrompt, failed: PromptEvidence) -> Counterexample:
    """The failing prompt's evidence with its tokens and roles (its index: 0, it is in no set)."""
    return Counterexample(**{**failed.model_dump(), "index": 0,
                             "detail": _with_tokens(model, prompt, failed.detail)},
                          tokens=list(prompt.token_texts), token_ids=list(prompt.tokens), labels=dict(prompt.labels),
                          roles={k: list(v) for k, v in prompt.roles.items()}, template=prompt.template)


def _with_tokens(model: LoadedModel, prompt: BuiltPrompt, detail: str) -> str:
    roles = ", ".join(f"{k}={v}" for k, v in sorted(prompt.roles.items()))
    return f"{detail}; tokens {model.decode(prompt.tokens)}; roles {roles}"
