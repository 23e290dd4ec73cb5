"""Hover, completion and go-to-definition for a .sad document, as pure functions of its text
and a 0-based (line, character) position. They read declarations off the text line by line, so
they keep working while the document does not parse (the usual state while typing).

Hover text comes from the sources docs/language.md is generated from: the claim-kind registry,
the typed settings and sadlang/lang/reference.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DECL = re.compile(rf"^(pool|prompts|circuit)\s+({NAME})")
_OPTION = re.compile(rf"^option\s+({NAME})")
_TEMPLATE = re.compile(r'^\s+template\s+"((?:[^"\\]|\\.)*)"')
_SLOTS = re.compile(rf"^\s+({NAME}(?:\s*,\s*{NAME})*)\s+from\s+({NAME})")
_CLAIM = re.compile(rf"^claim\s+({NAME})\s*:")
_WORD = re.compile(r"[A-Za-z0-9_.#*+\-]+")
STATEMENT_WORDS = ("model", "method", "option", "pool", "prompts", "circuit", "claim")
BLOCK_WORDS = {"prompts": ("template", "answer", "sample", "prompt", "resample", "swap"),
               "circuit": ("edge",)}


@dataclass
class Outline:
    """What a document declares, with 0-based (line, start, end) of each name."""

    pools: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    prompt_sets: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    circuits: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    templates: dict[str, list[str]] = field(default_factory=dict)       # prompt set -> templates
    slots: dict[str, dict[str, str]] = field(default_factory=dict)      # prompt set -> slot -> pool
    pool_values: dict[str, list[str]] = field(default_factory=dict)
    block_of: dict[int, tuple[str, str]] = field(default_factory=dict)  # line -> (block kind, name)
    model: str | None = None


def outline(text: str) -> Outline:
    out = Outline()
    block: tuple[str, str] | None = None
    for n, line in enumerate(text.split("\n")):
        if line.strip() and not line[0].isspace():
            block = None
        m = _DECL.match(line)
        if m:
            kind, name = m.groups()
            target = {"pool": out.pools, "prompts": out.prompt_sets, "circuit": out.circuits}[kind]
            target.setdefault(name, (n, m.start(2), m.end(2)))
            if kind == "pool":
                out.pool_values[name] = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
            if line.rstrip().endswith(":"):
                block = (kind, name)
            continue
        if line.startswith("model "):
            out.model = line.split()[1].strip('"') if len(line.split()) > 1 else None
        if block is not None and line[:1].isspace():
            out.block_of[n] = block
            if block[0] == "prompts":
                t = _TEMPLATE.match(line)
                if t:
                    out.templates.setdefault(block[1], []).append(t.group(1))
                s = _SLOTS.match(line)
                if s:
                    for slot in re.split(r"\s*,\s*", s.group(1)):
                        out.slots.setdefault(block[1], {})[slot] = s.group(2)
    return out


def word_at(text: str, line: int, character: int) -> tuple[str, int, int] | None:
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    for m in _WORD.finditer(lines[line]):
        if m.start() <= character <= m.end():
            return m.group(0), m.start(), m.end()
    return None


# ---- hover -----------------------------------------------------------------------------

def _claim_kind_hover(line_text: str) -> str | None:
    from sadlang.claims import kind_of
    from sadlang.errors import SpecError
    from sadlang.language import parse_spec

    try:
        spec = parse_spec(f"model planted\n{line_text.strip()}\n", "<hover>")
    except SpecError:
        return None
    if not spec.claims:
        return None
    kind = kind_of(spec.claims[0].body)
    example = kind.examples[0] if kind.examples else ""
    return (f"**{kind.name}** claim: {kind.summary}.\n\nChecked by: {kind.describe(spec.claims[0].body)}"
            + (f"\n\nExample: `{example}`" if example else ""))


def _option_hover(name: str) -> str | None:
    from sadlang.settings import Settings

    field_ = Settings.model_fields.get(name)
    if field_ is None:
        return None
    return f"**option {name}** (default `{field_.default}`): {field_.description}"


def _role_hover(word: str, line: int, doc: Outline, text: str) -> str | None:
    """A role like `S#2` or `IO+1`: which slot occurrence it names, shown in the first template
    of the claim's prompt set filled with the pools' first values."""
    m = re.fullmatch(rf"({NAME})(?:#(\d+))?([+-]\d+)?", word)
    if not m:
        return None
    slot, nth, shift = m.group(1), int(m.group(2) or 1), m.group(3)
    line_text = text.split("\n")[line]
    on = re.search(rf"\bon\s+({NAME})", line_text)
    pset = on.group(1) if on else next(iter(doc.prompt_sets), None)
    if slot in ("end", "bos"):
        return f"**{slot}**: the {'last' if slot == 'end' else 'first (BOS)'} position of every prompt"
    if pset is None or slot not in doc.slots.get(pset, {}) or not doc.templates.get(pset):
        return None
    template = doc.templates[pset][0]
    fill: dict[str, str] = {}
    used: dict[str, int] = {}
    for s, pool in doc.slots[pset].items():
        values = doc.pool_values.get(pool, [])
        k = used.get(pool, 0)
        fill[s] = values[k % len(values)] if values else f"<{s}>"
        used[pool] = k + 1
    count = 0

    def sub(mm: re.Match) -> str:
        nonlocal count
        name = mm.group(1)
        value = fill.get(name, mm.group(0))
        if name == slot:
            count += 1
            if count == nth:
                return f"[{value}]"
        return value
    example = re.sub(r"\{(" + NAME + r")\}", sub, template)
    if count < nth:
        return f"**{word}**: slot {slot} occurs only {count} time(s) in the first template of {pset}"
    offset = f", then {shift} token(s)" if shift else ""
    return (f"**{word}**: occurrence {nth} of slot {slot} (pool {doc.slots[pset][slot]}){offset}, "
            f"e.g. in {pset}: `{example}`")


def _head_hover(word: str, doc: Outline) -> str | None:
    """A head `L.H`: where it sits in the spec's model (read from its config), or why it does not."""
    from sadlang.models.shapes import cached_shape

    layer, head = (int(x) for x in word.split("."))
    try:
        shape = cached_shape(doc.model) if doc.model else None
    except Exception:
        shape = None
    if shape is None:
        return f"**head {word}**: layer {layer}, head {head}"
    where = f"{shape.name} has layers 0..{shape.n_layers - 1} and heads 0..{shape.n_heads - 1}"
    if layer >= shape.n_layers or head >= shape.n_heads:
        return f"**head {word}** is out of range: {where}"
    text = f"**head {word}**: layer {layer} of {shape.n_layers}, head {head} of {shape.n_heads} ({shape.name})"
    return text + _scan_lines(doc.model or "", word)


