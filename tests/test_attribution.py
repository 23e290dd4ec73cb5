"""Edge attribution patching (sadlang/circuits/attribution.py) checked against what it
approximates: the receivers' split gradients partition the model's own gradient, each EAP score
is the derivative of exact edge patching (central finite differences), and exact edge patching
through the split run equals the wiring module's cut edge."""

import pytest
import torch

from sadlang.circuits.ablation import head_z, mlp_out
from sadlang.circuits.ablations import get_ablation
from sadlang.circuits.attribution import HEAD_SIDES, attribute, patched_metric, split_pass
from sadlang.circuits.nodes import MLP
from sadlang.models.families import tiny_models
from tests.test_circuits import _lab

SPLITTABLE = ["planted-mlp", *tiny_models(rewirable=True)]


def _inputs(ev, i):
    a, p = ev.acts(i), ev.prompts[i]
    return a, a.tokens[None], torch.tensor([p.answer]), torch.tensor([p.against])


@pytest.mark.parametrize("model_name", SPLITTABLE)
def test_split_gradients_partition_the_models_gradient(model_name):
    """dF/d resid_pre[l] from a plain backward pass equals the sum of the split gradients of every
    receiver that reads the stream at or after layer l (each head's three inputs, each MLP, the
    logits): the copies are a partition, and the split run's metric is the model's."""
    model, _, stores, _ = _lab(model_name, "zero")
    ev = stores["copy"]
    a, tokens, ans, ag = _inputs(ev, 0)
    values, (g,) = split_pass(model, tokens, ans, ag, "logit_diff", a.cos, a.sin)
    assert float(values[0]) == pytest.approx(ev.logit_diff(0), abs=1e-4 * max(1.0, abs(ev.logit_diff(0))))
    L = model.info.n_layers
    kept: dict[int, torch.Tensor] = {}

    def hook(x, hook, layer):
        if layer == 0:
            x = x.detach().requires_grad_(True)
        x.retain_grad()
        kept[layer] = x
        return x
    with torch.enable_grad():
        hooks = [(f"blocks.{l}.hook_resid_pre", lambda x, hook, l=l: hook_fn(x, hook, l)) for l in range(L)]
        hook_fn = hook
        logits = model.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        (logits[0, -1, ans[0]] - logits[0, -1, ag[0]]).backward()
    for layer in range(L):
        total = kept[layer].grad[0]
        split = (g.query[layer:].sum((0, 2)) + g.key[layer:].sum((0, 2)) + g.value[layer:].sum((0, 2))
                 + g.mlp[layer:].sum(0) + g.logits)
        scale = float(total.abs().max())
        torch.testing.assert_close(split, total, rtol=1e-4, atol=1e-4 * max(scale, 1e-3))


def _key(v, side):
    return (-1, -1, "logits") if v is None else (v[0], v[1], side)


@pytest.mark.parametrize("model_name", SPLITTABLE)
def test_eap_scores_are_derivatives_of_exact_edge_patching(model_name):
    """For the strongest edges of each kind (head -> head input, head -> MLP, MLP -> head,
    MLP -> logits), on one prompt: the EAP score equals (F(+eps) - F(-eps)) / (2 eps), F with eps
    times the sender's reference-minus-clean write added to the receiver's input alone."""
    model, plan, stores, _ = _lab(model_name, "resample", "abc")
    ev = stores["copy"]
    one = type(ev)(model, ev.prompts[:1], plan.options, 4)
    twin = type(ev)(model, stores["abc"].prompts[:1], plan.options, 4)
    rs = get_ablation("resample")
    ref, ref_mlp = rs.values(one, twin, head_z), rs.values(one, twin, mlp_out)
    scores = attribute(one, ref, ref_mlp, "logit_diff", 4)
    edges = scores.edges()
    picks = {}
    for e, s in edges:
        u, v, side = e
        kind = ("mlp" if u[1] == MLP else "head", side if side in ("mlp", "logits") else "head")
        picks.setdefault(kind, (e, s))
    assert len(picks) >= 4
    a, tokens, ans, ag = _inputs(one, 0)
    w = model.weights
    eps = 1e-2
    for (u, v, side), score in picks.values():
        if u[1] == MLP:
            delta = ref_mlp[0][u[0]] - a.mlp_out[u[0]]
        else:
            delta = (ref[0][u[0], :, u[1]] - head_z(a, model)[u[0], :, u[1]]) @ w.W_O[u[0], u[1]]
        f = [float(patched_metric(model, tokens, ans, ag, "logit_diff", a.cos, a.sin,
                                  {_key(v, side): sign * eps * delta[None]})[0]) for sign in (1, -1)]
        fd = (f[0] - f[1]) / (2 * eps)
        assert fd == pytest.approx(score, rel=2e-2, abs=2e-3 * max(1.0, abs(ev.logit_diff(0)))), (u, v, side)


