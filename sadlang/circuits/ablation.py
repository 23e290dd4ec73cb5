"""Node ablations of attention heads through `blocks.L.attn.hook_z` (the head's output before
W_O): at each (layer, position, head) that a variant does not keep, z is replaced by a
reference value:

(the kinds are a registry, sadlang/circuits/ablations.py)

- zero:     0;
- mean:     the mean of z over the reference prompts with the same template and length
            (positions align), or over the same length when no reference prompt shares the
            template; never over the prompt itself (a reference prompt with the same tokens is
            left out). The reference is a held-out draw of the set's templates (the plan's
            `SET:reference`), or any set named by `over SET`; a set of literal prompts is its own
            reference, each prompt left out of its own mean;
- resample: z of the aligned counterfactual prompt (same template and positions).

A row may also replace MLP outputs (`blocks.L.hook_mlp_out`, at each (layer, position) it does not
keep, by the same kinds of reference value): circuits with MLP nodes ablate the MLPs outside them,
and `ablate mlp L` one MLP. Embeddings and biases are never ablated. A row may also cut paths between heads (edge-level
circuits, sadlang/circuits/wiring.py). Every variant of every prompt of one length
runs in the same forward passes (batched `batch_size` rows at a time).

Rows share their prefixes (`shared_prefixes`): a row that keeps the same head outputs as the
clean run, or as another row of its prompt, in every layer before k starts at block k from that
run's residual (decomp/passes.py `Resume`). A circuit's variants without one node differ from the
circuit alone only from that node's layer on; a node ablation only from the node's layer.

Shapes: L layers, n positions, H query heads, r d_head, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sadlang.circuits.per_prompt import PerPrompt
from sadlang.circuits.wiring import RowValues, WiredRun, Wiring
from sadlang.decomp.activations import PromptActivations
from sadlang.decomp.passes import ResidualTap, Resume, last_logits
from sadlang.errors import SadError
from sadlang.evidence.store import PromptSetEvidence
from sadlang.models.loader import LoadedModel
from sadlang.prompts.build import BuiltPrompt


def head_z(acts: PromptActivations, model: LoadedModel) -> torch.Tensor:
    """(L, n, H, r): every head's attention-weighted values, from the clean run's pattern and
    value vectors (what hook_z holds; exact, no forward pass)."""
    w = model.weights
    kv = torch.tensor([w.kv(h) for h in range(w.n_heads)], device=acts.v.device)
    v = acts.v[:, :, kv, :]                                        # (L, n, H, r)
    return torch.einsum("lhds,lshr->ldhr", acts.pattern, v)


def mlp_out(acts: PromptActivations, model: LoadedModel) -> torch.Tensor:
    """(L, n, D): every MLP's output (hook_mlp_out) in the clean run."""
    return acts.mlp_out


def one_head_z(acts: PromptActivations, model: LoadedModel, layer: int, head: int) -> torch.Tensor:
    """(n, r): head_z(acts, model)[layer, :, head], computed for that head alone."""
    return acts.pattern[layer, head] @ acts.v[layer, :, model.weights.kv(head)]


class MeanReferenceError(SadError):
    """A mean ablation whose reference set has no other prompt of a measured prompt's length."""


def mean_values(ev: PromptSetEvidence, reference: PromptSetEvidence | None,
                read: Callable[[PromptActivations, LoadedModel], torch.Tensor] = head_z) -> list[torch.Tensor]:
    """Per prompt of `ev`, the mean of what `read` takes from a prompt (head outputs (L, n, H, r)
    by default; `mlp_out` for MLPs) over `reference` (None: `ev` itself, each prompt left out),
    by `mean_members`. Prompts with the same members share one tensor (with a held-out reference
    that is every prompt of a template and length): 96 prompts of one template hold one mean, not
    96 copies of 1.1 MB each on the bundled model. The values are read, never written."""
    ref = ev if reference is None else reference
    zs: dict[int, torch.Tensor] = {}
    means: dict[tuple[int, ...], torch.Tensor] = {}

    def z(j: int) -> torch.Tensor:
        if j not in zs:
            zs[j] = read(ref.acts(j), ev.model)
        return zs[j]

    def mean(members: tuple[int, ...]) -> torch.Tensor:
        if members not in means:
            means[members] = torch.stack([z(j) for j in members]).mean(0)
        return means[members]

    return [mean(tuple(mean_members(p, ref, ev.name))) for p in ev.prompts]


