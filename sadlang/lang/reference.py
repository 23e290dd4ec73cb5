"""What each statement and block line means: the source of the two declaration tables of
docs/language.md (scripts/gen_docs.py writes them) and of the editor's hover text."""

from __future__ import annotations

# (keyword, form, meaning)
STATEMENTS: list[tuple[str, str, str]] = [
    ("model", "`model NAME` / `model \"path\"`",
     "the model: `smollm2-135m` (bundled, default), `tiny-<family>[:seed]` (one per model family, "
     "e.g. `tiny-gpt2`, `tiny-llama`; see *Model families*), `planted`, a Hugging Face hub name, or a local "
     "directory"),
    ("method", "`method sad\\|acc\\|accpp`", "how attention decisions are explained (default `acc`); see *Methods*"),
    ("option", "`option NAME = VALUE`", "see *Options*"),
    ("pool", "`pool NAME = \"v1\" \"v2\" ...`",
     "values a slot can take; include the leading space a word has in running text (`\" Mary\"`)"),
    ("pool", "`pool NAME = \"k1\": \"v1\", \"k2\": \"v2\", ...`",
     "a paired pool: each draw is a pair that fills two slots together (`country, capital from NAME`), "
     "so a country goes with its capital in templates, answers, resamples and search"),
    ("prompts", "`prompts NAME:` + indented lines", "a prompt set"),
    ("prompts", "`prompts NAME from SET:` + one `resample`/`swap` line",
     "a counterfactual set aligned with SET (below)"),
    ("circuit", "`circuit NAME:` + indented nodes and edges", "a declared circuit (below)"),
    ("circuit", "`circuit NAME = trace of SET [at frequency F] [top K edges]`",
     "a circuit cut from SET's traces (below)"),
    ("circuit", "`circuit NAME = discover METHOD of SET from TWINS top K edges|nodes`",
     "a heads-and-MLPs circuit ranked by EAP, EAP-IG or activation patching (below)"),
    ("claim", "`claim NAME: ... [on SET] [quantifier]`",
     "a claim checked against the model; the kinds are listed under *Claim kinds*"),
]

PROMPT_LINES: list[tuple[str, str, str]] = [
    ("template", "`template \"When{IO} and{S} went...\"`",
     "a template; `{SLOT}` is replaced by a pool value. Several templates may be given; each sampled "
     "prompt picks one"),
    ("from", "`IO, S from names [distinct]`",
     "these slots take values from pool `names`; `distinct` makes them differ within a prompt. From a "
     "paired pool, two slots take one pair: `country, capital from capitals`"),
    ("answer", "`answer \"{IO}\" against \"{S}\"`",
     "the answer token and the competing token: the logit direction W_U[answer] − W_U[against] for "
     "tracing and the `logit_diff` metric. Both must be single tokens"),
    ("sample", "`sample N [up to M] [seed K]`", "draw N prompts deterministically (default 16, seed 0); with "
     "`up to M`, draw N, 2N, 4N, ... M until every claim on the set is decided (see *Verdicts*)"),
    ("prompt", "`prompt \"literal text\" [answer \"...\" [against \"...\"]]`",
     "an explicit prompt (no slots), with its own answer or the set's"),
    ("resample", "`resample A, B [from POOL] [seed K]`",
     "(counterfactual sets) other pool values for these slots, same template and positions"),
    ("swap", "`swap A B`", "(counterfactual sets) the two slots exchange values"),
    ("edge", "`edge H -> H2 [via query\\|key\\|value]` / `edge H -> logits`",
     "(circuits) a path of an edge-level circuit"),
]


def table(rows: list[tuple[str, str, str]], header: str) -> str:
    lines = [f"| {header} | meaning |", "| --- | --- |"]
    lines += [f"| {form} | {meaning} |" for _, form, meaning in rows]
    return "\n".join(lines)


def statements_table() -> str:
    return table(STATEMENTS, "statement")


def prompt_lines_table() -> str:
    return table(PROMPT_LINES, "line")


def meaning(word: str) -> list[tuple[str, str]]:
    """(form, meaning) of every statement or block line that starts with `word`."""
    return [(form, text) for key, form, text in STATEMENTS + PROMPT_LINES if key == word]
