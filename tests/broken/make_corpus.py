"""Writes corpus.txt: broken specs, one per validation rule plus variations. Each case is the
base spec (planted model) with one change; `‸` marks where the error must point, written by
hand with the change (not read back from sadlang). Re-run after adding cases:
`python tests/broken/make_corpus.py`."""

from pathlib import Path

BASE = '''model planted
method acc
pool names = " Mary" " John" " Alice"
pool things = " store" " garden"
prompts p:
  template "When{A} went to the x,{B} and{A} said"
  A, B from names distinct
  answer "{A}" against "{B}"
  sample 3 seed 0
claim reads: head 1.0 attends end -> "x" with weight >= 0.9
'''
CLAIM = 'claim reads: head 1.0 attends end -> "x" with weight >= 0.9\n'
cases: list[tuple[str, str]] = []


def claim(name: str, line: str) -> None:
    """Replace the claim with `claim c: LINE` (the marker inside LINE)."""
    cases.append((name, BASE.replace(CLAIM, f"claim c: {line}\n")))


def change(name: str, old: str, new: str) -> None:
    assert old in BASE, old
    cases.append((name, BASE.replace(old, new, 1)))


# -- out-of-domain and vacuous comparisons, by claim kind
for v in ("1.5", "-0.1", "2", "100", "1.0001"):
    claim(f"weight_out_of_domain_{v}", f'head 1.0 attends end -> "x" with weight ‸>= {v}')
for cmp, v in ((">=", "0"), ("<=", "1"), (">", "1"), ("<", "0"), (">=", "0.0"), ("==", "1.5")):
    claim(f"weight_vacuous_{cmp}_{v}", f'head 1.0 attends end -> "x" with weight ‸{cmp} {v}')
for q in ("in >= 120% of prompts", "in at most 150% of prompts", "in >= 0% of prompts",
          "in <= 100% of prompts", "in > 100% of prompts", "in < 0% of prompts", "in at most 100% of prompts",
          "in == 101% of prompts", "in >= 200 of prompts", "in > 1.0 of prompts"):
    claim(f"share_{q}", f'head 1.0 attends end -> "x" with weight >= 0.5 ‸{q}')
for v in ("1.5", "2", "-0.5"):
    claim(f"accuracy_{v}", f"accuracy ‸>= {v}")
claim("accuracy_always", "accuracy ‸>= 0")
claim("accuracy_never", "accuracy ‸> 1")
for v in ("1.5", "-1", "2"):
    claim(f"frequency_{v}", f"circuit of p at frequency ‸{v} contains 1.0")
for b in ("precision ‸>= 1.2", "recall ‸>= -0.1", "f1 ‸> 1", "f1 ‸>= 0", "precision ‸< 0"):
    claim(f"matches_{b.split()[0]}_{b.split()[-1]}", f"circuit of p matches 1.0 with {b}")
claim("matches_twice", "circuit of p matches 1.0 with f1 >= 0.5, f1 ‸>= 0.6")
for v in ("1.5", "-2", "3"):
    claim(f"stable_{v}", f'signal 0.0 -> 1.0 via key at end -> "x" stable ‸>= {v}')
claim("stable_always", 'signal 0.0 -> 1.0 via key at end -> "x" stable ‸>= -1')
claim("rank_zero", 'signal 0.0 -> 1.0 via key at end -> "x" rank ‸<= 0')
claim("rank_always", 'signal 0.0 -> 1.0 via key at end -> "x" rank ‸>= 1')
for v in ("2", "-1.5", "1.01"):
    claim(f"attention_change_{v}", f'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by ‸>= {v}')
claim("attention_change_always", 'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by ‸>= -1')
for v in ("1e9", "100000", "20000"):
    claim(f"beats_{v}", f'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by >= 0.1 and beats '
                        f"random by ‸>= {v}x")
claim("beats_no_cmp_huge", 'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by >= 0.1 ‸and '
                           "beats random by 1e9x")
claim("beats_always", 'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers attention by >= 0.1 and beats '
                      "random by ‸>= 0x")
