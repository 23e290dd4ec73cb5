"""sadlang: circuit hypotheses about transformer language models, checked like unit tests.

The engine implements sparse attention decomposition (SAD 2024, ACC 2025, ACC++ 2026):
every attention decision is split exactly into per-singular-direction terms of the head's
QK form, and the residual stream into upstream components, giving a prompt-specific
communication graph from one forward pass.
"""

__version__ = "0.1.0"

from sadlang.errors import SadError

__all__ = ["SadError", "__version__"]
