"""Circuits tested whole: node ablations against hand-written TransformerLens hooks, the planted
circuit's ground truth, counterfactual sets, declared and traced circuits, the CLI."""

import pytest
import torch

from sadlang.cli import main
from sadlang.language import parse_spec
from sadlang.models.families import tiny_models

SPEC = '''model {model}
pool names = " Mary" " John" " Alice" " Bob" " Tom" " Kate"
prompts copy:
  template "When{{A}} went to the x,{{B}} said"
  template "Then{{A}} and{{B}} went to the x, and{{A}} said"
  A, B from names distinct
  answer " x" against " y"
  sample 6 seed 0
prompts abc from copy:
  resample A, B
prompts sw from copy:
  swap A B
circuit pair:
  1.0 at end -> "x"
  0.0
circuit traced = trace of copy at frequency 0.5 top 4 edges
claim ok: logit_diff > -1000 on copy
'''

# one tiny model per family the decomposition supports (tests/test_families.py)
FAMILIES = tiny_models()
# path patching moves one head's write through the residual: refused under Gemma's post-norm
PATCHABLE = tiny_models(rewirable=True)


def _lab(model_name, kind, cf=None):
    from sadlang.circuits.metrics import CircuitLab
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import prepare, run_plan  # noqa: F401  (the executor wires workspaces)

    model = load_model(model_name)
    plan = compile_spec(parse_spec(SPEC.format(model=model_name), "c.sad"), model)
    stores = {n: PromptSetEvidence(model, ps.prompts, plan.options, 4) for n, ps in plan.prompt_sets.items()}
    return model, plan, stores, CircuitLab(stores["copy"], kind, stores.get(cf) if cf else None, 4)


@pytest.mark.parametrize("model_name", ["planted", *FAMILIES])
def test_head_outputs_equal_the_hooked_z(model_name):
    from sadlang.circuits.ablation import head_z

    model, _, stores, _ = _lab(model_name, "zero")
    ev = stores["copy"]
    for i in range(len(ev)):
        _, cache = model.bridge.run_with_cache(ev.acts(i).tokens[None], names_filter=lambda n: n.endswith("hook_z"))
        hooked = torch.stack([cache[f"blocks.{l}.attn.hook_z"][0] for l in range(model.info.n_layers)])
        # batched vs single runs differ in float32 rounding, relative to the activations' size
        assert torch.allclose(head_z(ev.acts(i), model), hooked, atol=1e-5 * max(1.0, float(hooked.abs().max())))


def _by_hand(model, ev, i, layer, head, z_ref):
    """Logits at the end with head (layer, head)'s output replaced by z_ref (n, r) at every
    position, written as a hook on the attention output: add (z_ref - z) W_O for that head
    (before Gemma's post-attention norm, which then sees the edited output)."""
    tokens = ev.acts(i).tokens[None]
    _, cache = model.bridge.run_with_cache(tokens, names_filter=lambda n: n == f"blocks.{layer}.attn.hook_z")
    z = cache[f"blocks.{layer}.attn.hook_z"][0, :, head]                     # (n, r)
    delta = (z_ref - z) @ model.bridge.W_O[layer, head]                      # (n, D)

    def patch(x, hook):
        return x + delta[None].to(x.dtype)

    where = "attn.hook_out" if model.weights.post_norm else "hook_attn_out"
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(f"blocks.{layer}.{where}", patch)]):
        return model.bridge(tokens)[0, -1].float()


@pytest.mark.parametrize("model_name", ["planted", *FAMILIES])
@pytest.mark.parametrize("kind,cf", [("mean", None), ("resample", "abc"), ("zero", None)])
def test_node_ablation_equals_a_hand_written_hook_ablation(model_name, kind, cf):
    from sadlang.circuits.ablation import Row, head_z, run_rows
    from sadlang.circuits.nodes import keep_mask

    model, _, stores, lab = _lab(model_name, kind, cf)
    ev, info = stores["copy"], model.info
    layer, head = info.n_layers - 1, 1
    for i in range(len(ev)):
        n = len(ev.prompts[i].tokens)
        rows = [Row(i, keep_mask([(layer, head, None)], (info.n_layers, n, info.n_heads), keep_nodes=False))]
        ours = run_rows(ev, rows, lab.values, 4)[0]
        if kind == "zero":
            ref = torch.zeros(n, info.d_head)
        elif kind == "resample":
            ref = head_z(stores["abc"].acts(i), model)[layer, :, head]
        else:
            # without a reference set the set is its own reference, each prompt left out of its mean
            p = ev.prompts[i]
            others = [j for j, q in enumerate(ev.prompts) if len(q.tokens) == len(p.tokens) and q.tokens != p.tokens]
            same = [j for j in others if ev.prompts[j].template_index == p.template_index] or others
            ref = torch.stack([head_z(ev.acts(j), model)[layer, :, head] for j in same]).mean(0)
        theirs = _by_hand(model, ev, i, layer, head, ref)
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-5), float((ours - theirs).abs().max())