def mean_members(p: BuiltPrompt, ref: PromptSetEvidence, measured: str) -> list[int]:
    """The reference prompts whose mean replaces `p`'s ablated outputs: those of p's template and
    length, else of its length, never one with p's own tokens."""
    n = len(p.tokens)
    others = [j for j, q in enumerate(ref.prompts) if len(q.tokens) == n and q.tokens != p.tokens]
    same = [j for j in others if ref.prompts[j].template == p.template]
    if same or others:
        return same or others
    raise MeanReferenceError(
        f"mean ablation of prompt set {measured!r}: the reference prompts ({ref.name!r}, {len(ref)}) hold no prompt "
        f"of {n} tokens other than {p.text!r} itself, so its mean would contain the prompt; name a larger "
        f"reference with `by mean ablation over SET`, or add prompts of that length")


@dataclass
class Row:
    """One forward pass row: prompt `prompt` with head outputs kept where `keep` (L, n, H) is
    True, MLP outputs kept where `mlp_keep` (L, n) is True (None: every MLP), and with the paths
    `wiring` cuts (sadlang/circuits/wiring.py) when it has one."""

    prompt: int
    keep: torch.Tensor
    wiring: Wiring | None = None
    mlp_keep: torch.Tensor | None = None

    def mlps_kept(self) -> torch.Tensor:
        """(L, n) bool: the MLP outputs the row keeps (every one without `mlp_keep`)."""
        if self.mlp_keep is None:
            return torch.ones(self.keep.shape[:2], dtype=torch.bool)
        return self.mlp_keep


@dataclass(frozen=True)
class Start:
    """Where a row's pass starts: at block `layer` from the residual of `base` (None: the clean
    run; else the index of a row run from the start). layer 0: a full pass; layer L: the row
    equals its base everywhere and needs no pass."""

    layer: int = 0
    base: int | None = None


def _cuts_by_layer(wiring: Wiring | None) -> dict[int, frozenset]:
    """A wiring's cut paths grouped by the layer of their receiver."""
    out: dict[int, set] = {}
    for (receiver, side), senders in (wiring.cuts.items() if wiring else ()):
        if senders:
            out.setdefault(receiver[0], set()).add((receiver, side, senders))
    return {layer: frozenset(cuts) for layer, cuts in out.items()}


def _first_difference(a: Row, b: Row | None, n_layers: int) -> int:
    """The first layer where rows a and b of one prompt compute something different (b None:
    the clean run, which keeps every head output and cuts nothing); n_layers when they never do.
    They part where their keep masks (L, n, H) first differ, where the paths cut into a layer's
    heads first differ, and at the last layer when they withhold different heads from the logits."""
    differs = (~a.keep if b is None else a.keep != b.keep).flatten(1).any(1)
    if a.mlp_keep is not None or (b is not None and b.mlp_keep is not None):
        other = torch.ones_like(a.mlps_kept()) if b is None else b.mlps_kept()
        differs = differs | (a.mlps_kept() != other).any(1)
    first = int(differs.float().argmax()) if bool(differs.any()) else n_layers
    mine, theirs = _cuts_by_layer(a.wiring), _cuts_by_layer(None if b is None else b.wiring)
    first = min([first, *(layer for layer in set(mine) | set(theirs) if mine.get(layer) != theirs.get(layer))])
    withheld = [row.wiring.logits if row is not None and row.wiring else frozenset() for row in (a, b)]
    return min(first, n_layers - 1) if withheld[0] != withheld[1] else first


