"""The .sad language with its claim kinds: the parser and formatter of `sadlang.lang`, given the
builders of every kind in the claim registry. This is the front door for parsing:

    from sadlang.language import parse_file, parse_spec, format_text
    spec = parse_file("specs/ioi.sad")

(`sadlang.lang` sits below the claim kinds and receives their rules; it never imports them.)
"""

from __future__ import annotations

from pathlib import Path

from sadlang.claims import RULES
from sadlang.lang import ast as A
from sadlang.lang import format as _format
from sadlang.lang import parser as _parser


def parse_spec(source: str, file: str = "<spec>") -> A.Spec:
    """Parse spec text; a syntax or semantic problem raises SpecError with file:line:col."""
    return _parser.parse_spec(source, file, rules=RULES)


def parse_file(path: str | Path) -> A.Spec:
    """Read (UTF-8, an optional BOM) and parse a spec file."""
    return _parser.parse_file(path, rules=RULES)


def format_text(source: str, file: str = "<spec>") -> str:
    """The canonical layout of a spec (`sadlang fmt`); a spec that does not parse raises."""
    return _format.format_text(source, file, rules=RULES)


__all__ = ["format_text", "parse_file", "parse_spec"]
