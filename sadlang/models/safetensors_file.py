"""Reading a safetensors file's layout without the safetensors loader, for readers that place the
bytes themselves: the bundled model's cache (read into stacks, models/bundled.py) and the QK forms
cache (checked from the file, then mapped: decomp/forms_cache.py).

A file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
data_offsets relative to the data; `__metadata__`) and the data.
"""

from __future__ import annotations

import json
from typing import IO, Any

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def read_header(handle: IO[bytes]) -> tuple[dict[str, Any], int]:
    """(the header, the byte offset where the data starts) of the file open as `handle`, read
    from its start."""
    handle.seek(0)
    size = int.from_bytes(handle.read(8), "little")
    return json.loads(handle.read(size)), 8 + size


def tensors_of(header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The header's tensor entries (without `__metadata__`), in the order of their data."""
    entries = [(name, e) for name, e in header.items() if name != "__metadata__"]
    return dict(sorted(entries, key=lambda item: item[1]["data_offsets"][0]))
