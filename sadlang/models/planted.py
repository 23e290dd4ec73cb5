"""Hand-planted circuits with known ground truth (GPT-2 architecture, MLPs zeroed).

`planted` (2 layers, 4 heads, d_model 64, d_head 16), with orthonormal, zero-mean directions:
- every token embedding carries a constant direction g; positions are orthonormal;
  the marker token " x" and the target token " y" have their own directions.
- layer 0 heads attend to their own position (positional QK):
    0.0 writes f0 at the marker " x"           (the planted key-side feature)
    0.1 writes a name's code into subspace F  (content: which name)
    0.2 writes f2 at the marker " x"           (orthogonal to f0: must not be read)
- layer 1:
    1.0 query reads g (constant: a control signal), key reads f0 (strong) and BOS (weaker):
        it sinks to BOS unless a marker is present, then it attends to the marker.
        Ground truth: key-side edge 0.0 -> 1.0, signal subspace span{f0}.
    1.1 query reads F, key reads the names' codes: attends from a name to an earlier copy
        of the same name. Ground truth: query-side edge 0.1 -> 1.1, data signal in F.
    1.2 a copy of 1.0 (another reader of f0, and a second head on the same control signal).
`DIRECTIONS` gives the planted vectors in d_model space for the tests.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from sadlang.models.tiny_tokenizer import NAMES, tiny_vocabulary

D, H, R = 64, 4, 16
N_POS = 16


def _basis(seed: int = 7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(D, D, generator=gen, dtype=torch.float64)
    ones = torch.ones(D, 1, dtype=torch.float64) / D ** 0.5
    M = M - ones @ (ones.T @ M)
    Q, _ = torch.linalg.qr(M)
    return Q[:, : D - 1].T.contiguous()  # rows: orthonormal, zero-mean


def directions() -> dict[str, torch.Tensor]:
    B = _basis()
    return {
        "pos": B[0:N_POS], "g": B[16], "f0": B[17], "f2": B[18], "marker": B[19],
        "target": B[20], "bos": B[21], "F": B[22:26], "names": B[26:36], "tokens": B[36:56],
    }


DIRECTIONS = directions()


def _zero_with_unit_norms(model: torch.nn.Module) -> None:
    """Every parameter 0, every norm gain 1 (LayerNorm weights: 1-d parameters named *norm* / ln_*)."""
    for name, p in model.named_parameters():
        is_gain = p.ndim == 1 and name.endswith("weight") and ("norm" in name or ".ln_" in name)
        p.fill_(1.0 if is_gain else 0.0)


def _token_embeddings(vocab: list[str], d: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """(V, D): every token carries g plus a little random token content; BOS, the marker " x" and
    the target " y" carry their own directions."""
    wte = torch.zeros(len(vocab), D)
    for i, _tok in enumerate(vocab):
        wte[i] = 0.3 * (d["tokens"].T @ torch.randn(20, generator=gen)) + d["g"]
    wte[vocab.index("<bos>")] = d["bos"] + d["g"]
    wte[vocab.index(" x")] = 2.0 * d["marker"] + d["g"]
    wte[vocab.index(" y")] = 2.0 * d["target"] + d["g"]
    return wte


def build_planted(strength: float = 6.0) -> GPT2LMHeadModel:
    vocab = tiny_vocabulary()
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=N_POS, n_embd=D, n_layer=2, n_head=H,
                     bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg).eval()
    d = {k: v.float() for k, v in DIRECTIONS.items()}
    gen = torch.Generator().manual_seed(3)
    codes = torch.randn(len(NAMES), 4, generator=gen)
    codes = codes / codes.norm(dim=-1, keepdim=True)          # each name's code in F
    with torch.no_grad():
        _zero_with_unit_norms(model)
        wte = _token_embeddings(vocab, d, gen)
        name_ids = {n: vocab.index(" " + n) for n in NAMES}
        for k, n in enumerate(NAMES):
            wte[name_ids[n]] = 2.0 * (d["names"][k]) + d["g"]
        model.transformer.wte.weight.copy_(wte)
        model.transformer.wpe.weight.copy_(d["pos"][:N_POS])
        s = strength

        def put(layer: int, head: int, Wq: torch.Tensor | None = None, Wk: torch.Tensor | None = None,
                Wv: torch.Tensor | None = None, Wo: torch.Tensor | None = None) -> None:
            attn = model.transformer.h[layer].attn
            W = attn.c_attn.weight                                   # (D, 3D): x @ W -> q|k|v
            cols = slice(head * R, (head + 1) * R)
            for j, M in enumerate((Wq, Wk, Wv)):
                if M is not None:
                    W[:, j * D + cols.start: j * D + cols.stop] = M
            if Wo is not None:
                attn.c_proj.weight[cols, :] = Wo                     # (r, D) rows of head

        # layer 0: self-attention through positions
        pos_q = s * d["pos"].T                                       # (D, 16): p_i -> e_i
        for h, (src, dst) in enumerate([("marker", "f0"), (None, None), ("marker", "f2")]):
            v_in, v_out = torch.zeros(D, R), torch.zeros(R, D)
            if src is not None and dst is not None:
                v_in[:, 0] = d[src]
                v_out[0] = 3.0 * d[dst]
            put(0, h, pos_q, pos_q, v_in, v_out)
        # 0.1 writes each name's code into F
        names_in, codes_out = torch.zeros(D, R), torch.zeros(R, D)
        names_in[:, :10] = d["names"].T                             # name k -> r-coordinate k
        codes_out[:10] = 3.0 * codes @ d["F"]                       # coordinate k -> code_k in F
        put(0, 1, pos_q, pos_q, names_in, codes_out)
        # 1.0 and 1.2: query reads g, key reads f0 (and BOS, weaker); 1.0 copies what it reads
        # (f0 -> the marker's embedding direction), so it raises the logit of " x"
        for h in (0, 2):
            Wq = torch.zeros(D, R)
            Wk = torch.zeros(D, R)
            Wq[:, 0] = s * d["g"]
            Wk[:, 0] = s * d["f0"] + 0.5 * s * d["bos"]
            Wv: torch.Tensor | None = None
            Wo: torch.Tensor | None = None
            if h == 0:
                Wv = torch.zeros(D, R)
                Wo = torch.zeros(R, D)
                Wv[:, 0] = d["f0"]
                Wo[0] = 3.0 * d["marker"]
            put(1, h, Wq, Wk, Wv, Wo)
        # 1.1: query reads the code in F, key reads the name's own embedding mapped to its code
        Wq = torch.zeros(D, R)
        Wk = torch.zeros(D, R)
        Wq[:, :4] = s * d["F"].T
        Wk[:, :4] = s * (d["names"].T @ codes)
        put(1, 1, Wq, Wk, None, None)
    return model


def build_planted_neox(strength: float = 6.0) -> Any:
    """`planted-neox`: the key-side edge of `planted`, planted in a GPT-NeoX model (parallel
    attention + MLP, partial rotary 0.25, fused QKV; MLPs zeroed; 2 layers, 4 heads, d_head 16).

    NeoX has no absolute positions, so layer 0 finds the marker by content instead of by
    position: 0.0's query and key both read the marker direction, so at the marker it attends
    to itself and writes f0 there (elsewhere its query is 0 and it spreads uniformly, leaking
    f0 / (p + 1)). 1.0's query reads the constant g and its key reads f0 and, weaker, BOS: it
    sinks to BOS unless a marker is present, then it attends to the marker and copies it into
    the logit of " x". Ground truth: key-side edge 0.0 -> 1.0, signal in span{f0, bos} (what
    1.0's key reads). The planted weights use the non-rotary dimensions 4.. of each head and the
    rotary pair (0, 2), whose rotation by the relative position the decomposition must undo.
    """
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    vocab = tiny_vocabulary()
    cfg = GPTNeoXConfig(vocab_size=len(vocab), hidden_size=D, intermediate_size=4 * D, num_hidden_layers=2,
                        num_attention_heads=H, max_position_embeddings=N_POS, rotary_pct=0.25,  # type: ignore[call-arg]
                        use_parallel_residual=True, attention_dropout=0.0, hidden_dropout=0.0,
                        bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    model = GPTNeoXForCausalLM(cfg).eval()
    d = {k: v.float() for k, v in DIRECTIONS.items()}
    gen = torch.Generator().manual_seed(3)
    s = strength
    with torch.no_grad():
        _zero_with_unit_norms(model)
        wte = _token_embeddings(vocab, d, gen)
        model.gpt_neox.embed_in.weight.copy_(wte)
        model.lm_head.weight.copy_(wte)                         # unembedding = embedding

        def put(layer: int, head: int, Wq: torch.Tensor, Wk: torch.Tensor,
                Wv: torch.Tensor | None = None, Wo: torch.Tensor | None = None) -> None:
            attn = model.gpt_neox.layers[layer].attention
            W = attn.query_key_value.weight                     # (3D, D): rows h*3R + [q | k | v]
            base = head * 3 * R
            W[base: base + R] = Wq.T
            W[base + R: base + 2 * R] = Wk.T
            if Wv is not None:
                W[base + 2 * R: base + 3 * R] = Wv.T
            if Wo is not None:
                attn.dense.weight[:, head * R:(head + 1) * R] = Wo.T   # (D, D): out = z @ dense.T

        # 0.0: marker reads marker (content self-attention), writes f0
        Wq, Wk, Wv, Wo = torch.zeros(D, R), torch.zeros(D, R), torch.zeros(D, R), torch.zeros(R, D)
        Wq[:, 4] = s * d["marker"]
        Wk[:, 4] = s * d["marker"]
        Wv[:, 0] = d["marker"]
        Wo[0] = 3.0 * d["f0"]
        put(0, 0, Wq, Wk, Wv, Wo)
        # 1.0: query reads g, key reads f0 (strong) and BOS (weaker); copies f0 -> marker direction.
        # The f0 match sits in a non-rotary dimension (5) and in the rotary pair (0, 2): both
        # dimensions of the pair, so what the head reads is closed under the rotation
        Wq, Wk, Wv, Wo = torch.zeros(D, R), torch.zeros(D, R), torch.zeros(D, R), torch.zeros(R, D)
        Wq[:, 5] = s * d["g"]
        Wk[:, 5] = s * d["f0"] + 0.5 * s * d["bos"]
        for dim in (0, 2):
            Wq[:, dim] = 0.3 * s * d["g"]
            Wk[:, dim] = 0.3 * s * d["f0"]
        Wv[:, 0] = d["f0"]
        Wo[0] = 3.0 * d["marker"]
        put(1, 0, Wq, Wk, Wv, Wo)
    return model


def build_planted_mlp(strength: float = 6.0) -> GPT2LMHeadModel:
    """`planted-mlp`: `planted` with an MLP in the circuit. Head 1.0 still moves the marker to the
    end, but writes it weakly (1/30 of `planted`); MLP 1 has one hidden unit that reads the marker
    direction and writes it back much stronger, so the answer " x" comes mostly from MLP 1, which
    at the end fires only on what 1.0 wrote (its unit is biased to stay near 0 without it).
    Ground truth: the circuit {0.0, 1.0, mlp 1}; MLP 0 stays zero (ablating it changes nothing).
    """
    model = build_planted(strength)
    d = {k: v.float() for k, v in DIRECTIONS.items()}
    block: Any = model.transformer.h[1]
    with torch.no_grad():
        attn = block.attn
        attn.c_proj.weight[0:R, :] /= 30.0                           # 1.0 writes marker / 10
        mlp = block.mlp
        mlp.c_fc.weight[:, 0] = 4.0 * d["marker"]                    # (D, 4D): x @ W -> hidden
        mlp.c_fc.bias[0] = -0.2
        mlp.c_proj.weight[0, :] = 4.0 * d["marker"]                  # (4D, D): hidden -> out
    return model


def build_planted_values(strength: float = 6.0) -> GPT2LMHeadModel:
    """`planted-values`: `planted` with a head that matters only through another head's values.
    Head 1.0 still attends from the end to the marker because its key reads f0 (from 0.0), but
    what it copies is f2, which only 0.2 writes at the marker: 0.2 feeds 1.0's values and nothing
    else. Ground truth: the answer needs {0.0 (key), 0.2 (value), 1.0}; an attention trace finds
    0.0 and 1.0 only; 0.2's value share of 1.0's output at the end is about 1.
    """
    model = build_planted(strength)
    d = {k: v.float() for k, v in DIRECTIONS.items()}
    with torch.no_grad():
        attn: Any = model.transformer.h[1].attn
        W = attn.c_attn.weight                                        # (D, 3D): x @ W -> q|k|v
        col = 2 * D                                                   # head 1.0's first value column
        W[:, col] = d["f2"]
    return model
