"""Path patching of one edge: sender head S's output is replaced by its output in the aligned
counterfactual prompt *only in receiver head R's query or key input*; every other path, R's
other side and R's GQA siblings stay clean.

R's input is linear in the residual with the clean run's norm scale frozen (as everywhere in
the decomposition), so the patch changes R's attention scores by exactly

    query side:  dS[d, s] = rope(dx[d] / scale[d] @ W_Q[R]) . k_rot[s] / attn_scale
    key side:    dS[d, s] = q_rot[d] . rope(dx[s] / scale[s] @ W_K[R]) / attn_scale

with dx = (z_cf - z)[S] @ W_O[S], and one forward pass (per length group) adds dS to R's scores.
Shapes: n positions, r d_head, D d_model, V vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch

from sadlang.circuits.ablation import one_head_z
from sadlang.decomp.activations import PromptActivations
from sadlang.decomp.passes import last_logits
from sadlang.errors import TraceError
from sadlang.evidence.store import PromptSetEvidence
from sadlang.models.loader import LoadedModel


def score_delta(model: LoadedModel, clean: PromptActivations, cf: PromptActivations,
                sender: tuple[int, int], receiver: tuple[int, int], side: str) -> torch.Tensor:
    """(n, n) change of receiver's (pre-softmax, scaled) scores when the sender's output in its
    `side` input comes from the counterfactual run."""
    w = model.weights
    (ls, hs), (lr, hr) = sender, receiver
    if ls >= lr:
        raise TraceError(f"head {ls}.{hs} cannot feed head {lr}.{hr}: a sender sits in an earlier layer")
    if w.softcap:
        raise TraceError("path patching adds to attention scores, which a soft-capped model caps")
    if w.post_norm:
        raise TraceError("path patching moves one head's write through the residual, which a post-attention "
                         "norm (Gemma) rescales with every head's output; use node ablations (`ablate head`)")
    if w.qk_norm:
        raise TraceError("path patching adds one head's write to queries and keys linearly, which a QK-norm "
                         "(Gemma-3, Qwen3) rescales per head; use node ablations (`ablate head`)")
    dz = one_head_z(cf, model, ls, hs) - one_head_z(clean, model, ls, hs)    # (n, r)
    dx = (dz @ w.W_O[ls, hs]) / clean.ln_scale[lr][:, None]                  # (n, D)
    x = clean.normalized[lr]                                                  # (n, D)
    kv = w.kv(hr)
    if side == "query":
        dq = clean.to_head(dx @ w.W_Q[lr, hr], lr, "q", hr)
        k = clean.to_head(x @ w.W_K[lr, kv] + w.b_K[lr, kv], lr, "k", kv)
        return dq @ k.T / w.attn_scale
    q = clean.to_head(x @ w.W_Q[lr, hr] + w.b_Q[lr, hr], lr, "q", hr)
    dk = clean.to_head(dx @ w.W_K[lr, kv], lr, "k", kv)
    return q @ dk.T / w.attn_scale


def patched_logits(ev: PromptSetEvidence, cf: PromptSetEvidence, sender: tuple[int, int],
                   receiver: tuple[int, int], side: str, batch_size: int) -> torch.Tensor:
    """(len(ev), V): logits at the last position of every prompt with the edge patched; prompts
    of one length share passes."""
    model = ev.model
    lr, hr = receiver
    out = torch.empty(len(ev), model.bridge.cfg.d_vocab, device=model.device)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(ev.prompts):
        by_len.setdefault(len(p.tokens), []).append(i)
    for _, idxs in sorted(by_len.items()):
        for start in range(0, len(idxs), batch_size):
            chunk = idxs[start:start + batch_size]
            n = len(ev.prompts[chunk[0]].tokens)
            delta = torch.zeros(len(chunk), model.info.n_heads, n, n, device=model.device)
            for j, i in enumerate(chunk):
                delta[j, hr] = score_delta(model, ev.acts(i), cf.acts(i), sender, receiver, side)
            tokens = ev.token_ids(chunk)

            def add(scores: torch.Tensor, hook: Any, delta: torch.Tensor = delta) -> torch.Tensor:
                return scores + delta.to(scores.dtype)

            out[chunk] = last_logits(model, tokens, [(f"blocks.{lr}.attn.hook_attn_scores", add)])
    return out
