"""The lean passes (decomp/passes.py) give the numbers of a full bridge pass: logits at the last
position when only those are unembedded, attention weights when the pass stops after the layer
read, passes resumed at a later block from the residual entering it. On every tiny family and
the bundled model, with and without an edit hook."""

from __future__ import annotations

import pytest
import torch

from sadlang.decomp.activations import ForwardCounter
from sadlang.decomp.passes import ResidualTap, Resume, last_logits, lean_pass, read_attention

PROMPTS = ["When Mary and John went to the store, John gave a drink to",
           "When Anna and Tom went to the park, Tom gave a ball to"]


def _tokens(model) -> torch.Tensor:
    toks = [model.to_tokens(p) for p in PROMPTS]
    n = min(len(t) for t in toks)
    return torch.tensor([t[:n] for t in toks], device=model.device)


def _close_logits(got: torch.Tensor, want: torch.Tensor, model) -> None:
    """Logits of two passes that unembed different numbers of positions (or resume, or centre a
    tied unembedding's logits by their mean): D-long fp32 dot products in another blocking, so
    they agree to a few units of 2^-24 x sqrt(D) of their magnitude, not to the bit."""
    scale = max(1.0, float(want.detach().abs().max()))
    tol = 8 * 2.0 ** -24 * model.info.d_model ** 0.5 * scale
    torch.testing.assert_close(got, want, rtol=0, atol=tol)


def _edit(layer: int):
    """A hook that changes the scores of head 1 (so the comparison covers edited passes)."""
    def add(x, hook):
        y = x.clone()
        y[:, 1, -1, :] += 0.5
        return y
    return [(f"blocks.{layer}.attn.hook_attn_scores", add)]


def _full(model, tokens, hooks, reads):
    names = sorted({f"blocks.{r[0]}.attn.hook_pattern" for r in reads})
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        logits, cache = model.bridge.run_with_cache(tokens, names_filter=lambda nm: nm in names)
    att = torch.tensor([float(cache[f"blocks.{r[0]}.attn.hook_pattern"][i, r[1], r[2], r[3]])
                        for i, r in enumerate(reads)])
    return logits[:, -1].float(), att


