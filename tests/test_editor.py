"""The editor tooling: diagnostics from the same code paths as `sadlang check`, hover,
completion and definitions on (possibly broken) documents, and the language server driven over
stdio by pygls' own client, as an editor would."""

import asyncio
import sys
from pathlib import Path

from sadlang.editor import assist
from sadlang.editor.diagnostics import check_text

ROOT = Path(__file__).resolve().parents[1]
PLANTED = (ROOT / "specs" / "planted.sad").read_text()


def test_shipped_specs_have_no_diagnostics():
    for path in sorted((ROOT / "specs").glob("*.sad")):
        assert check_text(path.read_text(), str(path), models=False) == [], path


def test_syntax_and_semantic_errors_have_exact_ranges():
    good = next(line for line in PLANTED.split("\n") if line.startswith("claim copies:"))
    broken = PLANTED.replace(good, good.replace("> 1", ">> 1"))
    (p,) = check_text(broken)
    line = broken.split("\n").index(good.replace("> 1", ">> 1")) + 1
    assert (p.line, p.column) == (line, good.index("> 1") + 2) and p.severity == "error"   # the second ">"
    undefined = PLANTED.replace("logit_diff > 1 on copy", "logit_diff > 1 on copyy")
    (p,) = check_text(undefined)
    assert "copyy" in p.message and "did you mean 'copy'" in p.message
    assert undefined.split("\n")[p.line - 1].startswith("claim copies:")


def test_head_ranges_are_checked_from_the_models_config_without_weights():
    text = PLANTED.replace("ablate head 1.0 at end", "ablate head 7.0 at end")
    problems = check_text(text)
    assert any("layer 7 is out of range: planted has layers 0..1" in p.message for p in problems)
    assert check_text(text, models=False) == []


def test_hover_explains_claims_options_statements_and_roles():
    lines = PLANTED.split("\n")
    n = next(i for i, line in enumerate(lines) if line.startswith("claim faithful:"))
    text = assist.hover(PLANTED, n, lines[n].index("faithful >=") + 2)
    assert text and "circuit_test" in text and "faithful" in text
    opt = "option ablation = mean\n" + PLANTED
    assert "how circuit claims ablate" in assist.hover(opt, 0, 9)
    assert "prompt set" in assist.hover(PLANTED, lines.index("prompts marker:"), 2)
    k = next(i for i, line in enumerate(lines) if line.startswith("claim duplicate:"))
    role = assist.hover(PLANTED, k, lines[k].index("A#2") + 1)
    assert role and "occurrence 2 of slot A" in role and "[ Mary]" in role


def test_completion_offers_what_fits_the_place():
    labels = lambda items: {c.label for c in items}  # noqa: E731
    text = PLANTED + "claim new: circuit "
    last = len(text.split("\n")) - 1
    assert labels(assist.complete(text, last, len(text.split("\n")[-1]))) == {"planted_copy", "key_only_copy",
                                                                             "half_copy"}
    text = PLANTED + "claim new: logit_diff > 0 on "
    assert {"marker", "copy", "plain"} <= labels(assist.complete(text, last, len(text.split("\n")[-1])))
    text = PLANTED + "option "
    assert {"ablation", "metric", "seed"} <= labels(assist.complete(text, last, 7))
    text = PLANTED + "claim new: head "
    heads = labels(assist.complete(text, last, len(text.split("\n")[-1])))
    assert heads == {f"{layer}.{h}" for layer in range(2) for h in range(4)}
    assert {"claim", "prompts"} <= labels(assist.complete(PLANTED + "\n", last + 1, 0))


def test_definition_finds_pools_prompt_sets_and_circuits():
    lines = PLANTED.split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("claim faithful:"))
    line, start, end = assist.definition(PLANTED, k, lines[k].index("planted_copy") + 1)
    assert lines[line].startswith("circuit planted_copy") and lines[line][start:end] == "planted_copy"
    line, _, _ = assist.definition(PLANTED, k, lines[k].rindex("copy") + 1)
    assert lines[line] == "prompts copy:"


def test_the_server_over_stdio():
    """Open a broken spec: one diagnostic at the error; fix it: none; hover; complete; define."""
    from lsprotocol import types as T
    from pygls.lsp.client import LanguageClient

    async def session() -> None:
        client = LanguageClient("sadlang-test", "1")
        published: list[T.PublishDiagnosticsParams] = []
        got = asyncio.Event()

        @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
            published.append(params)
            got.set()

        await client.start_io(sys.executable, "-m", "sadlang.cli", "lsp")
        try:
            await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities(),
                                                             root_uri=ROOT.as_uri()))
            client.initialized(T.InitializedParams())
            uri = (ROOT / "specs" / "scratch.sad").as_uri()
            broken = "model planted\nclaim a: logit_diff >> 0\n"
            client.text_document_did_open(T.DidOpenTextDocumentParams(
                T.TextDocumentItem(uri=uri, language_id="sad", version=1, text=broken)))
            await asyncio.wait_for(got.wait(), 60)
            (d,) = published[-1].diagnostics
            assert (d.range.start.line, d.range.start.character) == (1, 21)       # the second ">"
            assert d.severity == T.DiagnosticSeverity.Error
            got.clear()
            client.text_document_did_change(T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=uri, version=2),
                [T.TextDocumentContentChangeWholeDocument(text=PLANTED)]))
            await asyncio.wait_for(got.wait(), 60)
            assert list(published[-1].diagnostics) == []
            lines = PLANTED.split("\n")
            k = next(i for i, line in enumerate(lines) if line.startswith("claim faithful:"))
            hover = await client.text_document_hover_async(T.HoverParams(
                T.TextDocumentIdentifier(uri), T.Position(k, lines[k].index("faithful >="))))
            assert hover is not None and "circuit_test" in hover.contents.value
            done = await client.text_document_completion_async(T.CompletionParams(
                T.TextDocumentIdentifier(uri), T.Position(0, 0)))
            assert "claim" in {i.label for i in done.items}
            where = await client.text_document_definition_async(T.DefinitionParams(
                T.TextDocumentIdentifier(uri), T.Position(k, lines[k].index("planted_copy") + 1)))
            assert lines[where.range.start.line].startswith("circuit planted_copy")
        finally:
            try:
                await asyncio.wait_for(client.shutdown_async(None), 10)
                client.exit(None)
            finally:
                await asyncio.wait_for(client.stop(), 10)

    asyncio.run(session())