def test_keeping_every_head_is_the_clean_run_and_keeping_none_is_everything_ablated():
    from sadlang.circuits.metrics import mean

    model, _, stores, lab = _lab("tiny-llama", "mean")
    ev, info = stores["copy"], model.info
    every = [[(layer, h, None) for layer in range(info.n_layers) for h in range(info.n_heads)] for _ in ev.prompts]
    kept_all, removed_none = lab.run([(every, True), ([[] for _ in ev.prompts], False)])
    assert kept_all == pytest.approx(lab.clean(), abs=1e-4) and removed_none == pytest.approx(lab.clean(), abs=1e-4)
    kept_none, removed_all = lab.run([([[] for _ in ev.prompts], True), (every, False)])
    assert kept_none == pytest.approx(removed_all, abs=1e-5)
    assert abs(mean(kept_none) - mean(lab.clean())) > 1e-3          # and that is a different run


def _details(report, name):
    return next(v for v in report.verdicts if v.name == name)


def test_planted_circuit_ground_truth(planted, tmp_path):
    """Faithful >= 99%; removing either planted node drops faithfulness below 50%; a circuit
    missing one node fails; a random circuit of the same size fails; minimality names both."""
    from sadlang.runner.executor import load_and_compile, run_plan

    p = tmp_path / "gt.sad"
    p.write_text(SPEC.format(model="planted").replace("claim ok: logit_diff > -1000 on copy\n", '''circuit lone:
  1.0 at end -> "x"
claim faithful: circuit pair is faithful >= 99% by zero ablation on copy
claim missing:  circuit lone is faithful >= 80% by zero ablation on copy
claim random:   circuit pair beats random by >= 100x by zero ablation on copy
claim minimal:  circuit pair is minimal >= 50% by zero ablation on copy
claim complete: circuit pair is complete within 1% by zero ablation on copy
'''))
    _, model, plan = load_and_compile(p)
    report = run_plan(plan, model)
    faithful = _details(report, "faithful")
    assert faithful.held and faithful.value >= 0.99
    assert all(v < 0.5 for v in faithful.details["faithfulness without each node"].values())
    missing = _details(report, "missing")
    assert not missing.held and missing.value < 0.5
    random_ = _details(report, "random")
    assert random_.held and max(random_.details["random faithfulness"]) < 0.5
    minimal = _details(report, "minimal")
    assert minimal.held and set(minimal.details["node importance"]) == {'1.0 at end -> "x"', "0.0"}
    assert all(v >= 0.5 for v in minimal.details["node importance"].values())
    assert _details(report, "complete").held
    assert faithful.details["forward_passes"] <= 2 * 2      # C, M without C, 2 single-node variants: 2 length groups


def test_counterfactual_sets_align_with_their_source(planted):
    from sadlang.plan.compile import compile_spec

    plan = compile_spec(parse_spec(SPEC.format(model="planted"), "c.sad"), planted)
    clean, abc, sw = (plan.prompt_sets[n].prompts for n in ("copy", "abc", "sw"))
    for p, q, r in zip(clean, abc, sw):
        assert p.roles == q.roles == r.roles and len(p.tokens) == len(q.tokens) == len(r.tokens)
        assert q.assignment["A"] != p.assignment["A"] and q.assignment["B"] != p.assignment["B"]
        assert r.assignment["A"] == p.assignment["B"] and r.assignment["B"] == p.assignment["A"]
        assert q.template_index == p.template_index