@pytest.mark.parametrize("model_name", tiny_models(rewirable=True)[:3])
def test_exact_edge_patching_equals_the_wired_cut(model_name):
    """A head -> head edge patched through the split run (the receiver's input hears the
    sender's twin output) equals the wiring module's run with that edge cut, per side."""
    from sadlang.circuits.wiring import without_edges

    model, _, stores, lab = _lab(model_name, "resample", "abc")
    ev = stores["copy"]
    L = model.info.n_layers
    u, v = (0, 1), (L - 1, 2)
    w = model.weights
    for side in HEAD_SIDES:
        wired = lab.run([([[] for _ in ev.prompts], False, without_edges({(u, v, side)}))])[0]
        for i in range(len(ev)):
            a, tokens, ans, ag = _inputs(ev, i)
            delta = (lab.values[i][u[0], :, u[1]] - head_z(a, model)[u[0], :, u[1]]) @ w.W_O[u[0], u[1]]
            f = float(patched_metric(model, tokens, ans, ag, "logit_diff", a.cos, a.sin,
                                     {(v[0], v[1], side): delta[None]})[0])
            assert f == pytest.approx(wired[i], abs=1e-4 * max(1.0, abs(wired[i]))), (side, i)


@pytest.mark.parametrize("model_name", SPLITTABLE)
def test_exact_edge_patching_equals_the_wired_cut_of_mlp_edges(model_name):
    """Edges from and to MLPs: MLP -> head input (each side), head -> MLP, MLP -> MLP and MLP ->
    logits, each cut by the wiring module (the receiver hears the sender's twin output) and
    patched through the split run, agree to fp32 rounding."""
    from sadlang.circuits.nodes import MLP
    from sadlang.circuits.wiring import without_edges

    model, _, stores, lab = _lab(model_name, "resample", "abc")
    ev = stores["copy"]
    L = model.info.n_layers
    w = model.weights
    cases = [((0, MLP), (L - 1, 2), side) for side in HEAD_SIDES]
    cases += [((0, 1), (L - 1, MLP), "mlp"), ((0, MLP), (L - 1, MLP), "mlp"), ((L - 2, MLP), None, "logits"),
              ((L - 1, 0), (L - 1, MLP), "mlp")]
    parallel = bool(getattr(model.bridge.cfg, "parallel_attn_mlp", False))
    moved = []
    for u, v, side in cases:
        wired = lab.run([([[] for _ in ev.prompts], False, without_edges({(u, v, side)}))])[0]
        moved.append(any(abs(x - y) > 1e-3 for x, y in zip(wired, lab.clean(), strict=True)))
        if parallel and v is not None and u[0] == v[0]:       # a parallel block's MLP never hears its heads
            assert wired == pytest.approx(lab.clean(), abs=1e-5)
            continue
        for i in range(len(ev)):
            a, tokens, ans, ag = _inputs(ev, i)
            if u[1] == MLP:
                delta = lab.mlp_values[i][u[0]] - a.mlp_out[u[0]]
            else:
                delta = (lab.values[i][u[0], :, u[1]] - head_z(a, model)[u[0], :, u[1]]) @ w.W_O[u[0], u[1]]
            key = (-1, -1, "logits") if v is None else (v[0], v[1], side)
            f = float(patched_metric(model, tokens, ans, ag, "logit_diff", a.cos, a.sin, {key: delta[None]})[0])
            assert f == pytest.approx(wired[i], abs=1e-4 * max(1.0, abs(wired[i]))), (u, v, side, i)
    # not vacuous: on random weights a head -> MLP and an MLP -> logits cut move the metric (an MLP 0
    # edge into the end may not: in parallel blocks MLP 0 there reads only the end token, which the
    # twins share); planted-mlp's MLP 0 is zero and these twins keep its marker
    if model_name != "planted-mlp":
        assert moved[3] and moved[5], moved


