"""The registries: every claim kind and every method is complete and works end to end; the
settings model is the docs' options table; no layer imports a higher one."""

import ast
from pathlib import Path

import pytest

from sadlang.circuits.ablations import ABLATIONS
from sadlang.circuits.task_metrics import METRICS
from sadlang.claims import KINDS, RULES
from sadlang.claims.base import ClaimKind
from sadlang.lang.parser import _parser
from sadlang.language import parse_spec
from sadlang.settings import Settings
from sadlang.trace.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
PLANTED = (ROOT / "specs" / "planted.sad").read_text()
PREAMBLE = "".join(line for line in PLANTED.splitlines(keepends=True) if not line.startswith("claim "))


def _grammar_rules() -> dict[str, list[str]]:
    """rule name (or alias) -> names of the rules of its single-symbol alternatives"""
    out: dict[str, list[str]] = {}
    for r in _parser().rules:
        out.setdefault(r.origin.name, []).extend(s.name for s in r.expansion if len(r.expansion) == 1)
        if r.alias:
            out.setdefault(r.alias, [])
    return out


def test_every_claim_body_rule_is_built_by_exactly_one_kind():
    rules = _grammar_rules()
    alternatives = set(rules["claim_body"])
    owned = {rule for kind in KINDS.values() for rule in list(kind.rules())[:1]}
    assert alternatives <= set(RULES), f"grammar claim rules without a kind: {alternatives - set(RULES)}"
    assert owned <= alternatives
    for kind in KINDS.values():
        for rule in kind.rules():
            assert rule in rules, f"{kind.name}: builds {rule!r}, which the grammar does not have"
    counts: dict[str, int] = {}
    for kind in KINDS.values():
        for rule in kind.rules():
            counts[rule] = counts.get(rule, 0) + 1
    assert all(n == 1 for n in counts.values()), counts


def _spec_of(lines: dict[str, str]) -> str:
    return PREAMBLE + "\n".join(f"claim {name}: {body}" for name, body in lines.items()) + "\n"


def _examples(attr: str) -> dict[str, tuple[ClaimKind, str]]:
    out = {}
    for kind in KINDS.values():
        bodies = getattr(kind, attr)
        assert bodies, f"claim kind {kind.name} has no {attr}"
        for i, body in enumerate(bodies):
            out[f"{attr}_{kind.name}_{i}"] = (kind, body)
    return out


@pytest.mark.parametrize("kind_name", sorted(KINDS))
def test_kind_is_complete(kind_name):
    kind = KINDS[kind_name]
    assert kind.summary and kind.node.model_fields["kind"].default == kind_name
    spec = parse_spec(_spec_of({f"e{i}": b for i, b in enumerate(kind.examples + kind.failing)}))
    for claim in spec.claims:
        assert type(claim.body) is kind.node
        assert kind.work(claim.body) and kind.describe(claim.body) and kind.claimed(claim.body)
        if kind.per_prompt(claim.body):
            assert type(kind).probe is not ClaimKind.probe or type(kind).measure is not ClaimKind.measure
        else:
            assert type(kind).aggregate is not ClaimKind.aggregate


def test_every_picture_a_kind_names_is_drawn_by_the_report():
    from sadlang.html.views import PICTURES

    named = {kind.picture for kind in KINDS.values()} - {None}
    assert named and named <= set(PICTURES), named - set(PICTURES)


def test_examples_hold_and_failing_cases_fail_on_the_planted_model(planted):
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    held, failing = _examples("examples"), _examples("failing")
    spec = parse_spec(_spec_of({k: b for k, (_, b) in {**held, **failing}.items()}), "kinds.sad")
    report = run_plan(compile_spec(spec, planted), planted)
    status = {v.name: v.status for v in report.verdicts}
    assert {k for k in held if status[k] != "held"} == set(), [v.measured for v in report.verdicts if v.name in held]
    assert {k for k in failing if status[k] != "failed"} == set()
    assert {held[k][0].name for k in held} == set(KINDS) == {failing[k][0].name for k in failing}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_traces_the_planted_circuit(planted, method):
    from sadlang.trace.tracer import trace

    circuit = trace(planted, " When Mary went to the x, John said", " x", " y", method=method)[0]
    assert {(1, 0), (0, 0)} <= {(f.layer, f.head) for f in circuit.firings.values()} | {
        (e.component.layer, e.component.head) for f in circuit.firings.values() for e in f.edges
        if e.component.kind == "head"}
    m = METHODS[method]
    assert m.explains and m.threshold and set(m.options) <= set(Settings.model_fields)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sinks_honour_the_spec_method_or_say_why_not(planted, method):
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    text = PREAMBLE.replace("method acc", f"method {method}") + \
        "claim sink: head 1.0 sinks to bos by control signal on plain\n"
    spec = parse_spec(text, "sink.sad")
    v = run_plan(compile_spec(spec, planted), planted).verdicts[0]
    assert v.held, v.measured
    if METHODS[method].raw_sources:
        assert "analysed with acc" in v.details["sink_method"]
    else:
        assert "sink_method" not in v.details


