"""Compile a parsed spec against a loaded model into a plan: validated prompt sets and
claims, each with the least work it needs (attention only < one firing < full traces <
interventions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from sadlang.claims import kind_of
from sadlang.claims.base import WORK_ORDER, Work
from sadlang.errors import SpecError, SpecErrors
from sadlang.evidence.roles import RoleError, resolve
from sadlang.lang import ast as A
from sadlang.plan.validate import Validated, _err, _suggest, check_declarations, spec_settings, validate
from sadlang.prompts import reference as R
from sadlang.prompts.build import BuiltPrompt, PromptError, build_prompt, sample_assignments
from sadlang.prompts.counterfactual import counterfactual_prompts
from sadlang.settings import Settings
from sadlang.trace.options import TraceOptions

if TYPE_CHECKING:
    from sadlang.claims.base import References
    from sadlang.models.info import ModelInfo
    from sadlang.models.loader import LoadedModel
    from sadlang.models.planning import PlanningModel
    from sadlang.models.shapes import Shape

__all__ = ["WORK_ORDER", "ClaimPlan", "Plan", "PromptSetPlan", "check_declarations", "compile_spec",
           "spec_settings", "validate"]


class ClaimPlan(BaseModel):
    name: str
    kind: str
    prompt_set: str
    work: Work
    description: str


@dataclass
class PromptSetPlan:
    name: str
    prompts: list[BuiltPrompt]
    decl: A.PromptSetDecl
    source: str | None = None     # a counterfactual set: prompt i is the twin of source prompt i
    reference_of: str | None = None   # a held-out reference draw of that set (mean ablations)

    @property
    def lengths(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in self.prompts:
            out[len(p.tokens)] = out.get(len(p.tokens), 0) + 1
        return out


@dataclass
class Plan:
    spec: A.Spec
    settings: Settings
    options: TraceOptions
    prompt_sets: dict[str, PromptSetPlan]
    claims: list[tuple[A.Claim, ClaimPlan]]
    notes: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)    # model-dependent warnings (rendered), e.g. an answer's space

    def forward_passes(self) -> int:
        """Clean forward passes: one per batch of equal-length prompts."""
        bs = self.settings.batch_size
        return sum(-(-c // bs) for ps in self.prompt_sets.values() for c in ps.lengths.values())


def build_prompt_set(spec: A.Spec, model: LoadedModel | PlanningModel, ps: A.PromptSetDecl, n: int | None = None,
                     seed: int | None = None, reference: int | None = None) -> list[BuiltPrompt]:
    """The set's prompts: its literals, then `n` (default: its `sample`) drawn from its templates.
    With `reference` = K: instead K held-out draws of its templates, none equal to a measured
    prompt (prompts/reference.py), and no literals."""
    out: list[BuiltPrompt] = []
    for lit in ps.literals if reference is None else []:
        try:
            out.append(build_prompt(model, lit.text, {}, 0, lit.answer or ps.answer, lit.against or ps.against))
        except PromptError as exc:
            raise _err(spec, str(exc), lit.loc) from None
    if ps.templates:
        groups = [(g.slots, spec.pools[g.pool].rows(), g.distinct) for g in ps.slots]
        n = ps.sample if n is None else n
        seed = ps.seed if seed is None else seed
        samples = sample_assignments(groups, n, seed, len(ps.templates))
        if reference is not None:
            tries = sample_assignments(groups, 20 * reference + n, R.reference_seed(seed), len(ps.templates))
            samples = R.held_out(tries, samples, reference)
        for t, assignment in samples:
            tpl, loc = ps.templates[t]
            try:
                out.append(build_prompt(model, tpl, assignment, t, ps.answer, ps.against))
            except PromptError as exc:
                where = ps.answer_loc if exc.where == "answer" else loc
                raise _err(spec, str(exc), where) from None
            if out[-1].answer is not None and out[-1].answer == out[-1].against:
                raise _err(spec, f"in {out[-1].text!r} the answer and `against` are the same token "
                                 f"{out[-1].answer_text!r}: draw the slots they name `distinct`", ps.answer_loc)
    return out


def _check_roles(spec: A.Spec, positions: list[A.Pos], ps: PromptSetPlan, errors: list[SpecError]) -> None:
    known = set().union(*(p.roles for p in ps.prompts)) | {"end", "bos"} if ps.prompts else {"end", "bos"}
    for pos in positions:
        if pos.role is not None and pos.role not in known:
            errors.append(_err(spec, f"unknown role {pos.role!r} in prompt set {ps.name!r}; roles are "
                                     f"{', '.join(sorted(known))}", pos.loc, _suggest(pos.role, known)))
        elif pos.role is not None and pos.role not in ("end", "bos"):
            counts = {len(p.roles.get(pos.role, [])) for p in ps.prompts}
            if min(counts) < pos.occurrence:
                errors.append(_err(spec, f"role {pos.role}#{pos.occurrence} does not exist in every prompt of "
                                         f"{ps.name!r} ({pos.role} occurs {min(counts)} time(s) in some)", pos.loc))


def _counterfactual_set(spec: A.Spec, model: LoadedModel | PlanningModel, ps: A.PromptSetDecl,
                        source: PromptSetPlan) -> PromptSetPlan:
    """`prompts NAME from SET:`: the twins of SET's prompts, aligned one to one."""
    try:
        twins = counterfactual_prompts(model, source.prompts, source.decl, ps, spec.pools)
    except PromptError as exc:
        raise _err(spec, str(exc), ps.change_loc or ps.loc) from None
    decl = source.decl.model_copy(update={"name": ps.name, "loc": ps.loc, "source": ps.source,
                                          "resample": ps.resample, "swap": ps.swap})
    return PromptSetPlan(ps.name, twins, decl, source=ps.source)


