"""Disk cache of `HeadForms`, keyed by the weights' fingerprint (never by a model name).

A missing, partial, corrupt or out-of-version file is a cache miss with a warning. "Corrupt"
includes bytes changed in place with sizes and shapes intact: the file carries a digest of its
tensors, checked on every read from the file itself; the tensors are then mapped, not read, so
the bulk of them never takes memory. The digest is xxh3-128 (models/weights.py): 0.04 s for the
bundled model's 168 MB of forms from the page cache, where sha256 took 0.15 s. A file written
with a sha256 digest (before 2026-12-02) is still checked by that.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from sadlang.decomp.forms import FORMS_VERSION, HeadForms, compute_forms
from sadlang.models.cache_dir import cache_root
from sadlang.models.safetensors_file import DTYPES, read_header, tensors_of
from sadlang.models.weights import ModelWeights, hasher, tensors_digest

log = logging.getLogger(__name__)


def forms_path(fingerprint: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / "forms" / f"{fingerprint}-v{FORMS_VERSION}.safetensors"


# the digests a forms file may record (`tensors_digest` algorithms), the current one first
DIGESTS = ("xxh3", "sha256")


def _header(path: Path) -> tuple[dict, int]:
    """The file's safetensors header and where its data starts (models/safetensors_file.py)."""
    with open(path, "rb") as f:
        return read_header(f)


def _file_digest(path: Path, header: dict, start: int, algorithm: str) -> str:
    """`tensors_digest` of the file's tensors, read from the file in chunks (through the page
    cache, not into the process: the mapped tensors stay unread until a claim reads them)."""
    h = hasher(algorithm)
    with open(path, "rb") as f:
        for key in sorted(tensors_of(header)):
            info = header[key]
            h.update(f"{key}{tuple(info['shape'])}{DTYPES[info['dtype']]}".encode())
            begin, end = info["data_offsets"]
            f.seek(start + begin)
            left = end - begin
            while left > 0:
                chunk = f.read(min(left, 8 * 2**20))
                if not chunk:
                    raise ValueError(f"{key} is cut short")
                h.update(chunk)
                left -= len(chunk)
    return str(h.hexdigest())


def _mapped(path: Path, header: dict, start: int) -> dict[str, torch.Tensor]:
    """The file's tensors as views of one private mapping of it: a page is read (and counts in
    memory) only when a tensor on it is; writes would stay in memory, never reach the file."""
    buffer = torch.from_file(str(path), shared=False, size=path.stat().st_size, dtype=torch.uint8)
    out = {}
    for key, info in tensors_of(header).items():
        begin, end = info["data_offsets"]
        out[key] = buffer[start + begin:start + end].view(DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def load_cached(path: Path, weights: ModelWeights) -> HeadForms | None:
    """The cached forms, mapped from the file (U, V and the pseudo-inverses are 95% of the bytes
    and are read for the few heads that interventions touch), or None on any doubt."""
    if not path.is_file():
        return None
    try:
        header, start = _header(path)
        meta = header.get("__metadata__") or {}
        L, H, r, D = weights.n_layers, weights.n_heads, weights.d_head, weights.d_model
        expected = {"U": (L, H, D, r), "S": (L, H, r), "V": (L, H, D, r), "Gq": (L, H, r, r),
                    "Gk": (L, H, r, r), "WQ_pinv": (L, H, r, D), "WK_pinv": (L, H, r, D)}
        for key, shape in expected.items():
            if key not in header or tuple(header[key]["shape"]) != shape or header[key]["dtype"] != "F32":
                raise ValueError(f"{key} has shape {header.get(key, {}).get('shape')}")
        if meta.get("version") != FORMS_VERSION:
            raise ValueError("version mismatch")
        algorithm = next((a for a in DIGESTS if meta.get(a)), None)
        if algorithm is None:
            raise ValueError("no content digest (written by an older sadlang)")
        if meta[algorithm] != _file_digest(path, header, start, algorithm):
            raise ValueError(f"content does not match its recorded {algorithm}")
        tensors = _mapped(path, header, start)
        if not all(bool(torch.isfinite(tensors[k]).all()) for k in ("S", "Gq", "Gk")):
            raise ValueError("non-finite singular values or coordinate maps")
        fallback = [tuple(x) for x in json.loads(meta.get("fallback", "[]"))]
        deficient = [tuple(x) for x in json.loads(meta.get("rank_deficient", "[]"))]
    except Exception as exc:  # any unreadable file is a miss, never a crash
        log.warning("ignoring unreadable forms cache %s (%s); recomputing", path, exc)
        return None
    dev = weights.W_Q.device
    return HeadForms(**{k: v.to(dev) for k, v in tensors.items() if k in expected}, fallback_heads=fallback,
                     rank_deficient=deficient)


def save_cached(path: Path, forms: HeadForms) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".forms-", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: v.cpu() for k, v in forms.tensors().items()}
        save_file(tensors, tmp,
                  metadata={"version": FORMS_VERSION, "fallback": json.dumps(forms.fallback_heads),
                            "rank_deficient": json.dumps(forms.rank_deficient or []),
                            DIGESTS[0]: tensors_digest(tensors, DIGESTS[0])})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def get_forms(weights: ModelWeights, fingerprint: str, use_disk: bool = True) -> HeadForms:
    """Forms for these weights: from the disk cache when valid, else computed (and saved)."""
    path = forms_path(fingerprint)
    if use_disk:
        cached = load_cached(path, weights)
        if cached is not None:
            return cached
    computed = compute_forms(weights)
    # the same contiguous layout a cache hit has: matmul kernels (and so the last float bits of
    # every result) must not depend on whether the forms came from disk
    forms = HeadForms(**computed.tensors(), fallback_heads=computed.fallback_heads,
                      rank_deficient=computed.rank_deficient)
    if use_disk:
        try:
            save_cached(path, forms)
        except OSError as exc:
            log.warning("could not write forms cache %s: %s", path, exc)
    return forms