for v in ("-1", "0", "-0.5"):
    claim(f"boost_factor_{v}", f'‸boost edge 0.0 -> 1.0 via key at end -> "x" global by {v}x raises logit_diff by >= 0')
claim("ablate_with_factor", '‸ablate edge 0.0 -> 1.0 via key at end -> "x" local by 2x lowers attention by >= 0.1')
claim("offset_global", 'ablate edge ‸offset -> 1.0 via key at end -> "x" global lowers attention by >= 0.1')
for v in ("2", "-3", "1.5"):
    claim(f"control_drop_{v}", f"ablate control signal of 1.0 lowers attention to bos by ‸>= {v}")
claim("control_drop_never", "ablate control signal of 1.0 lowers attention to bos by ‸> 1")
claim("shared_twice", "control signal of 1.0 is shared with 1.2, ‸1.2")
claim("shared_self", "control signal of 1.0 is shared with ‸1.0")

# -- non-finite numbers anywhere
for line in ('head 1.0 attends end -> "x" with weight >= ‸1e999', "accuracy >= ‸1e999", "logit_diff > ‸-1e999",
             "mean logit_diff > ‸1e400", "circuit of p at frequency ‸1e999 contains 1.0",
             'signal 0.0 -> 1.0 via key at end -> "x" stable >= ‸1e999',
             'ablate edge 0.0 -> 1.0 via key at end -> "x" local lowers logit_diff by >= ‸1e999',
             'boost edge 0.0 -> 1.0 via key at end -> "x" global by ‸1e999x raises logit_diff by >= 0'):
    claim(f"not_finite_{len(cases)}", line)
change("option_not_finite", "method acc\n", "method acc\noption sink_share = ‸1e999\n")
change("percent_not_finite", "method acc\n", "method acc\noption sink_share = ‸" + "9" * 400 + "%\n")

# -- ordinals, roles and positions (resolved in every prompt)
for pos in ("A‸#0", "B‸#0"):
    claim(f"ordinal_{pos}", f"head 1.1 fires at {pos} -> bos")
for line in ("head 1.1 fires at ‸A#3 -> A", "head 1.1 fires at ‸B#2 -> A", "head 1.1 fires at end -> ‸bos-1",
             "head 1.1 fires at ‸end+1 -> A", "head 1.1 fires at end -> ‸A+40", "head 1.1 fires at end -> ‸A-9",
             'head 1.1 fires at end -> ‸"zebra"', 'head 1.1 fires at end -> ‸"store"',
             "head 1.1 fires at end -> ‸C", "head 1.1 fires at ‸IO -> bos",
             'edge 0.0 -> 1.0 via key at end -> ‸"y"', "head 1.0 sinks to ‸A#3",
             "head 1.0 sinks to ‸end-40", 'ablate control signal of 1.0 lowers attention to ‸"zzz" by >= 0.1'):
    claim(f"role_{len(cases)}", line)
for line in ("head 1.1 fires at ‸A -> end", "head 1.1 attends ‸bos -> A", "edge 0.1 -> 1.1 at ‸A -> A#2",
             'signal 0.0 -> 1.0 at ‸A -> "x" rank <= 2', "head 1.0 attends ‸A -> B with weight >= 0.1"):
    claim(f"source_after_destination_{len(cases)}", line)
claim("sink_to_end", "head 1.0 sinks to ‸end")
claim("sink_to_end_shift", "head 1.0 sinks to ‸end+0")
claim("control_to_end", "ablate control signal of 1.0 lowers attention to ‸end by >= 0.1")

# -- heads and layers against the model
for line in ("head ‸2.0 fires at end -> bos", "head ‸1.7 fires at end -> bos", "head ‸9.9 fires at end -> bos",
             "edge ‸mlp 5 -> 1.0 at end -> bos", "edge ‸bias 3 -> 1.0 at end -> bos",
             "control signal of 1.0 is shared with ‸4.0", "circuit of p contains ‸7.0"):
    claim(f"head_range_{len(cases)}", line)
claim("pattern_where_concrete", 'head ‸1.* attends end -> "x" with weight >= 0.5')

