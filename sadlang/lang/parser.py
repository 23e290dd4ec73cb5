"""Parse .sad text into a typed `Spec`. Syntax errors become `SpecError` with file:line:col."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any, ClassVar

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, v_args
from lark.exceptions import UnexpectedEOF, VisitError
from lark.indenter import Indenter
from lark.tree import Meta

from sadlang.errors import InternalError, Span, SpecError, SpecErrors, source_lines
from sadlang.lang import ast as A
from sadlang.lang.syntax import Builder, SemanticError, amount, loc, share, token_at, unquote

FRIENDLY = {
    "_NL": "end of line", "_INDENT": "an indented block", "_DEDENT": "end of block",
    "HEAD": "a head like 20.3 (or 20.*, *.3)", "INT": "an integer", "SIGNED_NUMBER": "a number",
    "PERCENT": "a percentage like 80%", "STRING": 'a quoted string like "Mary"',
    "NAME": "a name", "MODEL_NAME": "a model name", "CMP": "a comparison (>=, <=, >, <, ==)",
    "COLON": "':'", "EQUAL": "'='", "__ANON_0": "'->'", "COMMA": "','", "ORDINAL": "#k",
    "SHIFT": "+k or -k", "SIDE": "query or key", "ATTENDS": "attends or fires",
    "ACTION": "ablate or boost", "MODE": "local or global", "DIRECTION": "lowers or raises",
    "METRIC": "logit_diff or attention", "SIGNAL_CLASS": "data or control",
    "BOUND_NAME": "precision, recall or f1", "MEAN": "mean", "DISTINCT": "distinct",
    "BY_CONTROL": "by control signal",
}


class _SadIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types: ClassVar[list[str]] = []
    CLOSE_PAREN_types: ClassVar[list[str]] = []
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


def grammar_text() -> str:
    return resources.files("sadlang").joinpath("grammar/sad.lark").read_text()


@lru_cache(maxsize=1)
def keywords() -> list[str]:
    """Every word of the language, read off the grammar (its string and word-alternative
    terminals), for suggestions; nothing to keep in sync by hand."""
    words: set[str] = set()
    for term in _parser().terminals:
        pattern = term.pattern
        if pattern.type == "str" and str(pattern.value).isidentifier():
            words.add(str(pattern.value))
        elif pattern.type == "re":
            raw = str(pattern.value).strip("()").replace("?:", "")
            parts = raw.split("|")
            if all(part.isidentifier() for part in parts):
                words.update(parts)
    return sorted(words)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", postlex=_SadIndenter(), propagate_positions=True,
                maybe_placeholders=False)


class Number(float):
    """A number from the spec that remembers its token (for errors about its value)."""

    token: Token

    def __new__(cls, value: float, token: Token) -> Number:
        out = super().__new__(cls, value)
        out.token = token
        return out


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> pydantic nodes. Statements come back as (kind, payload) pairs."""

    def __init__(self, file: str, source: str, rules: Mapping[str, Builder]):
        super().__init__()
        self.file = file
        self.source = source
        self.lines = source_lines(source)     # split once: every claim reads its own line from it
        self.rules = rules                    # claim rule -> builder, from the layer above

    # --- leaves
    def number(self, meta: Meta, ch: list[Any]) -> Number:
        value = float(ch[0])
        if not math.isfinite(value):
            raise SemanticError(f"{ch[0]} is not a finite number", ch[0])
        return Number(value, ch[0])

    def head_ref(self, meta: Meta, ch: list[Any]) -> A.HeadRef:
        a, b = str(ch[0]).split(".")
        return A.HeadRef(layer=None if a == "*" else int(a), head=None if b == "*" else int(b),
                         loc=loc(ch[0]))

    def comp_head(self, meta: Meta, ch: list[Any]) -> A.CompRef:
        h = self.head_ref(meta, ch)
        return A.CompRef(kind="head", head=h, loc=h.loc)

    def comp_mlp(self, meta: Meta, ch: list[Any]) -> A.CompRef:
        return A.CompRef(kind="mlp", layer=int(ch[0]), loc=loc(meta))

    def comp_bias(self, meta: Meta, ch: list[Any]) -> A.CompRef:
        return A.CompRef(kind="bias", layer=int(ch[0]), loc=loc(meta))

    def comp_embed(self, meta: Meta, ch: list[Any]) -> A.CompRef:
        return A.CompRef(kind="embed", loc=loc(meta))

    def comp_offset(self, meta: Meta, ch: list[Any]) -> A.CompRef:
        return A.CompRef(kind="offset", loc=loc(meta))

    def comp_list(self, meta: Meta, ch: list[Any]) -> list[A.CompRef]:
        return list(ch)

    def head_list(self, meta: Meta, ch: list[Any]) -> list[A.HeadRef]:
        return list(ch)

    def pos_role(self, meta: Meta, ch: list[Any]) -> A.Pos:
        role, occ, shift = str(ch[0]), 1, 0
        for t in ch[1:]:
            if t.type == "ORDINAL":
                occ = int(t[1:])
                if occ < 1:
                    raise SemanticError(f"occurrences count from 1: {role}#1 is the first {role}", t)
            elif t.type == "SHIFT":
                shift = int(t)
        return A.Pos(role=role, occurrence=occ, shift=shift, loc=loc(meta))

    def pos_word(self, meta: Meta, ch: list[Any]) -> A.Pos:
        return A.Pos(word=unquote(ch[0]), shift=int(ch[1]) if len(ch) > 1 else 0, loc=loc(meta))

    def firing_at(self, meta: Meta, ch: list[Any]) -> A.FiringAt:
        return A.FiringAt(dest=ch[0], src=ch[1], loc=loc(meta))

    def via(self, meta: Meta, ch: list[Any]) -> tuple[str, str]:
        return ("via", str(ch[0]))

    # --- quantifiers
    def q_all(self, meta: Meta, ch: list[Any]) -> A.Quantifier:
        return A.Quantifier(kind="all", loc=loc(meta))

    def q_share(self, meta: Meta, ch: list[Any]) -> A.Quantifier:
        return A.Quantifier(kind="at_least" if str(ch[0]) in (">=", ">") else "at_most",
                            cmp=str(ch[0]), share=share(ch[1], token_at(meta)), loc=loc(meta))

    def q_at_most(self, meta: Meta, ch: list[Any]) -> A.Quantifier:
        return A.Quantifier(kind="at_most", cmp="<=", share=share(ch[0], token_at(meta)), loc=loc(meta))

    def q_count(self, meta: Meta, ch: list[Any]) -> A.Quantifier:
        value = float(ch[1])
        if not value.is_integer() or value < 0:
            raise SemanticError(f"a number of prompts is a whole number, not {ch[1]} (a share is written "
                                f"`in {ch[0]} 80% of prompts`)", token_at(meta))
        return A.Quantifier(kind="count", cmp=str(ch[0]), count=int(value), loc=loc(meta))

    def q_forall(self, meta: Meta, ch: list[Any]) -> A.Quantifier:
        limit = int(ch[0]) if ch else 100
        return A.Quantifier(kind="forall", limit=limit, loc=loc(meta))

    def on_clause(self, meta: Meta, ch: list[Any]) -> tuple[str, str]:
        return ("on", str(ch[0]))

    # --- claim bodies: each claim kind builds its own rules (sadlang/claims)
    def __default__(self, data: Any, children: list[Any], meta: Meta) -> Any:
        builder = self.rules.get(str(data))
        if builder is None:
            raise InternalError(f"no claim kind builds the grammar rule {data!r}")
        return builder(meta, children)

    # --- statements
    def claim_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        name = str(ch[0])
        body = ch[1]
        q = A.Quantifier()
        pset = None
        for c in ch[2:]:
            if isinstance(c, A.Quantifier):
                q = c
            elif isinstance(c, tuple) and c[0] == "on":
                pset = c[1]
        line = self.lines[meta.line - 1].strip() if meta.line else ""
        return ("claim", A.Claim(name=name, body=body, quantifier=q, prompt_set=pset,
                                 source_line=line, loc=loc(meta)))

    def model_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        t = ch[0]
        return ("model", (unquote(t) if t.type == "STRING" else str(t), loc(t)))

    def method_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        return ("method", (str(ch[0]), loc(ch[0])))

    def option_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        v = ch[1]
        value: float | str
        if isinstance(v, Token):
            if v.type == "STRING":
                value = unquote(v)
            elif v.type == "PERCENT":
                value, _ = amount(v)
            else:
                value = str(v)
        else:
            value = float(v)
        return ("option", A.Option(name=str(ch[0]), value=value, loc=loc(meta)))

    def pool_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        if ch[1:] and isinstance(ch[1], tuple):
            pairs = [p for p in ch[1:]]
            return ("pool", A.Pool(name=str(ch[0]), values=[k for k, _ in pairs], pairs=pairs, loc=loc(meta)))
        return ("pool", A.Pool(name=str(ch[0]), values=[unquote(t) for t in ch[1:]], loc=loc(meta)))

    def pool_pair(self, meta: Meta, ch: list[Any]) -> tuple[str, str]:
        return unquote(ch[0]), unquote(ch[1])

    def template_item(self, meta: Meta, ch: list[Any]) -> Any:
        return ("template", (unquote(ch[0]), loc(ch[0])))

    def literal_item(self, meta: Meta, ch: list[Any]) -> Any:
        vals = [unquote(t) for t in ch]
        return ("literal", A.LiteralPrompt(text=vals[0], answer=vals[1] if len(vals) > 1 else None,
                                           against=vals[2] if len(vals) > 2 else None, loc=loc(meta)))

    def slot_item(self, meta: Meta, ch: list[Any]) -> Any:
        names = [str(t) for t in ch if t.type == "NAME"]
        distinct = any(t.type == "DISTINCT" for t in ch)
        return ("slots", A.SlotGroup(slots=names[:-1], pool=names[-1], distinct=distinct, loc=loc(meta)))

    def answer_item(self, meta: Meta, ch: list[Any]) -> Any:
        return ("answer", (unquote(ch[0]), unquote(ch[1]) if len(ch) > 1 else None, loc(meta)))

    def sample_cap(self, meta: Meta, ch: list[Any]) -> Any:
        return ("cap", int(ch[0]))

    def sample_item(self, meta: Meta, ch: list[Any]) -> Any:
        cap = next((c[1] for c in ch if isinstance(c, tuple)), None)
        ints = [int(c) for c in ch if not isinstance(c, tuple)]
        return ("sample", (ints[0], cap, ints[1] if len(ints) > 1 else 0, loc(meta)))

    def resample_pool(self, meta: Meta, ch: list[Any]) -> Any:
        return ("pool", str(ch[0]))

    def resample_item(self, meta: Meta, ch: list[Any]) -> Any:
        names = [str(t) for t in ch if isinstance(t, Token) and t.type == "NAME"]
        pool = next((c[1] for c in ch if isinstance(c, tuple)), None)
        seed = next((int(t) for t in ch if isinstance(t, Token) and t.type == "INT"), 1)
        return ("resample", (names, pool, seed, loc(meta)))

    def swap_item(self, meta: Meta, ch: list[Any]) -> Any:
        return ("swap", ((str(ch[0]), str(ch[1])), loc(meta)))

    def circuit_node(self, meta: Meta, ch: list[Any]) -> Any:
        head = ch[0]
        at = ch[1] if len(ch) > 1 else None
        src = ch[2] if len(ch) > 2 else None
        return ("node", A.CircuitNode(head=head, at=at, src=src, loc=loc(meta)))

    def circuit_mlp(self, meta: Meta, ch: list[Any]) -> Any:
        at = ch[1] if len(ch) > 1 else None
        return ("mlp", A.CircuitMlp(layer=int(ch[0]), at=at, loc=loc(meta)))

    def circuit_edge(self, meta: Meta, ch: list[Any]) -> Any:
        side = ch[2] if len(ch) > 2 else None
        return ("edge", A.CircuitEdge(upstream=ch[0], downstream=ch[1], side=side, loc=loc(meta)))

    def mlp_unit(self, meta: Meta, ch: list[Any]) -> Any:
        return A.MlpRef(layer=int(ch[0]), loc=loc(meta))

    def circuit_via(self, meta: Meta, ch: list[Any]) -> Any:
        return str(ch[0])

    def circuit_logit_edge(self, meta: Meta, ch: list[Any]) -> Any:
        return ("edge", A.CircuitEdge(upstream=ch[0], downstream=None, loc=loc(meta)))

    def circuit_block(self, meta: Meta, ch: list[Any]) -> Any:
        decl = A.CircuitDecl(name=str(ch[0]), loc=loc(meta))
        for kind, item in ch[1:]:
            if kind == "node":
                decl.nodes.append(item)
            elif kind == "mlp":
                decl.mlps.append(item)
            else:
                decl.edges.append(item)
        return ("circuit", decl)

    def circuit_values(self, meta: Meta, ch: list[Any]) -> Any:
        part, _ = amount(ch[0])
        if not 0.0 < part <= 1.0:
            raise SemanticError(f"a value-path share is in (0%, 100%], not {part:.4g}", ch[0])
        return ("values", part)

    def circuit_traced(self, meta: Meta, ch: list[Any]) -> Any:
        freq, top, values = 0.0, None, None
        for c in ch[2:]:
            if isinstance(c, tuple) and c[0] == "values":
                values = c[1]
            elif isinstance(c, Token) and c.type == "INT":
                top = int(c)
                if top < 1:
                    raise SemanticError("a traced circuit keeps at least 1 edge", c)
            else:
                freq = float(c)
                if not 0.0 <= freq <= 1.0:
                    raise SemanticError(f"frequency {freq:g} is outside [0, 1]", getattr(c, "token", None))
        return ("circuit", A.CircuitDecl(name=str(ch[0]), traced_from=str(ch[1]), frequency=freq, top_edges=top,
                                         value_share=values, loc=loc(meta)))

    def top_edges_unit(self, meta: Meta, ch: list[Any]) -> Any:
        return "edges"

    def top_nodes_unit(self, meta: Meta, ch: list[Any]) -> Any:
        return "nodes"

    def circuit_discovered(self, meta: Meta, ch: list[Any]) -> Any:
        top = int(ch[4])
        if top < 1:
            raise SemanticError(f"a discovered circuit keeps at least 1 {ch[5][:-1]}", ch[4])
        edges = ch[5] == "edges"
        return ("circuit", A.CircuitDecl(name=str(ch[0]), discovery=str(ch[1]), traced_from=str(ch[2]),
                                         twins=str(ch[3]), loc=loc(meta), top_edges=top if edges else None,
                                         top_nodes=None if edges else top))

    def prompts_stmt(self, meta: Meta, ch: list[Any]) -> Any:
        d: dict = {"name": str(ch[0]), "loc": loc(meta), "templates": [], "literals": [], "slots": []}
        slot_at: dict[str, A.Loc | None] = {}
        if len(ch) > 1 and isinstance(ch[1], Token):
            d["source"] = str(ch[1])
            ch = [ch[0], *ch[2:]]
        for kind, payload in ch[1:]:
            if kind == "template":
                d["templates"].append(payload)
            elif kind == "literal":
                d["literals"].append(payload)
            elif kind == "slots":
                for slot in payload.slots:
                    if slot in slot_at:
                        raise SemanticError(f"slot {slot} is drawn twice (first at line "
                                            f"{getattr(slot_at[slot], 'line', '?')})", token_at(payload.loc))
                    slot_at[slot] = payload.loc
                d["slots"].append(payload)
            elif kind == "answer":
                if "answer" in d:
                    raise SemanticError(f"a second `answer` line in prompts {d['name']} (first at line "
                                        f"{d['answer_loc'].line})", token_at(payload[2]))
                d["answer"], d["against"], d["answer_loc"] = payload
            elif kind in ("resample", "swap"):
                if "change_loc" in d:
                    raise SemanticError("a counterfactual set changes its source once: one `resample` or "
                                        "`swap` line", token_at(payload[-1]))
                if kind == "resample":
                    d["resample"], d["resample_pool"], d["resample_seed"], d["change_loc"] = payload
                else:
                    d["swap"], d["change_loc"] = payload
            elif kind == "sample":
                if "sample" in d:
                    raise SemanticError(f"a second `sample` line in prompts {d['name']} (first at line "
                                        f"{d['sample_loc'].line})", token_at(payload[3]))
                d["sample"], d["sample_cap"], d["seed"], d["sample_loc"] = payload
        return ("prompts", A.PromptSetDecl(**d))

    def start(self, meta: Meta, ch: list[Any]) -> Any:
        return list(ch)