def shared_prefixes(rows: list[Row]) -> list[Start]:
    """Per row, where its pass can start: the latest layer up to which it equals the clean run or
    an earlier full-pass row of its prompt (same reference values: they replace the same outputs
    with the same values there, and cut the same paths); the clean run wins ties. A row that
    cuts paths resumes only from the clean run or a row that cuts paths too, whose writes so far
    (z - reference) its cuts read (`run_rows` keeps them); one that cuts MLP paths, only from a
    row that cuts MLP paths too (only such a row's pass keeps its MLP writes)."""
    if not rows:
        return []
    L = rows[0].keep.shape[0]
    out: list[Start] = []
    full: dict[int, list[int]] = {}          # prompt -> its rows run from the start
    for k, row in enumerate(rows):
        best = Start(_first_difference(row, None, L), None)
        for j in full.get(row.prompt, []):
            if row.wiring and not rows[j].wiring:
                continue
            if row.wiring and row.wiring.cuts_mlps() and not rows[j].wiring.cuts_mlps():   # type: ignore[union-attr]
                continue                      # its MLP writes are kept only by a base that cuts MLPs too
            layer = _first_difference(row, rows[j], L)
            if layer > best.layer:
                best = Start(layer, j)
        if best.layer == 0:
            full.setdefault(row.prompt, []).append(k)
            best = Start()
        out.append(best)
    return out


# What a pass costs, in row-layers (one row through one block): a pass of b rows through m blocks
# costs about PASS_COST + m * (b + ROW_WIDTH). Measured on the bundled model on 2 CPU threads
# (benchmarks/check.py conditions): a pass has a fixed cost, and a small batch uses the cores
# poorly, so resumed rows of nearby start layers are better run together from the earlier one.
PASS_COST = 30
ROW_WIDTH = 5


def _partition(starts: list[int], n_layers: int, batch_size: int) -> list[tuple[int, int]]:
    """Cut rows sorted by start layer (ascending) into passes [i, j) of at most `batch_size` rows,
    each starting at its first row's layer, at the least cost (above): dynamic programming."""
    m = len(starts)
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        for i in range(max(0, j - batch_size), j):
            cost = best[i] + PASS_COST + (n_layers - starts[i]) * (j - i + ROW_WIDTH)
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out, j = [], m
    while j > 0:
        out.append((cut[j], j))
        j = cut[j]
    return out[::-1]


def row_passes(ev: PromptSetEvidence, rows: list[Row], batch_size: int,
               starts: list[Start] | None = None) -> list[tuple[int, list[int]]]:
    """The passes `run_rows` makes of `rows`: (start layer, row indices). Rows of one length share
    passes; each pass starts at the earliest start layer of its rows (`starts`, by default
    `shared_prefixes(rows)`), chosen by `_partition`; passes from the first layer come first
    (they run the rows others resume from). Rows equal to their base everywhere need no pass."""
    L = ev.model.info.n_layers
    if starts is None:
        starts = shared_prefixes(rows)
    by_len: dict[int, list[int]] = {}
    for k, s in enumerate(starts):
        if s.layer < L:
            by_len.setdefault(len(ev.prompts[rows[k].prompt].tokens), []).append(k)
    out: list[tuple[int, list[int]]] = []
    for _, members in sorted(by_len.items()):
        members.sort(key=lambda k: starts[k].layer)
        layers = [starts[k].layer for k in members]
        out += [(layers[i], members[i:j]) for i, j in _partition(layers, L, batch_size)]
    return sorted(out, key=lambda p: p[0])


def _mlp_hooks(model: LoadedModel, rows: list[Row], chunk: list[int],
               mlp_values: Sequence[torch.Tensor] | None) -> list:
    """hook_mlp_out swaps of one pass: every MLP output a row does not keep replaced by its
    reference value (none when no row of the pass ablates an MLP)."""
    if all(rows[k].mlp_keep is None for k in chunk):
        return []
    assert mlp_values is not None, "rows ablate MLPs, so the lab must give their reference values"
    L = model.info.n_layers
    keep = torch.stack([rows[k].mlps_kept() for k in chunk]).to(model.device)            # (b, L, n)
    repl = RowValues([mlp_values[rows[k].prompt] for k in chunk], model.device)    # (b, L, n, D)
    hooks = []
    for layer in range(L):
        if not bool((~keep[:, layer]).any()):
            continue

        def swap(x: torch.Tensor, hook: Any, layer: int = layer) -> torch.Tensor:
            return torch.where(keep[:, layer, :, None], x, repl.at(layer).to(x.dtype))
        hooks.append((f"blocks.{layer}.hook_mlp_out", swap))
    return hooks


