"""The validation pass between parsing and running: everything that can be known about a spec
without a model. A spec that means something other than what it says never runs: every
out-of-domain number, vacuous comparison, duplicate or malformed declaration is a spec error
(exit 2) with file:line:col, found before any model loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from sadlang.claims import kind_of
from sadlang.errors import Span, SpecError, SpecErrors
from sadlang.lang import ast as A
from sadlang.lang.compare import vacuous
from sadlang.prompts.build import template_slots
from sadlang.settings import Settings
from sadlang.trace.methods import METHODS


@dataclass
class Validated:
    settings: Settings
    warnings: list[SpecError] = field(default_factory=list)   # vacuous comparisons under --lenient


def span(spec: A.Spec, loc: A.Loc | None) -> Span | None:
    if loc is None:
        return None
    return Span(spec.file, loc.line, loc.column, loc.end_line, loc.end_column)


def _err(spec: A.Spec, msg: str, loc: A.Loc | None, hint: str | None = None) -> SpecError:
    return SpecError(msg, span(spec, loc), spec.source, hint)


def _suggest(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None


def spec_settings(spec: A.Spec) -> Settings:
    """Validate `method` and every `option` line against `Settings` (needs no model)."""
    errors: list[SpecError] = []
    if spec.method not in METHODS:
        errors.append(_err(spec, f"unknown method {spec.method!r}; expected one of {', '.join(METHODS)}",
                           spec.method_loc, _suggest(spec.method, METHODS)))
    known = Settings.model_fields
    values: dict[str, float | str] = {}
    for name, opt in spec.options.items():
        if name not in known:
            errors.append(_err(spec, f"unknown option {name!r}; known options: {', '.join(known)}",
                               opt.loc, _suggest(name, known)))
            continue
        why = Settings.check_one(name, opt.value)
        if why is not None:
            errors.append(_err(spec, why, opt.loc))
            continue
        values[name] = opt.value
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return Settings.model_validate(values)


def check_declarations(spec: A.Spec, settings: Settings | None = None) -> None:
    """Model-independent checks: pools, slots, templates, samples, prompt-set references."""
    settings = settings or Settings()
    errors: list[SpecError] = []
    for ps in spec.prompt_sets.values():
        if ps.source is not None or ps.resample or ps.swap:
            errors += _counterfactual_problems(spec, ps)
            continue
        for tpl, loc in ps.templates:
            errors += [_err(spec, msg, _shifted(loc, at)) for msg, at in template_problems(tpl, spec.pools)]
        for text in (ps.answer, ps.against):
            if text is not None:
                errors += [_err(spec, msg, ps.answer_loc) for msg, _ in template_problems(text, spec.pools)]
        for lit in ps.literals:
            if any(msg for msg, _ in template_problems(lit.text, spec.pools)) or template_slots(lit.text):
                errors.append(_err(spec, "a literal `prompt` has no slots: write it as a `template` with "
                                         "its slots drawn from pools", lit.loc))
            answer, against = lit.answer or ps.answer, lit.against or ps.against
            if any(t is not None and template_slots(t) for t in (answer, against)):
                errors.append(_err(spec, "a literal `prompt` has no slots, so its `answer` cannot name one: write "
                                         "the answer's text", lit.loc))
            elif answer is not None and answer == against:
                errors.append(_err(spec, f"`answer` and `against` are both {answer!r}: the logit difference would "
                                         f"be 0", lit.loc))
        if ps.answer is not None and ps.answer == ps.against:
            errors.append(_err(spec, f"`answer` and `against` are both {ps.answer!r}: the logit difference would be 0 "
                                     f"in every prompt", ps.answer_loc))
        if ps.sample_cap is not None and (not ps.templates or ps.sample_cap <= ps.sample
                                          or ps.sample_cap > settings.max_prompts):
            why = ("only templates can be sampled further" if not ps.templates else
                   f"the cap must be above {ps.sample}" if ps.sample_cap <= ps.sample else
                   f"the cap is over the limit of {settings.max_prompts} prompts (`option max_prompts`)")
            errors.append(_err(spec, f"sample {ps.sample} up to {ps.sample_cap}: {why}", ps.sample_loc))
        if ps.templates and ps.sample < 1:
            errors.append(_err(spec, f"sample {ps.sample}: a prompt set samples at least 1 prompt", ps.sample_loc))
        elif ps.templates and ps.sample > settings.max_prompts:
            passes = -(-ps.sample // settings.batch_size)
            errors.append(_err(spec, f"sample {ps.sample} is over the limit of {settings.max_prompts} prompts "
                                     f"(about {passes} forward passes at batch size {settings.batch_size}); "
                                     f"raise it with `option max_prompts = N`", ps.sample_loc))
        if not ps.templates and not ps.literals:
            errors.append(_err(spec, f"prompt set {ps.name!r} has no template and no prompt", ps.loc))
        bound: set[str] = set()
        for g in ps.slots:
            if g.pool not in spec.pools:
                errors.append(_err(spec, f"unknown pool {g.pool!r}", g.loc, _suggest(g.pool, spec.pools)))
            elif spec.pools[g.pool].pairs is not None and (len(g.slots) != 2 or g.distinct):
                errors.append(_err(spec, f"pool {g.pool!r} holds pairs: each draw fills two slots together, written "
                                         f"`{g.slots[0]}, {'V' if len(g.slots) < 2 else g.slots[1]} from {g.pool}`"
                                         f"{' (no `distinct`: one pair per draw)' if g.distinct else ''}", g.loc))
            elif g.distinct and len(spec.pools[g.pool].values) < len(g.slots):
                errors.append(_err(spec, f"pool {g.pool!r} has {len(spec.pools[g.pool].values)} values, "
                                         f"too few for {len(g.slots)} distinct slots", g.loc))
            bound.update(g.slots)
        for tpl, loc in ps.templates:
            for slot in template_slots(tpl):
                if slot not in bound:
                    hint = (f"{slot} is a pool: draw a slot from it with `X from {slot}` and write {{X}}"
                            if slot in spec.pools else _suggest(slot, bound))
                    errors.append(_err(spec, f"slot {{{slot}}} has no pool: add `{slot} from POOL`",
                                       _shifted(loc, tpl.find("{" + slot + "}")), hint))
        if ps.templates and ps.answer is None:
            errors.append(_err(spec, f"prompt set {ps.name!r} needs an `answer \"...\" against \"...\"` line",
                               ps.loc))
        for text in (ps.answer or "", ps.against or ""):
            for slot in template_slots(text):
                if slot not in bound:
                    errors.append(_err(spec, f"answer uses slot {{{slot}}} that no template fills", ps.answer_loc))
    errors += check_circuits(spec)
    for c in spec.claims:
        pset = c.prompt_set or kind_of(c.body).prompt_set(c.body)
        if pset is not None and pset not in spec.prompt_sets:
            errors.append(_err(spec, f"claim {c.name!r} refers to undefined prompt set {pset!r}", c.loc,
                               _suggest(pset, spec.prompt_sets)))
        if pset is None and not spec.prompt_sets:
            errors.append(_err(spec, f"claim {c.name!r} needs a prompt set, and the spec defines none", c.loc))
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]




def _counterfactual_problems(spec: A.Spec, ps: A.PromptSetDecl) -> list[SpecError]:
    """`prompts NAME from SET:` holds one `resample` or `swap` line and nothing else."""
    if ps.source is None:
        return [_err(spec, "`resample` and `swap` make a counterfactual set: write `prompts NAME from SET:`",
                     ps.change_loc)]
    source = spec.prompt_sets.get(ps.source)
    if source is None:
        return [_err(spec, f"counterfactual set {ps.name!r} comes from undefined prompt set {ps.source!r}",
                     ps.loc, _suggest(ps.source, spec.prompt_sets))]
    if source.source is not None or not source.templates:
        return [_err(spec, f"counterfactual set {ps.name!r} needs a source with templates and slots, and "
                           f"{ps.source!r} is {'itself counterfactual' if source.source else 'all literal prompts'}",
                     ps.loc)]
    if ps.templates or ps.literals or ps.slots or ps.answer is not None or ps.sample_loc is not None:
        return [_err(spec, f"counterfactual set {ps.name!r} takes its templates, slots, answer and sample from "
                           f"{ps.source!r}: only a `resample` or `swap` line goes here", ps.loc)]
    if not ps.resample and ps.swap is None:
        return [_err(spec, f"counterfactual set {ps.name!r} needs a `resample SLOT, ...` or `swap A B` line", ps.loc)]
    slots = {s for g in source.slots for s in g.slots}
    changed = list(ps.resample) + (list(ps.swap) if ps.swap else [])
    errors = [_err(spec, f"{s!r} is not a slot of {ps.source!r} (slots: {', '.join(sorted(slots))})", ps.change_loc,
                   _suggest(s, slots)) for s in changed if s not in slots]
    if ps.resample_pool is not None and ps.resample_pool not in spec.pools:
        errors.append(_err(spec, f"unknown pool {ps.resample_pool!r}", ps.change_loc,
                           _suggest(ps.resample_pool, spec.pools)))
    if ps.swap and ps.swap[0] == ps.swap[1]:
        errors.append(_err(spec, "swap exchanges two different slots", ps.change_loc))
    return errors


def check_circuits(spec: A.Spec) -> list[SpecError]:
    """Declared circuits: concrete heads, each node once, a traced one from a defined set."""
    errors = []
    for c in spec.circuits.values():
        if c.traced_from is not None and c.traced_from not in spec.prompt_sets:
            errors.append(_err(spec, f"circuit {c.name!r} is traced from undefined prompt set {c.traced_from!r}",
                               c.loc, _suggest(c.traced_from, spec.prompt_sets)))
        seen: set[str] = set()
        for n in c.nodes:
            if not n.head.concrete:
                errors.append(_err(spec, f"a circuit node is one head, not the pattern {n.head.text()}", n.head.loc))
            if n.text() in seen:
                errors.append(_err(spec, f"node {n.text()} is listed twice in circuit {c.name!r}", n.loc))
            seen.add(n.text())
        for m in c.mlps:
            if m.text() in seen:
                errors.append(_err(spec, f"node {m.text()} is listed twice in circuit {c.name!r}", m.loc))
            seen.add(m.text())
        units = {n.head.pair for n in c.nodes if n.head.concrete} | {m.pair for m in c.mlps}
        edges: set[str] = set()
        for e in c.edges:
            ends = [h for h in (e.upstream, e.downstream) if h is not None]
            for h in ends:
                if not h.concrete:
                    errors.append(_err(spec, f"a circuit edge joins concrete heads, not {h.text()}", h.loc))
                elif h.pair not in units:
                    errors.append(_err(spec, f"edge end {h.text()} is not a node of circuit {c.name!r}; "
                                             f"list it as a node first", h.loc))
            if e.downstream is not None and all(h.concrete for h in ends):
                why = _edge_order_problem(e.upstream, e.downstream)
                if why:
                    errors.append(_err(spec, f"{e.text()}: {why}", e.loc))
                if isinstance(e.downstream, A.MlpRef) and e.side is not None:
                    errors.append(_err(spec, f"{e.text()}: an MLP has one input; drop `via {e.side}`", e.loc))
            if e.text() in edges:
                errors.append(_err(spec, f"{e.text()} is listed twice in circuit {c.name!r}", e.loc))
            else:
                pair = (e.upstream.text(), e.downstream.text() if e.downstream else "logits")
                other = next((o for o in c.edges[:c.edges.index(e)] if
                              (o.upstream.text(), o.downstream.text() if o.downstream else "logits") == pair
                              and (o.side is None or e.side is None)), None)
                if other is not None:
                    errors.append(_err(spec, f"{e.text()} overlaps {other.text()} in circuit {c.name!r} (an edge "
                                             f"without `via` already covers the query, key and value inputs)", e.loc))
            edges.add(e.text())
        if c.discovery is not None:
            errors += _discovery_errors(spec, c)
    return errors


def _edge_order_problem(sender: A.HeadRef | A.MlpRef, receiver: A.HeadRef | A.MlpRef) -> str | None:
    """Why `sender` cannot write what `receiver` reads (None: it can). A layer's heads write before
    its MLP reads (sequential blocks), its MLP after its heads read."""
    ls, lr = sender.pair[0], receiver.pair[0]
    head_to_mlp = isinstance(sender, A.HeadRef) and isinstance(receiver, A.MlpRef)
    if ls < lr or (ls == lr and head_to_mlp):
        return None
    if isinstance(sender, A.MlpRef) and ls == lr and isinstance(receiver, A.HeadRef):
        return f"layer {ls}'s MLP writes after its heads read: a sender must sit in an earlier layer"
    return "a sender must sit in an earlier layer than its receiver"


def _discovery_errors(spec: A.Spec, c: A.CircuitDecl) -> list[SpecError]:
    """`discover METHOD of SET from TWINS top K edges|nodes`: TWINS is a counterfactual set of SET
    (aligned twins to patch toward), and the method ranks what `top` keeps."""
    from sadlang.circuits.discovery import DISCOVERIES

    errors = []
    method = DISCOVERIES[c.discovery or ""]
    if c.twins not in spec.prompt_sets:
        errors.append(_err(spec, f"circuit {c.name!r} patches toward undefined prompt set {c.twins!r}", c.loc,
                           _suggest(c.twins or "", spec.prompt_sets)))
    elif spec.prompt_sets[c.twins].source != c.traced_from:
        errors.append(_err(spec, f"circuit {c.name!r}: {c.twins!r} is not a counterfactual set of {c.traced_from!r} "
                                 f"(declare `prompts {c.twins} from {c.traced_from}:` with `resample` or `swap`), so "
                                 f"its prompts are not aligned twins to patch toward", c.loc))
    if c.top_edges is not None and not method.edges:
        errors.append(_err(spec, f"circuit {c.name!r}: {method.name} ranks nodes only (patching every edge exactly "
                                 f"costs a pass per edge): write `top {c.top_edges} nodes`, or discover with eap or "
                                 f"eap-ig to rank edges", c.loc))
    return errors


def _shifted(loc: A.Loc | None, offset: int | None) -> A.Loc | None:
    """The location `offset` characters into a STRING token (past its opening quote)."""
    if loc is None or offset is None:
        return loc
    col = loc.column + 1 + offset
    return A.Loc(line=loc.line, column=col, end_line=loc.line, end_column=col + 1)


def template_problems(text: str, pools: dict[str, A.Pool]) -> list[tuple[str, int | None]]:
    """Malformed braces and slot names in a template: (message, offset in the text)."""
    out: list[tuple[str, int | None]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "}":
            out.append(("unbalanced braces: `}` without an opening `{`", i))
        elif ch == "{":
            close = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if close < 0 or (0 <= nested < close):
                out.append(("unbalanced braces: `{` without a closing `}`", i))
                i += 1
                continue
            name = text[i + 1:close]
            if not name:
                out.append(("empty braces `{}`: a slot needs a name, e.g. {IO}", i))
            elif not name.isidentifier() or not name.isascii():
                hint = f" ({name!r} is a pool: declare a slot with `X from {name}`)" if name in pools else ""
                out.append((f"slot name {name!r} is not an identifier (letters, digits, _; not starting "
                            f"with a digit){hint}", i))
            elif name in pools:
                pass   # a slot may share a pool's name only if declared as a slot; checked later
            i = close
        i += 1
    return out


def claim_problems(spec: A.Spec, c: A.Claim, settings: Settings) -> tuple[list[SpecError], list[SpecError]]:
    """(errors, vacuous comparisons) of one claim, from its kind and its quantifier."""
    kind = kind_of(c.body)
    errors = [_err(spec, msg, loc) for msg, loc in kind.static_errors(c.body) + kind.spec_errors(spec, c.body)]
    vac = [_err(spec, msg, loc) for msg, loc in kind.vacuous(c.body)]
    q = c.quantifier
    if q.kind in ("at_least", "at_most"):
        if not 0.0 <= q.share <= 1.0:
            errors.append(_err(spec, f"a share of prompts is in 0%..100%, not {q.share:.4g}", q.loc))
        else:
            bound = A.Bound(cmp=q.cmp, value=q.share)
            why = vacuous(bound, 0.0, 1.0, "a share of prompts")
            if why:
                vac.append(_err(spec, why, q.loc))
    if q.kind == "count" and not kind.per_prompt(c.body):
        errors.append(_err(spec, f"a {kind.name} claim is judged on its whole prompt set, not counted per prompt",
                           q.loc))
    if q.kind == "forall":
        if not kind.searchable:
            errors.append(_err(spec, f"a {kind.name} claim cannot be searched with forall: it is measured "
                                     f"against its whole prompt set", q.loc))
        elif q.limit < 1:
            errors.append(_err(spec, "forall searches at least 1 prompt", q.loc))
        elif q.limit > settings.max_search:
            errors.append(_err(spec, f"forall up to {q.limit} is over the limit of {settings.max_search} searched "
                                     f"prompts (each costs a forward pass); raise it with "
                                     f"`option max_search = N`", q.loc))
        else:
            why = undrawable(spec, c.prompt_set or kind.prompt_set(c.body) or next(iter(spec.prompt_sets), None))
            if why:
                errors.append(_err(spec, f"forall searches new prompts, but {why}: write `in all prompts`, or "
                                         f"give the set `template` lines", q.loc))
    return errors, vac


def undrawable(spec: A.Spec, prompt_set: str | None) -> str | None:
    """Why a property search can draw no new prompts of `prompt_set` (None: it can)."""
    decl = spec.prompt_sets.get(prompt_set or "")
    if decl is None:
        return None
    if decl.source is not None:
        return f"prompt set {decl.name!r} is a counterfactual of {decl.source!r}, made one twin per prompt"
    if not decl.templates:
        return f"prompt set {decl.name!r} has only literal prompts (`prompt` lines)"
    return None


def validate(spec: A.Spec, lenient: bool = False) -> Validated:
    """Every model-independent check. Raises SpecError(s); with `lenient`, comparisons that are
    always or never true come back as warnings instead."""
    settings = spec_settings(spec)
    check_declarations(spec, settings)
    if not spec.claims:
        raise SpecError(f"{spec.file} states no claims: nothing to check (a spec is a list of `claim "
                        f"NAME: ...` lines; see docs/language.md)", Span(spec.file, 1, 1), spec.source)
    errors: list[SpecError] = []
    warnings: list[SpecError] = []
    for c in spec.claims:
        errs, vac = claim_problems(spec, c, settings)
        errors += errs
        (warnings if lenient else errors).extend(vac)
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return Validated(settings, warnings)