def _expected_text(expected: Iterable[str]) -> str:
    names = sorted({FRIENDLY.get(e, f"'{e.lower()}'" if e.isupper() and e.isalpha() else e)
                    for e in expected if not e.startswith("__ANON") or e == "__ANON_0"})
    if len(names) > 8:
        names = [*names[:8], "..."]
    return ", ".join(names)


def _literal_expected(parser: Lark, expected: Iterable[str]) -> list[str]:
    out = []
    for name in expected:
        try:
            term = parser.get_terminal(name)
        except KeyError:
            continue
        if term.pattern.type == "str":
            out.append(term.pattern.value)
        else:
            raw = term.pattern.value.strip("()").replace("?:", "")
            if all(part.isidentifier() for part in raw.split("|")):
                out.extend(raw.split("|"))
    return out


def parse_spec(source: str, file: str = "<spec>", *, rules: Mapping[str, Builder]) -> A.Spec:
    """Parse spec text. Raises SpecError (with span and caret) on any syntax problem. CRLF and
    CR line endings read as LF.

    `rules` builds the claim bodies: grammar rule -> builder. Claim kinds live above this layer
    and hand their rules down (`sadlang.language.parse_spec` passes every registered kind's)."""
    text = re.sub(r"\r\n?", "\n", source)
    text = text if text.endswith("\n") else text + "\n"
    parser = _parser()
    problem = _indentation_problem(text, file)
    if problem is not None:
        raise problem
    try:
        tree = parser.parse(text)
        statements = _ToAst(file, text, rules).transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, parser, text, file) from None
    except SemanticError as exc:   # from a claim kind's builder (lark does not wrap __default__)
        raise _semantic(exc, file, text) from None
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, InternalError):
            raise orig from None
        if isinstance(orig, SemanticError):
            raise _semantic(orig, file, text) from None
        meta = getattr(exc.obj, "meta", None)
        where = Span(file, getattr(meta, "line", 1), getattr(meta, "column", 1)) if meta else None
        raise SpecError(f"malformed statement: {orig}", where, text) from None
    return _assemble(statements, file, text)