def _ablation_hooks(model: LoadedModel, rows: list[Row], chunk: list[int], ev: PromptSetEvidence,
                    values: Sequence[torch.Tensor], mlp_values: Sequence[torch.Tensor] | None = None,
                    ) -> tuple[list, WiredRun | None]:
    """The hooks of one pass over rows `chunk`: every head (and MLP) output a row does not keep
    replaced by its reference value, and the row's cut paths (then also the `WiredRun` that cuts
    them)."""
    hooks, wired = _head_hooks(model, rows, chunk, ev, values, mlp_values)
    hooks += _mlp_hooks(model, rows, chunk, mlp_values)
    return hooks + (wired.late_hooks() if wired is not None else []), wired


def cuts_mlps(rows: list[Row]) -> bool:
    """Does any row cut a path from an MLP (its run then needs the MLPs' reference outputs)?"""
    return any(row.wiring is not None and row.wiring.cuts_mlps() for row in rows)


def _head_hooks(model: LoadedModel, rows: list[Row], chunk: list[int], ev: PromptSetEvidence,
                values: Sequence[torch.Tensor], mlp_values: Sequence[torch.Tensor] | None = None,
                ) -> tuple[list, WiredRun | None]:
    L = model.info.n_layers
    keep = torch.stack([rows[k].keep for k in chunk]).to(model.device)            # (b, L, n, H)
    repl = RowValues([values[rows[k].prompt] for k in chunk], model.device)       # (b, L, n, H, r)
    wirings = [rows[k].wiring for k in chunk]
    if any(wirings):
        acts = ev.acts(rows[chunk[0]].prompt)
        mlp_repl = None
        if cuts_mlps([rows[k] for k in chunk]):
            assert mlp_values is not None, "rows cut MLP senders, so the lab must give their reference values"
            mlp_repl = RowValues([mlp_values[rows[k].prompt] for k in chunk], model.device)  # (b, L, n, D)
        run = WiredRun(model, wirings, repl, acts.cos, acts.sin, mlp_repl)
        return run.hooks() + [(f"blocks.{layer}.attn.hook_z", run.z_hook(layer, keep)) for layer in range(L)], run
    hooks = []
    for layer in range(L):
        def swap(z: torch.Tensor, hook: Any, layer: int = layer, keep: torch.Tensor = keep,
                 repl: RowValues = repl) -> torch.Tensor:
            return torch.where(keep[:, layer, :, :, None], z, repl.at(layer).to(z.dtype))
        hooks.append((f"blocks.{layer}.attn.hook_z", swap))
    return hooks, None


