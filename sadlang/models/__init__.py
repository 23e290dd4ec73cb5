"""Model layer: model references -> folded TransformerLens bridges."""

from sadlang.models.info import ModelInfo
from sadlang.models.loader import LoadedModel, availability, known_models, load_model
from sadlang.models.weights import ModelWeights

__all__ = ["LoadedModel", "ModelInfo", "ModelWeights", "availability", "known_models",
           "load_model"]
