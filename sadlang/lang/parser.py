"""Parse .sad text into a typed `Spec`. Syntax errors become `SpecError` with file:line:col."""

from __future__ import annotations

import ast as pyast
import difflib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, v_args
from lark.exceptions import UnexpectedEOF, VisitError
from lark.indenter import Indenter

from sadlang.errors import Span, SpecError
from sadlang.lang import ast as A

KEYWORDS = ["model", "method", "option", "pool", "prompts", "template", "prompt", "from",
            "distinct", "answer", "against", "sample", "seed", "claim", "head", "attends",
            "fires", "with", "weight", "edge", "no", "via", "query", "key", "at", "signal",
            "rank", "stable", "is", "data", "control", "logit_diff", "accuracy", "mean",
            "circuit", "of", "frequency", "contains", "excludes", "matches", "precision",
            "recall", "f1", "ablate", "boost", "local", "global", "lowers", "raises",
            "attention", "by", "and", "beats", "random", "sinks", "to", "shared", "in", "all",
            "prompts", "most", "forall", "up", "on", "mlp", "bias", "embed", "offset"]

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
    OPEN_PAREN_types: list[str] = []
    CLOSE_PAREN_types: list[str] = []
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


def grammar_text() -> str:
    return resources.files("sadlang").joinpath("grammar/sad.lark").read_text()


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", postlex=_SadIndenter(), propagate_positions=True,
                maybe_placeholders=False)


def _loc(meta_or_tok) -> A.Loc | None:
    try:
        return A.Loc(line=meta_or_tok.line, column=meta_or_tok.column,
                     end_line=meta_or_tok.end_line, end_column=meta_or_tok.end_column)
    except AttributeError:
        return None


def unquote(tok: str) -> str:
    return pyast.literal_eval(tok)


def _num(tok) -> float:
    return float(tok)


def _bound(cmp: Token, value) -> A.Bound:
    return A.Bound(cmp=str(cmp), value=float(value), loc=_loc(cmp))


