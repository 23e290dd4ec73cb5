"""Model layer: every kind loads; the bridge matches transformers; errors are clean."""

import json
import time

import pytest
import torch

from sadlang.errors import ModelLoadError
from sadlang.models import load_model
from sadlang.models.builtin import build_hf_model
from sadlang.models.bundled import MANIFEST, WEIGHTS, _cache_is_valid

PROMPTS = [" When Mary and John went to the store, John gave a drink to", " Then Bob said it"]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "planted"])
def test_builtin_models_match_transformers_up_to_a_constant_shift(name):
    m = load_model(name)
    hf = build_hf_model(name)
    for text in PROMPTS:
        toks = torch.tensor([m.to_tokens(text)])
        with torch.no_grad():
            ours = m.bridge(toks).float()
            ref = hf(toks).logits.float()
        diff = ours - ref
        # centring the unembedding shifts every logit at a position by the same amount
        assert (diff - diff.mean(-1, keepdim=True)).abs().max() < 1e-4


def test_info_records_architecture(tiny_gpt2, tiny_llama):
    assert tiny_gpt2.info.positional == "standard" and tiny_gpt2.info.norm == "LN"
    assert tiny_llama.info.positional == "rotary" and tiny_llama.info.norm == "RMS"
    assert tiny_llama.info.n_kv_heads == 2 and tiny_llama.info.n_heads == 4
    assert tiny_gpt2.weights.b_Q.abs().max() > 0, "GPT-2 style model must exercise Q biases"
    assert len(tiny_gpt2.info.fingerprint) == 16
    assert load_model("tiny-gpt2:1", reuse=False).info.fingerprint != tiny_gpt2.info.fingerprint


def test_bundled_model_loads_and_matches_published_logit_difference(smollm):
    info = smollm.info
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_model, info.d_head) == (30, 9, 3, 576, 64)
    assert smollm.weights.W_Q.shape == (30, 9, 576, 64) and smollm.weights.W_K.shape == (30, 3, 576, 64)
    toks = torch.tensor([smollm.to_tokens("When Mary and John went to the store, John gave a drink to")])
    assert toks[0, 0].item() == 1  # <|im_start|> as BOS
    with torch.no_grad():
        logits = smollm.bridge(toks)[0, -1]
    mary, john = smollm.token_ids(" Mary")[0], smollm.token_ids(" John")[0]
    assert abs(float(logits[mary] - logits[john]) - 5.287) < 0.01


def test_bundled_model_solves_generated_ioi(smollm):
    import random
    rng = random.Random(0)
    names = [" Mary", " John", " Alice", " Bob", " Sarah", " James", " Tom", " Anna"]
    places, objects = [" store", " garden", " school"], [" drink", " ring", " book"]
    texts, pairs = [], []
    for _ in range(32):
        a, b = rng.sample(names, 2)
        texts.append(f"When{a} and{b} went to the{rng.choice(places)},{b} gave a{rng.choice(objects)} to")
        pairs.append((smollm.token_ids(a)[0], smollm.token_ids(b)[0]))
    toks = torch.tensor([smollm.to_tokens(t) for t in texts])
    with torch.no_grad():
        logits = smollm.bridge(toks)[:, -1]
    diffs = torch.tensor([float(logits[i, a] - logits[i, b]) for i, (a, b) in enumerate(pairs)])
    assert (diffs > 0).float().mean() >= 0.9
    assert diffs.mean() > 2.0


def test_uncached_hub_name_fails_fast_with_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(ModelLoadError) as err:
        load_model("sadlang-test/definitely-not-cached-model")
    assert time.time() - t < 10
    msg = str(err.value)
    assert "could not be found offline" in msg and "smollm2-135m" in msg and "local directory" in msg


def test_bad_local_path_is_a_clean_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(str(tmp_path))


def test_local_directory_loads(tmp_path):
    hf = build_hf_model("tiny-gpt2")
    hf.save_pretrained(tmp_path)
    from sadlang.models.builtin import tokenizer
    tokenizer().save_pretrained(tmp_path)
    m = load_model(str(tmp_path), reuse=False)
    assert m.info.source == "local" and m.info.n_layers == 4