def _gen_docs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_every_generated_file_is_what_the_generator_writes_today():
    """The docs tables, the grammar's generated terminals and the TextMate grammar: scripts/gen_docs.py
    must run (it once failed on a dropped end marker and no test saw it) and find nothing stale."""
    gen = _gen_docs()
    assert [str(p.relative_to(ROOT)) for p in gen.stale()] == [], "run scripts/gen_docs.py"
    docs = (ROOT / "docs" / "language.md").read_text()
    for table in gen._doc_tables().values():
        assert table() in docs


def test_a_missing_marker_is_an_error_not_a_silent_skip():
    gen = _gen_docs()
    with pytest.raises(SystemExit, match="no markers for the claim-kinds part"):
        gen.render("no markers here\n")


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_ablation_kind_is_a_word_an_option_and_a_working_ablation(planted, name):
    """Each registered kind parses in both claim forms, is a valid option value, runs end to end
    and names its origin in the report."""
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    kind = ABLATIONS[name]
    assert kind.summary and Settings.check_one("ablation", name) is None
    source = " from moved_swap" if kind.source == "counterfactual" else ""
    text = PREAMBLE + ("option confidence = none\n"
                       f"claim node: ablate head 1.0 {name}{source} lowers logit_diff by > 0 on moved\n"
                       f"claim whole: circuit reader is necessary > 0% by {name} ablation{source} on moved\n"
                       "circuit reader:\n  1.0\n")
    report = run_plan(compile_spec(parse_spec(text, "abl.sad"), planted), planted)
    node, whole = report.verdicts
    assert node.status in ("held", "failed") and whole.status in ("held", "failed"), whole.measured
    assert whole.details["ablation"] == name
    origin = {"none": name, "reference": kind.origin.format(set="moved:reference", n=32),
              "counterfactual": kind.origin.format(set="moved_swap", n=4)}[kind.source]
    assert origin in whole.details["reference"], whole.details["reference"]


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_task_metric_is_an_option_and_scores_circuits(planted, name):
    """Each registered metric is a valid `option metric`, a circuit claim under it reports it, and
    its F(M) is the mean of the metric's own score of each prompt's clean logits."""
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    metric = METRICS[name]
    assert metric.summary and Settings.check_one("metric", name) is None
    bound = "with kl <= 0.5" if metric.faithfulness == "divergence" else ">= 50%"
    text = PREAMBLE + (f"option confidence = none\noption metric = {name}\n"
                       f"claim whole: circuit planted_copy is faithful {bound} by zero ablation on copy\n")
    plan = compile_spec(parse_spec(text, "metric.sad"), planted)
    verdict = run_plan(plan, planted).verdicts[0]
    assert verdict.details["metric"] == name
    ev = PromptSetEvidence(planted, plan.prompt_sets["copy"].prompts, plan.options, 4)
    own = [metric.score(ev.acts(i).logits_end, ev.acts(i).logits_end, p.answer, p.against)
           for i, p in enumerate(ev.prompts)]
    assert verdict.details["F(M)"] == pytest.approx(sum(own) / len(own), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("option", "registry"), [("ablation", ABLATIONS), ("metric", METRICS)])
def test_an_unknown_name_is_refused_with_the_names_the_registry_has(option, registry):
    from sadlang.errors import SpecError, one_of
    from sadlang.plan.validate import spec_settings

    with pytest.raises(SpecError) as exc:
        spec_settings(parse_spec(f"model planted\noption {option} = no_such_name\n", "o.sad"))
    assert one_of(list(registry), quote=True) in exc.value.message and exc.value.span.line == 2


def test_there_is_one_grammar_file_and_the_parser_reads_it():
    """The grammar lives once, as package data; a second copy could drift (one did)."""
    from sadlang.lang.parser import grammar_text

    found = [p for p in ROOT.rglob("*.lark") if not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts)]
    assert found == [ROOT / "sadlang" / "grammar" / "sad.lark"]
    assert grammar_text() == found[0].read_text()


def test_option_errors_name_the_option_line_and_the_domain():
    from sadlang.errors import SpecError
    from sadlang.plan.validate import spec_settings

    for line, words in (("option batch_size = 0", "greater than or equal to 1"),
                        ("option threshold = 150%", "less than or equal to 1"),
                        ("option ig_steps = 1e9", "less than or equal to 4096"),
                        ("option device = tpu", "'auto', 'cpu' or 'cuda'"),
                        ("option seed = -1", "greater than or equal to 0")):
        with pytest.raises(SpecError) as exc:
            spec_settings(parse_spec(f"model planted\n{line}\n", "o.sad"))
        assert exc.value.span.line == 2 and words in exc.value.message, exc.value.message


