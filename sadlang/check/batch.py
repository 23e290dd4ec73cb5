"""A batch of built prompts with lazily computed, memoized evidence sources."""

from __future__ import annotations

import networkx as nx
import torch

from sadlang.decomp.activations import PromptActivations, run_prompts
from sadlang.decomp.components import Component
from sadlang.decomp.prompt import PromptDecomposition
from sadlang.lang import ast as A
from sadlang.prompts.build import BuiltPrompt
from sadlang.trace.methods import decompose
from sadlang.trace.firing import Edge, Firing
from sadlang.trace.options import TraceOptions
from sadlang.trace.tracer import Circuit, decomposition, trace_prompt


class RoleError(Exception):
    pass


def resolve(pos: A.Pos, prompt: BuiltPrompt) -> int:
    """Position of a role in one prompt."""
    if pos.word is not None:
        for i, t in enumerate(prompt.tokens):
            if i > 0 and prompt.token_texts[i].strip() == pos.word.strip():
                return i
        raise RoleError(f"word {pos.word!r} does not occur in {prompt.text!r}")
    if pos.role == "end":
        base = prompt.end
    elif pos.role == "bos":
        base = 0
    else:
        occ = prompt.roles.get(pos.role or "", [])
        if len(occ) < pos.occurrence:
            raise RoleError(f"role {pos.text()} does not occur in {prompt.text!r}")
        base = occ[pos.occurrence - 1]
    p = base + pos.shift
    if not 0 <= p <= prompt.end:
        raise RoleError(f"position {pos.text()} = {p} is outside the prompt (0..{prompt.end})")
    return p


def comp_matches(ref: A.CompRef, comp: Component) -> bool:
    if ref.kind != comp.kind:
        return False
    if ref.kind == "head":
        return ref.head.matches(comp.layer, comp.head)  # type: ignore[union-attr]
    if ref.kind in ("mlp", "bias"):
        return ref.layer == comp.layer
    return True


class PromptBatch:
    """Prompts of one prompt set; activations come from one pass per equal-length group."""

    def __init__(self, model, prompts: list[BuiltPrompt], opts: TraceOptions, batch_size: int = 32,
                 progress: bool = False, name: str = ""):
        self.progress = progress
        self.name = name
        self.origin: list[int] = list(range(len(prompts)))   # index in the source set (swaps)
        self.model = model
        self.prompts = prompts
        self.opts = opts
        self.batch_size = batch_size
        self._acts: list[PromptActivations] | None = None
        self._decs: dict[int, PromptDecomposition] = {}
        self._firings: dict[tuple, Firing] = {}
        self._circuits: dict[int, Circuit] = {}

    def __len__(self) -> int:
        return len(self.prompts)

    def acts(self, i: int) -> PromptActivations:
        if self._acts is None:
            self._acts = run_prompts(self.model, [p.tokens for p in self.prompts], self.batch_size)
        return self._acts[i]

    def dec(self, i: int) -> PromptDecomposition:
        if i not in self._decs:
            self._decs[i] = decomposition(self.model, self.acts(i))
        return self._decs[i]

    def firing(self, i: int, layer: int, head: int, d: int, s: int) -> Firing:
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
            self._circuits[i] = trace_prompt(self.model, self.acts(i), p.answer, p.against, self.opts,
                                             roles=p.labels)
        return self._circuits[i]

    def graphs(self) -> list[nx.MultiDiGraph]:
        indices = range(len(self))
        if self.progress and any(i not in self._circuits for i in indices):
            from tqdm import tqdm
            indices = tqdm(indices, desc="tracing prompts", unit="prompt", leave=False)
        return [self.circuit(i).graph for i in indices]

    def logit_diff(self, i: int) -> float:
        p = self.prompts[i]
        logits = self.acts(i).logits_end
        value = float(logits[p.answer])
        return value - float(logits[p.against]) if p.against is not None else value

    def correct(self, i: int) -> bool:
        return int(torch.argmax(self.acts(i).logits_end)) == self.prompts[i].answer

    def edges_into(self, i: int, claim_body, side: str | None) -> list[tuple[Firing, Edge]]:
        """Matching edges for an edge/signal/ablate claim in prompt i. An edge exists only
        where the downstream head fires (attention at or above the method's threshold)."""
        b = claim_body
        out = []
        if b.at is not None:
            d, s = resolve(b.at.dest, self.prompts[i]), resolve(b.at.src, self.prompts[i])
            f = self.firing(i, b.downstream.layer, b.downstream.head, d, s)
            firings = [f]
        else:
            firings = [f for f in self.circuit(i).firings.values()
                       if b.downstream.matches(f.layer, f.head)]
        for f in firings:
            if f.attention < f.threshold:
                continue
            for e in f.edges:
                if (side is None or e.side == side) and comp_matches(b.upstream, e.component):
                    out.append((f, e))
        return out
