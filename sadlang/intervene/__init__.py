"""Signal interventions: remove or boost an edge's signal, locally or globally."""

from sadlang.intervene.edits import EdgeEdit, run_edits
from sadlang.intervene.signals import edge_signal

__all__ = ["EdgeEdit", "edge_signal", "run_edits"]
