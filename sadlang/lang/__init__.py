"""The .sad language: grammar, typed AST, parser, formatter. Claim bodies are built by the claim
kinds above this layer; `sadlang.language` binds the two (parse_spec, parse_file, format_text)."""