def test_attribution_refuses_a_step_metric_and_unsplittable_models():
    from sadlang.errors import TraceError

    _, _, stores, lab = _lab("tiny-llama", "zero")
    ev = stores["copy"]
    with pytest.raises(TraceError, match="differentiable"):
        attribute(ev, lab.values, lab.mlp_values, "accuracy", 4)
    post = [m for m in tiny_models() if m not in tiny_models(rewirable=True)]
    _, _, stores, lab = _lab(post[0], "zero")
    with pytest.raises(TraceError, match="attribution patching"):
        attribute(stores["copy"], lab.values, lab.mlp_values, "logit_diff", 4)


DISCOVER = '''model planted-mlp
pool names = " Mary" " John" " Alice" " Bob" " Tom" " Kate"
pool marker = " x"
pool things = " store" " garden" " school"
prompts copy:
  template "When{A} went to the{P},{B} said"
  A, B from names distinct
  P from marker
  answer " x" against " y"
  sample 6 seed 0
prompts nomark from copy:
  resample P from things
circuit truth:
  0.0
  1.0
  mlp 1
circuit by_eap = discover eap of copy from nomark top 3 edges
circuit by_ig = discover eap-ig of copy from nomark top 3 edges
circuit by_patching = discover patching of copy from nomark top 3 nodes
circuit too_small = discover eap-ig of copy from nomark top 1 edges
claim eap_finds:   circuit truth matches by_eap with f1 >= 1 on copy
claim ig_finds:    circuit truth matches by_ig with f1 >= 1 on copy
claim patch_finds: circuit truth matches by_patching with f1 >= 1 on copy
claim small:       circuit truth matches too_small with precision >= 0.9 on copy
claim faithful:    circuit by_ig is faithful >= 90% by resample ablation from nomark on copy
claim unfaithful:  circuit too_small is faithful >= 50% by resample ablation from nomark on copy
'''


def test_discovery_methods_recover_the_planted_mlp_circuit():
    """On planted-mlp, patched toward twins without the marker, EAP, EAP-IG and exact node
    patching each find exactly {0.0, 1.0, mlp 1}; the discovered circuit is faithful, a circuit
    of the single strongest edge (mlp 1 -> logits: MLP 1 alone, every other node ablated) is not.
    The report draws the discovered circuit with the nodes it found."""
    from sadlang.html.views import collector
    from sadlang.language import parse_spec
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    model = load_model("planted-mlp")
    plan = compile_spec(parse_spec(DISCOVER, "d.sad"), model)
    views, observe = collector(plan.spec)
    report = run_plan(plan, model, observe=observe)
    drawn = views["faithful"].graph
    assert drawn is not None and {n["label"] for n in drawn.nodes} - {"logit"} == {"0.0", "1.0", "mlp 1"}
    status = {v.name: v.status for v in report.verdicts}
    assert status == {"eap_finds": "held", "ig_finds": "held", "patch_finds": "held", "small": "failed",
                      "faithful": "held", "unfaithful": "failed"}, [v.measured for v in report.verdicts]
    small = next(v for v in report.verdicts if v.name == "small")
    assert small.details["only there"] == [] and small.details["only here"] == ["0.0", "1.0"]


@pytest.mark.parametrize(("line", "message"), [
    ("circuit c = discover eap of copy from copy top 3 edges", "is not a counterfactual set of 'copy'"),
    ("circuit c = discover eap of copy from nomarks top 3 edges", "undefined prompt set 'nomarks'"),
    ("circuit c = discover patching of copy from nomark top 3 edges", "ranks nodes only"),
    ("circuit c = discover eap of copy from nomark top 0 edges", "keeps at least 1 edge"),
    ("circuit c = discover acdc of copy from nomark top 3 edges", "discover"),
])
def test_discovery_mistakes_are_spec_errors(line, message):
    from sadlang.errors import SpecError
    from sadlang.language import parse_spec
    from sadlang.plan.validate import check_declarations

    text = DISCOVER.split("circuit truth")[0] + line + "\nclaim ok: logit_diff > 0 on copy\n"
    with pytest.raises(SpecError) as err:
        check_declarations(parse_spec(text, "d.sad"))
    assert message in str(err.value)