def _scan_lines(model: str, head: str) -> str:
    """The head's scores in the scans `sadlang scan` kept for this model, with its rank."""
    from sadlang.evidence.scans import remembered

    lines = []
    for pattern, data in remembered(model).items():
        scores = data.get("scores", {})
        if head in scores:
            rank = 1 + sum(v > scores[head] for v in scores.values())
            lines.append(f"- {pattern}: {scores[head]:.3f} (rank {rank} of {len(scores)}; {data.get('prompts', '')})")
    return ("\n\nLast scans (`sadlang scan`):\n" + "\n".join(lines)) if lines else ""


def hover(text: str, line: int, character: int) -> str | None:
    found = word_at(text, line, character)
    if found is None:
        return None
    word = found[0]
    line_text = text.split("\n")[line]
    doc = outline(text)
    opt = _OPTION.match(line_text)
    if opt and word == opt.group(1):
        return _option_hover(word)
    if line_text.split()[:1] == [word]:            # a statement or block-line keyword
        from sadlang.lang.reference import meaning

        rows = meaning(word)
        if rows:
            return "\n\n".join(f"{form}: {text_}" for form, text_ in rows)
    for table, what in ((doc.pools, "pool"), (doc.prompt_sets, "prompt set"), (doc.circuits, "circuit")):
        if word in table:
            text = f"**{word}**: {what} declared on line {table[word][0] + 1}"
            values = doc.pool_values.get(word) if what == "pool" else None
            if values:
                shown = ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
                text += f"; {len(values)} strings: {shown}"
            return text
    if _CLAIM.match(line_text) and re.fullmatch(r"\d+\.\d+", word):
        return _head_hover(word, doc)
    if _CLAIM.match(line_text):
        role = _role_hover(word, line, doc, text)
        if role:
            return role
        return _claim_kind_hover(line_text)
    return None


# ---- completion ------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    label: str
    kind: str          # keyword, option, prompt_set, pool, circuit, role, head
    detail: str = ""


def _heads(model: str | None) -> list[Completion]:
    if model is None:
        return []
    from sadlang.models.shapes import cached_shape

    try:
        shape = cached_shape(model)
    except Exception:
        return []
    if shape is None:
        return []
    return [Completion(f"{layer}.{head}", "head", f"layer {layer}, head {head} of {shape.name}")
            for layer in range(shape.n_layers) for head in range(shape.n_heads)]


# words offered for terminals that are not a fixed word
_SYMBOLS = {"CMP": (">=", "<=", ">", "<", "=="), "ORDINAL": ("#2",), "SHIFT": ("+1", "-1")}


@lru_cache(maxsize=1)
def _terminal_words() -> dict[str, tuple[str, ...]]:
    """Terminal name -> the words it matches when it matches a fixed set (keywords, `->`, and
    word alternations like `lowers|raises`)."""
    from sadlang.lang.parser import _parser

    out: dict[str, tuple[str, ...]] = {}
    for term in _parser().terminals:
        pattern = term.pattern
        if pattern.type == "str":
            out[term.name] = (str(pattern.value),)
        else:
            parts = str(pattern.value).strip("()").replace("?:", "").split("|")
            if all(part.isidentifier() for part in parts):
                out[term.name] = tuple(parts)
    return {**out, **_SYMBOLS}