@pytest.mark.parametrize("damage,why", [("rename", "1 tensor(s) missing: model.layers.0.self_attn.q_proj.weight"),
                                        ("shape", "model.layers.0.self_attn.q_proj.weight (63, 64) (the config "
                                                  "expects (64, 64))"), ("nan", "non-finite values")])
def test_weights_that_do_not_match_the_config_are_refused(tmp_path, damage, why):
    """A folder whose tensors do not fit its architecture would load partly at random initialisation
    (a different model on every run): refused, naming the tensors."""
    from safetensors.torch import load_file, save_file

    from sadlang.models.builtin import tokenizer

    build_hf_model("tiny-llama").save_pretrained(tmp_path)
    tokenizer().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    sd = load_file(weights)
    name = "model.layers.0.self_attn.q_proj.weight"
    if damage == "rename":
        sd["renamed." + name] = sd.pop(name)
    elif damage == "shape":
        sd[name] = sd[name][:-1].clone()
    else:
        sd[name][0, 0] = float("nan")
    save_file(sd, weights, metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="does not match its config") as info:
        load_model(str(tmp_path), reuse=False)
    assert why in str(info.value)


def test_corrupt_cache_is_detected(tmp_path):
    (tmp_path / WEIGHTS).write_bytes(b"0123456789")
    import hashlib
    record = {"weights_size": 10, "weights_sha256": hashlib.sha256(b"0123456789").hexdigest()}
    (tmp_path / MANIFEST).write_text(json.dumps(record))
    assert _cache_is_valid(tmp_path)
    (tmp_path / WEIGHTS).write_bytes(b"0123456780")   # same size, other bytes
    assert not _cache_is_valid(tmp_path)
    (tmp_path / WEIGHTS).write_bytes(b"01234")        # partial
    assert not _cache_is_valid(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    assert not _cache_is_valid(tmp_path)


def test_device_errors_are_clean():
    with pytest.raises(ModelLoadError, match="unknown device"):
        load_model("tiny-gpt2", device="tpu")


def test_unfolded_bridge_matches_transformers_exactly():
    from transformer_lens.model_bridge import TransformerBridge

    from sadlang.models.builtin import bridge_name, tokenizer
    for name in ("tiny-gpt2", "tiny-llama"):
        hf = build_hf_model(name)
        bridge = TransformerBridge.boot_transformers(bridge_name(name), hf_model=build_hf_model(name),
                                                     tokenizer=tokenizer())
        toks = torch.tensor([load_model(name).to_tokens(PROMPTS[0])])
        with torch.no_grad():
            assert torch.allclose(bridge(toks).float(), hf(toks).logits.float(), atol=1e-4)


def test_models_command_shows_the_bundled_model_loadable(capsys, monkeypatch):
    from sadlang.cli import main
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "loadable" in lines["smollm2-135m"] and "loadable" in lines["tiny-llama"]
    from sadlang.models.loader import _hub_cached
    assert ("loadable" if _hub_cached("gpt2") else "missing") in lines["gpt2"]


def test_thread_default_follows_the_measurements(monkeypatch):
    """Torch's default alone; cores split among xdist workers; SADLANG_THREADS wins."""
    import os

    from sadlang.models.loader import default_threads

    for var in ("SADLANG_THREADS", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(var, raising=False)
    assert default_threads() is None
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert default_threads() == max(1, (os.cpu_count() or 1) // 2)
    monkeypatch.setenv("SADLANG_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("SADLANG_THREADS", "zero")
    assert default_threads() == max(1, (os.cpu_count() or 1) // 2)


def test_weights_changed_in_place_fail_their_recorded_digest(tmp_path):
    """The bundled cache records the digest of its tensors when written; a warm load checks the
    loaded tensors against it, so bytes changed in place (size, mtime and inode kept, which the
    remembered file hash cannot see) are found and the cache rebuilt."""
    from sadlang.models.bundled import DIGEST, verified

    hf = build_hf_model("tiny-llama")
    (tmp_path / MANIFEST).write_text(json.dumps({"weights_size": 1}))
    assert verified(hf, tmp_path)                                  # an older cache gets its digest now
    assert DIGEST in json.loads((tmp_path / MANIFEST).read_text())
    assert verified(build_hf_model("tiny-llama"), tmp_path)        # the same weights again
    changed = build_hf_model("tiny-llama")
    with torch.no_grad():
        next(changed.parameters()).view(-1)[:1024] = 0.0
    assert not verified(changed, tmp_path)


def test_a_manifest_with_the_older_sha256_digest_is_checked_by_it_once(tmp_path):
    """Caches written before the xxh3 digest carry a sha256 one: a load checks the tensors
    against it, records the xxh3 digest and checks that from then on; changed tensors fail."""
    from sadlang.models.bundled import DIGEST, LEGACY_DIGEST, verified
    from sadlang.models.weights import weights_digest

    hf = build_hf_model("tiny-llama")
    legacy = weights_digest(hf, "sha256")
    assert legacy != weights_digest(hf) and len(legacy) == 64
    changed = build_hf_model("tiny-llama")
    with torch.no_grad():
        next(changed.parameters()).view(-1)[:1024] = 0.0
    (tmp_path / MANIFEST).write_text(json.dumps({LEGACY_DIGEST: legacy}))
    assert not verified(changed, tmp_path)
    assert DIGEST not in json.loads((tmp_path / MANIFEST).read_text())
    assert verified(hf, tmp_path)
    assert json.loads((tmp_path / MANIFEST).read_text())[DIGEST] == weights_digest(hf)
    assert not verified(changed, tmp_path)


def test_the_fingerprint_covers_every_weight(tmp_path):
    """An MLP weight changes no QK/OV matrix, and still changes the fingerprint."""
    from sadlang.models.builtin import tokenizer

    fingerprints = []
    for bump in (0.0, 1.0):
        hf = build_hf_model("tiny-gpt2")
        with torch.no_grad():
            hf.transformer.h[0].mlp.c_fc.weight[0, 0] += bump
        folder = tmp_path / f"m{bump}"
        hf.save_pretrained(folder)
        tokenizer().save_pretrained(folder)
        fingerprints.append(load_model(str(folder), reuse=False).info.fingerprint)
    assert fingerprints[0] != fingerprints[1]
    assert fingerprints[0] == load_model(str(tmp_path / "m0.0"), reuse=False).info.fingerprint


def test_a_config_far_bigger_than_its_weights_fails_before_allocating(tmp_path):
    """64 layers of hidden size 8192 beside 160k stored weights: refused from the headers, before
    transformers would allocate ~170 GB."""
    from sadlang.models.builtin import tokenizer

    build_hf_model("tiny-llama").save_pretrained(tmp_path)
    tokenizer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(hidden_size=8192, intermediate_size=32768, num_hidden_layers=64)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not belong to these weights"):
        load_model(str(tmp_path), reuse=False)


def test_the_core_watch_leaves_cores_busy_elsewhere_to_their_processes(monkeypatch):
    """Between units of work the entry points' watch sets torch's threads to the cores other
    processes left free: one of two busy elsewhere -> 1 thread; both free again -> 2."""
    from sadlang import runtime

    before = torch.get_num_threads()
    looks = iter([(0, 0, 0),              # (busy jiffies of all CPUs, all jiffies, this process's jiffies)
                  (100, 200, 0),          # one core's worth busy, none of it ours
                  (300, 400, 200),        # both cores busy, all of it ours
                  (300, 400, 200)])       # no time passed: nothing known, nothing changed
    monkeypatch.setattr(runtime.CoreWatch, "_sample", staticmethod(lambda: next(looks)))
    try:
        watch = runtime.CoreWatch(cores=2)
        watch.adjust()
        assert torch.get_num_threads() == 1 and watch.choices == [(1.0, 1)]
        watch.adjust()
        assert torch.get_num_threads() == 2 and watch.choices[-1] == (0.0, 2)
        watch.adjust()
        assert len(watch.choices) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_core_watch_stays_off_where_threads_were_chosen(monkeypatch):
    from sadlang import runtime

    monkeypatch.setattr(runtime, "WATCH", None)
    for env in ({"SADLANG_THREADS": "1"}, {"PYTEST_XDIST_WORKER_COUNT": "2"}, {"SADLANG_WATCH_CORES": "0"}):
        for key in ("SADLANG_THREADS", "PYTEST_XDIST_WORKER_COUNT", "SADLANG_WATCH_CORES"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        runtime.watch_cores()
        assert runtime.WATCH is None
        runtime.between_work()                 # a no-op without a watch