class _Semantic(Exception):
    """Raised inside the transformer; carries the offending token for its position."""

    def __init__(self, message: str, token):
        super().__init__(message)
        self.token = token


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> pydantic nodes. Statements come back as (kind, payload) pairs."""

    def __init__(self, file: str, source: str):
        super().__init__()
        self.file = file
        self.source = source

    # --- leaves
    def number(self, meta, ch):
        return float(ch[0])

    def head_ref(self, meta, ch):
        a, b = str(ch[0]).split(".")
        return A.HeadRef(layer=None if a == "*" else int(a), head=None if b == "*" else int(b),
                         loc=_loc(ch[0]))

    def comp_head(self, meta, ch):
        h = self.head_ref(meta, ch)
        return A.CompRef(kind="head", head=h, loc=h.loc)

    def comp_mlp(self, meta, ch):
        return A.CompRef(kind="mlp", layer=int(ch[0]), loc=_loc(meta))

    def comp_bias(self, meta, ch):
        return A.CompRef(kind="bias", layer=int(ch[0]), loc=_loc(meta))

    def comp_embed(self, meta, ch):
        return A.CompRef(kind="embed", loc=_loc(meta))

    def comp_offset(self, meta, ch):
        return A.CompRef(kind="offset", loc=_loc(meta))

    def comp_list(self, meta, ch):
        return list(ch)

    def head_list(self, meta, ch):
        return list(ch)

    def pos_role(self, meta, ch):
        role, occ, shift = str(ch[0]), 1, 0
        for t in ch[1:]:
            if t.type == "ORDINAL":
                occ = int(t[1:])
            elif t.type == "SHIFT":
                shift = int(t)
        return A.Pos(role=role, occurrence=occ, shift=shift, loc=_loc(meta))

    def pos_word(self, meta, ch):
        return A.Pos(word=unquote(ch[0]), loc=_loc(meta))

    def firing_at(self, meta, ch):
        return A.FiringAt(dest=ch[0], src=ch[1], loc=_loc(meta))

    def via(self, meta, ch):
        return ("via", str(ch[0]))

    def weight_bound(self, meta, ch):
        return _bound(ch[0], ch[1])

    def bound(self, meta, ch):
        return (str(ch[0]), _bound(ch[1], ch[2]))

    # --- quantifiers
    def q_all(self, meta, ch):
        return A.Quantifier(kind="all", loc=_loc(meta))

    def _share(self, value) -> float:
        if isinstance(value, Token) and value.type == "PERCENT":
            return float(value[:-1]) / 100.0
        v = float(value)
        return v / 100.0 if v > 1 else v

    def q_share(self, meta, ch):
        return A.Quantifier(kind="at_least" if str(ch[0]) in (">=", ">") else "at_most",
                            cmp=str(ch[0]), share=self._share(ch[1]), loc=_loc(meta))

    def q_at_most(self, meta, ch):
        return A.Quantifier(kind="at_most", cmp="<=", share=self._share(ch[0]), loc=_loc(meta))

    def q_forall(self, meta, ch):
        limit = int(ch[0]) if ch else 100
        return A.Quantifier(kind="forall", limit=limit, loc=_loc(meta))

    def on_clause(self, meta, ch):
        return ("on", str(ch[0]))

    # --- claim bodies
    def _edge_parts(self, ch):
        side, at = None, None
        rest = []
        for c in ch:
            if isinstance(c, tuple) and c[0] == "via":
                side = c[1]
            elif isinstance(c, A.FiringAt):
                at = c
            else:
                rest.append(c)
        return side, at, rest

    def attends(self, meta, ch):
        head, verb, d, s = ch[0], ch[1], ch[2], ch[3]
        weight = ch[4] if len(ch) > 4 else None
        return A.Attends(head=head, fires=str(verb) == "fires",
                         at=A.FiringAt(dest=d, src=s, loc=d.loc), weight=weight, loc=_loc(meta))

    def edge_claim(self, meta, ch, negated=False):
        side, at, rest = self._edge_parts(ch)
        return A.EdgeClaim(negated=negated, upstream=rest[0], downstream=rest[1], side=side, at=at,
                           loc=_loc(meta))

    def no_edge_claim(self, meta, ch):
        return self.edge_claim(meta, ch, negated=True)

    def rank_prop(self, meta, ch):
        return ("rank", _bound(ch[0], ch[1]))

    def stable_prop(self, meta, ch):
        return ("stable", _bound(ch[0], ch[1]))

    def class_prop(self, meta, ch):
        return ("class", str(ch[0]))

    def signal_claim(self, meta, ch):
        side, at, rest = self._edge_parts(ch)
        prop, value = rest[2]
        return A.SignalClaim(upstream=rest[0], downstream=rest[1], side=side, at=at, prop=prop,
                             bound=value if prop != "class" else None,
                             signal_class=value if prop == "class" else None, loc=_loc(meta))

    def behaviour(self, meta, ch):
        mean = isinstance(ch[0], Token) and ch[0].type == "MEAN"
        rest = ch[1:] if mean else ch
        if str(rest[0]) != "logit_diff":
            raise _Semantic(f"behaviour claims bound logit_diff or accuracy, not {rest[0]}", rest[0])
        rest = rest[1:]
        return A.Behaviour(metric="logit_diff", mean=mean, bound=_bound(rest[0], rest[1]), loc=_loc(meta))

    def accuracy(self, meta, ch):
        return A.Behaviour(metric="accuracy", mean=True, bound=_bound(ch[0], ch[1]), loc=_loc(meta))

    def contains(self, meta, ch):
        return ("contains", ch[0], {})

    def excludes(self, meta, ch):
        return ("excludes", ch[0], {})

    def matches(self, meta, ch):
        return ("matches", ch[0], dict(ch[1:]))

    def circuit_claim(self, meta, ch):
        pset, freq = None, 0.0
        for c in ch[:-1]:
            if isinstance(c, Token):
                pset = str(c)
            else:
                freq = float(c)
        op, comps, bounds = ch[-1]
        return A.CircuitClaim(prompt_set=pset, frequency=freq, op=op, components=comps,
                              bounds=bounds, loc=_loc(meta))

    def factor(self, meta, ch):
        return ("factor", float(ch[0]))

    def effect(self, meta, ch):
        amount = ch[3]
        relative = isinstance(amount, Token) and amount.type == "PERCENT"
        value = float(amount[:-1]) / 100.0 if relative else float(amount)
        return ("effect", str(ch[0]), str(ch[1]), A.Bound(cmp=str(ch[2]), value=value, loc=_loc(ch[2])), relative)

    def beats(self, meta, ch):
        if len(ch) == 2:
            return ("beats", _bound(ch[0], ch[1]))
        return ("beats", A.Bound(cmp=">=", value=float(ch[0]), loc=_loc(meta)))

    def ablate_claim(self, meta, ch):
        side, at, rest = self._edge_parts(ch[1:])
        kw: dict = {}
        comps = []
        for c in rest:
            if isinstance(c, Token) and c.type == "MODE":
                kw["mode"] = str(c)
            elif isinstance(c, tuple) and c[0] == "factor":
                kw["factor"] = c[1]
            elif isinstance(c, tuple) and c[0] == "effect":
                kw.update(direction=c[1], metric=c[2], amount=c[3], relative=c[4])
            elif isinstance(c, tuple) and c[0] == "beats":
                kw["beats_random"] = c[1]
            else:
                comps.append(c)
        return A.AblateClaim(action=str(ch[0]), upstream=comps[0], downstream=comps[1], side=side,
                             at=at, loc=_loc(meta), **kw)

    def sink_claim(self, meta, ch):
        if len(ch) > 2 and str(ch[2]) != "control":
            raise _Semantic("a sink is caused `by control signal`", ch[2])
        return A.SinkClaim(head=ch[0], to=ch[1], by_control=len(ch) > 2, loc=_loc(meta))

    def shared_claim(self, meta, ch):
        if str(ch[0]) != "control":
            raise _Semantic("only control signals are shared: write `control signal of L.H ...`", ch[0])
        return A.SharedClaim(head=ch[1], others=ch[2], loc=_loc(meta))

    def control_ablate(self, meta, ch):
        action, cls, head, direction, metric, pos, cmp, amount = ch
        if str(action) != "ablate" or str(cls) != "control" or str(direction) != "lowers" or str(metric) != "attention":
            raise _Semantic("write `ablate control signal of L.H lowers attention to POS by >= X`", action)
        ch = [head, pos, cmp, amount]
        amount = ch[3]
        value = float(amount[:-1]) / 100.0 if isinstance(amount, Token) and amount.type == "PERCENT" else float(amount)
        return A.ControlAblate(head=ch[0], to=ch[1], amount=A.Bound(cmp=str(ch[2]), value=value),
                               loc=_loc(meta))

    # --- statements
    def claim_stmt(self, meta, ch):
        name = str(ch[0])
        body = ch[1]
        q = A.Quantifier()
        pset = None
        for c in ch[2:]:
            if isinstance(c, A.Quantifier):
                q = c
            elif isinstance(c, tuple) and c[0] == "on":
                pset = c[1]
        line = self.source.splitlines()[meta.line - 1].strip() if meta.line else ""
        return ("claim", A.Claim(name=name, body=body, quantifier=q, prompt_set=pset,
                                 source_line=line, loc=_loc(meta)))

    def model_stmt(self, meta, ch):
        t = ch[0]
        return ("model", (unquote(t) if t.type == "STRING" else str(t), _loc(t)))

    def method_stmt(self, meta, ch):
        return ("method", (str(ch[0]), _loc(ch[0])))

    def option_stmt(self, meta, ch):
        v = ch[1]
        if isinstance(v, Token):
            if v.type == "STRING":
                value = unquote(v)
            elif v.type == "PERCENT":
                value = float(v[:-1]) / 100.0
            else:
                value = str(v)
        else:
            value = float(v)
        return ("option", A.Option(name=str(ch[0]), value=value, loc=_loc(meta)))

    def pool_stmt(self, meta, ch):
        return ("pool", A.Pool(name=str(ch[0]), values=[unquote(t) for t in ch[1:]], loc=_loc(meta)))

    def template_item(self, meta, ch):
        return ("template", (unquote(ch[0]), _loc(ch[0])))

    def literal_item(self, meta, ch):
        vals = [unquote(t) for t in ch]
        return ("literal", A.LiteralPrompt(text=vals[0], answer=vals[1] if len(vals) > 1 else None,
                                           against=vals[2] if len(vals) > 2 else None, loc=_loc(meta)))

    def slot_item(self, meta, ch):
        names = [str(t) for t in ch if t.type == "NAME"]
        distinct = any(t.type == "DISTINCT" for t in ch)
        return ("slots", A.SlotGroup(slots=names[:-1], pool=names[-1], distinct=distinct, loc=_loc(meta)))

    def answer_item(self, meta, ch):
        return ("answer", (unquote(ch[0]), unquote(ch[1]) if len(ch) > 1 else None, _loc(meta)))

    def sample_item(self, meta, ch):
        return ("sample", (int(ch[0]), int(ch[1]) if len(ch) > 1 else 0))

    def prompts_stmt(self, meta, ch):
        d: dict = {"name": str(ch[0]), "loc": _loc(meta), "templates": [], "literals": [], "slots": []}
        for kind, payload in ch[1:]:
            if kind == "template":
                d["templates"].append(payload)
            elif kind == "literal":
                d["literals"].append(payload)
            elif kind == "slots":
                d["slots"].append(payload)
            elif kind == "answer":
                d["answer"], d["against"], d["answer_loc"] = payload
            elif kind == "sample":
                d["sample"], d["seed"] = payload
        return ("prompts", A.PromptSetDecl(**d))

    def start(self, meta, ch):
        return list(ch)


def _expected_text(expected) -> str:
    names = sorted({FRIENDLY.get(e, f"'{e.lower()}'" if e.isupper() and e.isalpha() else e)
                    for e in expected if not e.startswith("__ANON") or e == "__ANON_0"})
    names = [n if not n.startswith("'") else n for n in names]
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _literal_expected(parser: Lark, expected) -> list[str]:
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


def parse_spec(source: str, file: str = "<spec>") -> A.Spec:
    """Parse spec text. Raises SpecError (with span and caret) on any syntax problem."""
    text = source if source.endswith("\n") else source + "\n"
    parser = _parser()
    try:
        tree = parser.parse(text)
        statements = _ToAst(file, text).transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, parser, text, file) from None
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, _Semantic):
            tok = orig.token
            span = Span(file, getattr(tok, "line", 1), getattr(tok, "column", 1),
                        getattr(tok, "end_line", None), getattr(tok, "end_column", None))
            raise SpecError(str(orig), span, text) from None
        meta = getattr(exc.obj, "meta", None)
        span = Span(file, getattr(meta, "line", 1), getattr(meta, "column", 1)) if meta else None
        raise SpecError(f"malformed statement: {orig}", span, text) from None
    return _assemble(statements, file, text)


def _syntax_error(exc: UnexpectedInput, parser: Lark, text: str, file: str) -> SpecError:
    line, col = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    if line < 1:
        line, col = len(text.splitlines()), 1
    span = Span(file, line, col)
    hint = None
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            return SpecError("unexpected end of file (a block or statement is incomplete)",
                             Span(file, max(1, len(text.splitlines())), 1), text)
        if tok.type == "_DEDENT" or tok.type == "_INDENT":
            what = "unexpected indentation" if tok.type == "_INDENT" else "block ended too early"
            return SpecError(f"{what}; expected {_expected_text(exc.expected)}", span, text)
        shown = str(tok).strip() or tok.type
        prev = [ln for ln in text.splitlines()[: line - 1] if ln.strip() and not ln.strip().startswith("#")]
        if prev and prev[-1].rstrip().endswith(":") and ("_INDENT" in exc.expected or "_NL" in exc.expected):
            return SpecError(f"expected an indented block after {prev[-1].strip()!r}", span, text,
                             "indent the lines of a prompts block")
        if tok.type == "_NL":
            msg = f"line ended early; expected {_expected_text(exc.expected)}"
        else:
            msg = f"unexpected {shown!r}; expected {_expected_text(exc.expected)}"
        words = _literal_expected(parser, exc.expected)
        src_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        m = re.match(r"[A-Za-z_]+", src_line[col - 1:])
        written = m.group(0) if m else str(tok)
        close = difflib.get_close_matches(written, words or KEYWORDS, n=1, cutoff=0.6)
        if close and close[0] != written:
            hint = f"did you mean {close[0]!r}?"
        end_col = getattr(tok, "end_column", None)
        span = Span(file, line, col, tok.end_line, end_col)
        return SpecError(msg, span, text, hint)
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
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


def _assemble(statements, file: str, text: str) -> A.Spec:
    spec = A.Spec(file=file, source=text)
    for kind, payload in statements:
        if kind == "model":
            spec.model, spec.model_loc = payload
        elif kind == "method":
            spec.method, spec.method_loc = payload
        elif kind == "option":
            spec.options[payload.name] = payload
        elif kind == "pool":
            spec.pools[payload.name] = payload
        elif kind == "prompts":
            if payload.name in spec.prompt_sets:
                raise SpecError(f"prompt set {payload.name!r} is defined twice", _span(file, payload.loc), text)
            spec.prompt_sets[payload.name] = payload
        elif kind == "claim":
            if any(c.name == payload.name for c in spec.claims):
                raise SpecError(f"claim {payload.name!r} is defined twice", _span(file, payload.loc), text)
            spec.claims.append(payload)
    return spec


def _span(file: str, loc: A.Loc | None) -> Span | None:
    if loc is None:
        return None
    return Span(file, loc.line, loc.column, loc.end_line, loc.end_column)


def parse_file(path: str | Path) -> A.Spec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {str(p)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(p)!r}: {exc.strerror or exc}") from None
    return parse_spec(text, str(p))
