"""Head scans: which heads behave like a known pattern (previous-token, duplicate-token,
induction, sink), scored on a set of prompts from their attention alone.

A pattern is a 0/1 lower-triangular (n, n) matrix marking the keys a head of that kind attends to
from each query. Two scores per head, each averaged over prompts:

    score(L, H)   = sum(A[L, H] * P) / sum(A[L, H])          over every query
    focused(L, H) = the same over the queries that have a marked key

`score` is TransformerLens' `detect_head` with `error_measure="mul"` (same patterns; a test compares
the two). It counts every query, so a pattern that applies to few of them scores low: induction on
an IOI prompt has marked keys only at the repeated name. `focused` asks the question a circuit
hypothesis asks ("where it can, does the head do this?"), and heads are ranked by it.

`sink` (not a TransformerLens pattern) marks the BOS key from every later query. Patterns are a
registry (`PATTERNS`); `scan_heads` takes the (L, H, n, n) attention of each prompt.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# importing this module loads no torch (the CLI reads the pattern names before any model)
Pattern = Callable[[Sequence[int]], "torch.Tensor"]   # token ids (BOS first) -> (n, n) 0/1 lower-triangular


def previous_token(tokens: Sequence[int]) -> torch.Tensor:
    """Each query marks the key just before it."""
    import torch

    n = len(tokens)
    out = torch.zeros(n, n)
    out[1:, :-1] = torch.eye(n - 1)
    return out


def duplicate_token(tokens: Sequence[int]) -> torch.Tensor:
    """Each query marks earlier keys holding the same token."""
    import torch

    t = torch.tensor(list(tokens))
    out = (t[:, None] == t[None, :]).float()
    out.fill_diagonal_(0)
    return torch.tril(out)


def induction(tokens: Sequence[int]) -> torch.Tensor:
    """Each query marks the keys right after an earlier occurrence of its token."""
    import torch

    dup = duplicate_token(tokens)
    out = torch.zeros_like(dup)
    out[:, 1:] = dup[:, :-1]
    return torch.tril(out)


def sink(tokens: Sequence[int]) -> torch.Tensor:
    """Each query after BOS marks the BOS key."""
    import torch

    out = torch.zeros(len(tokens), len(tokens))
    out[1:, 0] = 1.0
    return out


PATTERNS: dict[str, Pattern] = {"prev-token": previous_token, "duplicate-token": duplicate_token,
                                "induction": induction, "sink": sink}


def head_scores(pattern: torch.Tensor, marked: torch.Tensor, focused: bool = False) -> torch.Tensor:
    """(L, H) share of each head's attention on the marked keys, over every query or (`focused`)
    over the queries with a marked key; NaN where there is none.

    pattern: (L, H, n, n) attention of one prompt; marked: (n, n) 0/1."""
    import torch

    marked = marked.to(pattern.dtype).to(pattern.device)
    if focused:
        rows = marked.sum(-1) > 0                                          # (n,) queries with a marked key
        if not bool(rows.any()):
            return torch.full(pattern.shape[:2], float("nan"), dtype=pattern.dtype)
        pattern, marked = pattern[:, :, rows], marked[rows]
    return (pattern * marked).sum((-1, -2)) / pattern.sum((-1, -2))


def scan_heads(patterns: Sequence[torch.Tensor], tokens: Sequence[Sequence[int]], name: str,
               focused: bool = False) -> torch.Tensor:
    """(L, H) mean score of pattern `name` over prompts (attention (L, H, n, n) and token ids each);
    `focused` averages over the prompts where the pattern marks a key at all."""
    import torch

    build = PATTERNS[name]
    scores = torch.stack([head_scores(p, build(t), focused) for p, t in zip(patterns, tokens, strict=True)])
    return scores.nanmean(0)


def _scan_file(model: str, pattern: str) -> Path:
    from sadlang.models.cache_dir import cache_root

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    return cache_root() / "scans" / safe / f"{pattern}.json"


def remember(model: str, pattern: str, scores: torch.Tensor, where: str) -> None:
    """Keep a scan's focused scores in the user cache, for the editor's hover on heads."""
    path = _scan_file(model, pattern)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {f"{layer}.{head}": round(float(v), 4) for (layer, head), v in _items(scores)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model": model, "pattern": pattern, "prompts": where, "scores": values}))
    tmp.replace(path)


def remembered(model: str) -> dict[str, dict[str, Any]]:
    """pattern -> the last scan of `model` kept by `remember` (scores by head, prompts)."""
    out: dict[str, dict[str, Any]] = {}
    folder = _scan_file(model, "x").parent
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            out[str(data["pattern"])] = data
        except (OSError, ValueError, KeyError):
            continue               # a torn or foreign file: no hover, never an error
    return out


def _items(scores: torch.Tensor) -> list[tuple[tuple[int, int], float]]:
    return [((layer, head), float(scores[layer, head])) for layer in range(scores.shape[0])
            for head in range(scores.shape[1]) if not math.isnan(float(scores[layer, head]))]


def ranked(scores: torch.Tensor, top: int) -> list[tuple[int, int, float]]:
    """The `top` heads by score: (layer, head, score), best first."""
    import torch

    flat = scores.flatten()
    order = torch.argsort(flat, descending=True)[:top]
    H = scores.shape[1]
    return [(int(i) // H, int(i) % H, float(flat[i])) for i in order]
