"""The editor tooling: diagnostics from the same code paths as `sadlang check`, hover,
completion and definitions on (possibly broken) documents, and the language server driven over
stdio by pygls' own client, as an editor would."""

import asyncio
import sys
from pathlib import Path

import pytest

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
    pool = next(i for i, line in enumerate(lines) if line.startswith("pool names"))
    assert "6 strings: ' Mary', ' John'" in assist.hover(PLANTED, pool, 6)
    k = next(i for i, line in enumerate(lines) if line.startswith("claim duplicate:"))
    role = assist.hover(PLANTED, k, lines[k].index("A#2") + 1)
    assert role and "occurrence 2 of slot A" in role and "[ Mary]" in role


def test_completion_offers_what_fits_the_place():
    labels = lambda items: {c.label for c in items}  # noqa: E731
    text = PLANTED + "claim new: circuit "
    last = len(text.split("\n")) - 1
    # the grammar allows a declared circuit's name, or a traced-circuit claim's next word
    assert labels(assist.complete(text, last, len(text.split("\n")[-1]))) == {
        "planted_copy", "key_only_copy", "half_copy", "of", "at", "contains", "excludes", "matches"}
    text = PLANTED + "claim new: logit_diff > 0 on "
    assert {"marker", "copy", "plain"} <= labels(assist.complete(text, last, len(text.split("\n")[-1])))
    text = PLANTED + "option "
    assert {"ablation", "metric", "seed"} <= labels(assist.complete(text, last, 7))
    text = PLANTED + "claim new: head "
    heads = labels(assist.complete(text, last, len(text.split("\n")[-1])))
    assert heads == {f"{layer}.{h}" for layer in range(2) for h in range(4)}
    assert {"claim", "prompts"} <= labels(assist.complete(PLANTED + "\n", last + 1, 0))


def test_hover_on_a_head_says_where_it_sits_in_the_model():
    lines = PLANTED.split("\n")
    n = next(i for i, line in enumerate(lines) if line.startswith("claim reads_marker"))
    text = assist.hover(PLANTED, n, lines[n].index("1.0") + 1)
    assert text.startswith("**head 1.0**: layer 1 of 2, head 0 of 4 (planted)")
    bad = PLANTED.replace("claim reads_marker: head 1.0", "claim reads_marker: head 7.0")
    assert "out of range: planted has layers 0..1" in assist.hover(bad, n, lines[n].index("1.0") + 1)


@pytest.mark.parametrize(("typed", "expected"), [
    ("claim new: head 1.0 ", {"attends", "fires", "sinks"}),
    ("claim new: head 1.0 att", {"attends", "fires", "sinks"}),             # the word being typed
    ("claim new: head 1.0 attends ", {"at", "end", "bos", "A", "B"}),
    ("claim new: circuit planted_copy is ", {"faithful", "necessary", "complete", "minimal", "at"}),
    ("claim new: head 1.0 attends end -> A with weight ", {">=", "<=", ">", "<", "=="}),
])
def test_completion_follows_the_grammar_position(typed, expected):
    """What may follow is read off the LALR parser's state at the cursor, not a list of all
    83 keywords."""
    text = PLANTED + typed
    line = len(text.split("\n")) - 1
    assert {c.label for c in assist.complete(text, line, len(typed))} == expected


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


def _frame(obj) -> bytes:
    import json

    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_the_server_answers_every_request_of_a_hostile_stream():
    """Bad and missing headers, a body too large to read, a body that is not JSON, params of the
    wrong type and positions past the protocol's integers: each request still gets its answer
    (a result, or the JSON-RPC error the protocol defines), and the valid ones after them work."""
    import json
    import subprocess

    uri = (ROOT / "specs" / "scratch.sad").as_uri()
    text = "model planted\nclaim a: logit_diff > 0\n"
    stream = b"".join([
        _frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
        _frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        _frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "sad", "version": 1, "text": text}}}),
        b"Garbage-Header: yes\r\n\r\n",                                   # no Content-Length
        b"Content-Length: 99999999999\r\n\r\n",                          # never read
        b"Content-Length: 9\r\n\r\n{not json",                          # parse error
        _frame({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover",
                "params": {"textDocument": {"uri": uri}, "position": {"line": "one", "character": 0}}}),
        _frame({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover",
                "params": {"textDocument": {"uri": uri}, "position": {"line": 2**40, "character": 2**40}}}),
        _frame({"jsonrpc": "2.0", "id": 4, "method": "textDocument/completion",
                "params": {"textDocument": {"uri": uri}, "position": {"line": 99, "character": 0}}}),
        _frame({"jsonrpc": "2.0", "id": 5, "method": "textDocument/hover",
                "params": {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 10}}}),
        _frame({"jsonrpc": "2.0", "id": 6, "method": "shutdown"}),
        _frame({"jsonrpc": "2.0", "method": "exit"}),
    ])
    r = subprocess.run([sys.executable, "-m", "sadlang.cli", "lsp"], input=stream, capture_output=True,
                       timeout=120)
    answers: dict = {}
    out = r.stdout
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        n = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
        msg = json.loads(rest[:n])
        out = rest[n:]
        if "id" in msg and "method" not in msg:
            answers[msg["id"]] = msg
    assert set(answers) >= {None, 1, 2, 3, 4, 5, 6}, answers.keys()
    assert answers[None]["error"]["code"] == -32700
    assert answers[2]["error"]["code"] == -32602               # a string where a uinteger goes
    assert answers[3]["error"]["code"] == -32602               # past the protocol's uinteger range
    assert answers[4]["result"]["items"] == []
    assert "behaviour" in json.dumps(answers[5]["result"])
    assert b"Traceback" not in r.stderr


def test_a_burst_of_edits_is_checked_once_at_its_last_text():
    import json
    import subprocess

    uri = (ROOT / "specs" / "burst.sad").as_uri()
    big = 'model planted\nprompts p:\n  prompt "a b x" answer " y" against " x"\n' + "".join(
        f"claim c{i}: logit_diff > 0\n" for i in range(2000))
    stream = [_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
              _frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
              _frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
                  "uri": uri, "languageId": "sad", "version": 1, "text": big}}})]
    for v in range(2, 22):
        stream.append(_frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": v},
            "contentChanges": [{"text": big + ("claim bad: logit_diff >> 0\n" if v == 21 else "")}]}}))
    stream += [_frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
               _frame({"jsonrpc": "2.0", "method": "exit"})]
    r = subprocess.run([sys.executable, "-m", "sadlang.cli", "lsp"], input=b"".join(stream), capture_output=True,
                       timeout=300)
    published = [m for m in (json.loads(chunk[chunk.index(b"{"):]) for chunk in r.stdout.split(b"Content-Length")
                             if b"{" in chunk) if m.get("method") == "textDocument/publishDiagnostics"]
    assert [p["params"]["version"] for p in published] == [21]
    assert len(published[0]["params"]["diagnostics"]) == 1
