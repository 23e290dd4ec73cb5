"""Single-pass circuit tracing: seed from a logit direction, then depth-first into every
upstream head that fires, memoized per prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx

from sadlang.decomp.activations import PromptActivations, run_prompts
from sadlang.decomp.forms import HeadForms
from sadlang.decomp.forms_cache import get_forms
from sadlang.decomp.prompt import PromptDecomposition
from sadlang.models.loader import LoadedModel
from sadlang.trace.firing import Firing
from sadlang.trace.graph import add_component, add_node, head_node, svs_text
from sadlang.trace.methods import decompose, get_method
from sadlang.trace.options import TraceOptions
from sadlang.trace.seeds import Seed, direction, find_seeds


@dataclass
class Circuit:
    """The traced communication graph of one prompt."""

    tokens: list[int]
    roles: dict[int, str]
    graph: nx.MultiDiGraph
    seeds: list[Seed]
    firings: dict[tuple[int, int, int, int], Firing]
    logit_total: float            # sum of the components' logits along the direction (the residual part)
    method: str
    notes: list[str] = field(default_factory=list)
    decomposition: PromptDecomposition | None = field(default=None, repr=False)
    answer: int | None = None
    against: int | None = None
    logit_bias: float = 0.0       # the unembedding bias along the direction (holds a folded final norm's bias)

    @property
    def logit_diff(self) -> float:
        """The model's own logit difference: the residual part plus the unembedding bias part."""
        return self.logit_total + self.logit_bias

    def traced_heads(self) -> set[tuple[int, int]]:
        return {(f.layer, f.head) for f in self.firings.values()}

    def busiest_heads(self) -> list[tuple[tuple[int, int], int]]:
        """((layer, head), firings) of every traced head, most firings first (ties by head)."""
        counts: dict[tuple[int, int], int] = {}
        for f in self.firings.values():
            counts[(f.layer, f.head)] = counts.get((f.layer, f.head), 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def forms_for(model: LoadedModel) -> HeadForms:
    """The model's per-head SVD factors, memoized on the model (disk-cached by fingerprint)."""
    if model._forms is None:
        model._forms = get_forms(model.weights, model.info.fingerprint)
    return model._forms


def decomposition(model: LoadedModel, acts: PromptActivations,
                  reload: Callable[[], PromptActivations] | None = None) -> PromptDecomposition:
    """The decomposition of one prompt; `reload` fetches its activations on each use instead
    of holding them (PromptDecomposition)."""
    return PromptDecomposition(model.weights, forms_for(model), acts, reload=reload)


def trace_prompt(model: LoadedModel, acts: PromptActivations, answer: int, against: int | None,
                 opts: TraceOptions, roles: dict[int, str] | None = None,
                 end: int | None = None) -> Circuit:
    """Trace one prompt whose activations are already computed (no model call)."""
    roles = dict(roles or {})
    dec = decomposition(model, acts)
    end = acts.n - 1 if end is None else end
    roles.setdefault(end, "end")
    w = direction(model.weights, answer, against)
    seeds, total = find_seeds(acts, model.weights, w, end)
    g = nx.MultiDiGraph()
    method = get_method(opts.method)
    root = f"logit@{end}"
    add_node(g, root, roles, kind="root", dest=end, src=end)
    firings: dict[tuple[int, int, int, int], Firing] = {}
    notes: list[str] = []
    if not seeds:
        notes.append(f"logit difference from the residual is {total:.3g} <= 0: no seeds")

    def visit(layer: int, head: int, d: int, s: int) -> None:
        key = (layer, head, d, s)
        if key in firings or not method.fires(dec, opts, layer, head, d, s):
            return
        f = decompose(dec, layer, head, d, s, opts)
        firings[key] = f
        down = head_node(layer, head, d, s)
        for e in f.edges:
            c = e.component
            up = add_component(g, roles, c, e.at, acts.pattern, downstream=(layer, head))
            attrs: dict[str, object] = {"side": e.side, "weight": e.weight, "svs": svs_text(e.svs)}
            if opts.signals:
                from sadlang.intervene.signals import edge_signal
                attrs["signal"] = edge_signal(dec, layer, head, c, e.side, e.at, e.svs).tolist()
            g.add_edge(up, down, **attrs)
            if c.kind == "head":
                cl, ch, cs = c.head_src
                visit(cl, ch, e.at, cs)

    for seed in seeds:
        up = add_component(g, roles, seed.component, end, acts.pattern)
        g.add_edge(up, root, side="seed", weight=seed.weight, svs="[]")
    for seed in seeds:
        c = seed.component
        if c.kind == "head":
            cl, ch, cs = c.head_src
            visit(cl, ch, end, cs)
    return Circuit(tokens=acts.tokens.tolist(), roles=roles, graph=g, seeds=seeds,
                   firings=firings, logit_total=total, method=opts.method, notes=notes,
                   decomposition=dec, answer=answer, against=against, logit_bias=_bias(model, answer, against))


def _bias(model: LoadedModel, answer: int, against: int | None) -> float:
    """The unembedding bias along the logit direction (b_U[answer] - b_U[against])."""
    b = model.weights.b_U
    return float(b[answer] - (0.0 if against is None else b[against]))


def single_token(model: LoadedModel, text: str, what: str) -> int:
    from sadlang.prompts.build import single_token as check

    return check(model, text, what)


def trace(model: LoadedModel, prompts: list[str] | str, answer: str | list[str],
          against: str | list[str] | None = None, method: str = "acc",
          options: TraceOptions | None = None, batch_size: int = 32) -> list[Circuit]:
    """Trace prompts (one forward pass per batch of equal-length prompts).

    answer / against: the tokens whose logit difference is explained (one per prompt, or one
    shared string), e.g. answer=" Mary", against=" John".
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    answers = [answer] * len(prompts) if isinstance(answer, str) else list(answer)
    againsts = ([against] * len(prompts) if against is None or isinstance(against, str)
                else list(against))
    opts = options or TraceOptions(method=method)
    tokens = [model.to_tokens(p) for p in prompts]
    acts = run_prompts(model, tokens, batch_size=batch_size)
    out = []
    for p_acts, ans, wrong in zip(acts, answers, againsts):
        a_id = single_token(model, ans, "answer")
        w_id = single_token(model, wrong, "against token") if wrong is not None else None
        out.append(trace_prompt(model, p_acts, a_id, w_id, opts))
    return out


def decompose_firing(model: LoadedModel, prompt: str, layer: int, head: int, d: int, s: int,
                     method: str = "acc", options: TraceOptions | None = None) -> Firing:
    """Explain one attention decision of one prompt (positions count the BOS as 0)."""
    opts = options or TraceOptions(method=method)
    acts = run_prompts(model, [model.to_tokens(prompt)])[0]
    return decompose(decomposition(model, acts), layer, head, d, s, opts)
