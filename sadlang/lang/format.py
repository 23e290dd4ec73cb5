"""`sadlang fmt`: one canonical layout for .sad files, comments kept.

The text is lexed by the spec grammar itself (every token with its type, so a head `23.10`
is never mistaken for the number 23.1), then laid out line by line:

- top-level statements at column 0, block items (`prompts`, `circuit`) indented by 2 spaces,
  continuation segments (a line ending in `\\`) by 4 more;
- single spaces between tokens; none before `,` and `:`, inside roles (`S#2`, `S+1`) and in
  factors (`5x`);
- numbers and percentages normalised (`0.50` -> `0.5`, `80.0%` -> `80%`, `+3` -> `3`);
- a run of claims (pools, options) has the rest of each line aligned after `claim NAME:`
  (`pool NAME`, `option NAME`);
- trailing comments of consecutive lines aligned, two spaces after the longest code;
- blank lines: at most one in a row, none inside a block or at either end, and one between
  sections (the header, pools, each block, traced circuits, claims); comments stay attached
  to the statement below them.

`format_text(fmt(x)) == fmt(x)`, and `parse(fmt(x))` equals `parse(x)` up to source spans
(tests/test_format.py checks both with hypothesis).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Token

from sadlang.lang.parser import _SadIndenter, grammar_text, parse_spec
from sadlang.lang.syntax import Builder

INDENT = "  "
CONTINUATION = "    "
_NUMBERS = ("SIGNED_NUMBER", "INT", "PERCENT")
_CONT = re.compile(r"\\[\t ]*$")


@lru_cache(maxsize=1)
def _token_parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", postlex=_SadIndenter(), keep_all_tokens=True,
                maybe_placeholders=False)


def normalize_number(text: str) -> str:
    """The canonical spelling of a number token (same value): no `+`, no redundant zeros."""
    suffix = "%" if text.endswith("%") else ""
    body = text[: len(text) - len(suffix)]
    sign = "-" if body.startswith("-") else ""
    body = body.lstrip("+-")
    mantissa, _, exp = body.lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = whole + ("." + frac if frac else "")
    if exp:
        esign = "-" if exp.startswith("-") else ""
        digits = exp.lstrip("+-").lstrip("0") or "0"
        out += "e" + esign + digits
    return sign + out + suffix


def _head(text: str) -> str:
    layer, _, head = text.partition(".")
    return ".".join(p if p == "*" else str(int(p)) for p in (layer, head))


def _spell(tok: Token) -> str:
    if tok.type in _NUMBERS:
        return normalize_number(str(tok))
    if tok.type == "HEAD":
        return _head(str(tok))
    return str(tok)


def _join(tokens: list[Token]) -> str:
    out = ""
    prev: Token | None = None
    for tok in tokens:
        text = _spell(tok)
        glued = prev is not None and (
            text in (",", ":") or tok.type in ("ORDINAL", "SHIFT")
            or (text == "x" and tok.type not in ("NAME", "STRING") and prev.type in _NUMBERS))
        out += text if prev is None or glued else " " + text
        prev = tok
    return out


@dataclass
class _Line:
    """One logical line: its code segments (one per physical line), its comment, its level."""

    segments: list[list[Token]] = field(default_factory=list)
    comment: str = ""
    level: int = 0
    blank_before: bool = False

    @property
    def code(self) -> bool:
        return bool(self.segments)

    def first(self) -> str:
        return str(self.segments[0][0]) if self.segments else ""

    def section(self) -> str:
        """What section a top-level statement belongs to."""
        word = self.first()
        if word in ("model", "method", "option"):
            return "header"
        if word == "circuit":
            toks = self.segments[0]
            return "block" if len(toks) > 2 and str(toks[2]) == ":" else "traced"
        return {"pool": "pool", "prompts": "block", "claim": "claim"}.get(word, word)


def _lines(text: str) -> list[_Line]:
    tree = _token_parser().parse(text)
    by_line: dict[int, list[Token]] = {}
    for tok in tree.scan_values(lambda v: isinstance(v, Token)):
        if tok.line is not None and tok.type not in ("_NL", "_INDENT", "_DEDENT"):
            by_line.setdefault(tok.line, []).append(tok)
    for toks in by_line.values():
        toks.sort(key=lambda t: t.column or 0)
    physical = text.split("\n")
    out: list[_Line] = []
    blank = False
    i = 0
    while i < len(physical):
        raw = physical[i]
        if not raw.strip():
            blank = True
            i += 1
            continue
        line = _Line(blank_before=blank)
        blank = False
        while True:
            number = i + 1
            toks = by_line.get(number, [])
            raw = physical[i]
            end = ((toks[-1].end_column or 1) - 1) if toks else 0
            rest = raw[end:].strip()
            if toks:
                if not line.segments:
                    line.level = 1 if (toks[0].column or 1) > 1 else 0
                line.segments.append(toks)
            if rest.startswith("#"):
                line.comment = rest
            if _CONT.search(raw) and i + 1 < len(physical):
                i += 1
                continue
            break
        out.append(line)
        i += 1
    return out


@dataclass
class _Group:
    """A top-level statement with the comments right above it and its block items."""

    lines: list[_Line]
    blank_before: bool
    has_code: bool = False            # kept up to date by `add`: asking the lines is O(n) each time

    def __post_init__(self) -> None:
        self.has_code = any(x.code for x in self.lines)

    def add(self, line: _Line) -> None:
        self.lines.append(line)
        self.has_code = self.has_code or bool(line.code)

    @property
    def section(self) -> str:
        code = next((x for x in self.lines if x.code), None)
        return code.section() if code is not None else "comment"


def _groups(lines: list[_Line]) -> list[_Group]:
    groups: list[_Group] = []
    for line in lines:
        cur = groups[-1] if groups else None
        if cur is not None and line.level > 0 and cur.has_code:
            cur.add(line)                               # block items and comments inside a block
        elif cur is not None and not cur.has_code and not line.blank_before:
            cur.add(line)                               # attached to the comments above
        else:
            groups.append(_Group([line], line.blank_before))
    return groups


def format_text(source: str, file: str = "<spec>", *, rules: Mapping[str, Builder]) -> str:
    """The canonical layout of a spec. A spec that does not parse (its claims built by `rules`)
    raises its SpecError."""
    text = re.sub(r"\r\n?", "\n", source).lstrip("\ufeff")
    text = text if text.endswith("\n") else text + "\n"
    parse_spec(text, file, rules=rules)         # errors first, with their locations
    lines = _lines(text)
    level = 0
    for line in reversed(lines):                # a comment line takes the level of the code below
        if line.code:
            level = line.level
        else:
            line.level = level
    groups = _groups(lines)
    out: list[tuple[_Line | None, str]] = []    # (line, rendered); None for a blank line
    prev: _Group | None = None
    for g in groups:
        if prev is not None:
            both = g.has_code and prev.has_code
            if g.blank_before or (both and (g.section != prev.section or "block" in (g.section, prev.section))):
                out.append((None, ""))
        out.extend((line, _render(line)) for line in g.lines)
        prev = g
    _align_heads(out)
    _align_comments(out)
    return "\n".join(text_ for _, text_ in out) + "\n"


def _render(line: _Line) -> str:
    pad = INDENT * line.level
    if not line.code:
        return pad + line.comment
    parts = [pad + _join(line.segments[0])]
    for seg in line.segments[1:]:
        parts[-1] += " \\"
        parts.append(pad + CONTINUATION + _join(seg))
    return "\n".join(parts)


def _aligned_head(line: _Line) -> tuple[str, int] | None:
    """(kind, width) of the part of a line that runs of its kind align after: `claim NAME:`,
    `pool NAME`, `option NAME`."""
    toks = line.segments[0] if line.code else []
    if line.level or len(toks) < 4:
        return None
    word = str(toks[0])
    if word == "claim" and str(toks[2]) == ":":
        return word, len(f"claim {toks[1]}:")
    if word in ("pool", "option") and str(toks[2]) == "=":
        return word, len(f"{word} {toks[1]}")
    return None


def _head_width(line: _Line | None) -> int:
    found = _aligned_head(line) if line is not None else None
    return found[1] if found is not None else 0


def _align_heads(out: list[tuple[_Line | None, str]]) -> None:
    """In each run of claims (pools, options) not parted by a blank line, the rest of the line
    starts in one column."""
    runs: list[list[int]] = [[]]
    kind = None
    for k, (line, _) in enumerate(out):
        head = _aligned_head(line) if line is not None else None
        if line is None or (head is not None and head[0] != kind) or (head is None and line.code):
            runs.append([])
            kind = None
        if head is not None:
            runs[-1].append(k)
            kind = head[0]
    for run in runs:
        if not run:
            continue
        widths = {k: _head_width(out[k][0]) for k in run}
        width = max(widths.values())
        for k in run:
            line, text = out[k]
            cut = widths[k]
            out[k] = (line, text[:cut] + " " * (width - cut + 1) + text[cut + 1:])


def _align_comments(out: list[tuple[_Line | None, str]]) -> None:
    """Trailing comments of consecutive lines start in one column, two spaces after the code."""
    run: list[int] = []

    def flush() -> None:
        if run:
            width = max(len(out[k][1].split("\n")[-1]) for k in run)
            for k in run:
                line, text = out[k]
                assert line is not None
                out[k] = (line, text + " " * (width - len(text.split("\n")[-1]) + 2) + line.comment)
        run.clear()

    for k, (line, _) in enumerate(out):
        if line is not None and line.code and line.comment:
            run.append(k)
        else:
            flush()
    flush()
