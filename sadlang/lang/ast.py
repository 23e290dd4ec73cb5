"""Typed syntax tree of a .sad file (pydantic). Every node carries its source span."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from sadlang.errors import InternalError


class Loc(BaseModel):
    model_config = ConfigDict(frozen=True)
    line: int
    column: int
    end_line: int
    end_column: int


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)
    loc: Loc | None = Field(default=None, repr=False)


class HeadRef(Node):
    """`L.H` with `*` wildcards (None)."""
    layer: int | None
    head: int | None

    def text(self) -> str:
        return f"{'*' if self.layer is None else self.layer}.{'*' if self.head is None else self.head}"

    def matches(self, layer: int, head: int) -> bool:
        return (self.layer is None or self.layer == layer) and (self.head is None or self.head == head)

    @property
    def concrete(self) -> bool:
        return self.layer is not None and self.head is not None

    @property
    def pair(self) -> tuple[int, int]:
        """(layer, head) of a concrete head (the compiler rejects patterns where one is needed)."""
        if self.layer is None or self.head is None:
            raise InternalError(f"head {self.text()} is a pattern where a concrete head is needed")
        return self.layer, self.head


class CompRef(Node):
    """An upstream component: a head pattern, `mlp L`, `bias L`, `embed`, `offset`."""
    kind: Literal["head", "mlp", "bias", "embed", "offset"]
    head: HeadRef | None = None
    layer: int | None = None

    def text(self) -> str:
        if self.kind == "head":
            return self.head.text()  # type: ignore[union-attr]
        if self.kind in ("mlp", "bias"):
            return f"{self.kind} {self.layer}"
        return self.kind


class Pos(Node):
    """A position by role: slot name with occurrence and shift, `end`, `bos`, or a word."""
    role: str | None = None
    occurrence: int = 1
    shift: int = 0
    word: str | None = None

    def text(self) -> str:
        sh = f"{self.shift:+d}" if self.shift else ""
        if self.word is not None:
            return f'"{self.word}"{sh}'
        occ = f"#{self.occurrence}" if self.occurrence != 1 else ""
        return f"{self.role}{occ}{sh}"


def percent(share: float) -> str:
    """A share as the percentage it was written as (0.9962 -> 99.62%, never rounded to 100%)."""
    return f"{share * 100:.6g}%"


class Quantifier(Node):
    kind: Literal["all", "at_least", "at_most", "count", "forall"] = "all"
    share: float = 1.0  # fraction in [0, 1]
    cmp: str = ">="
    limit: int = 100  # forall: how many prompts the search may try
    count: int = 0    # count: `in >= 2 prompts`, a number of prompts, not a share

    def text(self) -> str:
        if self.kind == "all":
            return "in all prompts"
        if self.kind == "forall":
            return f"forall up to {self.limit} prompts"
        if self.kind == "count":
            return f"in {self.cmp} {self.count} prompts"
        if self.kind == "at_most":
            return f"in at most {percent(self.share)} of prompts"
        return f"in {self.cmp} {percent(self.share)} of prompts"


class Bound(Node):
    cmp: str
    value: float

    def text(self) -> str:
        return f"{self.cmp} {self.value:g}"


class FiringAt(Node):
    dest: Pos
    src: Pos


# ---- claim bodies -------------------------------------------------------------------
# Each claim kind defines its body node in its own module under sadlang/claims; the bases
# live here so that every layer can name them.

class ClaimBody(Node):
    """Base of every claim body. `kind` names its entry in the claim-kind registry."""
    kind: str


class EdgeSelector(ClaimBody):
    """A claim body that names edges: `UP -> L.H [via query|key] [at D -> S]`."""
    upstream: CompRef
    downstream: HeadRef
    side: Literal["query", "key"] | None = None
    at: FiringAt | None = None


class Claim(Node):
    name: str
    body: SerializeAsAny[ClaimBody]
    quantifier: Quantifier = Field(default_factory=Quantifier)
    prompt_set: str | None = None
    source_line: str = ""


# ---- declarations ---------------------------------------------------------------------

class SlotGroup(Node):
    slots: list[str]
    pool: str
    distinct: bool = False


class LiteralPrompt(Node):
    text: str
    answer: str | None = None
    against: str | None = None


class PromptSetDecl(Node):
    name: str
    templates: list[tuple[str, Loc | None]] = Field(default_factory=list)
    literals: list[LiteralPrompt] = Field(default_factory=list)
    slots: list[SlotGroup] = Field(default_factory=list)
    answer: str | None = None
    against: str | None = None
    answer_loc: Loc | None = None
    sample: int = 16
    sample_cap: int | None = None          # `sample N up to M`: grow to M until every claim is decided
    seed: int = 0
    sample_loc: Loc | None = None
    # a counterfactual set: `prompts abc from ioi:` with `resample IO, S` or `swap IO S`; its
    # prompts align one to one with the source's (same templates and positions)
    source: str | None = None
    resample: list[str] = Field(default_factory=list)
    resample_pool: str | None = None       # `resample S from POOL`: draw from another pool
    resample_seed: int = 1
    swap: tuple[str, str] | None = None
    change_loc: Loc | None = None


class CircuitNode(Node):
    """A head of a declared circuit, kept at destination `at` (every position without it);
    `src` documents where it attends."""
    head: HeadRef
    at: Pos | None = None
    src: Pos | None = None

    def text(self) -> str:
        if self.at is None:
            return self.head.text()
        return f"{self.head.text()} at {self.at.text()}" + (f" -> {self.src.text()}" if self.src else "")


MLP_UNIT = -1      # the second coordinate of an MLP's unit (layer, MLP_UNIT); circuits.nodes.MLP


class CircuitMlp(Node):
    """`mlp L [at P]`: layer L's MLP as a node of a declared circuit, kept at destination `at`
    (every position without it). A circuit with MLP nodes is a heads-and-MLPs circuit: run alone,
    every MLP outside it is ablated as the heads outside it are."""
    layer: int
    at: Pos | None = None

    def text(self) -> str:
        return f"mlp {self.layer}" + (f" at {self.at.text()}" if self.at is not None else "")

    @property
    def pair(self) -> tuple[int, int]:
        """The MLP's unit (layer, MLP_UNIT)."""
        return self.layer, MLP_UNIT


