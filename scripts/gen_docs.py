"""Regenerate the tables of docs/language.md that come from the registries (claim kinds,
options). Run after adding a claim kind or an option: `.venv/bin/python scripts/gen_docs.py`.
tests/test_registry.py fails while the docs and the code disagree."""

from __future__ import annotations

import re
from pathlib import Path

from sadlang.claims import docs_table as claims_table
from sadlang.plan.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "language.md"
TABLES = {"claim-kinds": claims_table, "options": Settings.docs_table}


def render(text: str) -> str:
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(\n<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/language.md has no markers for the {name} table")
        text = pattern.sub(lambda m, t=table: m.group(1) + t() + m.group(2), text)
    return text


if __name__ == "__main__":
    DOCS.write_text(render(DOCS.read_text()))
