"""Exactness of the decomposition against the model's own hooked activations (fp32).

Tolerances: scores 1e-4 relative to the largest score; residual components 1e-5 absolute on
normalized residuals; contributions and relative terms 1e-4 relative.
"""

import pytest
import torch

from sadlang.decomp.activations import ForwardCounter, run_prompts
from sadlang.decomp.components import ComponentTable, residual_components
from sadlang.decomp.forms import compute_forms
from sadlang.decomp.forms_cache import get_forms, load_cached, save_cached
from sadlang.decomp.rope import apply_rope
from sadlang.trace.firing import relative_key_delta
from sadlang.trace.methods import decompose
from sadlang.trace.options import TraceOptions
from sadlang.trace.seeds import direction, final_contributions
from sadlang.trace.tracer import decomposition, trace

TEXTS = [" When Mary and John went to the store, John gave a drink to",
         " Then, Alice and Bob went to the garden. Bob gave a ring to"]


def _acts(model):
    return run_prompts(model, [model.to_tokens(t) for t in TEXTS])


def test_forms_reconstruct_omega(tiny):
    f = compute_forms(tiny.weights)
    W = tiny.weights
    for l in range(W.n_layers):
        for h in range(W.n_heads):
            omega = W.W_Q[l, h] @ W.W_K[l, W.kv(h)].T
            recon = (f.U[l, h] * f.S[l, h]) @ f.V[l, h].T
            assert (recon - omega).abs().max() <= 1e-4 * omega.abs().max()
            assert (f.S[l, h][:-1] >= f.S[l, h][1:] - 1e-5).all()
            assert torch.allclose(f.Gq[l, h] @ f.Gk[l, h].T, torch.eye(W.d_head), atol=1e-3)
            assert torch.allclose(f.WQ_pinv[l, h] @ W.W_Q[l, h], torch.eye(W.d_head), atol=1e-3)


def test_every_head_score_terms_sum_to_hooked_scores(tiny):
    for acts in _acts(tiny):
        dec = decomposition(tiny, acts)
        worst = max(dec.scores_check(l, h, d) for l in range(tiny.info.n_layers)
                    for h in range(tiny.info.n_heads) for d in range(acts.n))
        assert worst <= 1e-4 * max(1.0, float(acts.scores[acts.scores.isfinite()].abs().max()))


def test_residual_components_sum_to_hooked_normalized_residual(tiny):
    for acts in _acts(tiny):
        for layer in range(tiny.info.n_layers):
            comps = residual_components(acts, tiny.weights, layer)
            assert comps.shape[0] == ComponentTable(layer, tiny.info.n_heads, acts.n).size - 1
            assert torch.allclose(comps.sum(0), acts.normalized[layer], atol=1e-5)


def test_per_side_sums_equal_the_hooked_rotated_normed_queries_and_keys(tiny):
    """Every family: the components' rotated query (key) vectors sum to the model's own rotated
    query (key), after its QK-norm where it has one, to 1e-4 relative."""
    w = tiny.weights
    acts = _acts(tiny)[0]
    dec = decomposition(tiny, acts)
    toks = torch.tensor([acts.tokens.tolist()])
    _, cache = tiny.bridge.run_with_cache(toks)
    for l in range(1, w.n_layers):
        if f"blocks.{l}.attn.hook_rot_q" in cache.cache_dict:
            rq, rk = cache[f"blocks.{l}.attn.hook_rot_q"][0], cache[f"blocks.{l}.attn.hook_rot_k"][0]
        else:   # NeoX's bridge: rotate hook_q/hook_k with the model's own tables
            cos, sin = acts.rope(l)
            rq = apply_rope(cache[f"blocks.{l}.attn.hook_q"][0].transpose(0, 1), cos, sin).transpose(0, 1)
            rk = apply_rope(cache[f"blocks.{l}.attn.hook_k"][0].transpose(0, 1), cos, sin).transpose(0, 1)
        for h in range(w.n_heads):
            mine_q, mine_k = dec.q_rot(l, h).sum(0), dec.k_rot(l, h).sum(0)
            assert (mine_q - rq[:, h]).abs().max() <= 1e-4 * max(1.0, float(rq.abs().max()))
            assert (mine_k - rk[:, w.kv(h)]).abs().max() <= 1e-4 * max(1.0, float(rk.abs().max()))