def _semantic(exc: SemanticError, file: str, text: str) -> SpecError:
    tok = exc.token
    span = Span(file, getattr(tok, "line", 1), getattr(tok, "column", 1),
                getattr(tok, "end_line", None), getattr(tok, "end_column", None))
    return SpecError(str(exc), span, text)


def _syntax_error(exc: UnexpectedInput, parser: Lark, text: str, file: str) -> SpecError:
    line, col = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    if line < 1:
        line, col = len(source_lines(text.rstrip("\n"))), 1
    span = Span(file, line, col)
    hint = None
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            return SpecError("unexpected end of file (a block or statement is incomplete)",
                             Span(file, max(1, len(source_lines(text.rstrip("\n")))), 1), text)
        if tok.type == "_DEDENT" or tok.type == "_INDENT":
            what = "unexpected indentation" if tok.type == "_INDENT" else "block ended too early"
            return SpecError(f"{what}; expected {_expected_text(exc.expected)}", span, text)
        shown = str(tok).strip() or tok.type
        lines = source_lines(text)
        this = lines[line - 1] if 0 < line <= len(lines) else ""
        first = this.split()[0] if this.split() else ""
        block_words = ("template", "prompt", "answer", "sample")
        close_block = difflib.get_close_matches(first, block_words, n=1, cutoff=0.6)
        if this[:1] in (" ", "\t") and first.isidentifier() and first not in keywords() and close_block \
                and col > this.index(first) + 1:
            start = this.index(first) + 1
            return SpecError(f"unknown line {first!r} in a prompts block", Span(file, line, start, line,
                             start + len(first)), text, f"did you mean {close_block[0]!r}?")
        prev = [ln for ln in lines[: line - 1] if ln.strip() and not ln.strip().startswith("#")]
        if prev and prev[-1].rstrip().endswith(":") and ("_INDENT" in exc.expected or "_NL" in exc.expected):
            return SpecError(f"expected an indented block after {prev[-1].strip()!r}", span, text,
                             "indent the lines of a prompts block")
        if tok.type == "_NL":
            msg = f"line ended early; expected {_expected_text(exc.expected)}"
        else:
            msg = f"unexpected {shown!r}; expected {_expected_text(exc.expected)}"
        words = _literal_expected(parser, exc.expected)
        src_line = lines[line - 1] if 0 < line <= len(lines) else ""
        m = re.match(r"[A-Za-z_]+", src_line[col - 1:])
        written = m.group(0) if m else str(tok)
        close = difflib.get_close_matches(written, words or keywords(), n=1, cutoff=0.6)
        if close and close[0] != written:
            hint = f"did you mean {close[0]!r}?"
        end_col = getattr(tok, "end_column", None)
        span = Span(file, line, col, tok.end_line, end_col)
        return SpecError(msg, span, text, hint)
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        ch = text[at] if at < len(text) else "?"
        msg = f"unexpected character {ch!r}"
        if ch == '"':
            msg = "unterminated string (strings must close on the same line)"
        allowed = _expected_text(exc.allowed) if exc.allowed else ""
        if allowed:
            msg += f"; expected {allowed}"
        return SpecError(msg, span, text)
    if isinstance(exc, UnexpectedEOF):
        return SpecError("unexpected end of file", span, text)
    return SpecError(str(exc).splitlines()[0], span, text)