def test_every_differentiable_metric_equals_its_per_prompt_score():
    """A task metric's batched, differentiable form (what attribution takes the gradient of)
    gives each row what its per-prompt score gives, rows with and without `against` mixed in one
    batch."""
    from sadlang.circuits.task_metrics import METRICS

    logits = torch.randn(4, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    answers, against = torch.tensor([1, 2, 3, 4]), torch.tensor([5, -1, 0, -1])
    batched = [m for m in METRICS.values() if m.batched is not None]
    assert {m.name for m in batched} >= {"logit_diff", "prob", "loss"}
    for m in batched:
        got = m.batched(logits, answers, against)
        for row in range(4):
            other = None if against[row] < 0 else int(against[row])
            want = m.score(logits[row], logits[row], int(answers[row]), other)
            assert float(got[row]) == pytest.approx(want, rel=1e-12), m.name


TOOLBOX = DISCOVER.split("claim eap_finds")[0] + '''circuit heads:
  0.0
  1.0
circuit wrong:
  0.1
  1.1
  mlp 1
circuit truth_edges:
  0.0
  1.0
  mlp 1
  edge 0.0 -> 1.0
  edge 1.0 -> mlp 1
  edge mlp 1 -> logits
circuit no_feed:
  0.0
  1.0
  mlp 1
  edge 0.0 -> 1.0
  edge mlp 1 -> logits
claim kl_ok:     circuit truth is faithful with kl <= 0.05 by resample ablation from nomark on copy
claim kl_bad:    circuit wrong is faithful with kl <= 0.05 by resample ablation from nomark on copy
claim kl_need:   circuit truth is necessary with kl >= 0.5 by resample ablation from nomark on copy
claim loss_ok:   circuit truth is faithful with loss >= 90% by resample ablation from nomark on copy
claim loss_bad:  circuit wrong is faithful with loss >= 50% by resample ablation from nomark on copy
claim as_ig:     circuit truth is at least as faithful as by_ig within 5% by resample ablation from nomark on copy
claim wrong_ig:  circuit wrong is at least as faithful as by_ig by resample ablation from nomark on copy
claim heads_ig:  circuit heads is at least as faithful as by_ig within 5% by resample ablation from nomark on copy
claim edge_same: circuit by_ig matches by_eap at edge level with f1 >= 0.99 on copy
claim edge_decl: circuit truth_edges matches by_ig at edge level with f1 >= 0.99 on copy
claim part_decl: circuit no_feed matches by_ig at edge level with f1 >= 0.99 on copy
claim mlp_path:  circuit truth_edges is faithful >= 90% by resample ablation from nomark on copy
claim mlp_need:  circuit truth_edges is necessary >= 90% by resample ablation from nomark on copy
claim no_path:   circuit no_feed is faithful >= 50% by resample ablation from nomark on copy
'''


def test_the_field_s_metrics_and_circuit_comparisons_on_the_planted_mlp_circuit():
    """KL and loss read faithfulness their own way (KL in nats, loss as the share recovered, both
    lower-is-better), a hypothesis is compared with the discovered circuit of its size, and edge
    sets compare edge for edge, MLP edges included (the planted path 0.0 -> 1.0 -> mlp 1 -> logits).
    Every number is checked against its definition from the verdict's
    own F values, and the statuses against the planted truth ({0.0, 1.0, mlp 1} carries the marker)."""
    from sadlang.language import parse_spec
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import run_plan

    model = load_model("planted-mlp")
    report = run_plan(compile_spec(parse_spec(TOOLBOX, "t.sad"), model), model)
    v = {x.name: x for x in report.verdicts}
    assert {k: x.status for k, x in v.items()} == {
        "kl_ok": "held", "kl_bad": "failed", "kl_need": "held", "loss_ok": "held", "loss_bad": "failed",
        "as_ig": "held", "wrong_ig": "failed", "heads_ig": "held", "edge_same": "held",
        "edge_decl": "held", "part_decl": "failed", "mlp_path": "held", "mlp_need": "held",
        "no_path": "failed"}, [x.measured for x in report.verdicts]
    for name in ("kl_ok", "kl_bad"):                            # KL: F(M) = 0, the headline is F(C) in nats
        d = v[name].details
        assert d["metric"] == "kl" and d["F(M)"] == 0.0 and v[name].value == pytest.approx(d["F(C)"], abs=0)
        assert d["normalised faithfulness"] == pytest.approx(1 - d["F(C)"] / d["F(empty)"], abs=1e-12)
        assert "nats" in v[name].measured
    assert v["kl_bad"].value > 1.0 and v["kl_ok"].value < 1e-4
    d = v["loss_ok"].details                                    # loss recovered = normalised faithfulness
    assert v["loss_ok"].value == pytest.approx((d["F(empty)"] - d["F(C)"]) / (d["F(empty)"] - d["F(M)"]), rel=1e-12)
    assert v["loss_ok"].value == pytest.approx(d["normalised faithfulness"], rel=1e-9)
    d = v["wrong_ig"].details                                   # the discovered circuit at wrong's size (3)
    assert sorted(d["reference nodes"]) == ["0.0", "1.0", "mlp 1"]
    assert v["wrong_ig"].value == pytest.approx(d["faithfulness"] - d["reference faithfulness"], abs=1e-12)
    curve = d["faithfulness curve"]
    assert list(curve) == ["0", "1", "2", "3", "5", "10"] and curve["10"] == pytest.approx(1.0, abs=1e-5)
    assert curve["3"] == pytest.approx(d["reference faithfulness"], abs=1e-12)
    assert sorted(v["heads_ig"].details["reference nodes"]) == ["0.0", "1.0"]   # heads only for a heads circuit
    d = v["part_decl"].details                                  # without 1.0 -> mlp 1: 2 of EAP-IG's 3 edges
    assert d["only there"] == ["1.0 -> mlp 1"] and d["only here"] == [] and d["level"] == "edge"
    assert v["part_decl"].value == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3), abs=1e-12)
    # MLP 1 hears 1.0 only through the declared edge: cut it and the circuit keeps what the empty one does
    d = v["no_path"].details
    assert d["F(C)"] == pytest.approx(d["F(empty)"], abs=1e-4 * abs(d["F(M)"]))


