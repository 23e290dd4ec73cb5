"""Plain records describing a loaded model."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from sadlang.errors import PromptLengthError


class ModelInfo(BaseModel):
    """What a loaded model is, in numbers a spec can be checked against."""

    model_config = ConfigDict(frozen=True)

    name: str
    architecture: str  # "gpt2" | "llama" | ... (HF model_type)
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    positional: str  # "standard" | "rotary"
    norm: str  # "LN" | "RMS"
    source: str  # "bundled" | "package" | "builtin" | "hub" | "local"
    fingerprint: str  # sha256 prefix of the QK/OV weights after folding
    bos_token: str | None = None
    dtype: str = "fp32"  # of weights and forward passes: fp32, bf16 or fp16

    def head_range(self) -> str:
        return f"layers 0..{self.n_layers - 1}, heads 0..{self.n_heads - 1}"


def prompt_ids(text: str, tokenize: Callable[[str], list[int]], n_ctx: int, model: str) -> list[int]:
    """`tokenize(text)` (BOS included), refusing an empty prompt or one longer than the context
    (PromptLengthError: never cut short). One rule for the loaded and the planning model."""
    if not text.strip():
        raise PromptLengthError("the prompt is empty: there is no position to explain")
    ids = tokenize(text)
    if len(ids) > n_ctx:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise PromptLengthError(f"the prompt {shown!r} is {len(ids)} tokens (BOS included); "
                                f"{model} takes at most {n_ctx}")
    return ids