def grammar_next(prefix: str) -> set[str] | None:
    """The terminals the grammar accepts after `prefix` (whole tokens only), or None when the
    prefix does not parse that far (completion then falls back to the line's words)."""
    from lark.exceptions import LarkError

    from sadlang.lang.parser import _parser

    try:
        interactive = _parser().parse_interactive(prefix)
        interactive.exhaust_lexer()
        return set(interactive.accepts())
    except LarkError:
        return None


def _by_grammar(text: str, lines: list[str], line: int, line_text: str, doc: Outline) -> list[Completion] | None:
    """Completions of a claim line from the grammar's position: the keywords that may follow,
    and for a NAME or HEAD slot the names the context allows. None: the grammar cannot tell."""
    if not _CLAIM.match(line_text):
        return None
    done = line_text if line_text.endswith((" ", "\t")) else line_text[: len(line_text) - len(line_text.split()[-1])]
    accepts = grammar_next(done)
    if not accepts:
        return None
    words = _terminal_words()
    out = [Completion(w, "keyword") for t in sorted(accepts) for w in words.get(t, ())]
    before = done.split()
    prev = before[-1] if before else ""
    if "NAME" in accepts:
        if prev in ("on", "of", "over", "from"):
            out += [Completion(n, "prompt_set") for n in doc.prompt_sets]
        elif prev == "circuit" or prev == "matches":
            out += [Completion(n, "circuit") for n in doc.circuits]
        else:
            on = re.search(rf"\bon\s+({NAME})", lines[line])
            pset = on.group(1) if on else next(iter(doc.prompt_sets), None)
            out += [Completion(r, "role") for r in ["end", "bos", *doc.slots.get(pset or "", {})]]
    if "HEAD" in accepts:
        out += _heads(doc.model)
    unique: dict[str, Completion] = {}
    for c in out:
        unique.setdefault(c.label, c)
    return list(unique.values())


def complete(text: str, line: int, character: int) -> list[Completion]:
    from sadlang.lang.parser import keywords

    lines = text.split("\n")
    line_text = lines[line][:character] if 0 <= line < len(lines) else ""
    doc = outline(text)
    before = line_text.split()
    prev = before[-1] if before and line_text.endswith((" ", "\t")) else (before[-2] if len(before) > 1 else "")
    if not line_text.strip():
        if line_text[:1].isspace() and line in doc.block_of:
            return [Completion(w, "keyword") for w in BLOCK_WORDS[doc.block_of[line][0]]]
        if line_text[:1].isspace():
            block = next((doc.block_of[n] for n in range(line - 1, -1, -1) if n in doc.block_of), None)
            if block:
                return [Completion(w, "keyword") for w in BLOCK_WORDS[block[0]]]
        return [Completion(w, "keyword") for w in STATEMENT_WORDS]
    grammar = _by_grammar(text, lines, line, line_text, doc)
    if grammar is not None:
        return grammar
    if before[:1] == ["option"] and len(before) <= 2:
        from sadlang.settings import Settings

        return [Completion(n, "option", f.description or "") for n, f in Settings.model_fields.items()]
    if prev in ("on", "of") or before[-2:-1] == ["of"]:
        return [Completion(n, "prompt_set") for n in doc.prompt_sets]
    if prev == "from":
        if line in doc.block_of or line_text[:1].isspace():
            return [Completion(n, "pool") for n in doc.pools]
        return [Completion(n, "prompt_set") for n in doc.prompt_sets]
    if prev == "circuit" and before[:1] == ["claim"]:
        return [Completion(n, "circuit") for n in doc.circuits]
    if prev in ("->", "at") and before[:1] == ["claim"]:
        on = re.search(rf"\bon\s+({NAME})", lines[line])
        pset = on.group(1) if on else next(iter(doc.prompt_sets), None)
        roles = ["end", "bos"] + [s for s in doc.slots.get(pset or "", {})]
        return [Completion(r, "role") for r in roles] + _heads(doc.model)
    if prev in ("head", "edge", "of", "with", "->", ","):
        return _heads(doc.model)
    return [Completion(w, "keyword") for w in keywords()]


# ---- definition ------------------------------------------------------------------------

def definition(text: str, line: int, character: int) -> tuple[int, int, int] | None:
    """(line, start, end) 0-based of the declaration of the pool, prompt set or circuit named
    at the position."""
    found = word_at(text, line, character)
    if found is None:
        return None
    doc = outline(text)
    for table in (doc.prompt_sets, doc.circuits, doc.pools):
        if found[0] in table:
            return table[found[0]]
    return None
