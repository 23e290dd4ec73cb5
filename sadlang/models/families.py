"""The model-family registry: which Hugging Face architectures sadlang decomposes exactly, what
each adds to the attention computation, and the features it refuses.

A family's features are read from the **Hugging Face config** (the TransformerLens bridge's
config does not carry windows, partial rotary or post-norms reliably). `features(config)` names
every feature a model uses; `unsupported(config)` the ones the decomposition cannot handle
exactly yet, so loading refuses them (UnsupportedModelError, exit 3) instead of explaining a
different computation. Adding a family whose features are already decomposed is adding a record
here (with its tiny model); builtin.py, `sadlang models` and every family-parametrised test read
the registry (docs/architecture.md has the recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tiny:
    """A family's built-in random model (sadlang/models/builtin.py builds it, seeded).

    name:   as passed to `--model` (tiny-<family>)
    about:  one line for `sadlang models`
    config: (the shared small-model settings) -> its transformers config
    model:  the transformers class name of its causal LM
    eager:  compute attention eagerly (windows and soft-caps in the hooked pattern)
    """

    name: str
    about: str
    config: Callable[[dict[str, Any]], Any]
    model: str
    eager: bool = True


@dataclass(frozen=True)
class Family:
    """One architecture family. `model_types`: HF `config.model_type` values; `bridge`: a
    TransformerLens architecture name to boot a model of this family with; `adds`: what is new
    for the decomposition, in words; `tiny`: the built-in random model of the family, which every
    family-parametrised test runs (tests read `tiny_models()`, never a hand list)."""

    name: str
    model_types: tuple[str, ...]
    bridge: str
    adds: str
    tiny: Tiny | None = None
    papers: tuple[str, ...] = field(default_factory=tuple)
    built_in: tuple[str, ...] = ()      # features every model of the family has (no config flag says so)
    fold: str | None = None             # an in-place norm folder (models/folding.py), else the bridge folds


# features an architecture has without a config flag (a family lists them in `built_in`)
BUILT_IN_FEATURES = {
    "QK-norm": "RMSNorm on each head's q and k after projection",
    "post-norms": "RMSNorm on the attention and MLP outputs before the residual",
    "Q/K/V biases": "query and key biases (the offset component)",
}


def _tf() -> Any:
    import transformers

    return transformers


def _gemma3_config(common: dict[str, Any]) -> Any:
    cfg = _tf().Gemma3TextConfig(**common, num_key_value_heads=1, head_dim=16, sliding_window=6,
                                 query_pre_attn_scalar=32, layer_types=["sliding_attention", "full_attention"] * 2)
    cfg.architectures = ["Gemma3ForCausalLM"]   # the bridge picks its adapter from this
    return cfg


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gpt2", ("gpt2",), "gpt2",
           "LayerNorm (folded, centred), absolute positions, Q/K/V/O biases",
           Tiny("tiny-gpt2", "GPT-2 style: LayerNorm, absolute positions, Q/K/V/O biases (4 layers, 4 heads, "
                             "d_model 64)",
                lambda c: _tf().GPT2Config(vocab_size=c["vocab_size"], n_positions=128, n_embd=64, n_layer=4,
                                           n_head=4, bos_token_id=0, eos_token_id=0, resid_pdrop=0.0,
                                           embd_pdrop=0.0, attn_pdrop=0.0),
                "GPT2LMHeadModel", eager=False),
           ("GPT-2 small (SAD, ACC)",)),
    Family("llama", ("llama",), "meta-llama/Llama-3.2-1B",
           "RMSNorm (folded), rotary, grouped-query attention",
           Tiny("tiny-llama", "Llama style: RMSNorm, RoPE, grouped-query attention 4/2 (4 layers, d_model 64)",
                lambda c: _tf().LlamaConfig(**c, num_key_value_heads=2, rope_theta=10000.0),
                "LlamaForCausalLM", eager=False),
           ("SmolLM2 (bundled)", "Llama-3 (ACC++ library)"), fold="rms-pre"),
    Family("qwen2", ("qwen2",), "Qwen/Qwen2.5-0.5B",
           "Q/K/V biases under grouped-query attention (the `offset` component is non-zero)",
           Tiny("tiny-qwen2", "Qwen2 style: Llama plus Q/K/V biases, GQA 4/2 (4 layers, d_model 64)",
                lambda c: _tf().Qwen2Config(**c, num_key_value_heads=2, use_sliding_window=False),
                "Qwen2ForCausalLM"),
           ("Qwen2.5 (ACC++ library)",), built_in=("Q/K/V biases",)),
    Family("mistral", ("mistral",), "mistralai/Mistral-7B-v0.1",
           "sliding-window attention: keys outside a query's window are not keys",
           Tiny("tiny-mistral", "Mistral style: Llama plus a sliding window of 6 keys, GQA 4/2 (4 layers, "
                                "d_model 64)",
                lambda c: _tf().MistralConfig(**c, num_key_value_heads=2, sliding_window=6),
                "MistralForCausalLM"), fold="rms-pre"),
    Family("neox", ("gpt_neox",), "EleutherAI/pythia-70m",
           "parallel attention + MLP (both read the block input), partial rotary (rotary_pct), "
           "fused QKV with biases",
           # rotary_pct is the legacy spelling transformers still maps to partial_rotary_factor
           Tiny("tiny-neox", "GPT-NeoX/Pythia style: parallel attention+MLP, partial rotary 0.25, fused QKV "
                             "biases (4 layers, 4 heads, d_model 64)",
                lambda c: _tf().GPTNeoXConfig(**c, rotary_pct=0.25, use_parallel_residual=True,
                                              attention_dropout=0.0, hidden_dropout=0.0),
                "GPTNeoXForCausalLM"),
           ("Pythia-160M (ACC)",)),
    Family("gemma2", ("gemma2",), "google/gemma-2-2b",
           "attention logit soft-capping (terms explain the pre-cap score), pre+post norms (post gain "
           "folded in W_O, scale frozen), alternating sliding/global layers, query_pre_attn_scalar, "
           "scaled embeddings; no edge-level circuits or path patching",
           Tiny("tiny-gemma2", "Gemma-2 style: soft-capped scores, pre+post norms, sliding/global layers, "
                               "query_pre_attn_scalar, GQA 4/2 (4 layers, d_model 64)",
                lambda c: _tf().Gemma2Config(**c, num_key_value_heads=2, head_dim=16, sliding_window=6,
                                             attn_logit_softcapping=50.0, final_logit_softcapping=None,
                                             query_pre_attn_scalar=32),
                "Gemma2ForCausalLM"),
           ("Gemma-2-2B (ACC++)",), built_in=("post-norms",), fold="rms-pre-offset"),
    Family("gemma3", ("gemma3_text", "gemma3"), "google/gemma-3-270m",
           "QK-norm (RMSNorm on q and k per head after projection: gains folded in W_Q/W_K, scales "
           "frozen per position and head), pre+post norms, 5:1 local/global layers with two RoPE "
           "bases (per-layer tables), query_pre_attn_scalar; no edge-level circuits or path patching",
           Tiny("tiny-gemma3", "Gemma-3 style: QK-norm, pre+post norms, local/global layers with two RoPE "
                               "bases, MQA 4/1 (4 layers, d_model 64)",
                _gemma3_config, "Gemma3ForCausalLM"), built_in=("QK-norm", "post-norms"), fold="rms-pre-offset"),
    Family("qwen3", ("qwen3",), "Qwen/Qwen3-0.6B",
           "QK-norm (RMSNorm on q and k per head, gains folded in W_Q/W_K, scales frozen) under "
           "grouped-query attention, no post-norms",
           Tiny("tiny-qwen3", "Qwen3 style: Llama plus QK-norm, GQA 4/2 (4 layers, d_model 64)",
                lambda c: _tf().Qwen3Config(**c, num_key_value_heads=2, head_dim=16, use_sliding_window=False),
                "Qwen3ForCausalLM"),
           ("Qwen3",), built_in=("QK-norm",), fold="rms-pre"),
]}

# features that stop edge-level circuits and path patching (they rebuild scores and head inputs)
NOT_REWIRABLE = ("soft-capped scores", "post-norms", "QK-norm")


def tiny_models(rewirable: bool | None = None) -> list[str]:
    """The built-in tiny model of every family, in registry order; with `rewirable`, only those
    whose features do (True) or do not (False) allow edge-level circuits and path patching."""
    from sadlang.models.builtin import build_config

    out = []
    for f in FAMILIES.values():
        if f.tiny is None:
            continue
        ok = not set(NOT_REWIRABLE) & set(features(build_config(f.tiny.name)))
        if rewirable is None or ok == rewirable:
            out.append(f.tiny.name)
    return out


def family_of(config: Any) -> Family | None:
    model_type = str(getattr(config, "model_type", ""))
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def _get(config: Any, name: str, default: Any = None) -> Any:
    return getattr(config, name, default)


def sliding_windows(config: Any) -> list[int | None]:
    """Per layer: the sliding-window size (keys d-w+1..d), or None for global attention."""
    n = int(_get(config, "num_hidden_layers", 0) or 0)
    window = _get(config, "sliding_window", None)
    if not window or not _get(config, "use_sliding_window", True):
        return [None] * n
    types = _get(config, "layer_types", None)
    if types:
        return [int(window) if t == "sliding_attention" else None for t in types]
    return [int(window)] * n


def features(config: Any) -> dict[str, str]:
    """Feature name -> detail, for every attention-relevant feature the config uses."""
    out: dict[str, str] = {}
    model_type = str(_get(config, "model_type", ""))
    if _get(config, "use_parallel_residual", False) and model_type == "gpt_neox":
        out["parallel blocks"] = "attention and MLP read the same block input"
    pct = _get(config, "rotary_pct", None)
    if pct is None:
        pct = (_get(config, "rope_parameters", None) or {}).get("partial_rotary_factor") if isinstance(
            _get(config, "rope_parameters", None), dict) else None
    if pct is not None and float(pct) < 1.0:
        out["partial rotary"] = f"rotary on {float(pct):g} of each head's dimensions"
    windows = sliding_windows(config)
    if any(w is not None for w in windows):
        n_local = sum(w is not None for w in windows)
        out["sliding window"] = f"window {next(w for w in windows if w)} on {n_local} of {len(windows)} layers"
    cap = _get(config, "attn_logit_softcapping", None)
    if cap:
        out["soft-capped scores"] = f"tanh(z/{cap:g})*{cap:g}"
    family = family_of(config)
    for name in family.built_in if family is not None else ():
        out[name] = BUILT_IN_FEATURES[name]
    if _get(config, "attention_bias", False):
        out["Q/K/V biases"] = BUILT_IN_FEATURES["Q/K/V biases"]
    if _get(config, "num_experts", None) or _get(config, "num_local_experts", None):
        out["mixture of experts"] = "routed MLPs"
    return out


def attn_scale(config: Any) -> float | None:
    """The divisor of q.k when it is not sqrt(d_head): Gemma's sqrt(query_pre_attn_scalar)."""
    scalar = _get(config, "query_pre_attn_scalar", None)
    return float(scalar) ** 0.5 if scalar else None