def _first_failure(ps: PromptSetPlan, where: Callable[[BuiltPrompt], str | None]) -> tuple[str, str] | None:
    """(prompt text, reason) of the first prompt where `where(prompt)` raises RoleError or
    returns a reason; None when every prompt is fine."""
    for p in ps.prompts:
        try:
            why = where(p)
        except RoleError as exc:
            return p.text, str(exc)
        if why:
            return p.text, why
    return None


def _check_positions(spec: A.Spec, refs: References, ps: PromptSetPlan, errors: list[SpecError]) -> None:
    """Roles must resolve in every prompt; a firing's source cannot come after its destination;
    a sink needs later positions. These are spec errors, never failed claims."""
    for pos in refs.positions:
        def resolves(p: BuiltPrompt, pos: A.Pos = pos) -> str | None:
            resolve(pos, p)                             # raises RoleError where the role is missing
            return None
        bad = _first_failure(ps, resolves)
        if bad:
            errors.append(_err(spec, f"{bad[1]} (prompt set {ps.name!r})", pos.loc))
    for at in refs.firings:
        def causal(p: BuiltPrompt, at: A.FiringAt = at) -> str | None:
            d, s = resolve(at.dest, p), resolve(at.src, p)
            if s <= d:
                return None
            return (f"{at.src.text()} (position {s}) comes after {at.dest.text()} (position {d}) in {p.text!r}: "
                    f"attention only looks back")
        bad = _first_failure(ps, causal)
        if bad:
            errors.append(_err(spec, bad[1], at.dest.loc))
    for pos in refs.sinks:
        def later(p: BuiltPrompt, pos: A.Pos = pos) -> str | None:
            return None if resolve(pos, p) < p.end else f"nothing comes after {pos.text()} in {p.text!r}"
        bad = _first_failure(ps, later)
        if bad:
            errors.append(_err(spec, f"{bad[1]}: a sink draws attention from later positions", pos.loc))


def _check_head(spec: A.Spec, h: A.HeadRef, info: ModelInfo | Shape, errors: list[SpecError],
                concrete: bool = False) -> None:
    if concrete and not h.concrete:
        errors.append(_err(spec, f"this claim needs a concrete head, not the pattern {h.text()}", h.loc))
    if h.layer is not None and not 0 <= h.layer < info.n_layers:
        errors.append(_err(spec, f"layer {h.layer} is out of range: {info.name} has layers 0..{info.n_layers - 1}",
                           h.loc))
    if h.head is not None and not 0 <= h.head < info.n_heads:
        errors.append(_err(spec, f"head {h.head} is out of range: {info.name} has heads 0..{info.n_heads - 1} "
                                 f"per layer", h.loc))


def head_errors(spec: A.Spec, info: ModelInfo | Shape) -> list[SpecError]:
    """Head and layer references outside the model (info: anything with name, n_layers and
    n_heads: a ModelInfo, or a models.shapes.Shape read off a config without weights)."""
    errors: list[SpecError] = []
    for circuit in spec.circuits.values():
        for node in circuit.nodes:
            _check_head(spec, node.head, info, errors, concrete=True)
        for mlp in circuit.mlps:
            if not 0 <= mlp.layer < info.n_layers:
                errors.append(_err(spec, f"mlp {mlp.layer} is out of range: {info.name} has layers "
                                         f"0..{info.n_layers - 1}", mlp.loc))
        for edge in circuit.edges:          # an MLP end is an MLP node, checked above
            for end in (edge.upstream, edge.downstream):
                if isinstance(end, A.HeadRef):
                    _check_head(spec, end, info, errors, concrete=True)
    for c in spec.claims:
        refs = kind_of(c.body).references(c.body)
        for x in refs.components:
            if x.kind in ("mlp", "bias") and not 0 <= (x.layer or 0) < info.n_layers:
                errors.append(_err(spec, f"layer {x.layer} is out of range: {info.name} has layers "
                                         f"0..{info.n_layers - 1}", x.loc))
        for h, concrete in refs.heads:
            _check_head(spec, h, info, errors, concrete)
    return errors


