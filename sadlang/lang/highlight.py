"""Syntax highlighting for .sad: a Pygments lexer (registered as `sad` through the
`pygments.lexers` entry point, so `pygmentize -l sad` and Markdown renderers find it) and the
TextMate grammar in editors/ (`textmate_grammar()`, written by scripts/gen_docs.py).

Both are built from one rule list, and the keywords come from the grammar (`keywords()`), so a
new grammar word is highlighted without an edit here; tests/test_highlight.py checks every one.

Heads and numbers share a spelling (`1.0` is head 0 of layer 1 after `head`, a number after
`>=`): numbers are recognised by what precedes them (a comparison, `=`, `frequency`, `by`,
`sample`, `seed`, `top`, `up to`, `mlp`, `bias`), everything else of the form `L.H` is a head.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from sadlang.lang.parser import keywords

NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?"
HEAD = r"(?:\d+|\*)\.(?:\d+|\*)(?![\d.])"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
DECLARATIONS = ("model", "method", "option", "pool", "prompts", "circuit", "claim")
NUMBER_AFTER = ("frequency", "by", "sample", "seed", "top", "to", "mlp", "bias")
COMPARISON = r">=|<=|==|>|<|="
KEYWORDS = tuple(keywords())

# (regex, Pygments token or a list of tokens for its groups, TextMate scope or a tuple of scopes)
RULES: list[tuple[str, Any, Any]] = [
    (r"(?<![^\s])#.*$", Comment.Single, "comment.line.number-sign.sad"),
    (rf"^(claim)(\s+)({NAME})(\s*)(:)", [Keyword.Declaration, Whitespace, Name.Function, Whitespace, Punctuation],
     ("keyword.declaration.sad", None, "entity.name.function.claim.sad", None, "punctuation.separator.sad")),
    (rf"^(pool|prompts|circuit)(\s+)({NAME})", [Keyword.Declaration, Whitespace, Name.Class],
     ("keyword.declaration.sad", None, "entity.name.type.sad")),
    (rf"^(option)(\s+)({NAME})", [Keyword.Declaration, Whitespace, Name.Attribute],
     ("keyword.declaration.sad", None, "variable.parameter.option.sad")),
    (r'^(model)(\s+)([^"\s#]\S*)', [Keyword.Declaration, Whitespace, Name.Namespace],
     ("keyword.declaration.sad", None, "entity.name.namespace.model.sad")),
    (rf"^({'|'.join(DECLARATIONS)})\b", Keyword.Declaration, "keyword.declaration.sad"),
    (rf"({COMPARISON})(\s*)({NUMBER})", [Operator, Whitespace, Number],
     ("keyword.operator.comparison.sad", None, "constant.numeric.sad")),
    (rf"\b({'|'.join(NUMBER_AFTER)})(\s+)({NUMBER})", [Keyword, Whitespace, Number],
     ("keyword.other.sad", None, "constant.numeric.sad")),
    (rf"(?<![\w.]){HEAD}", Name.Constant, "constant.other.head.sad"),
    (r"#\d+|(?<=\w)[+-]\d+", Name.Label, "constant.other.role-offset.sad"),
    (rf"{NUMBER}(?=x\b)", Number, "constant.numeric.sad"),
    (rf"(?<![\w.]){NUMBER}", Number, "constant.numeric.sad"),
    (r"->", Operator, "keyword.operator.arrow.sad"),
    (COMPARISON, Operator, "keyword.operator.comparison.sad"),
    (r"[,:]", Punctuation, "punctuation.separator.sad"),
]


def _string_rules() -> list:
    return [(r"\\.", String.Escape), (r"\{[A-Za-z_]\w*\}", String.Interpol), (r'[^"\\{\n]+', String.Double),
            (r"\{", String.Double), (r'"', String.Double, "#pop"), (r"\n", String.Double, "#pop")]


def _root_rules() -> list:
    out: list = [(r"[ \t]+", Whitespace), (r"\\\n", Whitespace), (r"\n", Whitespace)]
    for regex, token, _ in RULES:
        out.append((regex, bygroups(*token) if isinstance(token, list) else token))
    out.append((r'"', String.Double, "string"))
    out.append((words(KEYWORDS, prefix=r"\b", suffix=r"\b"), Keyword))
    out.append((NAME, Name))
    out.append((r".", Name))
    return out


class SadLexer(RegexLexer):
    """Pygments lexer for sadlang spec files."""

    name = "sadlang"
    aliases: ClassVar[list[str]] = ["sad", "sadlang"]
    filenames: ClassVar[list[str]] = ["*.sad"]
    mimetypes: ClassVar[list[str]] = ["text/x-sadlang"]
    flags = re.MULTILINE
    tokens: ClassVar[dict[str, list]] = {"root": _root_rules(), "string": _string_rules()}


def textmate_grammar() -> dict[str, Any]:
    """The TextMate grammar (VS Code, Sublime, Zed...) from the same rules."""
    patterns: list[dict[str, Any]] = []
    for regex, _, scope in RULES:
        if isinstance(scope, tuple):
            patterns.append({"match": regex, "captures": {str(k + 1): {"name": s} for k, s in enumerate(scope) if s}})
        else:
            patterns.append({"match": regex, "name": scope})
    patterns.append({"begin": '"', "end": '"|$', "name": "string.quoted.double.sad",
                     "patterns": [{"match": r"\\.", "name": "constant.character.escape.sad"},
                                  {"match": r"\{[A-Za-z_]\w*\}", "name": "variable.other.slot.sad"}]})
    patterns.append({"match": r"\b(?:" + "|".join(KEYWORDS) + r")\b", "name": "keyword.other.sad"})
    return {"$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
            "name": "sadlang", "scopeName": "source.sad", "fileTypes": ["sad"],
            "comment": "Generated by scripts/gen_docs.py from sadlang/lang/highlight.py; do not edit.",
            "patterns": patterns}


def textmate_json() -> str:
    return json.dumps(textmate_grammar(), indent=2) + "\n"