def _spec_error(tmp_path, capsys, name: str, text: str) -> str:
    """stderr of `sadlang check` on `text` saved as `name`, which must be a spec error (exit 2)."""
    p = tmp_path / name
    p.write_text(text)
    assert main(["check", str(p)]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("change,where,words", [
    ("prompts abc from copy:\n  resample C\n", "10:3", "'C' is not a slot of 'copy'"),
    ("prompts abc from nope:\n  resample A\n", "9:1", "undefined prompt set 'nope'"),
    ("prompts abc from copy:\n  sample 3\n", "9:1", "only a `resample` or `swap` line"),
    ("prompts abc from copy:\n  swap A A\n", "10:3", "two different slots"),
    ("prompts abc from copy:\n  resample A\n  swap A B\n", "11:3", "changes its source once"),
])
def test_counterfactual_set_errors_point_at_the_line(tmp_path, capsys, change, where, words):
    text = SPEC.format(model="planted").replace("prompts abc from copy:\n  resample A, B\n", change)
    err = _spec_error(tmp_path, capsys, "cf.sad", text)
    assert f"cf.sad:{where}: error:" in err and words in err, err


@pytest.mark.parametrize("claim,words", [
    ("circuit nope is faithful >= 80%", "undefined circuit 'nope'"),
    ("circuit pair is faithful >= 80% by resample ablation", "needs its counterfactual prompts"),
    ("circuit pair is faithful >= 80% by resample ablation from copy", "not a counterfactual of 'copy'"),
    ("circuit pair is faithful >= 80% by mean ablation from abc", "only applies to resample"),
    ("circuit pair beats random by >= 1e6x", "outside the domain"),
    ("ablate head 1.0 zero lowers attention by >= 0.1", "measured on logit_diff"),
    ("boost head 1.0 lowers logit_diff by >= 0.1", "ablated, not boosted"),
])
def test_circuit_claim_errors(tmp_path, capsys, claim, words):
    text = SPEC.format(model="planted").replace("claim ok: logit_diff > -1000 on copy", f"claim c: {claim}")
    err = _spec_error(tmp_path, capsys, "cc.sad", text)
    assert "cc.sad:17:" in err and words in err, err


def test_circuit_cli_prints_declared_and_traced_circuits(tmp_path, capsys):
    p = tmp_path / "c.sad"
    p.write_text(SPEC.format(model="planted"))
    assert main(["circuit", str(p), "pair"]) == 0
    out = capsys.readouterr().out
    assert "nodes    2 (2 heads in 2 layers)" in out and '1.0 at end -> "x"' in out
    assert main(["circuit", str(p), "traced"]) == 0
    out = capsys.readouterr().out
    assert "traced   from copy (6 prompts) at frequency 0.5, top 4 edges" in out and "0.0" in out and "1.0" in out
    assert main(["circuit", str(p), "nope"]) == 2
    assert "circuits: pair, traced" in capsys.readouterr().err


def test_path_patch_from_the_clean_prompts_is_the_clean_run():
    from sadlang.circuits.paths import patched_logits

    _, _, stores, _ = _lab("tiny-llama", "mean")
    ev = stores["copy"]
    for side in ("query", "key"):
        logits = patched_logits(ev, ev, (1, 0), (3, 2), side, 4)
        assert torch.allclose(logits, torch.stack([ev.acts(i).logits_end for i in range(len(ev))]), atol=1e-5)


@pytest.mark.parametrize("model_name", PATCHABLE)
def test_path_patch_score_change_matches_the_hooked_rotated_queries_and_keys(model_name):
    """The query-side (key-side) score change equals what the model's own hook_rot_q (hook_rot_k,
    or hook_q/hook_k without RoPE) give when the receiver layer's normalized input carries the
    sender's counterfactual output (norm scale frozen), dotted with the clean keys (queries)."""
    from sadlang.circuits.ablation import head_z
    from sadlang.circuits.paths import score_delta

    model, _, stores, _ = _lab(model_name, "mean")
    ev, cf = stores["copy"], stores["abc"]
    (ls, hs), (lr, hr) = (1, 0), (3, 2)
    from sadlang.decomp.rope import apply_rope

    w = model.weights
    # NeoX's bridge has no hook_rot_q/k: rotate its hook_q/k with the model's own cos/sin tables
    rot = "rot_" if w.rotary and model.info.architecture != "gpt_neox" else ""
    names = {f"blocks.{lr}.attn.hook_{rot}q", f"blocks.{lr}.attn.hook_{rot}k"}
    for i in range(len(ev)):
        clean, twin = ev.acts(i), cf.acts(i)
        dx = ((head_z(twin, model) - head_z(clean, model))[ls, :, hs] @ w.W_O[ls, hs]) / clean.ln_scale[lr][:, None]
        tokens = clean.tokens[None]
        _, base = model.bridge.run_with_cache(tokens, names_filter=lambda n: n in names)

        def patch(x, hook, dx=dx):
            return x + dx[None].to(x.dtype)

        with model.bridge.hooks(fwd_hooks=[(f"blocks.{lr}.ln1.hook_normalized", patch)]):
            _, moved = model.bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
        qn, kn = f"blocks.{lr}.attn.hook_{rot}q", f"blocks.{lr}.attn.hook_{rot}k"
        q0, k0 = base[qn][0, :, hr], base[kn][0, :, w.kv(hr)]
        q1, k1 = moved[qn][0, :, hr], moved[kn][0, :, w.kv(hr)]
        if w.rotary and not rot:
            q0, k0, q1, k1 = (apply_rope(t, clean.cos, clean.sin) for t in (q0, k0, q1, k1))
        want_q = (q1 - q0) @ k0.T / w.attn_scale
        want_k = q0 @ (k1 - k0).T / w.attn_scale
        assert torch.allclose(score_delta(model, clean, twin, (ls, hs), (lr, hr), "query"), want_q, atol=1e-4)
        assert torch.allclose(score_delta(model, clean, twin, (ls, hs), (lr, hr), "key"), want_k, atol=1e-4)


def test_one_head_z_is_that_head_of_head_z():
    from sadlang.circuits.ablation import head_z, one_head_z

    model, _, stores, _ = _lab("tiny-llama", "zero")
    acts = stores["copy"].acts(0)
    for layer, head in ((0, 0), (2, 3), (3, 1)):
        assert torch.allclose(one_head_z(acts, model, layer, head), head_z(acts, model)[layer, :, head], atol=1e-6)


EDGE_LEVEL = '''circuit wired:
  0.0
  1.0 at end -> "x"
  edge 0.0 -> 1.0 via key
  edge 0.0 -> 1.0 via value
  edge 1.0 -> logits
circuit no_value:
  0.0
  1.0 at end -> "x"
  edge 0.0 -> 1.0 via key
circuit no_key:
  0.0
  1.0 at end -> "x"
  edge 0.0 -> 1.0 via value
  edge 1.0 -> logits
claim faithful: circuit wired is faithful >= 99% by zero ablation on copy
claim necessary: circuit wired is necessary >= 99% by zero ablation on copy
claim no_value: circuit no_value is faithful >= 80% by zero ablation on copy
claim no_key: circuit no_key is faithful >= 80% by zero ablation on copy
claim node_acc: circuit pair is faithful >= 99% by zero ablation on copy
'''


def test_planted_circuit_ground_truth_edge_by_edge(tmp_path):
    """At edge level the planted circuit needs both of 1.0's inputs from 0.0: its key finds the
    marker, its value carries f0 into the logit of " x". Dropping either edge breaks it, and the
    edge-level circuit with the right edges is as faithful as the node-level one."""
    from sadlang.runner.executor import load_and_compile, run_plan

    p = tmp_path / "edges.sad"
    p.write_text(SPEC.format(model="planted").replace("claim ok: logit_diff > -1000 on copy\n", EDGE_LEVEL))
    _, model, plan = load_and_compile(p)
    report = run_plan(plan, model)
    faithful = _details(report, "faithful")
    assert faithful.held and faithful.details["level"] == "edge" and faithful.value >= 0.99
    assert faithful.value == pytest.approx(_details(report, "node_acc").value, abs=1e-4)
    assert _details(report, "necessary").held
    assert faithful.details["forward_passes"] <= 2 * 2
    for name in ("no_value", "no_key"):
        v = _details(report, name)
        assert not v.held and v.value < 0.5, (name, v.measured)


def test_accuracy_is_the_task_metric_when_asked(tmp_path):
    from sadlang.runner.executor import load_and_compile, run_plan

    p = tmp_path / "acc.sad"
    p.write_text("option metric = accuracy\n" + SPEC.format(model="planted").replace(
        "claim ok: logit_diff > -1000 on copy\n", EDGE_LEVEL))
    _, model, plan = load_and_compile(p)
    report = run_plan(plan, model)
    faithful = _details(report, "faithful")
    assert faithful.details["metric"] == "accuracy" and faithful.details["F(M)"] == 1.0
    assert faithful.held and faithful.value == 1.0 and "(accuracy)" in faithful.measured
    no_value = _details(report, "no_value")
    assert no_value.details["F(C)"] == 0.0 and not no_value.held      # no prompt answered right


@pytest.mark.parametrize("edge,where,words", [
    ("edge 0.0 -> 1.1 via key", "16:15", "edge end 1.1 is not a node of circuit 'pair'"),
    ("edge 1.0 -> 0.0", "16:3", "a sender must sit in an earlier layer"),
    ("edge 0.0 -> 1.0 via value\n  edge 0.0 -> 1.0 via value", "17:3", "is listed twice"),
])
def test_circuit_edge_errors(tmp_path, capsys, edge, where, words):
    text = SPEC.format(model="planted").replace('  0.0\ncircuit traced', f'  0.0\n  {edge}\ncircuit traced')
    err = _spec_error(tmp_path, capsys, "ce.sad", text)
    assert f"ce.sad:{where}:" in err and words in err, err


MLP_SPEC = '''model planted-mlp
pool names = " Mary" " John" " Alice" " Bob" " Tom" " Kate"
prompts copy:
  template "When{A} went to the x,{B} said"
  A, B from names distinct
  answer " x" against " y"
  sample 6 seed 0
circuit with_mlp:
  0.0
  1.0
  mlp 1
circuit wrong_mlp:
  0.0
  1.0
  mlp 0
circuit heads_only:
  0.0
  1.0
claim mlp1:      ablate mlp 1 zero lowers logit_diff by >= 50% on copy
claim mlp1_end:  ablate mlp 1 at end zero lowers logit_diff by >= 50% on copy
claim mlp0:      ablate mlp 0 zero lowers logit_diff by >= 1% on copy
claim faithful:  circuit with_mlp is faithful >= 95% by zero ablation on copy
claim wrong:     circuit wrong_mlp is faithful >= 50% by zero ablation on copy
claim heads:     circuit heads_only is faithful >= 95% by zero ablation on copy
claim needed:    circuit with_mlp is minimal >= 30% by zero ablation on copy
claim overlap:   circuit with_mlp matches heads_only with precision >= 0.9 on copy
'''


def test_mlp_nodes_recover_the_planted_mlp_circuit(tmp_path):
    """planted-mlp's answer comes mostly from MLP 1, reading what head 1.0 moved: ablating MLP 1
    (everywhere, or at the end alone) costs most of the logit difference and MLP 0 nothing; a
    heads-and-MLPs circuit is faithful with MLP 1 and not with MLP 0 in its place (every MLP
    outside it is ablated), while a heads-only circuit keeps every MLP; MLP 1 is needed
    (minimality), and node sets compare by unit ('mlp 1' is a node of its own)."""
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    model = load_model("planted-mlp")
    report = run_plan(compile_spec(parse_spec(MLP_SPEC, "m.sad"), model), model)
    status = {v.name: v.status for v in report.verdicts}
    assert status == {"mlp1": "held", "mlp1_end": "held", "mlp0": "failed", "faithful": "held", "wrong": "failed",
                      "heads": "held", "needed": "held", "overlap": "failed"}, [v.measured for v in report.verdicts]
    overlap = next(v for v in report.verdicts if v.name == "overlap")
    assert overlap.details["only here"] == ["mlp 1"]


def test_mlp_ablation_equals_hand_written_hooks():
    """A zero, mean or resampled MLP ablation in the lab equals the model run with its
    hook_mlp_out replaced by hand (the reference: the other prompts of the same template and length
    for mean, the aligned twin for resample)."""
    from sadlang.circuits.nodes import MLP

    for kind, cf in (("zero", None), ("mean", None), ("resample", "abc")):
        model, _, stores, lab = _lab("tiny-llama", kind, cf)
        ev = stores["copy"]
        layer = 1
        ablated = lab.run([([[(layer, MLP, None)] for _ in ev.prompts], False)])[0]
        for i, p in enumerate(ev.prompts):
            if kind == "zero":
                ref = torch.zeros_like(ev.acts(i).mlp_out[layer])
            elif kind == "resample":
                ref = stores["abc"].acts(i).mlp_out[layer]
            else:
                same = [j for j, q in enumerate(ev.prompts)
                        if q.template == p.template and len(q.tokens) == len(p.tokens) and q.tokens != p.tokens]
                ref = torch.stack([ev.acts(j).mlp_out[layer] for j in same]).mean(0)
            with torch.no_grad():
                hook = (f"blocks.{layer}.hook_mlp_out", lambda x, hook, ref=ref: ref[None])
                logits = model.bridge.run_with_hooks(ev.acts(i).tokens[None], fwd_hooks=[hook])
            expected = float(logits[0, -1, p.answer] - logits[0, -1, p.against])
            assert ablated[i] == pytest.approx(expected, abs=1e-4 * max(1.0, abs(expected))), (kind, i)
