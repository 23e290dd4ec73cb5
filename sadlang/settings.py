"""The typed settings of a spec: every `option NAME = VALUE`, with its default, domain and
meaning. This model is the single source of the options table in docs/language.md (a test
compares the two) and of the option errors a spec can get.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from sadlang.circuits.ablations import ABLATIONS, names_text
from sadlang.circuits.task_metrics import METRICS
from sadlang.circuits.task_metrics import names_text as metric_names
from sadlang.errors import one_of
from sadlang.trace.options import TraceOptions

Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["fp32", "bf16", "fp16"]

# options whose values are the names of a registry
REGISTRIES: dict[str, dict[str, object]] = {"ablation": dict(ABLATIONS), "metric": dict(METRICS)}

# trace options are forwarded to TraceOptions; the rest steer checking
TRACE_FIELDS = ("threshold", "term_fraction", "edge_fraction", "accpp_scale", "ig_steps")


class Settings(BaseModel):
    """All options of a spec. Field descriptions are the docs' wording."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="fixed firing threshold in [0, 1] (default: the method's rule)")
    term_fraction: float = Field(
        default=1.0, gt=0.0, le=1.0,
        description="share of the (relative) score the kept terms must reach, in (0, 1]")
    edge_fraction: float = Field(
        default=0.7, gt=0.0, le=1.0,
        description="cumulative share of contributions the edges cover (sad, acc), in (0, 1]")
    accpp_scale: float = Field(
        default=2.5, gt=0.0,
        description="the constant of accpp's dynamic threshold min(1, c/(d+1)), > 0")
    ig_steps: int = Field(
        default=64, ge=2, le=4096,
        description="trapezoid intervals for accpp's integrated gradients, 2..4096")
    eap_ig_steps: int = Field(
        default=5, ge=2, le=256,
        description="interpolated inputs per prompt for `discover eap-ig` (each one forward and backward pass), "
                    "2..256")
    device: Device = Field(
        default="auto", description="auto, cpu or cuda (fp32, TF32 off)")
    dtype: Dtype = Field(
        default="fp32",
        description="weights and forward passes: fp32, or bf16/fp16 for large models (norms folded in fp32 first; "
                    "decompositions read fp32 copies and accumulate in fp32, so they sum to the half-precision "
                    "model's own activations only to its rounding: `sadlang exactness` measures the bound)")
    seed: int = Field(
        default=0, ge=0, description="seed of random controls and of the property search, >= 0")
    batch_size: int = Field(
        default=32, ge=1, le=4096, description="prompts per forward pass, 1..4096")
    random_draws: int = Field(
        default=3, ge=1, le=100, description="random subspaces averaged per control, 1..100")
    control_consistency: float = Field(
        default=0.8, ge=-1.0, le=1.0,
        description="minimum mean pairwise cosine of a control signal, in [-1, 1]")
    sink_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="minimum mean attention onto a sink, in [0, 1]")
    prototype_cut: float = Field(
        default=0.6, ge=0.0, le=2.0,
        description="cosine distance at which control prototypes are cut, in [0, 2]")
    confidence: float | None = Field(
        default=0.95, gt=0.5, lt=1.0,
        description="confidence of every verdict's interval, in (0.5, 1): held only when the interval clears "
                    "the bound, failed when it lies wholly on the wrong side, otherwise inconclusive; `none` "
                    "gives point verdicts")
    ablation: str = Field(
        default="mean", description=f"how circuit claims ablate a head: {names_text()} (the ablation-kinds table)")
    reference_size: int = Field(
        default=32, ge=2, le=100_000,
        description="prompts in the held-out reference draw that mean ablations average over, 2..100000")
    random_circuits: int = Field(
        default=20, ge=19, le=10_000,
        description="random circuits of the claimed size drawn by `beats random`, 19..10000 (19 or more "
                    "so that a permutation p-value can reach 0.05)")
    metric: str = Field(
        default="logit_diff",
        description=f"F of circuit claims, averaged over prompts: {metric_names()} (the task-metrics table)")
    counterfactual: str | None = Field(
        default=None, description="the counterfactual prompt set that resample ablations draw from")
    completeness_draws: int = Field(
        default=8, ge=1, le=1000,
        description="random node subsets K tried by `is complete` and `is minimal`, 1..1000")
    max_prompts: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="the most prompts a `sample N` line may draw (a guard against typos)")
    max_search: int = Field(
        default=1_000, ge=1, le=1_000_000,
        description="the most prompts `forall up to N` may search (drawn prompts share batched passes; "
                    "a failure is shrunk in shared passes too)")

    executor: Literal["local", "ray"] = Field(
        default="local", description="local (this process) or ray (prompt shards and claims on Ray actors; "
                                     "`sadlang check --ray` does the same)")
    actors: int | None = Field(
        default=None, ge=1, le=10_000,
        description="Ray actors, 1..10000 (default: fill the cluster, one per num_gpus GPUs or num_cpus CPUs)")
    num_cpus: float = Field(
        default=1.0, gt=0.0, le=1024.0,
        description="CPUs per Ray actor, in (0, 1024] (also its torch threads)")
    num_gpus: float = Field(
        default=0.0, ge=0.0, le=64.0, description="GPUs per Ray actor, in [0, 64] (1: one actor per GPU)")

    @field_validator("ablation", "metric")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        """An ablation kind or task metric must be in its registry."""
        names = list(REGISTRIES[str(info.field_name)])
        if value not in names:
            raise PydanticCustomError("literal_error", "Input should be " + one_of(names, quote=True))
        return value

    @field_validator("confidence", mode="before")
    @classmethod
    def _no_confidence(cls, value: Any) -> Any:
        return None if value == "none" else value

    def trace_options(self, method: str, signals: bool = False) -> TraceOptions:
        """The tracing options of `method` under these settings."""
        kw = {name: getattr(self, name) for name in TRACE_FIELDS}
        return TraceOptions(method=method, signals=signals, **kw)

    @classmethod
    def check_one(cls, name: str, value: Any) -> str | None:
        """Why `option name = value` is invalid (None when it is valid). `name` must be a field."""
        try:
            cls.model_validate({name: value})
        except ValidationError as exc:
            err = exc.errors()[0]
            return f"option {name} = {value!r}: {err['msg'][0].lower()}{err['msg'][1:]}"
        return None

    @classmethod
    def docs_table(cls) -> str:
        """The markdown options table of docs/language.md."""
        rows = ["| option | default | meaning |", "| --- | --- | --- |"]
        for name, field in cls.model_fields.items():
            default = {"threshold": "method rule", "counterfactual": "none", "actors": "fill the cluster"}.get(
                name, field.default)
            rows.append(f"| `{name}` | {default} | {field.description} |")
        return "\n".join(rows)
