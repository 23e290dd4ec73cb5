"""A model's tokenizer and shape without its weights: what compiling a plan needs (prompts,
roles, answers, head ranges), read from the config and tokenizer files alone. `sadlang plan`
uses it, so planning a spec never loads weights (the language server reads the same files).

    model = planning_model("smollm2-135m")    # None when the files are not on this machine
    compile_spec(spec, model)                 # the same prompts as with the loaded model

Token ids equal the loaded bridge's (`BOS + tokenizer(text)` without special tokens; a test
compares them on every built-in model and the bundled one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sadlang.models.info import ModelInfo, prompt_ids


@dataclass
class PlanningModel:
    """Duck-types LoadedModel for compiling: info, n_ctx, to_tokens, token_ids, decode."""

    tokenizer: Any
    info: ModelInfo
    n_ctx: int
    bos_id: int

    @property
    def name(self) -> str:
        return self.info.name

    def to_tokens(self, text: str) -> list[int]:
        """BOS + the text's tokens, as the bridge runs it; too long or empty is PromptLengthError."""
        return prompt_ids(text, lambda t: [self.bos_id, *self.token_ids(t)], self.n_ctx, self.info.name)

    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokenizer.decode([int(i)]) for i in ids]


def _files(ref: str) -> tuple[Any, Any] | None:
    """(config, tokenizer) of `ref` from files on this machine, or None."""
    from sadlang.models import builtin
    from sadlang.models.bundled import BUNDLED_NAME
    from sadlang.models.loader import ALIASES

    ref = ALIASES.get(ref, ref)
    base = ref.partition(":")[0]
    if base in builtin.BUILTIN:
        return builtin.build_config(base), builtin.tokenizer()
    folder: Path | None = None
    if ref == BUNDLED_NAME:
        from sadlang.models.cache_dir import cache_root

        folder = next(iter(sorted(p.parent for p in cache_root().glob("smollm2-135m-*/config.json"))), None)
    elif (Path(ref).expanduser() / "config.json").is_file():
        folder = Path(ref).expanduser()
    if folder is None:
        return None
    try:
        from transformers import AutoConfig, AutoTokenizer

        return (AutoConfig.from_pretrained(folder, local_files_only=True),
                AutoTokenizer.from_pretrained(folder, local_files_only=True))
    except Exception:          # incomplete files: the caller loads the model instead
        return None


def planning_model(ref: str) -> PlanningModel | None:
    """The planning view of model `ref`, from its config and tokenizer files (built-in models,
    the bundled model once converted, a local folder); None when they are not at hand."""
    found = _files(ref)
    if found is None:
        return None
    config, tok = found
    text_config = getattr(config, "text_config", None) or config

    def get(*names: str) -> Any:
        return next((getattr(text_config, n) for n in names if getattr(text_config, n, None)), None)

    n_layers, n_heads = int(get("num_hidden_layers", "n_layer")), int(get("num_attention_heads", "n_head"))
    d_model = int(get("hidden_size", "n_embd"))
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if bos is None:
        return None
    info = ModelInfo(name=ref, architecture=str(getattr(config, "model_type", "unknown")), n_layers=n_layers,
                     n_heads=n_heads, n_kv_heads=int(get("num_key_value_heads") or n_heads), d_model=d_model,
                     d_head=int(get("head_dim") or d_model // n_heads),
                     positional="standard" if get("n_positions") else "rotary",
                     norm="LN" if getattr(config, "model_type", "") in ("gpt2", "gpt_neox") else "RMS",
                     source="config", fingerprint="(weights not loaded)", bos_token=tok.bos_token)
    return PlanningModel(tokenizer=tok, info=info, n_ctx=int(get("n_positions", "max_position_embeddings")),
                         bos_id=int(bos))
