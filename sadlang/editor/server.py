"""`sadlang lsp`: a language server over stdio (pygls), wiring sadlang.editor's pure functions
to LSP: diagnostics on open/change/save, hover, completion, go to definition."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from sadlang import __version__
from sadlang.editor import assist
from sadlang.editor.diagnostics import check_text

KINDS = {"keyword": T.CompletionItemKind.Keyword, "option": T.CompletionItemKind.Property,
         "prompt_set": T.CompletionItemKind.Variable, "pool": T.CompletionItemKind.EnumMember,
         "circuit": T.CompletionItemKind.Class, "role": T.CompletionItemKind.Field,
         "head": T.CompletionItemKind.Value}


def _range(line: int, col: int, end_line: int, end_col: int) -> T.Range:
    """From sadlang's 1-based spans to LSP's 0-based positions."""
    return T.Range(T.Position(line - 1, col - 1), T.Position(end_line - 1, end_col - 1))


def _at(ls: LanguageServer, params: T.HoverParams | T.CompletionParams | T.DefinitionParams,
        ask: Callable[[str, int, int], Any], empty: Any = None) -> Any:
    """`ask(text, line, character)` on the document and position of a request; `empty` for a
    position outside the document (the protocol allows any uinteger)."""
    doc = ls.workspace.get_text_document(params.text_document.uri)
    lines = doc.source.split("\n")
    line, char = params.position.line, params.position.character
    if not (0 <= line < len(lines) and 0 <= char <= len(lines[line])):
        return empty
    return ask(doc.source, line, char)


def build() -> LanguageServer:
    server = LanguageServer("sadlang", __version__)

    def publish(ls: LanguageServer, uri: str) -> None:
        doc = ls.workspace.get_text_document(uri)
        found = check_text(doc.source, doc.path or uri)
        diagnostics = [T.Diagnostic(range=_range(p.line, p.column, p.end_line, p.end_column), message=p.message,
                                    severity=T.DiagnosticSeverity.Error if p.severity == "error"
                                    else T.DiagnosticSeverity.Warning, source="sadlang")
                       for p in found]
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics,
                                                                        version=doc.version))

    # Documents whose diagnostics are due. The stdio loop (editor/transport.py) publishes them once
    # no message is waiting: twenty edits typed in a burst cost one check of the last text, not
    # twenty checks of texts already superseded.
    pending: dict[str, None] = {}

    def flush() -> None:
        while pending:
            uri = next(iter(pending))
            del pending[uri]
            publish(server, uri)

    server.sad_flush = flush  # type: ignore[attr-defined]

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: T.DidOpenTextDocumentParams) -> None:
        pending[params.text_document.uri] = None

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: T.DidChangeTextDocumentParams) -> None:
        pending[params.text_document.uri] = None

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LanguageServer, params: T.DidSaveTextDocumentParams) -> None:
        pending[params.text_document.uri] = None

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls: LanguageServer, params: T.HoverParams) -> T.Hover | None:
        text = _at(ls, params, assist.hover)
        if text is None:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))

    @server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[" ", "."]))
    def completion(ls: LanguageServer, params: T.CompletionParams) -> T.CompletionList:
        items = _at(ls, params, assist.complete, [])
        return T.CompletionList(is_incomplete=False, items=[
            T.CompletionItem(label=c.label, kind=KINDS.get(c.kind), detail=c.detail or None) for c in items])

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: LanguageServer, params: T.DefinitionParams) -> T.Location | None:
        found = _at(ls, params, assist.definition)
        if found is None:
            return None
        line, start, end = found
        return T.Location(uri=params.text_document.uri,
                          range=T.Range(T.Position(line, start), T.Position(line, end)))

    return server


def main() -> int:
    import logging

    from sadlang.editor.transport import serve

    # one line per problem (sadlang.lsp), not pygls' tracebacks
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("pygls").setLevel(logging.CRITICAL)
    serve(build())
    return 0