def _check(model) -> None:
    tokens = _tokens(model)
    L, n = model.info.n_layers, tokens.shape[1]
    reads = [(L // 2, 0, n - 1, 0), (L - 2, 1, n - 1, 1)]
    for hooks in ([], _edit(0)):
        logits, att = _full(model, tokens, hooks, reads)
        _close_logits(last_logits(model, tokens, hooks), logits, model)
        both_logits, both_att = lean_pass(model, tokens, hooks, reads)
        _close_logits(both_logits, logits, model)
        assert torch.equal(both_att, att)
        before = ForwardCounter.calls
        assert torch.equal(read_attention(model, tokens, hooks, reads), att)   # same layers, same bits
        assert ForwardCounter.calls == before + 1
    # a pass that reads nothing and needs no logits runs nothing
    assert lean_pass(model, tokens, [], [None, None], logits=False)[1].isnan().all()


def test_lean_passes_equal_full_passes_on_every_family(tiny):
    _check(tiny)


def _check_resumed(model, layers: list[int]) -> None:
    """A pass edited at block k and resumed there from the clean run's residual gives the logits
    and attention of the full edited pass; a tap keeps the residual a full pass sees; blocks are
    whole again afterwards."""
    from sadlang.decomp.activations import run_batch

    tokens = _tokens(model)
    clean = run_batch(model, tokens.tolist())
    n = tokens.shape[1]
    for layer in layers:
        hooks = _edit(layer)
        reads = [(layer, 1, n - 1, 0), (model.info.n_layers - 1, 0, n - 1, 1)]
        full_logits, full_att = _full(model, tokens, hooks, reads)
        resid = torch.stack([a.resid_pre[layer] for a in clean])
        tap = ResidualTap({layer})
        logits, att = lean_pass(model, tokens, hooks + tap.hooks(), reads, resume=Resume(layer, resid))
        _close_logits(logits, full_logits, model)
        torch.testing.assert_close(att, full_att, rtol=1e-5, atol=1e-6)
        assert torch.equal(tap.resid[layer], resid.to(tap.resid[layer].dtype))   # what was injected
        tap = ResidualTap({layer}, rows=[1])
        last_logits(model, tokens, hooks + tap.hooks())
        torch.testing.assert_close(tap.resid[layer], resid[1:], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="cannot read layer"):
            lean_pass(model, tokens, hooks, [(layer - 1, 0, n - 1, 0), None], resume=Resume(layer, resid))
    _close_logits(last_logits(model, tokens, []), torch.stack([a.logits_end for a in clean]), model)


def test_resumed_passes_equal_full_passes_on_every_family(tiny):
    L = tiny.info.n_layers
    _check_resumed(tiny, sorted({1, L // 2, L - 1}))


@pytest.mark.bundled
def test_resumed_passes_equal_full_passes_on_the_bundled_model(smollm):
    _check_resumed(smollm, [2, 17, 23, 29])


def _spies(names: list[str]) -> tuple[list, list[str]]:
    """Hooks at `names` that record, in order, the names of those that fire."""
    seen: list[str] = []

    def spy(name):
        def f(x, hook):
            seen.append(name)
            return x
        return f
    return [(nm, spy(nm)) for nm in names], seen


def test_a_resumed_pass_runs_no_earlier_block(tiny_llama):
    tokens = _tokens(tiny_llama)
    L = tiny_llama.info.n_layers
    names = [f"blocks.{layer}.{h}" for layer in range(L) for h in ("hook_resid_pre", "attn.hook_z", "hook_mlp_out")]
    hooks, seen = _spies(names)
    resid = torch.zeros(tokens.shape[0], tokens.shape[1], tiny_llama.info.d_model)
    last_logits(tiny_llama, tokens, hooks, Resume(L - 1, resid))
    assert seen == [nm for nm in names if nm.startswith(f"blocks.{L - 1}.")]


@pytest.mark.bundled
def test_lean_passes_equal_full_passes_on_the_bundled_model(smollm):
    _check(smollm)


def test_a_stopped_pass_runs_no_later_layer(tiny_llama):
    tokens = _tokens(tiny_llama)
    hooks, seen = _spies([f"blocks.{layer}.hook_resid_pre" for layer in range(tiny_llama.info.n_layers)])
    read_attention(tiny_llama, tokens, hooks, [(1, 0, 2, 0), None])
    assert seen == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]


def _local_edits_agree(model, layers: list[int] | None = None) -> int:
    """local_attention equals the attention a forward pass with the same local edit reads, for
    the strongest edges (query and key side) of the busiest firings of one prompt."""
    from sadlang.decomp.activations import run_prompts
    from sadlang.intervene.edits import EdgeEdit, local_attention, run_edits
    from sadlang.trace.methods import decompose
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import decomposition

    tokens = _tokens(model)[0].tolist()
    dec = decomposition(model, run_prompts(model, [tokens])[0])
    n, checked = len(tokens), 0
    opts = TraceOptions(method="acc", threshold=0.0)
    for layer in layers or range(1, model.info.n_layers):
        for head in range(model.info.n_heads):
            d = n - 1
            lo = model.weights.key_start(layer, d)
            s = lo + int(dec.acts.pattern[layer, head, d, lo:].argmax())
            f = decompose(dec, layer, head, d, s, opts)
            for side in ("query", "key"):
                edges = [e for e in f.edges if e.side == side]
                if not edges:
                    continue
                e = max(edges, key=lambda e: e.weight)
                for sign in (-1.0, 2.0):
                    edit = EdgeEdit(layer, head, d, s, e.component, side, e.svs, "local", sign)
                    _, att = run_edits(model, [dec], [[edit]], [(layer, head, d, s)], need_logits=False)
                    assert abs(local_attention(dec, [edit], (layer, head, d, s)) - float(att[0])) < 1e-5
                    checked += 1
    return checked


def test_local_attention_equals_an_edited_pass_on_every_family(tiny):
    assert _local_edits_agree(tiny) > 0


@pytest.mark.bundled
def test_local_attention_equals_an_edited_pass_on_the_bundled_model(smollm):
    assert _local_edits_agree(smollm, layers=[23]) >= 25     # the IOI spec's mover layer
