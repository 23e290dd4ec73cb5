"""Disk cache of `HeadForms`, keyed by the weights' fingerprint (never by a model name).

A missing, partial, corrupt or out-of-version file is a cache miss with a warning. "Corrupt"
includes bytes changed in place with sizes and shapes intact: the file carries the sha256 of its
tensors, checked on every read (~0.2 s for the bundled model's 100 MB of forms).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sadlang.decomp.forms import FORMS_VERSION, HeadForms, compute_forms
from sadlang.models.cache_dir import cache_root
from sadlang.models.weights import ModelWeights

log = logging.getLogger(__name__)


def forms_path(fingerprint: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / "forms" / f"{fingerprint}-v{FORMS_VERSION}.safetensors"


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def load_cached(path: Path, weights: ModelWeights) -> HeadForms | None:
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        L, H, r, D = weights.n_layers, weights.n_heads, weights.d_head, weights.d_model
        expected = {"U": (L, H, D, r), "S": (L, H, r), "V": (L, H, D, r), "Gq": (L, H, r, r),
                    "Gk": (L, H, r, r), "WQ_pinv": (L, H, r, D), "WK_pinv": (L, H, r, D)}
        for key, shape in expected.items():
            if tuple(tensors[key].shape) != shape or not torch.isfinite(tensors[key]).all():
                raise ValueError(f"{key} has shape {tuple(tensors[key].shape)}")
        if meta.get("version") != FORMS_VERSION:
            raise ValueError("version mismatch")
        if meta.get("sha256") != digest(tensors):
            raise ValueError("content does not match its recorded sha256" if meta.get("sha256")
                             else "no content digest (written by an older sadlang)")
        fallback = [tuple(x) for x in json.loads(meta.get("fallback", "[]"))]
        deficient = [tuple(x) for x in json.loads(meta.get("rank_deficient", "[]"))]
    except Exception as exc:  # any unreadable file is a miss, never a crash
        log.warning("ignoring unreadable forms cache %s (%s); recomputing", path, exc)
        return None
    dev = weights.W_Q.device
    return HeadForms(**{k: v.to(dev) for k, v in tensors.items()}, fallback_heads=fallback, rank_deficient=deficient)


def save_cached(path: Path, forms: HeadForms) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".forms-", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: v.cpu() for k, v in forms.tensors().items()}
        save_file(tensors, tmp,
                  metadata={"version": FORMS_VERSION, "fallback": json.dumps(forms.fallback_heads),
                            "rank_deficient": json.dumps(forms.rank_deficient or []), "sha256": digest(tensors)})
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
