"""sadlang: circuit hypotheses about transformer language models, checked like unit tests.

The engine implements sparse attention decomposition (SAD 2024, ACC 2025, ACC++ 2026):
every attention decision is split exactly into per-singular-direction terms of the head's
QK form, and the residual stream into upstream components, giving a prompt-specific
communication graph from one forward pass.

From Python (and notebooks):

    import sadlang
    report = sadlang.check("specs/ioi.sad", model=my_hf_model)
    report.verdicts

`%load_ext sadlang` adds the `%%sad` cell magic. Names are imported on first use, so
`import sadlang` stays cheap (no torch).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from sadlang.errors import SadError

if TYPE_CHECKING:
    from sadlang.api import Report, check
    from sadlang.language import parse_file, parse_spec
    from sadlang.models.loader import load_model

# public name -> the module that defines it
_LAZY = {"check": "sadlang.api", "Report": "sadlang.api", "parse_spec": "sadlang.language",
         "parse_file": "sadlang.language", "load_model": "sadlang.models.loader"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sadlang' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext sadlang`: register the `%%sad` cell magic."""
    from sadlang.notebook import register

    register(ipython)


__all__ = ["Report", "SadError", "__version__", "check", "load_ipython_extension", "load_model", "parse_file",
           "parse_spec"]
