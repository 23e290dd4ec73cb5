"""Check a compiled plan on Ray actors: the same verdicts as `run_plan`, computed elsewhere.

The driver (this process) has already parsed, validated and compiled the spec, so a spec error
never starts an actor. Each actor loads the model once, compiles the same spec and holds lazy
evidence for every prompt set. The work is cut into tasks:

- a *shard task* measures, on one forward-pass batch of a prompt set (`ev.batches()`), every
  shardable claim of that set (per-prompt kinds that measure a prompt from its own batch) and
  returns per-prompt evidence (plain data, never tensors);
- a *claim task* evaluates one claim that needs the whole set (aggregates, mean or resample
  ablations, control-signal sinks) and returns its verdict;
- a *search task* runs one claim's counterexample search and returns (tried, counterexample).

The driver concatenates each claim's shards in prompt order and concludes with the code that a
local check uses (`evaluate.conclude`, `executor.with_search`), so the verdicts are the local
ones: a local check measures shardable claims shard by shard too, on the same batches, and
random controls are seeded per prompt. Actors that die are restarted by Ray and their task is
retried (a task's result does not depend on which actor ran it, or how often).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sadlang.claims import kind_of
from sadlang.decomp.activations import batches
from sadlang.errors import SadError
from sadlang.evidence.records import Counterexample, PromptEvidence
from sadlang.lang import ast as A
from sadlang.models import LoadedModel
from sadlang.plan.compile import Plan
from sadlang.runner.evaluate import conclude, error_verdict, measure_shard, verdict
from sadlang.runner.executor import (
    check_claim,
    evidence_stores,
    failure_message,
    report_of,
    search_claim,
    search_limit,
    with_search,
)
from sadlang.runner.verdict import Report, Verdict
from sadlang.settings import Settings

FAULT_ENV = "SADLANG_RAY_FAULT"   # test hook: a path; the first shard task that finds it absent creates it and dies
RETRIES = 3                       # actor restarts, and retries of the task an actor died in


class RayUnavailable(SadError):
    """Ray is not installed, or the cluster cannot be reached."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run. `address` None starts a local Ray instance (or joins the
    one RAY_ADDRESS names); `actors` None fills the cluster: one actor per `num_gpus` GPUs when
    actors take GPUs, else one per `num_cpus` CPUs."""

    address: str | None = None
    actors: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @classmethod
    def wanted(cls, settings: Settings, address: str | None = None,
               actors: int | None = None) -> RayConfig | None:
        """The Ray configuration a check asks for, or None for a local check: Ray is asked for
        by an address (`--ray`, `--sad-ray`; "" for the default), by an actor count
        (`--actors`) or by `option executor = ray`. Per-actor resources come from the options."""
        if address is None and actors is None and settings.executor != "ray":
            return None
        return cls(address or None, actors or settings.actors, settings.num_cpus, settings.num_gpus)


@dataclass
class RayStats:
    """What a distributed check did (`--profile`)."""

    actors: int = 0
    start_seconds: float = 0.0
    tasks: dict[str, int] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)
    peak_mib: list[float] = field(default_factory=list)   # per actor at the end: peak RSS (and CUDA)


# ---- the actor

class CheckWorker:
    """One actor: the model loaded once, the spec compiled against it, lazy evidence for every
    prompt set. Methods return plain data (pydantic records, tuples, strings)."""

    def __init__(self, spec: A.Spec, model_override: str | None, device_override: str | None,
                 lenient: bool, threads: int, fault: str | None = None):
        import torch

        from sadlang.runner.executor import prepare

        torch.set_num_threads(max(1, threads))
        self.fault = fault
        self.model, self.plan = prepare(spec, model_override, device_override, lenient)
        self.base_plan = self.plan
        self.stores = evidence_stores(self.plan, self.model)
        self.claims = {c.name: (c, cp.prompt_set) for c, cp in self.plan.claims}

    def use_look(self, base: str | None, size: int = 0, n_looks: int = 1) -> int:
        """Measure from now on with prompt set `base` drawn at `size` prompts, judged at the
        per-look confidence (`sample N up to M`, runner/sequential.py); None: the spec's own plan."""
        from sadlang.runner.sequential import look_plan

        self.plan = self.base_plan if base is None else look_plan(self.base_plan, self.model, base, size, n_looks)
        self.stores = evidence_stores(self.plan, self.model)
        return os.getpid()

    def pid(self) -> int:
        return os.getpid()

    def peak_mib(self) -> float:
        """Peak memory of this actor in MiB: resident set, or allocated CUDA memory on a GPU."""
        import resource

        import torch

        if self.model.device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def shard(self, prompt_set: str, indices: list[int],
              names: list[str]) -> tuple[int, float, dict[str, list[PromptEvidence] | str]]:
        """(pid, seconds, claim -> per-prompt evidence of `indices`, or the error message)."""
        if self.fault and not os.path.exists(self.fault):
            open(self.fault, "w").close()
            os._exit(1)                      # a crash mid-run, for the retry test
        t0 = time.perf_counter()
        ev = self.stores[prompt_set]
        out: dict[str, list[PromptEvidence] | str] = {}
        for name in names:
            claim, _ = self.claims[name]
            try:
                out[name] = measure_shard(ev, claim, self.plan.settings, indices)
            except Exception as exc:
                out[name] = failure_message(exc)
        ev.release(indices)                  # shards are measured once: free their activations
        return os.getpid(), time.perf_counter() - t0, out

    def claim(self, name: str, explore: int) -> tuple[int, float, Verdict]:
        t0 = time.perf_counter()
        claim, pset = self.claims[name]
        v = check_claim(self.plan, self.model, self.stores, claim, pset, explore)
        return os.getpid(), time.perf_counter() - t0, v

    def search(self, name: str, limit: int) -> tuple[int, float, tuple[int, Counterexample | None] | str]:
        t0 = time.perf_counter()
        claim, pset = self.claims[name]
        try:
            found: tuple[int, Counterexample | None] | str = search_claim(self.model, self.plan, claim, pset, limit)
        except Exception as exc:
            found = failure_message(exc)
        return os.getpid(), time.perf_counter() - t0, found


