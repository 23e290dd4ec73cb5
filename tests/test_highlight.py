"""Highlighting stays in step with the grammar: every grammar keyword is highlighted by the
Pygments lexer and by the TextMate grammar; the TextMate file is what the code generates; the
lexer is found through its entry point; heads and numbers are told apart by context."""

import json
import re
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Keyword, Name, Number, String

from sadlang.lang.highlight import SadLexer, textmate_grammar, textmate_json
from sadlang.lang.parser import keywords

ROOT = Path(__file__).resolve().parents[1]
TEXTMATE = ROOT / "editors" / "sad.tmLanguage.json"


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in SadLexer().get_tokens(text) if v.strip()]


@pytest.mark.parametrize("word", keywords())
def test_every_grammar_keyword_is_highlighted_by_pygments(word):
    toks = _tokens(f"claim a: {word} 1.0\n")
    kinds = [t for t, v in toks if v == word]
    assert kinds and kinds[0] in Keyword, (word, toks)


@pytest.mark.parametrize("word", keywords())
def test_every_grammar_keyword_is_highlighted_by_textmate(word):
    hits = []
    for pattern in textmate_grammar()["patterns"]:
        if "match" not in pattern:
            continue
        m = re.search(pattern["match"], f"{word}", re.M)
        if m and m.group(0) == word and "keyword" in pattern.get("name", "keyword"):
            hits.append(pattern)
    assert hits, f"no TextMate pattern highlights {word!r} as a keyword"


def test_textmate_file_is_generated():
    assert TEXTMATE.read_text() == textmate_json(), "run scripts/gen_docs.py"
    json.loads(TEXTMATE.read_text())


def test_the_lexer_is_registered_through_its_entry_point():
    assert isinstance(get_lexer_by_name("sad"), SadLexer)
    assert isinstance(get_lexer_for_filename("ioi.sad"), SadLexer)


def test_heads_numbers_roles_strings_and_comments():
    toks = _tokens('claim reads: head 1.10 attends end -> S#2 with weight >= 0.5 in >= 80% of prompts  # why\n'
                   'prompts p:\n  template "When{A} said"\n')
    by_value = {v: t for t, v in toks}
    assert by_value["reads"] in Name.Function and by_value["1.10"] in Name.Constant
    assert by_value["0.5"] in Number and by_value["80%"] in Number and by_value["#2"] in Name.Label
    assert by_value["# why"] in Comment and by_value["{A}"] in String.Interpol
    assert by_value["head"] in Keyword and by_value["attends"] in Keyword and by_value["p"] in Name.Class


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.sad")), ids=lambda p: p.name)
def test_shipped_specs_lex_without_errors(path):
    from pygments.token import Error

    assert not [v for t, v in SadLexer().get_tokens(path.read_text()) if t in Error]