# -- declarations made twice
change("model_twice", "method acc\n", "method acc\nmodel ‸tiny-gpt2\n")
change("method_twice", "method acc\n", "method acc\nmethod ‸sad\n")
change("option_twice", "method acc\n", "method acc\noption seed = 1\n‸option seed = 2\n")
change("pool_twice", 'pool things = " store" " garden"\n', 'pool things = " store" " garden"\n‸pool names = " Bob"\n')
change("prompts_twice", "claim reads:", 'prompts q:\n  template "When{A} went"\n  A from names\n  answer "{A}"\n'
                                        '‸prompts p:\n  prompt " When Mary went"\nclaim reads:')
change("claim_twice", CLAIM, CLAIM + '‸claim reads: head 1.0 attends end -> "x" with weight >= 0.8\n')
change("answer_twice", '  sample 3 seed 0\n', '  sample 3 seed 0\n  ‸answer "{B}" against "{A}"\n')
change("sample_twice", '  sample 3 seed 0\n', '  sample 3 seed 0\n  ‸sample 4\n')
change("slot_twice", "  A, B from names distinct\n", "  A, B from names distinct\n  ‸A from things\n")
change("slot_twice_same_line", "  A, B from names distinct\n", "  ‸A, A from names\n  B from names\n")

# -- templates
for tpl in ('"When‸{A went to the x,{B} and{A} said"', '"When{A} went to the x,‸{} and{A} said"',
            '"When{A} went to the x,‸{1} and{A} said"', '"When{A} went‸} to the x,{B} and{A} said"',
            '"When{A} went to the x,{B} and‸{A said"', '"When{A} went to the x,‸{ B} and{A} said"',
            '"When{A} went to the x,‸{B-1} and{A} said"', '"When{A} went to the x,‸{names} and{A} said"',
            '"When{A} went to the x,{B} and‸{Ä} said"', '"‸{"'):
    change(f"template_{len(cases)}", '"When{A} went to the x,{B} and{A} said"', tpl)
change("slot_without_pool", '  template "When{A} went to the x,{B} and{A} said"\n',
       '  template "When{A} went to the x,{B} and{A} said"\n  template "When‸{C} went"\n')
change("literal_with_slot", '  sample 3 seed 0\n', '  sample 3 seed 0\n  ‸prompt " When{A} went"\n')
change("answer_unbalanced", 'answer "{A}" against "{B}"', '‸answer "{A" against "{B}"')
change("answer_unknown_slot", 'answer "{A}" against "{B}"', '‸answer "{C}" against "{B}"')

# -- resource bounds and counts
for n in ("0", "10001", "10000000", "99999999999999999999"):
    change(f"sample_{n}", "  sample 3 seed 0\n", f"  ‸sample {n} seed 0\n")
for n in ("0", "1001", "1000000000"):
    claim(f"forall_{n}", f'head 1.0 attends end -> "x" with weight >= 0.5 ‸forall up to {n} prompts')
change("pool_too_small", "  A, B from names distinct\n", '  ‸A, B from small distinct\n')

# -- circuits and counterfactual sets
claim("node_ablate_forall", "ablate head 1.0 zero lowers logit_diff by >= 0.5 ‸forall up to 10 prompts")
claim("unknown_circuit", "‸circuit nope is faithful >= 80%")
claim("resample_without_set", "‸circuit c1 is faithful >= 80% by resample ablation")
change("circuit_node_pattern", CLAIM, "circuit c1:\n  ‸1.* at end\n" + CLAIM)
change("circuit_node_twice", CLAIM, "circuit c1:\n  1.0\n  ‸1.0\n" + CLAIM)
change("circuit_head_range", CLAIM, "circuit c1:\n  ‸3.0\n" + CLAIM)
change("circuit_node_role", CLAIM,
       "circuit c1:\n  1.0 at ‸C\nclaim c: circuit c1 is faithful >= 80% by zero ablation\n")
