"""The registry of ablation kinds: what replaces a head's output (`hook_z`) when a circuit claim,
a node ablation or a random circuit removes it. One record per kind; the grammar's ABLATION
terminal, `option ablation`, the claims' checks, the report and the docs table all read it.

    ABLATIONS["mean"].values(ev, reference, head_z)     # per prompt, (L, n, H, r) head values
    ABLATIONS["mean"].values(ev, reference, mlp_out)    # per prompt, (L, n, D) MLP values

A kind takes its values from nothing (`zero`), from a held-out reference set (`mean`: the plan
builds `SET:reference`, or `over SET` names one) or from the aligned counterfactual twins
(`resample`: `from SET` or `option counterfactual`). Adding a kind is adding a record here and
running scripts/gen_docs.py (grammar terminal, docs table); see docs/architecture.md.

Importing this module loads no tensor code (the settings and the parser's checks read it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sadlang.errors import one_of

if TYPE_CHECKING:
    import torch

    from sadlang.decomp.activations import PromptActivations
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.models.loader import LoadedModel

Source = Literal["none", "reference", "counterfactual"]
Read = Callable[["PromptActivations", "LoadedModel"], "torch.Tensor"]
Values = Callable[["PromptSetEvidence", "PromptSetEvidence | None", Read], "Sequence[torch.Tensor]"]


@dataclass(frozen=True)
class Ablation:
    """One ablation kind.

    name:     as written in `by NAME ablation`, `ablate head L.H NAME` and `option ablation`
    summary:  what replaces the output (docs, reports)
    source:   the prompts the values come from: none, the reference set or the counterfactual twins
    values:   (measured set, source set or None, read) -> per prompt, the replacement values of
              what `read` takes from a prompt's activations: head outputs (`head_z`, (L, n, H, r))
              or MLP outputs (`mlp_out`, (L, n, D))
    origin:   the report's words for the values' origin, given the source set ({set}, {n} prompts)
    alone:    the same without a source set ({set}: the measured set)
    """

    name: str
    summary: str
    source: Source
    values: Values
    origin: str
    alone: str

    def describe(self, ev: PromptSetEvidence, source: PromptSetEvidence | None) -> str:
        """Which prompts the values come from, for the report."""
        if source is None:
            return self.alone.format(set=ev.name)
        return self.origin.format(set=source.name, n=len(source))


def _zero(ev: PromptSetEvidence, source: PromptSetEvidence | None, read: Read) -> Sequence[torch.Tensor]:
    import torch

    zeros: dict[tuple[int, ...], torch.Tensor] = {}        # one (read-only) tensor per shape
    out = []
    for i in range(len(ev)):
        like = read(ev.acts(i), ev.model)
        out.append(zeros.setdefault(tuple(like.shape), torch.zeros_like(like)))
    return out


def _mean(ev: PromptSetEvidence, source: PromptSetEvidence | None, read: Read) -> Sequence[torch.Tensor]:
    from sadlang.circuits.ablation import mean_values

    return mean_values(ev, source, read)


def _resample(ev: PromptSetEvidence, source: PromptSetEvidence | None, read: Read) -> Sequence[torch.Tensor]:
    from sadlang.circuits.per_prompt import PerPrompt

    if source is None or len(source) != len(ev):
        raise ValueError("resample ablation needs the aligned counterfactual prompt set")
    return PerPrompt(len(ev), lambda i: read(source.acts(i), ev.model))   # computed when a pass reads them


ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("zero", "0", "none", _zero, "zero", "zero"),
    Ablation("mean", "the mean output over the reference prompts of the same template and length (a held-out "
                     "draw, or `over SET`; never the measured prompt)", "reference", _mean,
             "mean over {set} ({n} prompts, none measured)",
             "mean over the other prompts of {set} (each prompt left out)"),
    Ablation("resample", "the output on the aligned counterfactual twin (`from SET` or `option counterfactual`)",
             "counterfactual", _resample, "resampled from {set} ({n} twins)", "resample"),
)}


def get_ablation(name: str) -> Ablation:
    """The kind called `name`; KeyError names the kinds there are."""
    try:
        return ABLATIONS[name]
    except KeyError:
        raise KeyError(f"unknown ablation {name!r}; expected {names_text()}") from None


def names_text() -> str:
    """The names, 'a, b or c', for messages and option descriptions."""
    return one_of(list(ABLATIONS))


def grammar_terminal() -> str:
    """The grammar's ABLATION terminal (a generated line of sadlang/grammar/sad.lark)."""
    return "ABLATION: " + " | ".join(f'"{name}"' for name in ABLATIONS)


def docs_table() -> str:
    """The ablation-kinds table of docs/language.md."""
    rows = ["| ablation | replaces a head's (or MLP's) output with | values from |", "| --- | --- | --- |"]
    rows += [f"| `{a.name}` | {a.summary} | {a.source} |" for a in ABLATIONS.values()]
    return "\n".join(rows)