# ---- the driver

@dataclass
class _Task:
    kind: str                 # shard | claim | search
    args: tuple
    key: Any


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'sadlang[ray]' (or pip install ray)") from None
    return ray


def reachable(address: str | None, timeout: float = 3.0) -> str | None:
    """Why a Ray address cannot be reached (None when it can, or names no host: empty, `auto`,
    `local`). Checked with one TCP connection before Ray is asked: Ray itself retries a refused
    or unresolvable address for minutes, deaf to Ctrl-C meanwhile."""
    import socket

    if not address or address in ("auto", "local"):
        return None
    where = address.split("://", 1)[-1].rstrip("/")
    host, sep, port_text = where.rpartition(":")
    if not sep or not host:
        return f"{address!r} is not HOST:PORT"
    try:
        port = int(port_text)
    except ValueError:
        return f"{address!r}: the port {port_text!r} is not a number"
    if not 0 < port < 65536:
        return f"{address!r}: port {port} is outside 1..65535"
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{address!r}: host {host!r} does not resolve"
    except OSError as exc:
        return f"{address!r}: {exc.strerror or exc}"


def _connect(ray: Any, cfg: RayConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    why = reachable(cfg.address or os.environ.get("RAY_ADDRESS"))
    if why:
        raise RayUnavailable(f"cannot reach Ray at {why}")
    try:
        ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True)
    except Exception as exc:  # ConnectionError, or Ray's own errors for a bad address
        where = cfg.address or os.environ.get("RAY_ADDRESS") or "a local instance"
        raise RayUnavailable(f"cannot start or reach Ray at {where}: {exc}") from None
    return True