def test_a_curve_is_measured_at_round_sizes_and_its_area_is_the_trapezoid():
    from sadlang.claims.whole_circuit import _area, curve_sizes

    assert curve_sizes(300, 7) == [0, 1, 2, 5, 7, 10, 20, 50, 100, 200, 300]
    assert curve_sizes(3, 3) == [0, 1, 2, 3]
    assert _area([(0, 0.0), (5, 1.0), (10, 1.0)], 10) == pytest.approx(0.75)


@pytest.mark.parametrize(("option", "claim", "message"), [
    ("kl", "circuit truth is faithful >= 50% by zero ablation on copy", "is faithful with kl <= X"),
    ("logit_diff", "circuit truth is faithful with entropy >= 50% on copy", "unknown task metric 'entropy'"),
    ("loss", "circuit truth is complete within 10% by zero ablation on copy", "need a higher-is-better metric"),
    ("kl", "circuit truth beats random by 2x by zero ablation on copy", "need a higher-is-better metric"),
    ("logit_diff", "circuit truth matches by_patching at edge level on copy", "by_patching ranks nodes"),
    ("logit_diff", "circuit truth matches by_eap at edge level on copy", "truth declares no edges"),
    ("logit_diff", "circuit truth is at least as faithful as nothing on copy", "undefined circuit 'nothing'"),
    ("logit_diff", "circuit truth is at least as faithful as truth on copy", "compared with itself"),
])
def test_metric_and_comparison_mistakes_are_spec_errors(option, claim, message):
    from sadlang.errors import SpecError
    from sadlang.language import parse_spec
    from sadlang.plan.validate import validate

    text = DISCOVER.split("claim eap_finds")[0] + f"option metric = {option}\nclaim c: {claim}\n"
    with pytest.raises(SpecError) as err:
        validate(parse_spec(text, "m.sad"))
    if message is not None:
        assert message in str(err.value)
    assert err.value.span is not None and err.value.span.line > 1