def test_query_coordinates_sum_to_hooked_rotated_queries(tiny_llama):
    acts = _acts(tiny_llama)[0]
    dec = decomposition(tiny_llama, acts)
    import torch as t
    toks = t.tensor([acts.tokens.tolist()])
    _, cache = tiny_llama.bridge.run_with_cache(toks)
    for l in range(1, 4):
        rq = cache[f"blocks.{l}.attn.hook_rot_q"][0]      # (n, H, r)
        for h in range(4):
            assert torch.allclose(dec.q_rot(l, h).sum(0), rq[:, h], atol=1e-5)
        q = cache[f"blocks.{l}.attn.hook_q"][0]
        assert torch.allclose(apply_rope(q.transpose(0, 1), acts.cos, acts.sin).transpose(0, 1), rq, atol=1e-5)


@pytest.mark.parametrize("method", ["acc", "sad"])
def test_relative_terms_and_contributions_add_up(tiny, method):
    opts = TraceOptions(method=method, threshold=0.0, edge_fraction=1.0)
    for acts in _acts(tiny):
        dec = decomposition(tiny, acts)
        for l in range(1, tiny.info.n_layers):
            for h in range(tiny.info.n_heads):
                d = acts.n - 1
                lo = max(1, tiny.weights.key_start(l, d))      # keys of d: lo..d (sliding windows)
                s = int(acts.pattern[l, h, d, lo:].argmax()) + lo
                f = decompose(dec, l, h, d, s, opts)
                terms = torch.tensor(f.terms)
                keys = tiny.weights.key_start(l, d)
                scores = acts.scores[l, h, d, keys: d + 1]
                assert scores.isfinite().all()                   # only real keys
                cap = tiny.weights.softcap                       # the terms explain pre-cap scores
                if cap:
                    scores = cap * torch.atanh((scores / cap).double()).float()
                if method == "acc":
                    rel = float(relative_key_delta(scores[:, None], s - keys)[0])
                    assert abs(float(terms.sum()) - rel) <= 1e-4 * max(1.0, abs(rel))
                    if float(acts.pattern[l, h, d, s]) >= 1 / len(scores):
                        assert rel >= -1e-5
                else:
                    raw = float(scores[s - keys])
                    assert abs(float(terms.sum()) - raw) <= 1e-4 * max(1.0, abs(raw))
                if f.svs:
                    selected = float(terms[f.svs["query"]].sum())
                    for side in ("query", "key"):
                        assert abs(f.totals[side] - selected) <= 1e-3 * max(1.0, abs(selected))


def test_attention_recomputed_from_the_decomposition_is_the_models(tiny):
    """softmax over each destination's keys of the decomposed (then soft-capped) scores equals
    the hooked pattern; keys outside a sliding window get exactly zero attention."""
    from sadlang.decomp.prompt import softcap

    w = tiny.weights
    for acts in _acts(tiny):
        dec = decomposition(tiny, acts)
        for l in range(w.n_layers):
            for h in range(w.n_heads):
                for d in range(acts.n):
                    lo = w.key_start(l, d)
                    mine = torch.softmax(softcap(dec.score_terms(l, h, d).sum(-1), w.softcap), -1)
                    assert torch.allclose(mine, acts.pattern[l, h, d, lo: d + 1], atol=1e-5)
                    assert float(acts.pattern[l, h, d, :lo].abs().sum()) == 0.0
    if any(w.windows):      # the prompts are longer than the window: the masking was exercised
        assert acts.n > max(x for x in w.windows if x)


def test_seed_contributions_sum_to_final_residual(tiny):
    for acts in _acts(tiny):
        w = direction(tiny.weights, 5, 6)
        kappa = final_contributions(acts, tiny.weights, w, acts.n - 1)
        assert abs(float(kappa.sum()) - float(acts.final_normalized[-1] @ w)) < 1e-4