class MlpRef(Node):
    """`mlp L` as an end of a circuit edge."""
    layer: int

    def text(self) -> str:
        return f"mlp {self.layer}"

    @property
    def concrete(self) -> bool:
        return True

    @property
    def pair(self) -> tuple[int, int]:
        """The MLP's unit (layer, MLP_UNIT)."""
        return self.layer, MLP_UNIT


class CircuitEdge(Node):
    """`edge S -> R [via query|key|value]` (no `via`: all three of R's inputs; an MLP receiver has
    one input) or `edge S -> logits` (downstream None). S and R are heads or MLPs."""
    upstream: HeadRef | MlpRef
    downstream: HeadRef | MlpRef | None
    side: Literal["query", "key", "value"] | None = None

    def text(self) -> str:
        to = self.downstream.text() if self.downstream else "logits"
        return f"edge {self.upstream.text()} -> {to}" + (f" via {self.side}" if self.side else "")


class CircuitDecl(Node):
    """`circuit NAME:` with nodes and edges, `circuit NAME = trace of SET [at frequency F]
    [top K edges] [with values above X]` (cut from the prompts' traces when checked, and extended
    with the heads and MLPs that write X of a traced head's output through its values), or `circuit NAME = discover
    METHOD of SET from TWINS top K edges|nodes` (ranked by a discovery method when checked)."""
    name: str
    nodes: list[CircuitNode] = Field(default_factory=list)
    mlps: list[CircuitMlp] = Field(default_factory=list)
    edges: list[CircuitEdge] = Field(default_factory=list)
    traced_from: str | None = None                    # trace of SET / discover ... of SET
    frequency: float = 0.0
    top_edges: int | None = None
    discovery: str | None = None                      # `discover METHOD` (circuits/discovery.py)
    twins: str | None = None                          # `from TWINS`: the counterfactual set it patches toward
    top_nodes: int | None = None                      # `top K nodes`
    value_share: float | None = None                  # `with values above X`: value-path extension of a trace


class Pool(Node):
    """`pool NAME = "v1" "v2" ...`, or a paired pool `pool NAME = "k1": "v1", "k2": "v2"` whose
    pairs fill two slots together (`K, V from NAME`). `values` holds the first of each pair."""
    name: str
    values: list[str]
    pairs: list[tuple[str, str]] | None = None

    def rows(self) -> list[str] | list[tuple[str, str]]:
        """What one draw takes: a value, or (for a paired pool) a pair."""
        return list(self.pairs) if self.pairs is not None else list(self.values)


class Option(Node):
    name: str
    value: float | str


class Spec(BaseModel):
    """A whole .sad file."""
    file: str
    source: str
    model: str = "smollm2-135m"
    model_loc: Loc | None = None
    method: str = "acc"
    method_loc: Loc | None = None
    options: dict[str, Option] = Field(default_factory=dict)
    pools: dict[str, Pool] = Field(default_factory=dict)
    prompt_sets: dict[str, PromptSetDecl] = Field(default_factory=dict)
    circuits: dict[str, CircuitDecl] = Field(default_factory=dict)
    claims: list[Claim] = Field(default_factory=list)