def _gain(norm: Any, size: int) -> Any:
    """An RMSNorm's gain, read by running it on ones (rms 1): norm(1) * sqrt(1 + eps). Gemma's
    (1 + weight) convention needs no special case."""
    import torch

    eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 0.0)))
    with torch.no_grad():
        return norm(torch.ones(1, size, dtype=torch.float32)).reshape(size).float() * (1.0 + eps) ** 0.5


def qk_norm_gains(hf_model: Any) -> Any:
    """((L, r), (L, r)) gains of the per-head q and k RMSNorms (Gemma-3), or None."""
    import torch

    config = hf_model.config
    if "QK-norm" not in features(config):
        return None
    r = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    layers = hf_model.model.layers
    return (torch.stack([_gain(layer.self_attn.q_norm, r) for layer in layers]),
            torch.stack([_gain(layer.self_attn.k_norm, r) for layer in layers]))


def rope_per_layer(config: Any) -> bool:
    """Whether layers rotate with different RoPE bases (Gemma-3: local vs global layers)."""
    params = _get(config, "rope_parameters", None)
    if isinstance(params, dict) and all(isinstance(v, dict) for v in params.values()) and len(params) > 1:
        return len({repr(sorted(v.items())) for v in params.values()}) > 1
    return _get(config, "rope_local_base_freq", None) not in (None, _get(config, "rope_theta", None))


