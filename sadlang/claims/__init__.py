"""The claim-kind registry. Every module in this package (except `base`) defines one claim
kind as `KIND`; adding a kind is adding a module here, its grammar rule, its docs and its
tests. Nothing else switches on claim kinds.

    from sadlang.claims import KINDS, kind_of
    kind_of(claim.body).per_prompt(claim.body)
"""

from __future__ import annotations

import importlib
import pkgutil

from sadlang.claims.base import Builder, ClaimKind, Measurement, References
from sadlang.lang import ast as A


def _discover() -> dict[str, ClaimKind]:
    kinds: dict[str, ClaimKind] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        kind = importlib.import_module(f"{__name__}.{info.name}").KIND
        if kind.name in kinds:
            raise ImportError(f"claim kind {kind.name!r} is defined twice")
        kinds[kind.name] = kind
    return kinds


KINDS: dict[str, ClaimKind] = _discover()

# grammar rule -> builder, over every kind
RULES: dict[str, Builder] = {rule: fn for kind in KINDS.values() for rule, fn in kind.rules().items()}


def kind_of(body: A.ClaimBody) -> ClaimKind:
    return KINDS[body.kind]


def docs_table() -> str:
    """The claim-kinds table of docs/language.md."""
    rows = ["| kind (marker `sad_<kind>`) | module | claims that | example |", "| --- | --- | --- | --- |"]
    for name, kind in KINDS.items():
        module = type(kind).__module__.replace(".", "/") + ".py"
        rows.append(f"| `{name}` | `{module}` | {kind.summary} | `{kind.examples[0]}` |")
    return "\n".join(rows)


__all__ = ["KINDS", "RULES", "ClaimKind", "Measurement", "References", "docs_table", "kind_of"]