def test_kl_and_loss_are_their_textbook_definitions():
    """KL(clean || run) and the answer's cross-entropy, against torch's own, in float64."""
    import torch.nn.functional as F

    from sadlang.circuits.task_metrics import METRICS

    g = torch.Generator().manual_seed(1)
    clean, run = torch.randn(50, generator=g), torch.randn(50, generator=g)
    want = F.kl_div(run.double().log_softmax(-1), clean.double().log_softmax(-1), log_target=True, reduction="sum")
    assert METRICS["kl"].score(run, clean, 3, None) == pytest.approx(float(want), rel=1e-12)
    assert METRICS["kl"].score(clean, clean, 3, None) == 0.0
    assert METRICS["loss"].score(run, clean, 3, None) == pytest.approx(
        float(F.cross_entropy(run.double()[None], torch.tensor([3]))), rel=1e-12)
    assert METRICS["kl"].batched is None and "zero at the clean run" in METRICS["kl"].no_gradient


@pytest.mark.parametrize(("edge", "message"), [
    ("edge mlp 1 -> 1.0", "layer 1's MLP writes after its heads read"),
    ("edge 1.0 -> mlp 1 via key", "an MLP has one input; drop `via key`"),
    ("edge mlp 0 -> logits", "edge end mlp 0 is not a node of circuit 'c'"),
    ("edge mlp 1 -> mlp 1", "a sender must sit in an earlier layer"),
])
def test_mlp_edge_mistakes_are_spec_errors(edge, message):
    from sadlang.errors import SpecError
    from sadlang.language import parse_spec
    from sadlang.plan.validate import validate

    circuit = f"circuit c:\n  1.0\n  mlp 1\n  {edge}\n"
    text = DISCOVER.split("circuit truth")[0] + circuit + "claim ok: logit_diff > 0 on copy\n"
    with pytest.raises(SpecError) as err:
        validate(parse_spec(text, "m.sad"))
    assert message in str(err.value) and err.value.span is not None and err.value.span.line == 16


def test_a_set_sampled_until_decided_is_ranked_on_its_first_sample_at_every_look():
    """`sample N up to M`: the discovered circuit comes from the first N prompts and their twins,
    so the circuit a claim tests is the same at every look (it was re-ranked on each look's
    prompts, and on the bundled model changed from 11 to 13 nodes between looks). Checked through
    the plan a look really runs (its sets drawn at the look's size, the spec as written)."""
    from sadlang.circuits.nodes import discovered
    from sadlang.language import parse_spec
    from sadlang.models import load_model
    from sadlang.plan.compile import compile_spec
    from sadlang.runner.executor import evidence_stores
    from sadlang.runner.sequential import look_plan

    model = load_model("planted-mlp")
    text = DISCOVER.split("claim eap_finds")[0].replace("sample 6 seed 0", "sample 3 up to 6 seed 0")
    plan = compile_spec(parse_spec(text + "claim ok: logit_diff > 0 on copy\n", "d.sad"), model)
    decl = plan.spec.circuits["by_ig"]
    first = discovered(decl, evidence_stores(plan, model), "logit_diff", 4, 3)[1]
    look = look_plan(plan, model, "copy", 6, 2)
    stores = evidence_stores(look, model)
    assert len(stores["copy"]) == 6
    grown = discovered(decl, stores, "logit_diff", 4, 3)[1]
    assert grown.edges == first.edges and grown.nodes == first.nodes
    drawn = {**look.spec.prompt_sets, "copy": look.prompt_sets["copy"].decl}
    whole = look.spec.model_copy(update={"prompt_sets": drawn})
    for store in stores.values():                     # the same six prompts, ranked whole
        store.memo.clear()
        assert store.workspace is not None
        store.workspace.spec = whole
    six = discovered(decl, stores, "logit_diff", 4, 3)[1]
    assert [s for _, s in six.edges] != [s for _, s in first.edges]
