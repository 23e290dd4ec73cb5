"""One prompt set's evidence, computed lazily and memoized: activations (one forward pass per
equal-length batch, run when a prompt of the batch is first needed), decompositions, firings,
traces, metrics and matching edges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx
import torch

from sadlang.decomp.activations import PromptActivations, batches, run_batch
from sadlang.decomp.acts_cache import ActsCache
from sadlang.decomp.prompt import PromptDecomposition
from sadlang.evidence import metrics
from sadlang.evidence.roles import comp_matches, resolve
from sadlang.evidence.twins import swapped_twins
from sadlang.lang import ast as A
from sadlang.models.loader import LoadedModel
from sadlang.prompts.build import BuiltPrompt
from sadlang.trace.firing import Edge, Firing
from sadlang.trace.methods import decompose
from sadlang.trace.options import TraceOptions
from sadlang.trace.tracer import Circuit, decomposition, trace_prompt

FiringEdge = tuple[Firing, Edge]
MAX_DECOMPOSITIONS = 16


@dataclass
class Workspace:
    """What a claim may reach beyond its own prompt set: the other sets (counterfactuals,
    traced circuits) and the spec's declarations."""

    sets: dict[str, PromptSetEvidence]
    spec: A.Spec


def strongest(found: list[FiringEdge]) -> FiringEdge:
    """The matching edge with the largest weight (the one claims measure)."""
    return max(found, key=lambda fe: fe[1].weight)