def describe(c: A.Claim) -> str:
    text = kind_of(c.body).describe(c.body)
    if c.quantifier.kind == "forall":
        text += f"; then a hypothesis search over up to {c.quantifier.limit} generated prompts"
    return text


def claim_prompt_set(spec: A.Spec, c: A.Claim) -> str | None:
    """The prompt set a claim is measured on: `on SET`, one named in its body, or the first."""
    return c.prompt_set or kind_of(c.body).prompt_set(c.body) or next(iter(spec.prompt_sets), None)


def _answer_hints(spec: A.Spec, model: LoadedModel | PlanningModel, sets: dict[str, PromptSetPlan]) -> list[str]:
    """Warnings, rendered at the answer's line, for answers that lack the leading space the
    model's next word carries (prompts/build.py `space_hint`), once per prompt set."""
    from sadlang.prompts.build import space_hint

    out = []
    for name, ps in sets.items():
        if ps.source is not None or ps.reference_of is not None:
            continue
        for k, p in enumerate(ps.prompts):
            found = [h for h in (space_hint(model, p.text, t or "", w) for t, w in
                                 ((p.answer_text, "answer"), (p.against_text, "against"))) if h]
            if found:
                lit = ps.decl.literals[k] if k < len(ps.decl.literals) else None
                loc = lit.loc if lit is not None else ps.decl.answer_loc
                out.append(_err(spec, f"{found[0]} (prompt set {name!r})", loc).render()
                           .replace(": error: ", ": warning: ", 1))
                break
    return out


def _held_out_means(spec: A.Spec, settings: Settings) -> list[str]:
    """The templated sets that a claim mean-ablates over their held-out reference draw."""
    out: list[str] = []
    for c in spec.claims:
        name = claim_prompt_set(spec, c) or ""
        decl = spec.prompt_sets.get(name)
        if decl is None or not kind_of(c.body).uses_held_out_mean(c.body, settings):
            continue
        base = decl.source or name
        if spec.prompt_sets[base].templates and base not in out:
            out.append(base)
    return out


def compile_spec(spec: A.Spec, model: LoadedModel | PlanningModel, lenient: bool = False,
                 checked: Validated | None = None) -> Plan:
    """Resolve everything against `model`; raise SpecError(s) for anything wrong. `checked` is
    the spec's validation when the caller already ran it (`prepare` does, before the model loads)."""
    checked = checked or validate(spec, lenient)
    settings = checked.settings
    sets = {name: PromptSetPlan(name, build_prompt_set(spec, model, ps), ps)
            for name, ps in spec.prompt_sets.items() if ps.source is None}
    for name, decl in spec.prompt_sets.items():
        if decl.source is not None:
            sets[name] = _counterfactual_set(spec, model, decl, sets[decl.source])
    for name in _held_out_means(spec, settings):
        decl = spec.prompt_sets[name]
        ref = R.reference_name(name)
        sets[ref] = PromptSetPlan(ref, build_prompt_set(spec, model, decl, reference=settings.reference_size),
                                  decl.model_copy(update={"name": ref}), reference_of=name)
    hints = _answer_hints(spec, model, sets)
    errors: list[SpecError] = head_errors(spec, model.info)
    claims = []
    for c in spec.claims:
        kind = kind_of(c.body)
        pset = claim_prompt_set(spec, c)
        assert pset is not None   # check_declarations rejects claims without a prompt set
        ps = sets[pset]
        refs = kind.references(c.body)
        _check_roles(spec, refs.positions, ps, errors)
        if not errors:
            _check_positions(spec, refs, ps, errors)
            errors += [_err(spec, msg, loc) for msg, loc in kind.plan_errors(spec, c.body, pset, ps.prompts)]
            errors += [_err(spec, msg, loc) for msg, loc in kind.model_errors(spec, c.body, model.info)]
        if kind.needs_answers(c.body) and any(p.answer is None for p in ps.prompts):
            errors.append(_err(spec, f"claim {c.name!r} needs answers: prompt set {pset!r} has prompts "
                                     f"without `answer`", c.loc))
        claims.append((c, ClaimPlan(name=c.name, kind=kind.name, prompt_set=pset, work=kind.work(c.body),
                                    description=describe(c))))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return Plan(spec=spec, settings=settings, options=settings.trace_options(spec.method),
                prompt_sets=sets, claims=claims, notes=[w.render() for w in checked.warnings], hints=hints)
