"""What a claim kind is. Each module of sadlang/claims defines one `ClaimKind` subclass and
exports an instance as `KIND`: its AST node, the grammar rules it builds, the work it needs
in the plan, how it is measured, its pytest marker and its doc examples.

Importing a claim module must stay cheap (the parser reads every kind's syntax): evaluation
helpers that pull in torch are imported inside the methods that use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from sadlang.circuits.ablations import ABLATIONS
from sadlang.evidence.records import PromptEvidence
from sadlang.lang import ast as A
from sadlang.lang.syntax import Builder
from sadlang.settings import Settings
from sadlang.stats.intervals import Interval

if TYPE_CHECKING:
    from sadlang.evidence.store import PromptSetEvidence

# the least work a claim needs, cheapest first (the plan prints it)
Work = Literal["behaviour", "attention", "firing", "trace", "signals", "intervention"]
WORK_ORDER: tuple[Work, ...] = ("behaviour", "attention", "firing", "trace", "signals", "intervention")



@dataclass
class References:
    """The model-dependent names in a claim body, for the compiler to check.

    heads:      (head pattern, must it be concrete L.H)
    positions:  roles that must exist in every prompt of the set
    components: upstream components (`mlp L` and `bias L` have layers to check)
    firings:    D -> S pairs: in every prompt S must not come after D (causal attention)
    sinks:      positions that need later destinations (a sink attracts attention from after it)
    """

    heads: list[tuple[A.HeadRef, bool]] = field(default_factory=list)
    positions: list[A.Pos] = field(default_factory=list)
    components: list[A.CompRef] = field(default_factory=list)
    firings: list[A.FiringAt] = field(default_factory=list)
    sinks: list[A.Pos] = field(default_factory=list)


Problem = tuple[str, "A.Loc | None"]


def bound_problems(bound: A.Bound | None, lo: float, hi: float, what: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, vacuous) of `what CMP value` where `what` lies in [lo, hi]: a value outside the
    domain is an error; a comparison that is always or never true inside it is vacuous."""
    from sadlang.lang.compare import vacuous

    if bound is None:
        return [], []
    if not lo <= bound.value <= hi:
        return [(f"{bound.value:g} is outside the domain of {what}, [{lo:g}, {hi:g}]", bound.loc)], []
    why = vacuous(bound, lo, hi, what)
    return [], ([(why, bound.loc)] if why else [])


@dataclass
class Measurement:
    """A claim's result, before it becomes a verdict. `ok` is the point verdict; `status`, when
    set, is the verdict at the spec's confidence (held / failed / inconclusive) that replaces it,
    backed by `interval` (None only for numbers that sampling does not move)."""

    ok: bool
    measured: str
    value: float | None = None
    prompts: list[PromptEvidence] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    claimed: str | None = None    # replaces the kind's claimed text when set
    status: Literal["held", "failed", "inconclusive"] | None = None
    interval: Interval | None = None
    thresholds: list[float] = field(default_factory=list)   # the bounds the value is decided against

    @property
    def decided(self) -> str:
        return self.status or ("held" if self.ok else "failed")


def effect_size(clean: float, new: float, direction: str, relative: bool) -> tuple[float, float]:
    """(effect, the value a `lowers|raises ... by X[%]` bound compares): the change from `clean`
    to `new` signed so that the claimed direction is positive, relative to clean with `%`. A
    relative effect exists only for a positive clean value: with clean <= 0 (a prompt the model
    gets wrong) "lowers by 50%" has no meaning, and the value is NaN (see `judged_effect`)."""
    effect = (1.0 if direction == "lowers" else -1.0) * (clean - new)   # -0.0 when unchanged and raised
    if not relative:
        return effect, effect
    return effect, (effect / clean if clean > 0 else float("nan"))


def judged_effect(clean: float, new: float, direction: str, relative: bool,
                  bound: A.Bound) -> tuple[float | None, bool, str]:
    """(value, passed, note) of one prompt's effect against `bound`: a prompt whose relative effect
    is undefined (clean value not positive) fails, and its note says why."""
    from sadlang.lang.compare import holds

    _, value = effect_size(clean, new, direction, relative)
    if math.isnan(value):
        return None, False, f"; clean value {clean:.3f} is not positive: no relative effect (the prompt fails)"
    return value, holds(value, bound), ""


