"""The one way a spec's model is loaded: by the CLI, the executor, the pytest plugin and
`prompts_from`."""

from __future__ import annotations

from sadlang.lang import ast as A
from sadlang.models import LoadedModel, load_model
from sadlang.plan.validate import Validated, validate


def load_spec_model(spec: A.Spec, model_override: str | None = None, device_override: str | None = None,
                    lenient: bool = False, checked: Validated | None = None) -> LoadedModel:
    """The spec's model (or `model_override`) on the spec's `option device` (or
    `device_override`), in its `option dtype`. The spec is validated first (unless `checked` is its validation), so a
    spec error never waits for a model load."""
    settings = (checked or validate(spec, lenient)).settings
    return load_model(model_override or spec.model, device_override or settings.device, dtype=settings.dtype)
