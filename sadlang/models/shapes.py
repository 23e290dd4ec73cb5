"""A model's layer and head counts from its configuration alone, without loading weights: what
editor tooling needs to check head references (`sadlang lsp`). Built-in models read their code
configs; the bundled model its converted cache (or GGUF header); a local directory or a hub name
already in the local Hugging Face cache its config.json. Unknown offline: None, never a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Shape:
    """What head references are checked against (duck-types ModelInfo's fields)."""

    name: str
    n_layers: int
    n_heads: int


def _from_config(name: str, path: Path) -> Shape | None:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    if isinstance(layers, int) and isinstance(heads, int):
        return Shape(name, layers, heads)
    return None


@lru_cache(maxsize=32)
def cached_shape(ref: str) -> Shape | None:
    from sadlang.models import builtin
    from sadlang.models.bundled import BUNDLED_NAME
    from sadlang.models.loader import ALIASES

    ref = ALIASES.get(ref, ref)
    base = ref.partition(":")[0]
    if base in builtin.BUILTIN:
        cfg: Any = builtin.build_config(base)
        return Shape(base, int(cfg.num_hidden_layers), int(cfg.num_attention_heads))
    if ref == BUNDLED_NAME:
        from sadlang.models.cache_dir import cache_root

        for config in sorted(cache_root().glob("smollm2-135m-*/config.json")):
            return _from_config(ref, config)
        return None
    local = Path(ref).expanduser()
    if (local / "config.json").is_file():
        return _from_config(ref, local / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    found = try_to_load_from_cache(ref, "config.json")
    return _from_config(ref, Path(found)) if isinstance(found, str) else None