def overlap(ours: set, reference: set, bounds: dict[str, A.Bound]) -> tuple[dict[str, float], bool, dict[str, A.Bound]]:
    """Precision, recall and F1 of `ours` against `reference`, and whether `bounds` (default
    f1 >= 0.5) hold; returns (values, held, the bounds used)."""
    from sadlang.lang.compare import holds

    inter = len(ours & reference)
    prec = inter / len(ours) if ours else 0.0
    rec = inter / len(reference) if reference else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    vals = {"precision": prec, "recall": rec, "f1": f1}
    bounds = bounds or {"f1": A.Bound(cmp=">=", value=0.5)}
    return vals, all(holds(vals[k], b) for k, b in bounds.items()), bounds


def spec_option(spec: A.Spec, name: str) -> str:
    """The spec's `option NAME` as written, else the option's default (before settings are built)."""
    option = spec.options.get(name)
    return str(option.value if option is not None else Settings.model_fields[name].default)


def spec_ablation(spec: A.Spec) -> str:
    """The ablation a claim without its own uses: the spec's `option ablation`, else the default."""
    return spec_option(spec, "ablation")


def counterfactual_problems(spec: A.Spec, name: str | None, kind: str | None, prompt_set: str,
                            where: A.Loc | None) -> list[Problem]:
    """A resample ablation needs a counterfactual set derived from the claim's prompt set."""
    kind = kind or spec_ablation(spec)
    name = name or cast("str | None", {k: o.value for k, o in spec.options.items()}.get("counterfactual"))
    if ABLATIONS[kind].source != "counterfactual":
        twins = " or ".join(a.name for a in ABLATIONS.values() if a.source == "counterfactual")
        return [(f"`from {name}` only applies to {twins} ablations", where)] if name and where else []
    if name is None:
        return [(f"a {kind} ablation needs its counterfactual prompts: add `from SET` or "
                 "`option counterfactual = SET`", where)]
    decl = spec.prompt_sets.get(name)
    if decl is None:
        return [(f"undefined counterfactual prompt set {name!r}", where)]
    if decl.source != prompt_set:
        return [(f"{name!r} is not a counterfactual of {prompt_set!r} (write `prompts {name} from {prompt_set}:`)",
                 where)]
    return []


def reference_problems(spec: A.Spec, name: str | None, kind: str | None, where: A.Loc | None) -> list[Problem]:
    """`over SET` names the reference prompts of a mean ablation."""
    if name is None:
        return []
    kind = kind or spec_ablation(spec)
    if ABLATIONS[kind].source != "reference":
        return [(f"`over {name}` names the reference of a mean ablation, not of a {kind} ablation", where)]
    if name not in spec.prompt_sets:
        return [(f"undefined reference prompt set {name!r} (prompt sets: {', '.join(spec.prompt_sets)})", where)]
    return []


def ablation_source(ev: PromptSetEvidence, kind: str, counterfactual: str | None,
                    over: str | None) -> PromptSetEvidence | None:
    """The prompts an ablation of kind `kind` takes its values from: the counterfactual twins
    (`counterfactual`, the claim's `from SET` or the option), the mean's reference (`over`, else
    the held-out draw), or None."""
    source = ABLATIONS[kind].source
    if source == "counterfactual":
        return ev.workspace.sets.get(counterfactual) if ev.workspace is not None and counterfactual else None
    if source == "reference":
        return mean_reference(ev, over)
    return None


def mean_reference(ev: PromptSetEvidence, name: str | None) -> PromptSetEvidence | None:
    """The prompts a mean ablation of `ev` averages over: `over SET`, else the set's held-out
    reference draw, else None (a set of literal prompts: itself, each prompt left out)."""
    from sadlang.prompts.reference import reference_name

    ws = ev.workspace
    if ws is None:
        return None
    if name is not None:
        return ws.sets[name]
    base = ev.decl.source if ev.decl is not None and ev.decl.source else ev.name
    return ws.sets.get(reference_name(base))