def _assemble(statements: list[tuple[str, Any]], file: str, text: str) -> A.Spec:
    """Statements -> Spec. Every declaration is made once: a second one is an error that names
    the first."""
    spec = A.Spec(file=file, source=text)
    errors: list[SpecError] = []
    seen: dict[tuple[str, str], A.Loc | None] = {}

    def once(what: str, name: str, loc: A.Loc | None) -> bool:
        if (what, name) in seen:
            first = seen[(what, name)]
            where = f" (first at {file}:{first.line}:{first.column})" if first else ""
            errors.append(SpecError(f"{what} {name!r} is declared twice{where}".replace(" '' ", " "),
                                    _span(file, loc), text))
            return False
        seen[(what, name)] = loc
        return True

    for kind, payload in statements:
        if kind == "model" and once("model", "", payload[1]):
            spec.model, spec.model_loc = payload
        elif kind == "method" and once("method", "", payload[1]):
            spec.method, spec.method_loc = payload
        elif kind == "option" and once("option", payload.name, payload.loc):
            spec.options[payload.name] = payload
        elif kind == "pool" and once("pool", payload.name, payload.loc):
            spec.pools[payload.name] = payload
        elif kind == "prompts" and once("prompt set", payload.name, payload.loc):
            spec.prompt_sets[payload.name] = payload
        elif kind == "circuit" and once("circuit", payload.name, payload.loc):
            spec.circuits[payload.name] = payload
        elif kind == "claim" and once("claim", payload.name, payload.loc):
            spec.claims.append(payload)
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return spec