def run_rows(ev: PromptSetEvidence, rows: list[Row], values: Sequence[torch.Tensor],
             batch_size: int, mlp_values: Sequence[torch.Tensor] | None = None,
             reduce: Callable[[int, torch.Tensor], float] | None = None) -> torch.Tensor:
    """Logits at the last position of every row, (len(rows), V), in the passes of `row_passes`:
    a pass that starts at layer k > 0 starts each of its rows from its base's residual there
    (the row equals its base before its own start layer, which is k or later), and gives the
    rows that cut paths their base's head writes (z - reference) of the layers before k.

    With `reduce`, (len(rows),) float64: reduce(row index, that row's (V,) logits), taken as
    each pass ends, so no (rows, V) table is held (a circuit claim's 984 rows were 190 MB of
    logits on the bundled model). `reduce` may read the row's prompt, nothing else of the row:
    a row equal to its base everywhere gets its base's value."""
    model = ev.model
    L = model.info.n_layers
    starts = shared_prefixes(rows)
    plan = row_passes(ev, rows, batch_size, starts)
    taps: dict[int, set[int]] = {}                   # base row -> the layers passes resume it at
    for layer, chunk in plan:
        for k in chunk:
            base = starts[k].base
            if layer > 0 and base is not None:
                taps.setdefault(base, set()).add(layer)
    kept: dict[tuple[int, int], torch.Tensor] = {}   # (base row, layer) -> (n, D) residual
    writes: dict[int, dict[int, torch.Tensor]] = {}  # wired base row -> layer -> (n, H, r) z - ref
    mlp_writes: dict[int, dict[int, torch.Tensor]] = {}  # wired base row -> layer -> (n, D) mlp_out - ref
    clean_z = PerPrompt(len(ev), lambda p: head_z(ev.acts(p), ev.model))   # (L, n, H, r) clean head outputs
    if reduce is None:
        out = torch.empty(len(rows), model.bridge.cfg.d_vocab, device=model.device)
    else:
        out = torch.empty(len(rows), dtype=torch.float64)
    for layer, chunk in plan:
        tokens = ev.token_ids([rows[k].prompt for k in chunk])
        hooks, wired = _ablation_hooks(model, rows, chunk, ev, values, mlp_values)
        resume = None
        if layer > 0:
            bases = [starts[k].base for k in chunk]
            resume = Resume(layer, torch.stack([
                ev.acts(rows[k].prompt).resid_pre[layer] if base is None else kept[(base, layer)]
                for k, base in zip(chunk, bases)]).to(model.device))
            if wired is not None:
                for before in range(layer):
                    wired.delta[before] = torch.stack([_writes(ev, rows[k], starts[k], values, writes, clean_z, before)
                                                       for k in chunk]).to(model.device)
                    if wired.mlp_values is not None:
                        assert mlp_values is not None
                        wired.mlp_delta[before] = torch.stack([
                            _mlp_writes(ev, rows[k], starts[k], mlp_values, mlp_writes, before)
                            for k in chunk]).to(model.device)
        tapped = [(i, k) for i, k in enumerate(chunk) if k in taps]
        tap = ResidualTap({t for _, k in tapped for t in taps[k]}, [i for i, _ in tapped])
        logits = last_logits(model, tokens, hooks + tap.hooks(), resume)
        if reduce is None:
            out[chunk] = logits
        else:
            out[chunk] = torch.tensor([reduce(k, logits[j]) for j, k in enumerate(chunk)], dtype=torch.float64)
        for j, (i, k) in enumerate(tapped):
            for t in taps[k]:
                kept[(k, t)] = tap.resid[t][j]
            if wired is not None and rows[k].wiring:
                writes[k] = {lay: d[i] for lay, d in wired.delta.items() if lay < max(taps[k])}
                mlp_writes[k] = {lay: d[i] for lay, d in wired.mlp_delta.items() if lay < max(taps[k])}
    for k, s in enumerate(starts):                   # rows equal to their base everywhere
        if s.layer == L:
            if s.base is not None:            # a row of the same prompt (shared_prefixes)
                out[k] = out[s.base]
            else:
                clean = ev.logits_end(rows[k].prompt)
                out[k] = clean if reduce is None else reduce(k, clean)
    return out


def _writes(ev: PromptSetEvidence, row: Row, start: Start, values: Sequence[torch.Tensor],
            writes: dict[int, dict[int, torch.Tensor]], clean_z: Sequence[torch.Tensor], layer: int,
            ) -> torch.Tensor:
    """(n, H, r) what a resumed row's head outputs of `layer` (before its start) differ from their
    reference values by: its base's (the clean run's: every output kept). Zero for a row that
    cuts no path (nothing reads it)."""
    ref = values[row.prompt][layer]
    if not row.wiring:
        return torch.zeros_like(ref)
    if start.base is None:
        return clean_z[row.prompt][layer] - ref
    return writes[start.base][layer]


def _mlp_writes(ev: PromptSetEvidence, row: Row, start: Start, mlp_values: Sequence[torch.Tensor],
                writes: dict[int, dict[int, torch.Tensor]], layer: int) -> torch.Tensor:
    """(n, D) what a resumed row's MLP output of `layer` (before its start) differs from its
    reference value by: its base's (the clean run's). Zero for a row that cuts no MLP path."""
    ref = mlp_values[row.prompt][layer]
    if not row.wiring or not row.wiring.cuts_mlps():
        return torch.zeros_like(ref)
    if start.base is None:
        return ev.acts(row.prompt).mlp_out[layer] - ref
    return writes[start.base][layer]
