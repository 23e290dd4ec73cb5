"""The .sad language: grammar, typed AST, parser."""

from sadlang.lang.parser import parse_file, parse_spec

__all__ = ["parse_file", "parse_spec"]