def test_the_traced_logit_identity_is_the_models_logit_difference(tiny):
    """The residual's components plus the unembedding bias (which holds a folded final norm's
    bias: GPT-2's LayerNorm) give the model's own logit difference, on every family."""
    from sadlang.evidence.metrics import logit_diff

    for text, acts in zip(TEXTS, _acts(tiny), strict=True):
        circuit = trace(tiny, text, " Mary", " John", method="acc")[0]
        answer, against = tiny.token_ids(" Mary")[0], tiny.token_ids(" John")[0]
        own = logit_diff(acts.logits_end, answer, against)
        scale = max(1.0, float(acts.logits_end.abs().max()))
        assert abs(circuit.logit_diff - own) < 1e-5 * scale, (circuit.logit_diff, own)


def test_one_forward_pass_per_prompt_batch(tiny):
    before = ForwardCounter.calls
    circuits = trace(tiny, TEXTS[:1] * 3, " Mary", " John", method="acc")
    assert ForwardCounter.calls - before == 1
    assert len(circuits) == 3


def test_forms_cache_round_trip_and_corruption(tiny_gpt2, tmp_path, caplog):
    f = compute_forms(tiny_gpt2.weights)
    path = tmp_path / "forms.safetensors"
    save_cached(path, f)
    g = load_cached(path, tiny_gpt2.weights)
    assert g is not None and all(torch.equal(a, b) for a, b in zip(f.tensors().values(), g.tensors().values()))
    # every 16th float overwritten in place, size and shapes intact: the digest catches it
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    for at in range(header, len(data) - 4, 64):
        data[at:at + 4] = b"\x00\x00\x80\x3f"                      # 1.0f
    path.write_bytes(bytes(data))
    assert load_cached(path, tiny_gpt2.weights) is None
    save_cached(path, f)
    path.write_bytes(path.read_bytes()[:200])
    assert load_cached(path, tiny_gpt2.weights) is None          # a miss, not an exception
    assert load_cached(tmp_path / "missing", tiny_gpt2.weights) is None


