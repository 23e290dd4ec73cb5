"""Editor tooling for .sad files: diagnostics, hover, completion and definitions as pure
functions over a document's text (`assist`, `diagnostics`), served over LSP by `server`."""