class PromptSetEvidence:
    """Evidence for the prompts of one set. `origin[j]` is prompt j's index in the set it was
    derived from (itself, or the clean set of a swapped twin)."""

    def __init__(self, model: LoadedModel, prompts: list[BuiltPrompt], opts: TraceOptions,
                 batch_size: int = 32, progress: bool = False, name: str = "",
                 decl: A.PromptSetDecl | None = None, origin: list[int] | None = None):
        self.model = model
        self.prompts = prompts
        self.opts = opts
        self.batch_size = batch_size
        self.progress = progress
        self.name = name
        self.decl = decl
        self.origin: list[int] = origin if origin is not None else list(range(len(prompts)))
        self._acts = ActsCache()      # within the process's byte budget; older prompts spilled to a file
        self._logits: dict[int, torch.Tensor] = {}
        self._batches: list[list[int]] | None = None
        self._decs: dict[int, PromptDecomposition] = {}
        self._firings: dict[tuple[int, int, int, int, int], Firing] = {}
        self._circuits: dict[int, Circuit] = {}
        self.workspace: Workspace | None = None
        self.memo: dict = {}    # results that claims share (circuits.metrics.CircuitLab runs)
        self._twins: PromptSetEvidence | None = None
        self._twins_built = False

    def with_options(self, opts: TraceOptions) -> PromptSetEvidence:
        """The same prompts and activations, explained under other tracing options."""
        view = PromptSetEvidence(self.model, self.prompts, opts, self.batch_size, self.progress,
                                 self.name, self.decl, self.origin)
        view._acts, view._decs, view._logits = self._acts, self._decs, self._logits   # one pass serves both views
        return view

    def __len__(self) -> int:
        return len(self.prompts)

    # ---- the model's own activations and their decomposition
    def batches(self) -> list[list[int]]:
        """The set's forward-pass batches (prompt indices; see `decomp.activations.batches`).
        They are also the shards that a distributed check measures apart."""
        if self._batches is None:
            self._batches = batches([len(p.tokens) for p in self.prompts], self.batch_size)
        return self._batches

    def acts(self, i: int) -> PromptActivations:
        """Prompt i's activations: kept, read back from the spill file, or computed with its batch
        (the batch's other prompts are kept too; i last, so the budget never spills it first)."""
        found = self._acts.get(i)
        if found is None:
            batch = next(b for b in self.batches() if i in b)
            computed = dict(zip(batch, run_batch(self.model, [self.prompts[j].tokens for j in batch]), strict=True))
            for j, a in computed.items():
                if j != i and j not in self._acts:
                    self._acts.put(j, a)
            self._acts.put(i, computed.pop(i))
            del computed
            found = self._acts.get(i)
            assert found is not None
        return found

    def logits_end(self, i: int) -> torch.Tensor:
        """(V,) prompt i's logits at its last position, kept apart from its activations (within
        the activations' budget they could be spilled, and every run of a circuit claim reads its
        prompt's clean logits; 0.2 MB a prompt on the bundled model)."""
        if i not in self._logits:     # on storage of its own, as everything an ActsCache hands out
            self._logits[i] = self.acts(i).logits_end
        return self._logits[i]

    def token_ids(self, indices: list[int]) -> torch.Tensor:
        """(b, n) the token ids of these equal-length prompts, on the model's device, from the
        prompts themselves (reading them off the activations could read spilled ones back)."""
        return torch.tensor([self.prompts[i].tokens for i in indices], dtype=torch.long, device=self.model.device)

    def release(self, indices: list[int]) -> None:
        """Forget what was computed for these prompts (a worker that measured a shard frees its
        memory; anything needed again is recomputed, identically, from the same batch)."""
        drop = set(indices)
        self._acts.drop(list(drop))
        for i in drop:
            self._decs.pop(i, None)
            self._logits.pop(i, None)
            self._circuits.pop(i, None)
        for key in [k for k in self._firings if k[0] in drop]:
            del self._firings[key]

    def dec(self, i: int) -> PromptDecomposition:
        """Prompt i's decomposition. The last MAX_DECOMPOSITIONS are kept: each holds per-head
        coordinate tables of every component (tens of MB on the bundled model), so keeping all of
        a 96-prompt set would take ~10 GB; an evicted one is rebuilt, identically, on demand."""
        if i in self._decs:
            self._decs[i] = self._decs.pop(i)          # most recently used last
        else:
            self._decs[i] = decomposition(self.model, self.acts(i), reload=lambda: self.acts(i))
            while len(self._decs) > MAX_DECOMPOSITIONS:
                del self._decs[next(iter(self._decs))]
        return self._decs[i]

    def firing(self, i: int, layer: int, head: int, d: int, s: int) -> Firing:
        """Firing (layer, head, d -> s) of prompt i, decomposed with the set's method (reused
        from the prompt's trace when the trace already explained it)."""
        key = (i, layer, head, d, s)
        if key not in self._firings:
            circuit = self._circuits.get(i)
            if circuit is not None and (layer, head, d, s) in circuit.firings:
                self._firings[key] = circuit.firings[(layer, head, d, s)]
            else:
                self._firings[key] = decompose(self.dec(i), layer, head, d, s, self.opts)
        return self._firings[key]

    def circuit(self, i: int) -> Circuit:
        if i not in self._circuits:
            p = self.prompts[i]
            if p.answer is None:
                raise ValueError(f"prompt {i} has no answer to trace from")
            self._circuits[i] = trace_prompt(self.model, self.acts(i), p.answer, p.against, self.opts,
                                             roles=p.labels)
        return self._circuits[i]

    def graphs(self) -> list[nx.MultiDiGraph]:
        indices: Iterable[int] = range(len(self))
        if self.progress and any(i not in self._circuits for i in range(len(self))):
            from tqdm import tqdm
            indices = tqdm(range(len(self)), desc="tracing prompts", unit="prompt", leave=False)
        return [self.circuit(i).graph for i in indices]

    # ---- task metrics
    def logit_diff(self, i: int) -> float:
        p = self.prompts[i]
        return metrics.logit_diff(self.logits_end(i), p.answer, p.against)

    def correct(self, i: int) -> bool:
        return metrics.is_correct(self.logits_end(i), self.prompts[i].answer)

    # ---- edges named by a claim
    def edges_into(self, i: int, sel: A.EdgeSelector) -> list[FiringEdge]:
        """Edges of prompt i that `sel` names. An edge exists only where the downstream head
        fires (attention at or above the method's threshold): at `sel.at` when given, else
        at every firing of the downstream head in the prompt's trace."""
        if sel.at is not None:
            p = self.prompts[i]
            firings = [self.firing(i, *sel.downstream.pair,
                                   resolve(sel.at.dest, p), resolve(sel.at.src, p))]
        else:
            firings = [f for f in self.circuit(i).firings.values()
                       if sel.downstream.matches(f.layer, f.head)]
        return [(f, e) for f in firings if f.attention >= f.threshold for e in f.edges
                if (sel.side is None or e.side == sel.side) and comp_matches(sel.upstream, e.component)]

    def strongest_edge(self, i: int, sel: A.EdgeSelector) -> FiringEdge | None:
        found = self.edges_into(i, sel)
        return strongest(found) if found else None

    # ---- counterfactuals
    def swapped(self) -> PromptSetEvidence | None:
        """The slot-swapped twins of this set (None when the set has no multi-slot group)."""
        if not self._twins_built:
            twins, origin = ([], []) if self.decl is None else swapped_twins(self.model, self.prompts,
                                                                             self.decl)
            if twins:
                self._twins = PromptSetEvidence(self.model, twins, self.opts, self.batch_size,
                                                name=f"{self.name} (swapped)", origin=origin)
            self._twins_built = True
        return self._twins
