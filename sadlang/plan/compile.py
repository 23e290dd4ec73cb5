"""Compile a parsed spec against a loaded model into a plan: validated prompt sets and
claims, each with the least work it needs (attention only < one firing < full traces <
interventions)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from pydantic import BaseModel

from sadlang.errors import Span, SpecError, SpecErrors
from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt, PromptError, build_prompt, sample_assignments, template_slots
from sadlang.trace.options import METHODS, TraceOptions

OPTIONS = {
    "threshold": "fixed firing threshold in [0, 1] (default: the method's rule)",
    "term_fraction": "share of the relative score the kept singular terms reach (1.0)",
    "edge_fraction": "cumulative share of contributions covered by edges (0.7)",
    "accpp_scale": "the 2.5 of accpp's dynamic threshold",
    "ig_steps": "integrated-gradient intervals for accpp (64)",
    "device": "auto | cpu | cuda",
    "seed": "seed for random controls and search (0)",
    "batch_size": "prompts per forward pass (32)",
    "random_draws": "random subspaces averaged for each control (3)",
    "control_consistency": "min mean pairwise cosine for a control signal (0.8)",
    "sink_share": "min mean attention onto the sink token for a head to sink (0.5)",
    "prototype_cut": "cosine distance at which control-signal prototypes are cut (0.6)",
}

WORK_ORDER = ["behaviour", "attention", "firing", "trace", "signals", "intervention"]


class ClaimPlan(BaseModel):
    name: str
    kind: str
    prompt_set: str
    work: str           # one of WORK_ORDER
    description: str


@dataclass
class PromptSetPlan:
    name: str
    prompts: list[BuiltPrompt]
    decl: A.PromptSetDecl

    @property
    def lengths(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in self.prompts:
            out[len(p.tokens)] = out.get(len(p.tokens), 0) + 1
        return out


@dataclass
class Plan:
    spec: A.Spec
    options: TraceOptions
    settings: dict[str, float | str]
    prompt_sets: dict[str, PromptSetPlan]
    claims: list[tuple[A.Claim, ClaimPlan]]
    notes: list[str] = field(default_factory=list)

    def forward_passes(self, batch_size: int) -> int:
        total = 0
        for ps in self.prompt_sets.values():
            total += sum(-(-c // batch_size) for c in ps.lengths.values())
        return total


def span(spec: A.Spec, loc: A.Loc | None) -> Span | None:
    if loc is None:
        return None
    return Span(spec.file, loc.line, loc.column, loc.end_line, loc.end_column)


def _err(spec: A.Spec, msg: str, loc: A.Loc | None, hint: str | None = None) -> SpecError:
    return SpecError(msg, span(spec, loc), spec.source, hint)


def _suggest(word: str, options) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None


def spec_settings(spec: A.Spec) -> tuple[TraceOptions, dict[str, float | str]]:
    """Validate `method` and `option` lines (needs no model)."""
    errors: list[SpecError] = []
    if spec.method not in METHODS:
        errors.append(_err(spec, f"unknown method {spec.method!r}; expected one of {', '.join(METHODS)}",
                           spec.method_loc, _suggest(spec.method, METHODS)))
    settings: dict[str, float | str] = {"device": "auto", "seed": 0, "batch_size": 32, "random_draws": 3,
                                        "control_consistency": 0.8, "sink_share": 0.5, "prototype_cut": 0.6}
    trace_kw: dict = {}
    for name, opt in spec.options.items():
        if name not in OPTIONS:
            errors.append(_err(spec, f"unknown option {name!r}; known options: {', '.join(OPTIONS)}",
                               opt.loc, _suggest(name, OPTIONS)))
            continue
        if name == "device":
            if opt.value not in ("auto", "cpu", "cuda"):
                errors.append(_err(spec, f"option device must be auto, cpu or cuda, not {opt.value!r}", opt.loc))
            settings[name] = str(opt.value)
            continue
        if not isinstance(opt.value, float):
            errors.append(_err(spec, f"option {name} needs a number, not {opt.value!r}", opt.loc))
            continue
        if name in ("threshold", "term_fraction", "edge_fraction", "accpp_scale", "ig_steps"):
            trace_kw[name] = int(opt.value) if name == "ig_steps" else opt.value
        else:
            settings[name] = int(opt.value) if name in ("seed", "batch_size", "random_draws") else opt.value
    opts = None
    try:
        opts = TraceOptions(method=spec.method if spec.method in METHODS else "acc", **trace_kw)
    except Exception as exc:  # pydantic validation
        first = str(exc).splitlines()
        errors.append(_err(spec, f"invalid option value: {' '.join(first[1:3]).strip()}", None))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return opts, settings  # type: ignore[return-value]


def check_declarations(spec: A.Spec) -> None:
    """Model-independent checks: pools, slots, prompt-set references."""
    errors: list[SpecError] = []
    for ps in spec.prompt_sets.values():
        if not ps.templates and not ps.literals:
            errors.append(_err(spec, f"prompt set {ps.name!r} has no template and no prompt", ps.loc))
        bound: set[str] = set()
        for g in ps.slots:
            if g.pool not in spec.pools:
                errors.append(_err(spec, f"unknown pool {g.pool!r}", g.loc, _suggest(g.pool, spec.pools)))
            elif g.distinct and len(spec.pools[g.pool].values) < len(g.slots):
                errors.append(_err(spec, f"pool {g.pool!r} has {len(spec.pools[g.pool].values)} values, "
                                         f"too few for {len(g.slots)} distinct slots", g.loc))
            bound.update(g.slots)
        for tpl, loc in ps.templates:
            for slot in template_slots(tpl):
                if slot not in bound:
                    errors.append(_err(spec, f"slot {{{slot}}} has no pool: add `{slot} from POOL`", loc,
                                       _suggest(slot, bound)))
        if ps.templates and ps.answer is None:
            errors.append(_err(spec, f"prompt set {ps.name!r} needs an `answer \"...\" against \"...\"` line",
                               ps.loc))
        for text in (ps.answer or "", ps.against or ""):
            for slot in template_slots(text):
                if slot not in bound:
                    errors.append(_err(spec, f"answer uses slot {{{slot}}} that no template fills", ps.answer_loc))
    for c in spec.claims:
        pset = c.prompt_set or getattr(c.body, "prompt_set", None)
        if pset is not None and pset not in spec.prompt_sets:
            errors.append(_err(spec, f"claim {c.name!r} refers to undefined prompt set {pset!r}", c.loc,
                               _suggest(pset, spec.prompt_sets)))
        if pset is None and not spec.prompt_sets:
            errors.append(_err(spec, f"claim {c.name!r} needs a prompt set, and the spec defines none", c.loc))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]


def build_prompt_set(spec: A.Spec, model, ps: A.PromptSetDecl, n: int | None = None,
                     seed: int | None = None) -> list[BuiltPrompt]:
    out: list[BuiltPrompt] = []
    for lit in ps.literals:
        try:
            out.append(build_prompt(model, lit.text, {}, 0, lit.answer or ps.answer, lit.against or ps.against))
        except PromptError as exc:
            raise _err(spec, str(exc), lit.loc) from None
    if ps.templates:
        groups = [(g.slots, spec.pools[g.pool].values, g.distinct) for g in ps.slots]
        samples = sample_assignments(groups, ps.sample if n is None else n, ps.seed if seed is None else seed,
                                     len(ps.templates))
        for t, assignment in samples:
            tpl, loc = ps.templates[t]
            try:
                out.append(build_prompt(model, tpl, assignment, t, ps.answer, ps.against))
            except PromptError as exc:
                where = loc if "slot" in str(exc) else ps.answer_loc
                raise _err(spec, str(exc), where) from None
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


def _check_head(spec: A.Spec, h: A.HeadRef, info, errors: list[SpecError], concrete: bool = False) -> None:
    if concrete and not h.concrete:
        errors.append(_err(spec, f"this claim needs a concrete head, not the pattern {h.text()}", h.loc))
    if h.layer is not None and not 0 <= h.layer < info.n_layers:
        errors.append(_err(spec, f"layer {h.layer} is out of range: {info.name} has layers 0..{info.n_layers - 1}",
                           h.loc))
    if h.head is not None and not 0 <= h.head < info.n_heads:
        errors.append(_err(spec, f"head {h.head} is out of range: {info.name} has heads 0..{info.n_heads - 1} "
                                 f"per layer", h.loc))


WORK = {"behaviour": "behaviour", "attends": "attention", "edge": "firing", "signal": "signals",
        "circuit": "trace", "ablate": "intervention", "sink": "signals", "shared": "signals",
        "control_ablate": "signals"}


def describe(c: A.Claim) -> str:
    text = _describe_body(c)
    if c.quantifier.kind == "forall":
        text += f"; then a hypothesis search over up to {c.quantifier.limit} generated prompts"
    return text


def _describe_body(c: A.Claim) -> str:
    b = c.body
    if b.kind == "attends":
        return f"read attention of {b.head.text()} (no decomposition)"
    if b.kind == "behaviour":
        return "read logits at end (no decomposition)"
    if b.kind == "edge":
        return (f"decompose firing {b.downstream.text()} at {b.at.dest.text()} -> {b.at.src.text()}"
                if b.at else f"full trace, edges into {b.downstream.text()}")
    if b.kind == "signal":
        where = f" at {b.at.dest.text()} -> {b.at.src.text()}" if b.at else " (found by full traces)"
        return f"decompose {b.downstream.text()}{where} and extract signals of {b.upstream.text()}"
    if b.kind == "circuit":
        return "full trace of every prompt, combined by node frequency"
    if b.kind == "ablate":
        return (f"{b.mode} {b.action} of {b.upstream.text()} -> {b.downstream.text()} "
                f"(+ random controls), batched forward passes")
    return f"firings of {b.head.text()} onto default tokens, their signals and clustering"


def compile_spec(spec: A.Spec, model) -> Plan:
    """Resolve everything against `model`; raise SpecError(s) for anything wrong."""
    opts, settings = spec_settings(spec)
    check_declarations(spec)
    sets = {name: PromptSetPlan(name, build_prompt_set(spec, model, ps), ps)
            for name, ps in spec.prompt_sets.items()}
    errors: list[SpecError] = []
    info = model.info
    default_set = next(iter(spec.prompt_sets), None)
    claims = []
    for c in spec.claims:
        b = c.body
        pset = c.prompt_set or getattr(b, "prompt_set", None) or default_set
        ps = sets[pset]
        positions: list[A.Pos] = []
        heads: list[tuple[A.HeadRef, bool]] = []
        if b.kind == "attends":
            heads.append((b.head, True))
            positions += [b.at.dest, b.at.src]
        elif b.kind in ("edge", "signal", "ablate"):
            heads.append((b.downstream, b.kind != "edge" or b.at is not None))
            if b.upstream.kind == "head":
                heads.append((b.upstream.head, False))
            if b.at:
                positions += [b.at.dest, b.at.src]
        elif b.kind in ("sink", "control_ablate"):
            heads.append((b.head, True))
            positions.append(b.to)
        elif b.kind == "shared":
            heads += [(b.head, True)] + [(h, True) for h in b.others]
        elif b.kind == "circuit":
            heads += [(x.head, False) for x in b.components if x.kind == "head"]
        for x in getattr(b, "components", []) + ([b.upstream] if hasattr(b, "upstream") else []):
            if x.kind in ("mlp", "bias") and not 0 <= (x.layer or 0) < info.n_layers:
                errors.append(_err(spec, f"layer {x.layer} is out of range: {info.name} has layers "
                                         f"0..{info.n_layers - 1}", x.loc))
        for h, concrete in heads:
            _check_head(spec, h, info, errors, concrete)
        _check_roles(spec, positions, ps, errors)
        if b.kind == "ablate" and b.mode == "global" and b.upstream.kind == "offset":
            errors.append(_err(spec, "an offset has no place in the residual stream: use a local ablation",
                               b.upstream.loc))
        if b.kind in ("behaviour", "circuit", "ablate") and any(p.answer is None for p in ps.prompts):
            errors.append(_err(spec, f"claim {c.name!r} needs answers: prompt set {pset!r} has prompts "
                                     f"without `answer`", c.loc))
        work = WORK[b.kind]
        if b.kind in ("edge", "signal", "ablate") and b.at is None:
            work = "trace"   # without explicit positions the edge is looked up in full traces
        claims.append((c, ClaimPlan(name=c.name, kind=b.kind, prompt_set=pset, work=work,
                                    description=describe(c))))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return Plan(spec=spec, options=opts, settings=settings, prompt_sets=sets, claims=claims)
