"""Regenerate what comes from the code: the tables of docs/language.md (claim kinds, options)
and the TextMate grammar in editors/. Run after adding a claim kind, an option or a grammar
word: `.venv/bin/python scripts/gen_docs.py`. tests/test_registry.py and tests/test_highlight.py
fail while the files and the code disagree."""

from __future__ import annotations

import re
from pathlib import Path

from sadlang.claims import docs_table as claims_table
from sadlang.lang.reference import prompt_lines_table, statements_table
from sadlang.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "language.md"
TEXTMATE = ROOT / "editors" / "sad.tmLanguage.json"
TABLES = {"claim-kinds": claims_table, "options": Settings.docs_table, "statements": statements_table,
          "prompt-lines": prompt_lines_table}


def render(text: str) -> str:
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(\n<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/language.md has no markers for the {name} table")
        text = pattern.sub(lambda m, t=table: m.group(1) + t() + m.group(2), text)
    return text


if __name__ == "__main__":
    from sadlang.lang.highlight import textmate_json

    DOCS.write_text(render(DOCS.read_text()))
    TEXTMATE.parent.mkdir(exist_ok=True)
    TEXTMATE.write_text(textmate_json())