def test_a_forms_file_with_the_older_sha256_digest_is_still_checked(tiny_gpt2, tmp_path):
    """Forms files record an xxh3 digest; one written before (with sha256) is checked by its own."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from sadlang.decomp.forms import FORMS_VERSION
    from sadlang.models.weights import tensors_digest

    f = compute_forms(tiny_gpt2.weights)
    path = tmp_path / "forms.safetensors"
    save_cached(path, f)
    with safe_open(str(path), "pt") as opened:
        meta = opened.metadata()
    assert set(meta) >= {"xxh3"} and "sha256" not in meta
    tensors = {k: v.contiguous() for k, v in f.tensors().items()}
    legacy = {"version": FORMS_VERSION, "fallback": json.dumps(f.fallback_heads),
              "rank_deficient": json.dumps(f.rank_deficient or []), "sha256": tensors_digest(tensors, "sha256")}
    save_file(tensors, str(path), metadata=legacy)
    g = load_cached(path, tiny_gpt2.weights)
    assert g is not None and all(torch.equal(a, b) for a, b in zip(f.tensors().values(), g.tensors().values()))
    save_file(tensors, str(path), metadata={**legacy, "sha256": "0" * 64})
    assert load_cached(path, tiny_gpt2.weights) is None                  # a wrong digest is a miss


def test_dense_fallback_handles_rank_deficient_heads(planted):
    f = get_forms(planted.weights, planted.info.fingerprint, use_disk=False)
    assert f.fallback_heads, "planted heads have rank < d_head and need the dense path"
    acts = run_prompts(planted, [planted.to_tokens(" When Mary went to the x, John and Mary said")])[0]
    dec = decomposition(planted, acts)
    worst = max(dec.scores_check(l, h, d) for l in range(2) for h in range(4) for d in range(acts.n))
    assert worst <= 1e-5 * float(acts.scores[acts.scores.isfinite()].abs().max())


def test_accpp_invariants(tiny_llama):
    from sadlang.trace.accpp import greedy_delete, ig_softmax

    acts = _acts(tiny_llama)[0]
    d = acts.n - 1
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(300, d + 1, generator=gen, dtype=torch.float64) * 0.3
    for j in (0, 3, d):
        ig = ig_softmax(X, j, 64)
        p = torch.softmax(X.sum(0), -1)[j]
        assert abs(float(ig.sum()) - (float(p) - 1 / (d + 1))) < 1e-3       # IG completeness
        rows, drops, reached = greedy_delete(X, ig, j, float(p), 0.5 * float(p))
        final = torch.softmax(X.sum(0) - X[rows].sum(0), -1)[j]
        assert reached and float(final) < 0.5 * float(p)
        assert abs(float(drops.sum()) - (float(p) - float(final))) < 1e-9     # weights add up
    _accpp_removes_enough(tiny_llama)


def _accpp_removes_enough(model):
    from sadlang.trace.accpp import decompose_accpp

    acts = _acts(model)[0]
    dec = decomposition(model, acts)
    d = acts.n - 1
    opts = TraceOptions(method="accpp", threshold=0.05)
    for l in range(1, 4):
        for h in range(4):
            lo = max(1, model.weights.key_start(l, d))
            s = int(acts.pattern[l, h, d, lo:].argmax()) + lo
            f = decompose_accpp(dec, l, h, d, s, opts)
            if f.attention >= 0.05:
                for side in ("query", "key"):
                    assert f.totals[side] >= f.attention - 0.05 - 1e-6     # removed enough mass
                    assert all(0 <= k < 16 for e in f.edges for k in e.svs)


def test_accpp_on_every_family(tiny):
    """accpp's greedy removal works on every family's keys (windows: only the window's keys)."""
    _accpp_removes_enough(tiny)


def test_bundled_model_is_exact_and_traces_ioi(smollm):
    texts = ["When Mary and John went to the store, John gave a drink to",
             "Then, Alice and Bob went to the garden. Bob gave a ring to"]
    acts = run_prompts(smollm, [smollm.to_tokens(t) for t in texts])
    for a in acts:
        dec = decomposition(smollm, a)
        for layer in (1, 14, 29):
            comps = residual_components(a, smollm.weights, layer, positions=torch.tensor([a.n - 1]))
            assert torch.allclose(comps.sum(0)[0], a.normalized[layer, -1], atol=1e-4)
            for h in range(9):
                assert dec.scores_check(layer, h, a.n - 1) < 1e-3
    circuits = trace(smollm, texts, [" Mary", " Alice"], [" John", " Bob"], method="acc")
    for c in circuits:
        assert c.graph.number_of_edges() > 0 and c.firings
        head_seeds = sum(s.weight for s in c.seeds if s.component.kind == "head")
        assert sum(s.weight for s in c.seeds) >= 0.5 * c.logit_total   # seeds carry most of it
        assert head_seeds > 0
        assert (23, 3) in c.traced_heads()


def test_value_shares_decompose_each_head_output_exactly(tiny):
    """Every family: each head's write (head_output) sums with b_O to the hooked attention output;
    the value shares of every component sum to 1 (1e-4); and each share equals the explicit
    projection of that component's value path, built from residual_components (an independent
    route through the decomposition), on the last layer's heads."""
    from sadlang.circuits.values import head_output, value_shares
    from sadlang.decomp.readers import value_outputs

    W = tiny.weights
    for acts in _acts(tiny):
        vo = value_outputs(acts, W)
        L, H, n = tiny.info.n_layers, tiny.info.n_heads, acts.n
        with torch.no_grad():                   # the hooked attention output, read apart
            _, cache = tiny.bridge.run_with_cache(acts.tokens[None], names_filter=lambda k: k.endswith("hook_attn_out"))
        for layer in range(L):
            for d in range(n):
                heads = torch.stack([head_output(acts, W, vo, layer, h, d) for h in range(H)])
                want = cache[f"blocks.{layer}.hook_attn_out"][0, d]
                assert torch.allclose(heads.sum(0) + W.b_O[layer], want, atol=1e-4 * max(1.0, float(want.abs().max())))
        layer, d = L - 1, n - 1
        comps = residual_components(acts, W, layer)                      # (C - 1, n, D)
        for h in range(H):
            shares = value_shares(acts, W, vo, layer, h, d)
            o = head_output(acts, W, vo, layer, h, d)
            assert float(shares.sum()) == pytest.approx(1.0, abs=1e-4)
            paths = torch.einsum("t,ctd->cd", acts.mix[layer, h, d], comps) @ W.W_V[layer, W.kv(h)] @ W.W_O[layer, h]
            explicit = paths @ o / o.dot(o)
            assert torch.allclose(shares, explicit, atol=1e-4), float((shares - explicit).abs().max())