change("circuit_traced_from_nowhere", CLAIM, "‸circuit t = trace of zz\n" + CLAIM)
change("circuit_twice", CLAIM, "circuit c1:\n  1.0\n‸circuit c1:\n  0.0\n" + CLAIM)
change("counterfactual_unknown_slot", CLAIM, "prompts q from p:\n  ‸resample C\n" + CLAIM)
change("counterfactual_no_change", CLAIM, "‸prompts q from p:\n  sample 3\n" + CLAIM)
change("resample_outside_counterfactual", "  sample 3 seed 0\n", "  sample 3 seed 0\n  ‸resample A\n")

# -- options
for line, at in (("option batch_size = 0", 1), ("option batch_size = -1", 1), ("option seed = -1", 1),
                 ("option threshold = 1.5", 1), ("option threshold = 150%", 1), ("option ig_steps = 1e9", 1),
                 ("option ig_steps = 1", 1), ("option sink_share = -0.1", 1), ("option device = tpu", 1),
                 ("option random_draws = 0", 1), ("option treshold = 0.3", 1), ("option seed = 0.5", 1),
                 ("option batch_size = \"big\"", 1), ("option term_fraction = 0", 1), ("option edge_fraction = 2", 1),
                 ("option accpp_scale = -1", 1), ("option control_consistency = 1.5", 1),
                 ("option prototype_cut = 3", 1), ("option max_prompts = 0", 1), ("option max_search = -5", 1)):
    change(f"option_{len(cases)}", "method acc\n", f"method acc\n{line[:at - 1]}‸{line[at - 1:]}\n")
change("unknown_method", "method acc\n", "method ‸acx\n")
change("unknown_pool", "  A, B from names distinct\n", "  ‸A, B from nmes distinct\n")
change("undefined_prompt_set", CLAIM, 'claim reads: head 1.0 attends end -> "x" with weight >= 0.9 on zz\n')
cases[-1] = (cases[-1][0], cases[-1][1].replace("claim reads:", "‸claim reads:"))

# -- files: no claims, indentation, escapes
cases.append(("empty", "‸"))
cases.append(("whitespace_only", "‸   \n\n\t\n"))
cases.append(("comments_only", "‸# nothing here\n# at all\n"))
cases.append(("declarations_only", "‸" + BASE.replace(CLAIM, "")))
change("dedent_mismatch", "  A, B from names distinct\n", "‸ A, B from names distinct\n")
change("indent_too_deep_then_back", '  answer "{A}" against "{B}"\n', '    answer "{A}" against "{B}"\n‸ sample 3\n')
change("mixed_tabs", "  A, B from names distinct\n", "‸ \tA, B from names distinct\n")
change("bad_escape", 'pool names = " Mary" " John" " Alice"', 'pool names = " Mary" ‸" Jo\\qhn" " Alice"')
change("bad_escape_x", 'pool names = " Mary" " John" " Alice"', 'pool names = " Mary" ‸"\\x4" " Alice"')
change("nul_escape", 'pool names = " Mary" " John" " Alice"', 'pool names = " Mary" ‸" Jo\\x00hn" " Alice"')

# -- variations of the above on other prompt positions and kinds (the same rules, elsewhere)
for v in ("1.1", "5", "-0.01"):
    claim(f"weight_on_other_claim_{v}", f"head 1.1 attends A#2 -> A with weight ‸>= {v}")
for q in ("in >= 101% of prompts", "in at most 300% of prompts"):
    claim(f"share_edge_{q}", f'edge 0.0 -> 1.0 via key at end -> "x" ‸{q}')
for pos in ("‸A#5", "‸B+20", "‸bos-3"):
    claim(f"edge_role_{pos}", f"edge 0.1 -> 1.1 via query at {pos} -> bos")
for v in ("-1.2", "1.2"):
    claim(f"control_drop_cmp_{v}", f"ablate control signal of 1.0 lowers attention to bos by ‸<= {v}")

Path(__file__).with_name("corpus.txt").write_text(
    "".join(f"=== {name}\n{text}" + ("" if text.endswith("\n") or not text else "\n") for name, text in cases))
print(len(cases), "cases")