# floors, lowest first; a module may import its own floor and those below, never above
LAYERS = [["errors", "runtime"], ["lang"], ["models", "prompts", "stats"], ["decomp"], ["intervene"], ["trace"],
          ["evidence"], ["control", "circuits"], ["settings"], ["claims"], ["language", "plan"],
          ["runner", "strategies", "editor"], ["html"], ["api"], ["cli", "pytest_plugin", "notebook"]]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _imports(text: str, module: str) -> list[tuple[str, int]]:
    """(sadlang module, line) of every import in the source `text` of `module` (dotted): module
    level, inside functions and under TYPE_CHECKING alike (a deferred import still closes a loop)."""
    package = module.split(".")[:-1]           # the package a relative import starts from
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                out.append((".".join(base + ([node.module] if node.module else [])), node.lineno))
            elif node.module:
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return [(m, line) for m, line in out if m.startswith("sadlang.")]


def test_the_layer_list_names_every_package():
    tops = {p.relative_to(ROOT / "sadlang").with_suffix("").parts[0] for p in (ROOT / "sadlang").rglob("*.py")}
    assert tops - {"__init__", "__main__"} <= set(LAYER_OF), tops - set(LAYER_OF)


def test_no_layer_imports_a_higher_one():
    bad = []
    for path in sorted((ROOT / "sadlang").rglob("*.py")):
        parts = path.relative_to(ROOT / "sadlang").with_suffix("").parts
        if parts[0] in ("__init__", "__main__"):
            continue
        mine = LAYER_OF[parts[0]]
        for mod, line in _imports(path.read_text(), ".".join(("sadlang", *parts))):
            theirs = LAYER_OF[mod.split(".")[1]]
            if theirs > mine:
                bad.append(f"sadlang/{'/'.join(parts)}.py:{line} imports {mod}")
    assert bad == []


def test_the_import_reader_sees_deferred_and_type_checking_imports():
    """The checker must not be blind to what once hid a loop (a function-level import)."""
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sadlang.claims import KINDS\n"
            "def f():\n    from ..claims import RULES\n    from . import ast\n")
    assert [m for m, _ in _imports(text, "sadlang.lang.parser")] == [
        "sadlang.claims", "sadlang.claims", "sadlang.lang"]


def test_parsing_imports_no_tensor_code():
    import subprocess
    import sys

    code = ("import sys; from sadlang.language import parse_file; parse_file('specs/ioi.sad'); "
            "from sadlang.plan.validate import validate; validate(parse_file('specs/ioi.sad')); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_some_head_spans_cover_heads_in_layer_head_order_and_each_is_bonferroni_decided(planted):
    from sadlang.claims.some_head import HeadSpan
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    ref = parse_spec("model planted\nclaim a: head 0.2 attends end -> bos\n").claims[0].body.head
    span = HeadSpan(first=ref, last=ref.model_copy(update={"layer": 1, "head": 1}))
    assert span.heads(2, 4) == [(0, 2), (0, 3), (1, 0), (1, 1)]
    text = PREAMBLE + 'claim a: some head in 0.*-1.* attends end -> "x" with weight >= 0.9 on marker\n'
    v = run_plan(compile_spec(parse_spec(text, "some.sad"), planted), planted).verdicts[0]
    assert v.status == "held" and v.details["candidates"] == 8 and v.details["holding"] == ["1.0", "1.2"]
    assert v.details["per_head_confidence"] == pytest.approx(1 - 0.05 / 8)


@pytest.mark.parametrize(("claim", "words"), [
    ('some head in 1.*-0.* attends end -> "x"', "runs backwards"),
    ('some head in 0.*-7.* attends end -> "x"', "layer 7 is out of range"),
])
def test_some_head_spans_are_checked(planted, claim, words):
    from sadlang.errors import SpecError
    from sadlang.plan.compile import compile_spec

    with pytest.raises(SpecError) as exc:
        compile_spec(parse_spec(PREAMBLE + f"claim a: {claim} on marker\n", "some.sad"), planted)
    assert words in exc.value.message


def test_heads_are_names_exactly_the_heads_that_hold(planted):
    from sadlang.errors import SpecError
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    def verdict(listed):
        text = PREAMBLE + ('claim a: heads in 0.*-1.* that attend end -> "x" with weight >= 0.9 '
                           f'are {listed} on marker\n')
        return run_plan(compile_spec(parse_spec(text, "are.sad"), planted), planted).verdicts[0]

    held = verdict("1.0, 1.2")
    assert held.status == "held" and held.interval is not None and held.interval.lo > 0     # backed by an interval
    missing = verdict("1.0")
    assert missing.status == "failed" and "1.2 holds" in missing.measured
    extra = verdict("1.0, 1.2, 0.1")
    assert extra.status == "failed" and "0.1 fails" in extra.measured
    with pytest.raises(SpecError, match=r"0\.0 is not among the candidates 1\.\*"):
        compile_spec(parse_spec(PREAMBLE + 'claim a: heads in 1.* that fire at end -> "x" are 1.0 on marker\n'
                                .replace("1.0 on", "0.0 on"), "are.sad"), planted)