def fmt(x: float | None) -> str:
    """A number for a report line; n/a for None and NaN."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class ClaimKind:
    """Base class of a claim kind. Subclasses set the class attributes and override what
    their kind measures: `probe` (one prompt) or `measure` (several prompts at once) for
    per-prompt kinds, `aggregate` for kinds judged over the whole set."""

    name: ClassVar[str]                       # body.kind; pytest marker sad_<name>
    node: ClassVar[type[A.ClaimBody]]
    summary: ClassVar[str]                    # one line for docs and hovers
    examples: ClassVar[tuple[str, ...]]       # claim bodies that hold on specs/planted.sad
    failing: ClassVar[tuple[str, ...]]        # claim bodies that fail on specs/planted.sad
    searchable: ClassVar[bool] = True         # can `forall` / --explore measure generated prompts alone?
    picture: ClassVar[str | None] = None      # the graph its report card draws (html/pictures.py), if any

    # ---- syntax
    def rules(self) -> dict[str, Builder]:
        """Grammar rule name -> builder. The kind's own rule comes first."""
        raise NotImplementedError

    # ---- plan
    def work(self, body: Any) -> Work:
        raise NotImplementedError

    def describe(self, body: Any) -> str:
        """What checking the claim computes, in words (`sadlang plan`)."""
        raise NotImplementedError

    def references(self, body: Any) -> References:
        return References()

    def static_errors(self, body: Any) -> list[Problem]:
        """Errors that need no model or prompts: (message, location)."""
        return []

    def vacuous(self, body: Any) -> list[Problem]:
        """Comparisons that are always or never true given their value's domain: errors, or
        warnings under --lenient."""
        return []

    def spec_errors(self, spec: A.Spec, body: Any) -> list[Problem]:
        """Errors against the rest of the spec (names of circuits, prompt sets), no model."""
        return []

    def model_errors(self, spec: A.Spec, body: Any, info: Any) -> list[Problem]:
        """Errors that need the model's shape (`info`: n_layers, n_heads), no prompts."""
        return []

    def plan_errors(self, spec: A.Spec, body: Any, prompt_set: str, prompts: list[Any]) -> list[Problem]:
        """Errors that need the claim's built prompts (positions of named circuits, alignment)."""
        return []

    def needs_answers(self, body: Any) -> bool:
        return False

    def uses_held_out_mean(self, body: Any, settings: Settings) -> bool:
        """Does measuring the claim mean-ablate over its set's held-out reference draw (the plan
        then draws one)? Kinds that ablate heads say so; `over SET` names another reference."""
        return False

    def prompt_set(self, body: Any) -> str | None:
        """A prompt set named inside the body (`circuit of SET`)."""
        return None

    # ---- measurement
    def per_prompt(self, body: Any) -> bool:
        """Is the claim measured per prompt and quantified (`in >= 80% of prompts`)?"""
        return True

    def shardable(self, body: Any) -> bool:
        """Can the prompts be measured in shards (apart, on different workers) and the
        evidence concatenated? True for per-prompt kinds that measure a prompt from its own
        batch alone and take no second look at the whole set in `refine`."""
        return self.per_prompt(body) and self.searchable and type(self).refine is ClaimKind.refine

    def claimed(self, body: Any) -> str:
        """The bound in words, without the quantifier."""
        raise NotImplementedError

    def probe(self, ev: PromptSetEvidence, body: Any, i: int,
              settings: Settings) -> tuple[float | None, bool, str]:
        """(value, passed, detail) of prompt i."""
        raise NotImplementedError

    def measure(self, ev: PromptSetEvidence, body: Any, indices: list[int],
                settings: Settings) -> list[PromptEvidence]:
        """Per-prompt evidence for `indices`. A role missing from a prompt fails that prompt."""
        from sadlang.evidence.roles import RoleError

        out = []
        for i in indices:
            try:
                value, passed, detail = self.probe(ev, body, i, settings)
            except RoleError as exc:
                value, passed, detail = None, False, str(exc)
            out.append(PromptEvidence(index=i, text=ev.prompts[i].text, value=value, passed=passed,
                                      detail=detail))
        return out

    def refine(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings,
               m: Measurement) -> Measurement:
        """A per-prompt claim's second look after quantifying (default: none)."""
        return m

    def aggregate(self, ev: PromptSetEvidence, claim: A.Claim, settings: Settings) -> Measurement:
        raise NotImplementedError
