"""Regenerate every file (or part of one) that comes from the code: the tables of
docs/language.md (claim kinds, ablation kinds, task metrics, methods, model families, options,
statements, prompt lines), the generated lines of the grammar (the ABLATION terminal) and the
TextMate grammar in editors/. Run after adding to any registry or a grammar word:

    .venv/bin/python scripts/gen_docs.py          # write
    .venv/bin/python scripts/gen_docs.py --check  # exit 1 and name the stale files

tests/test_registry.py fails while any file and the code disagree."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "language.md"
GRAMMAR = ROOT / "sadlang" / "grammar" / "sad.lark"
TEXTMATE = ROOT / "editors" / "sad.tmLanguage.json"


def _doc_tables() -> dict[str, Callable[[], str]]:
    from sadlang.circuits.ablations import docs_table as ablations_table
    from sadlang.circuits.discovery import docs_table as discoveries_table
    from sadlang.circuits.task_metrics import docs_table as metrics_table
    from sadlang.claims import docs_table as claims_table
    from sadlang.lang.reference import prompt_lines_table, statements_table
    from sadlang.models.families import docs_table as families_table
    from sadlang.settings import Settings
    from sadlang.trace.methods import docs_table as methods_table

    return {"claim-kinds": claims_table, "ablation-kinds": ablations_table,
            "task-metrics": metrics_table, "methods": methods_table, "discoveries": discoveries_table,
            "model-families": families_table,
            "options": Settings.docs_table, "statements": statements_table, "prompt-lines": prompt_lines_table}


def _grammar_parts() -> dict[str, Callable[[], str]]:
    from sadlang.circuits.ablations import grammar_terminal
    from sadlang.circuits.discovery import grammar_terminal as discoveries

    return {"ablation-kinds": grammar_terminal, "discoveries": discoveries}


def _fill(text: str, parts: dict[str, Callable[[], str]], start: str, end: str, where: str) -> str:
    """Replace the body between each part's start and end marker lines with what it renders."""
    for name, render_part in parts.items():
        begin, finish = re.escape(start.format(name=name)), re.escape(end.format(name=name))
        pattern = re.compile(rf"^({begin}[^\n]*\n)(?:.*?\n)?({finish})", re.S | re.M)
        if not pattern.search(text):
            raise SystemExit(f"{where} has no markers for the {name} part")
        text = pattern.sub(lambda m, r=render_part: m.group(1) + r() + "\n" + m.group(2), text)
    return text


def render(text: str) -> str:
    """docs/language.md with its generated tables filled in."""
    return _fill(text, _doc_tables(), "<!-- generated: {name} -->", "<!-- end: {name} -->", "docs/language.md")


def render_grammar(text: str) -> str:
    """The grammar with its generated lines filled in."""
    return _fill(text, _grammar_parts(), "// generated: {name}", "// end: {name}", "sadlang/grammar/sad.lark")


def generated() -> dict[Path, str]:
    """Every generated file, as the code would write it now. The grammar comes first: when its
    words change it is written at once and the modules that read it are reloaded, because the
    TextMate grammar is read off it."""
    import importlib

    from sadlang.lang import highlight, parser

    out = {GRAMMAR: render_grammar(GRAMMAR.read_text()), DOCS: render(DOCS.read_text())}
    if out[GRAMMAR] != GRAMMAR.read_text():
        GRAMMAR.write_text(out[GRAMMAR])
        importlib.reload(parser)
        importlib.reload(highlight)
    out[TEXTMATE] = highlight.textmate_json()
    return out


def stale() -> list[Path]:
    """The generated files whose committed text differs from what the code writes (no writes)."""
    from sadlang.lang.highlight import textmate_json

    want = {GRAMMAR: render_grammar(GRAMMAR.read_text()), DOCS: render(DOCS.read_text())}
    out = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    if GRAMMAR not in out and (not TEXTMATE.exists() or TEXTMATE.read_text() != textmate_json()):
        out.append(TEXTMATE)
    return out


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        bad = stale()
        for path in bad:
            print(f"stale: {path.relative_to(ROOT)} (run scripts/gen_docs.py)")
        raise SystemExit(1 if bad else 0)
    for path, text in generated().items():
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
