"""Plain records describing a loaded model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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

    def head_range(self) -> str:
        return f"layers 0..{self.n_layers - 1}, heads 0..{self.n_heads - 1}"