def _actor_count(ray: Any, cfg: RayConfig, tasks: int) -> int:
    if cfg.actors is not None:
        want = cfg.actors
    else:
        res = ray.cluster_resources()
        if cfg.num_gpus > 0:
            want = int(res.get("GPU", 0) // cfg.num_gpus)
            if want == 0:
                raise RayUnavailable(f"the Ray cluster has no GPU for actors of num_gpus = {cfg.num_gpus:g}")
        else:
            want = int(res.get("CPU", 1) // cfg.num_cpus)
    return max(1, min(want, tasks))


def plan_tasks(plan: Plan, items: list[tuple[A.Claim, str]], explore: int) -> tuple[list[_Task], dict]:
    """The tasks of a distributed check and, per sharded claim, its shard keys in order."""
    tasks: list[_Task] = []
    sharded: dict[str, list[tuple[str, int]]] = {}
    by_set: dict[str, list[str]] = {}
    for claim, pset in items:
        if kind_of(claim.body).shardable(claim.body):
            by_set.setdefault(pset, []).append(claim.name)
            limit = search_limit(plan, claim, pset, explore)
            if limit:
                tasks.append(_Task("search", (claim.name, limit), claim.name))
        else:
            tasks.append(_Task("claim", (claim.name, explore), claim.name))
    for pset, names in by_set.items():
        prompts = plan.prompt_sets[pset].prompts
        for k, idx in enumerate(batches([len(p.tokens) for p in prompts], plan.settings.batch_size)):
            tasks.append(_Task("shard", (pset, idx, names), (pset, k)))
            for name in names:
                sharded.setdefault(name, []).append((pset, k))
    # the longest tasks first, so that no actor is left with one at the end
    order = {"claim": 0, "search": 1, "shard": 2}
    tasks.sort(key=lambda t: order[t.kind])
    return tasks, sharded


def run_plan_ray(plan: Plan, model: LoadedModel, cfg: RayConfig, explore: int = 0, progress: bool = False,
                 only: set[str] | None = None, lenient: bool = False, model_override: str | None = None,
                 device_override: str | None = None, stats: RayStats | None = None) -> Report:
    """`run_plan` on Ray actors. `model` is the driver's own load (for the report's model
    fields); the actors load theirs from the same spec and overrides. Claims on a set sampled
    `up to` a cap are measured look by look, as locally: every actor switches to the look's plan,
    and only the claims still inconclusive are measured again."""
    from sadlang.runner import sequential as S

    ray = _ray()
    items = [(c, cp.prompt_set) for c, cp in plan.claims if only is None or c.name in only]
    growing = S.capped(plan)
    fixed = [(c, p) for c, p in items if S.base_of(plan, p) not in growing]
    tasks, sharded = plan_tasks(plan, fixed, explore)
    looks = {base: S.look_plan(plan, model, base, sizes[0], len(sizes)) for base, sizes in growing.items()}
    widest = max([len(tasks)] + [len(plan_tasks(looks[b], [(c, p) for c, p in items if S.base_of(plan, p) == b],
                                                explore)[0]) for b in looks])
    stats = stats if stats is not None else RayStats()
    verdicts: dict[str, Verdict] = {}
    started = _connect(ray, cfg)
    try:
        t0 = time.perf_counter()
        n = _actor_count(ray, cfg, widest)
        remote = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)(CheckWorker)
        threads = max(1, int(cfg.num_cpus))
        actors = [remote.options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus).remote(
            plan.spec, model_override, device_override, lenient, threads, os.environ.get(FAULT_ENV))
            for _ in range(n)]
        ray.get([a.pid.remote() for a in actors])
        stats.actors, stats.start_seconds = n, time.perf_counter() - t0
        results = _dispatch(ray, actors, tasks, stats, _bar(len(tasks), progress))
        verdicts.update((c.name, _verdict(plan, c, sharded.get(c.name), results)) for c, _ in fixed)
        for base, sizes in growing.items():
            pending = [(c, p) for c, p in items if S.base_of(plan, p) == base]
            for k, size in enumerate(sizes):
                if not pending:
                    break
                look = looks[base] if k == 0 else S.look_plan(plan, model, base, size, len(sizes))
                ray.get([a.use_look.remote(base, size, len(sizes)) for a in actors])
                look_tasks, look_sharded = plan_tasks(look, pending, explore)
                found = _dispatch(ray, actors, look_tasks, stats, _bar(len(look_tasks), progress))
                left = []
                for claim, pset in pending:
                    v = S.mark_look(_verdict(look, claim, look_sharded.get(claim.name), found), k, sizes)
                    verdicts[claim.name] = v
                    if v.status == "inconclusive":
                        left.append((claim, pset))
                pending = left
        stats.peak_mib = ray.get([a.peak_mib.remote() for a in actors])
    except ray.exceptions.RayError as exc:
        raise RayUnavailable(f"the Ray check failed: {exc}") from None
    finally:
        if started:
            ray.shutdown()
    return report_of(plan, model, [verdicts[c.name] for c, _ in items])


def _dispatch(ray: Any, actors: list[Any], tasks: list[_Task], stats: RayStats, bar: Any) -> dict[Any, Any]:
    """Run the tasks, one in flight per actor, each idle actor taking the next task."""
    results: dict[tuple[str, Any], Any] = {}
    pending = list(reversed(tasks))
    running: dict[Any, tuple[Any, _Task]] = {}

    def submit(actor: Any) -> None:
        if pending:
            t = pending.pop()
            running[getattr(actor, t.kind).remote(*t.args)] = (actor, t)

    for actor in actors:
        submit(actor)
    while running:
        done, _ = ray.wait(list(running), num_returns=1)
        actor, t = running.pop(done[0])
        pid, seconds, value = ray.get(done[0])
        results[(t.kind, t.key)] = value
        stats.pids.add(pid)
        stats.tasks[t.kind] = stats.tasks.get(t.kind, 0) + 1
        stats.task_seconds[t.kind] = stats.task_seconds.get(t.kind, 0.0) + seconds
        if bar is not None:
            bar.update(1)
        submit(actor)
    if bar is not None:
        bar.close()
    return results


def _verdict(plan: Plan, claim: A.Claim, shard_keys: list | None, results: dict) -> Verdict:
    """A claim's verdict from its tasks' results, as `check_claim` would have made it."""
    if shard_keys is None:
        return results[("claim", claim.name)]
    evidence: list[PromptEvidence] = []
    for key in shard_keys:                  # shards in order: the first error is the local one
        part = results[("shard", key)][claim.name]
        if isinstance(part, str):
            return error_verdict(plan.spec, claim, part)
        evidence += part
    v = verdict(plan.spec, claim, conclude(claim, evidence, plan.settings), plan.settings)
    found = results.get(("search", claim.name))
    if found is None:
        return v
    if isinstance(found, str):
        return error_verdict(plan.spec, claim, found)
    return with_search(v, claim, *found)


def _bar(total: int, enabled: bool) -> Callable | Any:
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="task", desc="ray tasks", leave=False)
