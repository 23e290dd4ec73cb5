"""The pytest plugin, driven by pytester: passing, failing and broken specs."""

pytest_plugins = ["pytester"]

GOOD = '''model planted
pool names = " Mary" " John" " Alice"
prompts p:
  template "When{A} went to the x,{B} and{A} said"
  A, B from names distinct
  answer "{A}" against "{B}"
  sample 3 seed 0
claim reads: head 1.0 attends end -> "x" with weight >= 0.9
claim edge:  edge 0.0 -> 1.0 via key at end -> "x"
'''
BAD = GOOD.replace('claim edge:  edge 0.0 -> 1.0 via key at end -> "x"',
                   'claim wrong: head 1.0 attends end -> bos with weight >= 0.5')
BROKEN = GOOD.replace("claim reads:", "claim reads ")


def test_plugin_collects_runs_and_reports(pytester):
    pytester.makefile(".sad", good=GOOD, bad=BAD, broken=BROKEN)
    result = pytester.runpytest_subprocess("-v", "--continue-on-collection-errors")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    out = result.stdout.str()
    assert "good.sad::reads PASSED" in out and "good.sad::edge PASSED" in out
    assert "bad.sad::wrong FAILED" in out
    assert "measured: held in 0% of 3 prompts" in out
    assert "broken.sad:8:14: error:" in out


def test_plugin_selects_claims_with_k(pytester):
    pytester.makefile(".sad", good=GOOD)
    result = pytester.runpytest_subprocess("-k", "edge")
    result.assert_outcomes(passed=1)


def test_plugin_works_with_xdist(pytester):
    pytester.makefile(".sad", good=GOOD, bad=BAD)
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=3, failed=1)


def test_an_inconclusive_claim_fails_unless_allowed(pytester):
    unsure = GOOD.replace('claim edge:  edge 0.0 -> 1.0 via key at end -> "x"',
                          'claim unsure: head 1.0 attends end -> "x" with weight >= 0.9 in >= 80% of prompts')
    pytester.makefile(".sad", unsure=unsure)
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1, failed=1)
    assert "INCONCLUSIVE unsure" in result.stdout.str()
    allowed = pytester.runpytest_subprocess("-v", "--sad-allow-inconclusive")
    allowed.assert_outcomes(passed=1, skipped=1)