def post_attention_gains(hf_model: Any) -> Any:
    """(L, D) gains of the RMSNorm on each attention output (Gemma-2/3), or None."""
    import torch

    config = hf_model.config
    if "post-norms" not in features(config):
        return None
    D = int(config.hidden_size)
    return torch.stack([_gain(layer.post_attention_layernorm, D) for layer in hf_model.model.layers])


# what the decomposition handles exactly today; every other feature is refused
SUPPORTED = {"parallel blocks", "partial rotary", "sliding window", "Q/K/V biases", "soft-capped scores",
             "post-norms", "QK-norm"}


def unsupported(config: Any) -> dict[str, str]:
    """The features of `config` the decomposition does not handle exactly (empty: supported)."""
    out = {k: v for k, v in features(config).items() if k not in SUPPORTED}
    if family_of(config) is None:
        out["architecture"] = f"model_type {_get(config, 'model_type', '?')!r} is not in sadlang's family registry"
    return out


def status(f: Family) -> str:
    """`exact`, or `refused: <features>`: judged on the family's tiny model's config."""
    from sadlang.models.builtin import build_config

    if f.tiny is None:
        return "exact"
    missing = unsupported(build_config(f.tiny.name))
    return "exact" if not missing else "refused: " + ", ".join(missing)


def table() -> list[tuple[str, str, str, str, str]]:
    """(family, HF model types, tiny model, status, what it adds) for `sadlang models --architectures`."""
    return [(f.name, ", ".join(f.model_types), f.tiny.name if f.tiny else "-", status(f), f.adds)
            for f in FAMILIES.values()]


def docs_table() -> str:
    """The model-families table of docs/language.md."""
    rows = ["| family | HF model types | tiny model | status | adds to attention |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{name}` | {types} | `{tiny}` | {state} | {adds} |" for name, types, tiny, state, adds in table()]
    return "\n".join(rows)