def _span(file: str, loc: A.Loc | None) -> Span | None:
    if loc is None:
        return None
    return Span(file, loc.line, loc.column, loc.end_line, loc.end_column)


def _indentation_problem(text: str, file: str) -> SpecError | None:
    """The first line whose indentation the block structure cannot take: tabs mixed with
    spaces, or a dedent to a depth no enclosing block has."""
    stack = [0]
    for number, line in enumerate(source_lines(text), 1):
        body = line.lstrip(" \t")
        if not body or body.startswith("#"):
            continue
        lead = line[: len(line) - len(body)]
        if " " in lead and "\t" in lead:
            return SpecError("indentation mixes tabs and spaces", Span(file, number, 1, number, len(lead) + 1),
                             text, "indent with spaces only")
        depth = len(lead.expandtabs(_SadIndenter.tab_len))
        if depth > stack[-1]:
            stack.append(depth)
            continue
        while depth < stack[-1]:
            stack.pop()
        if depth != stack[-1]:
            return SpecError(f"this line is indented by {depth}, which matches no enclosing block "
                             f"(those are at {', '.join(map(str, stack))})", Span(file, number, 1), text)
    return None


def read_spec_text(path: str | Path) -> str:
    """The text of a spec file as stored (UTF-8, a BOM kept). Only regular files are read: a
    directory, FIFO or device is refused before anything blocks on it. Errors are SpecErrors."""
    p = Path(path)
    if p.exists() and not p.is_file():
        what = "a directory" if p.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise SpecError(f"cannot read spec file {str(p)!r}: it is {what}")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {str(p)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(p)!r}: {exc.strerror or exc}") from None
    return text


def read_stdin_text(stream: IO[str]) -> str:
    """A spec from standard input, held to the same rule as files: its bytes must be UTF-8 (a BOM
    is dropped), else a SpecError naming the byte. A text stream without bytes is taken as is."""
    data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise SpecError(f"standard input is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_file(path: str | Path, *, rules: Mapping[str, Builder]) -> A.Spec:
    """Read and parse a spec file (UTF-8, an optional BOM)."""
    text = read_spec_text(path)
    return parse_spec(text.removeprefix("\ufeff"), str(path), rules=rules)   # a BOM, as Windows editors write it
