"""Property search over templates: find and shrink a counterexample on the planted model."""

from hypothesis import given, settings

from sadlang.runner.executor import load_and_compile, run_plan
from sadlang.strategies import prompts_from

SPEC = '''model planted
pool names = " Mary" " John" " Alice" " Bob"
pool things = " store" " garden" " school" " x"
prompts p:
  template "When{A} and{B} went to the{thing}, they said"
  template "Then{B} and{A} went to the{thing}, they said"
  A, B from names distinct
  thing from things
  answer "{A}" against "{B}"
  sample 3 seed 0
'''


def test_search_finds_and_shrinks_the_failing_pool_value(tmp_path):
    # 1.0 sinks to BOS unless the marker " x" is in the prompt: the claim fails only for " x"
    p = tmp_path / "s.sad"
    p.write_text(SPEC + "claim sinks: head 1.0 attends end -> bos with weight >= 0.5 forall up to 60 prompts\n")
    _, model, plan = load_and_compile(p)
    v = run_plan(plan, model).verdicts[0]
    assert v.status == "failed"
    c = v.counterexample
    assert c is not None and " x," in c.text
    assert c.text == "When Mary and John went to the x, they said"   # earliest values, first template
    assert "tokens" in c.detail and "roles" in c.detail


def test_search_passes_a_claim_that_holds_everywhere(tmp_path):
    p = tmp_path / "s.sad"
    p.write_text(SPEC + "claim dup: head 0.0 attends end -> end with weight >= 0.9 forall up to 30 prompts\n")
    _, model, plan = load_and_compile(p)
    v = run_plan(plan, model).verdicts[0]
    assert v.status == "held" and v.counterexample is None and v.details["searched"] >= 10


def test_strategy_is_usable_from_python(tmp_path):
    p = tmp_path / "s.sad"
    p.write_text(SPEC + "claim x: logit_diff > -1000\n")
    seen = []

    @settings(max_examples=15, deadline=None, database=None)
    @given(prompts_from(str(p), "p"))
    def check(prompt):
        assert prompt.roles["A"][0] < len(prompt.tokens)
        assert prompt.answer is not None and prompt.against is not None
        seen.append(prompt.text)

    check()
    assert len(seen) >= 10


def test_explore_reports_counterexamples_for_any_per_prompt_claim(tmp_path):
    p = tmp_path / "s.sad"
    p.write_text(SPEC + "claim share: head 1.0 attends end -> bos with weight >= 0.5 in >= 50% of prompts\n"
                        "claim all: head 1.0 attends end -> bos with weight >= 0.5\n")
    _, model, plan = load_and_compile(p)
    share, every = run_plan(plan, model, explore=40).verdicts
    assert share.counterexample is not None and every.counterexample is not None
    assert every.status == "failed"                   # a counterexample breaks "in all prompts"
    assert "search found a counterexample" in share.measured


LITERAL = '''model planted
prompts p:
  prompt "When Mary went to the x, John said" answer " x" against " y"
  prompt "When John went to the x, Mary said" answer " x" against " y"
claim a: head 1.0 attends end -> "x" with weight >= 0.5{quantifier} on {pset}
'''


def test_forall_on_a_set_that_draws_no_new_prompts_is_a_spec_error():
    """A literal set has nothing to search: forall would silently mean
    `in all prompts`, so it is refused, saying why."""
    import pytest

    from sadlang.errors import SpecError
    from sadlang.language import parse_spec
    from sadlang.plan.validate import validate

    with pytest.raises(SpecError) as exc:
        validate(parse_spec(LITERAL.format(quantifier=" forall up to 20 prompts", pset="p"), "lit.sad"))
    assert exc.value.span.line == 5 and "prompt set 'p' has only literal prompts" in exc.value.message
    assert "write `in all prompts`" in exc.value.message


def test_explore_says_when_a_set_draws_no_new_prompts(tmp_path):
    path = tmp_path / "lit.sad"
    path.write_text(LITERAL.format(quantifier="", pset="p"))
    _, model, plan = load_and_compile(path)
    v = run_plan(plan, model, explore=10).verdicts[0]
    assert v.details["searched"] == 0 and "--explore searched nothing: prompt set 'p' has only literal" in v.measured


def test_a_failing_search_shrinks_in_a_few_shared_passes(tmp_path):
    """Shrinking measures each round's candidates together: a failing search of 60 prompts costs a
    few batched passes more than a passing one of the same size, not one pass per candidate."""
    from sadlang.decomp.activations import ForwardCounter

    def passes(claim: str) -> tuple[int, object]:
        p = tmp_path / "s.sad"
        p.write_text(SPEC + claim)
        _, model, plan = load_and_compile(p)
        before = ForwardCounter.calls
        v = run_plan(plan, model).verdicts[0]
        return ForwardCounter.calls - before, v

    held, v_held = passes("claim ok: head 0.0 attends end -> end with weight >= 0.9 forall up to 60 prompts\n")
    failed, v_failed = passes("claim sinks: head 1.0 attends end -> bos with weight >= 0.5 forall up to 60 prompts\n")
    assert v_held.status == "held" and v_failed.status == "failed"
    tried = v_failed.details["searched"] - 60
    assert tried > 0                                          # candidates were measured ...
    assert failed - held <= 3 * 4                             # ... in a few rounds of a few passes each
    assert failed - held < tried


def test_shrink_steps_are_every_simpler_point_in_order():
    from sadlang.language import parse_spec
    from sadlang.runner.shrink import Space

    spec = parse_spec(SPEC)
    space = Space(spec, spec.prompt_sets["p"])
    start = (1, ((2, 0), (3,)))                  # second template, A=Alice B=Mary, thing=x
    steps = space.simpler(start)
    assert steps == sorted(steps) and start not in steps
    assert (0, ((2, 0), (3,))) in steps                        # an earlier template
    assert (1, ((1, 0), (3,))) in steps and (1, ((0, 0), (3,))) not in steps   # A, B stay distinct
    assert {(1, ((2, 0), (k,))) for k in range(3)} <= set(steps)              # every earlier thing
    assert all(a != b for _, ((a, b), _) in steps)
    t, assignment = space.assignment(start)
    assert t == 1 and assignment == {"A": " Alice", "B": " Mary", "thing": " x"}
    assert space.point_of(t, assignment) == start


def test_shrink_of_a_paired_pool_moves_whole_pairs():
    from sadlang.language import parse_spec
    from sadlang.runner.shrink import Space

    spec = parse_spec('''model planted
pool cities = " Paris": " France", " Rome": " Italy", " Oslo": " Norway"
prompts p:
  template "{C} is in{K}"
  C, K from cities
''')
    space = Space(spec, spec.prompt_sets["p"])
    point = space.point_of(0, {"C": " Oslo", "K": " Norway"})
    assert point == (0, ((2,),))
    assert space.simpler(point) == [(0, ((0,),)), (0, ((1,),))]
    assert space.assignment((0, ((1,),)))[1] == {"C": " Rome", "K": " Italy"}
