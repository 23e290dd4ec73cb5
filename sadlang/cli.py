"""The `sadlang` command line.

Exit codes: 0 every claim held; 1 some claim failed; 2 spec error or bad argument; 3 runtime error.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from sadlang import __version__
from sadlang.errors import InternalError, SadError, SpecError, UsageError
from sadlang.runtime import calm_openmp

if TYPE_CHECKING:
    from sadlang.decomp.components import Component
    from sadlang.lang import ast as A
    from sadlang.models.loader import LoadedModel
    from sadlang.plan.compile import Plan
    from sadlang.runner.ray_executor import RayConfig
    from sadlang.runner.verdict import Report
    from sadlang.trace.tracer import Circuit


def _quiet_libraries() -> None:
    """Library chatter off, without importing the libraries (a spec error must come fast):
    transformers reads these variables when it is first imported."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if "transformers" in sys.modules:      # already imported (in-process use): tell it directly
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr, and only to a terminal unless --progress asks for them."""
    return bool(getattr(args, "progress", False)) or (sys.stderr.isatty() and not getattr(args, "quiet", False))


def _validated(paths: list[str], lenient: bool) -> list:
    """Parse and validate every spec (no model, no torch): all spec errors come first, fast."""
    from sadlang.errors import SpecErrors
    from sadlang.plan.validate import validate

    specs, errors = [], []
    if paths.count("-") > 1:
        raise UsageError("`-` (stdin) can be given once")
    for path in paths:
        try:
            spec = _read_spec(path)
            for warning in validate(spec, lenient).warnings:
                print(warning.render().replace(": error: ", ": warning: ", 1), file=sys.stderr)
            specs.append(spec)
        except SpecError as exc:
            errors.append(exc)
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    return specs


def _read_spec(path: str) -> A.Spec:
    """Parse a spec file, or standard input for `-` (named <stdin> in messages)."""
    from sadlang.lang.parser import read_stdin_text
    from sadlang.language import parse_file, parse_spec

    if path == "-":
        return parse_spec(read_stdin_text(sys.stdin), "<stdin>")
    return parse_file(path)


def _threads() -> None:
    """Torch threads per sadlang's measured default (SADLANG_THREADS overrides), set only once
    the engine is needed: a spec error never waits for torch."""
    from sadlang.models.loader import use_default_threads
    from sadlang.runtime import watch_cores

    use_default_threads()
    watch_cores()


def _print_profile(file: str, t0: float, costs: list, phases: dict[str, float]) -> None:
    """Where the time went (stderr, so --format json stays clean)."""
    total = time.perf_counter() - t0
    spent = sum(c.seconds for c in costs)
    setup = "; ".join(f"{name} {sec:.1f} s" for name, sec in phases.items())
    lines = [f"profile  {file}: {total:.1f} s in all; {setup}; claims {spent:.1f} s, of which forward passes "
             f"{sum(c.pass_seconds for c in costs):.1f} s",
             f"  {'claim':<20} {'kind':<14} {'work':<12} {'seconds':>8} {'passes':>7} {'pass s':>7} {'decomps':>8} "
             f"{'searched':>8}"]
    for c in sorted(costs, key=lambda c: -c.seconds):
        lines.append(f"  {c.name:<20} {c.kind:<14} {c.work:<12} {c.seconds:>8.2f} {c.passes:>7} "
                     f"{c.pass_seconds:>7.2f} {c.decompositions:>8} {c.searched:>8}")
    lines.append(f"  {'all claims':<48} {spent:>8.2f} {sum(c.passes for c in costs):>7} "
                 f"{sum(c.pass_seconds for c in costs):>7.2f} {sum(c.decompositions for c in costs):>8} "
                 f"{sum(c.searched for c in costs):>8}")
    lines.append("  (a claim that reuses evidence computed for an earlier one costs only the rest)")
    print("\n".join(lines), file=sys.stderr)


def _check_on_ray(args: argparse.Namespace, spec: A.Spec, model: LoadedModel, plan: Plan, cfg: RayConfig,
                  only: set[str] | None, t0: float) -> Report:
    """One spec's check on Ray actors (`--ray`, `--actors` or `option executor = ray`)."""
    from sadlang.runner.ray_executor import RayStats, run_plan_ray

    if args.html:
        raise UsageError(f"{spec.file}: --html draws its pictures from evidence held in this process; "
                         "it cannot be combined with --ray, --actors or `option executor = ray`")
    stats = RayStats()
    report = run_plan_ray(plan, model, cfg, explore=args.explore, progress=_progress(args), only=only,
                          lenient=args.lenient, model_override=args.model, device_override=args.device,
                          stats=stats)
    if args.profile:
        lines = [f"profile  {spec.file}: {time.perf_counter() - t0:.1f} s in all on Ray; {stats.actors} actors "
                 f"({len(stats.pids)} processes) started and loaded in {stats.start_seconds:.1f} s"]
        for kind in sorted(stats.tasks):
            lines.append(f"  {kind:<8} tasks {stats.tasks[kind]:>5}  actor seconds {stats.task_seconds[kind]:>8.2f}")
        print("\n".join(lines), file=sys.stderr)
    return report


def cmd_check(args: argparse.Namespace) -> int:
    from sadlang.runner.outputs import refuse_inputs, write_output

    refuse_inputs({"--junit": args.junit, "--json-out": args.json_out, "--html": args.html}, args.specs)
    specs = _validated(args.specs, args.lenient)
    if args.ray:                  # an address that cannot answer fails now, not after the model loads
        from sadlang.runner.ray_executor import RayUnavailable, reachable

        why = reachable(args.ray)
        if why:
            raise RayUnavailable(f"cannot reach Ray at {why}")
    _threads()
    from sadlang.html.views import collector
    from sadlang.runner.executor import prepare, run_plan
    from sadlang.runner.ray_executor import RayConfig
    from sadlang.runner.report import to_json, to_json_many, to_junit, to_junit_many, to_text, total_line

    only = set(args.claim) if args.claim else None
    if only is not None:
        known = sorted({c.name for spec in specs for c in spec.claims})
        unknown = sorted(only - set(known))
        if unknown:
            raise UsageError(f"no claim named {', '.join(map(repr, unknown))} in {', '.join(args.specs)}; "
                             f"claims are: {', '.join(known) or '(none)'}")
    reports = []
    views: list[dict] = []
    meta: list[dict] = []
    for spec in specs:
        t0 = time.perf_counter()
        phases: dict[str, float] = {}
        model, plan = prepare(spec, args.model, args.device, args.lenient, phases if args.profile else None)
        for hint in plan.hints:
            print(hint, file=sys.stderr)
        costs: list | None = [] if args.profile or args.html else None     # the report shows time per claim
        cards: dict = {}
        ray = RayConfig.wanted(plan.settings, args.ray, args.actors)
        if ray is not None:
            report = _check_on_ray(args, spec, model, plan, ray, only, t0)
        else:
            cards, observe = collector(spec) if args.html else ({}, None)
            report = run_plan(plan, model, explore=args.explore, progress=_progress(args), only=only, costs=costs,
                              observe=observe)
            if costs is not None and args.profile:
                _print_profile(spec.file, t0, costs, phases)
        views.append(cards)
        meta.append({"seconds": round(time.perf_counter() - t0, 2),
                     "seeds": {name: ps.decl.seed for name, ps in plan.prompt_sets.items()},
                     "claim_seconds": {c.name: round(c.seconds, 2) for c in costs or []}})
        if args.format == "text":
            print(to_text(report, verbose=args.verbose))
        reports.append(report)
    allow = args.allow_inconclusive
    if len(reports) == 1:
        json_text, junit_text = to_json(reports[0], allow), to_junit(reports[0])
    else:
        json_text, junit_text = to_json_many(reports, allow), to_junit_many(reports)
        if args.format == "text":
            print(f"\n{total_line(reports)}")
    if args.format == "json":
        print(json_text)
    if args.junit:
        write_output(args.junit, junit_text, "--junit")
    if args.json_out:
        write_output(args.json_out, json_text, "--json-out")
    if args.html:
        from sadlang.html import check_page

        write_output(args.html, check_page(reports, views, meta), "--html")
        print(f"wrote {args.html}", file=sys.stderr)
    return max(r.exit_code_with(allow) for r in reports)


def cmd_fmt(args: argparse.Namespace) -> int:
    """Format specs in place (or check them). Exit 0 formatted, 1 would change (--check), 2 a
    spec that does not parse."""
    import difflib

    from sadlang.errors import SpecErrors
    from sadlang.lang.parser import read_spec_text, read_stdin_text
    from sadlang.language import format_text

    if args.files.count("-") > 1:
        raise UsageError("`-` (stdin) can be given once")
    errors: list[SpecError] = []
    changed = 0
    for path in args.files:
        try:
            if path == "-":
                source, name = read_stdin_text(sys.stdin), "<stdin>"
            else:
                source, name = read_spec_text(path), path
            out = format_text(source, name)
        except SpecError as exc:
            errors.append(exc)
            continue
        if path == "-" and not args.check:
            sys.stdout.write(out)
            continue
        if out == source:
            continue
        changed += 1
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(source.splitlines(keepends=True), out.splitlines(keepends=True),
                                                       f"{name} (as is)", f"{name} (formatted)"))
        else:
            Path(path).write_text(out, encoding="utf-8")
            print(f"formatted {path}", file=sys.stderr)
    if errors:
        raise SpecErrors(errors) if len(errors) > 1 else errors[0]
    if args.check and changed:
        print(f"{changed} file(s) would be reformatted (run `sadlang fmt` on them)", file=sys.stderr)
        return 1
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    from sadlang.editor.server import main as serve

    return serve()


def cmd_plan(args: argparse.Namespace) -> int:
    spec = _validated([args.spec], args.lenient)[0]
    _threads()
    from sadlang.models.planning import planning_model
    from sadlang.plan.compile import compile_spec
    from sadlang.plan.validate import validate
    from sadlang.runner.executor import prepare

    # the config and tokenizer suffice to plan; the weights load only where those are not at hand
    checked = validate(spec, args.lenient)
    light = planning_model(args.model or spec.model)
    if light is not None:
        model: Any = light
        plan = compile_spec(spec, light, args.lenient, checked)
    else:
        model, plan = prepare(spec, args.model, args.device, args.lenient)
    bs = plan.settings.batch_size
    print(f"model    {model.info.name}  ({model.info.architecture}, {model.info.n_layers} layers x "
          f"{model.info.n_heads} heads, " + ("planned from its config and tokenizer; weights not loaded)"
                                             if light is not None else f"fingerprint {model.info.fingerprint})"))
    print(f"method   {plan.options.method}  (threshold: "
          f"{plan.options.threshold if plan.options.threshold is not None else 'method rule'})")
    for name, ps in plan.prompt_sets.items():
        lens = ", ".join(f"{n} prompts of {L} tokens" for L, n in sorted(ps.lengths.items()))
        twin = f" (twins of {ps.source})" if ps.source else ""
        print(f"prompts  {name}{twin}: {len(ps.prompts)} prompts ({lens}); e.g. {ps.prompts[0].text!r}")
    for name, decl in spec.circuits.items():
        what = (f"traced from {decl.traced_from} at frequency {decl.frequency:g}"
                + (f", top {decl.top_edges} edges" if decl.top_edges else "")
                if decl.traced_from else f"{len(decl.nodes) + len(decl.mlps)} nodes, {len(decl.edges)} edges")
        print(f"circuit  {name}: {what}")
    print(f"forward  {plan.forward_passes()} clean pass(es) at batch size {bs}")
    print("claims")
    for c, cp in plan.claims:
        print(f"  {c.name:<16} [{cp.work:<12}] on {cp.prompt_set}: {cp.description}")
    return 0


def cmd_circuit(args: argparse.Namespace) -> int:
    spec = _validated([args.spec], False)[0]
    if args.name not in spec.circuits:
        raise UsageError(f"{args.spec} declares no circuit {args.name!r}; circuits: "
                         f"{', '.join(spec.circuits) or '(none)'}")
    decl = spec.circuits[args.name]
    print(f"circuit  {decl.name}  ({args.spec}:{decl.loc.line if decl.loc else '?'})")
    if decl.traced_from is None:
        heads = sorted({n.head.pair for n in decl.nodes})
        mlps = f", {len(decl.mlps)} MLPs" if decl.mlps else ""
        print(f"nodes    {len(decl.nodes) + len(decl.mlps)} ({len(heads)} heads in {len({h[0] for h in heads})} "
              f"layers{mlps})")
        for n in [*decl.nodes, *decl.mlps]:
            print(f"  {n.text()}")
        print(f"edges    {len(decl.edges)}" + (" (edge-level: circuit heads talk only through these)"
                                               if decl.edges else " (node-level)"))
        for e in decl.edges:
            print(f"  {e.text()}")
        return 0
    _threads()
    from sadlang.circuits.nodes import traced_heads
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.runner.executor import prepare

    model, plan = prepare(spec, args.model, args.device)
    ps = plan.prompt_sets[decl.traced_from]
    ev = PromptSetEvidence(model, ps.prompts, plan.options, plan.settings.batch_size, _progress(args))
    if decl.discovery is not None:
        return _print_discovered(decl, ev, plan)
    heads = traced_heads(decl, ev)
    top = f", top {decl.top_edges} edges" if decl.top_edges else ""
    print(f"traced   from {decl.traced_from} ({len(ps.prompts)} prompts) at frequency {decl.frequency:g}{top}")
    print(f"nodes    {len(heads)} heads in {len({h[0] for h in heads})} layers: "
          + ", ".join(f"{layer}.{head}" for layer, head in heads))
    if decl.value_share is not None:
        from sadlang.circuits.nodes import unit_name
        from sadlang.circuits.values import value_feeders

        fed = value_feeders(decl, ev, heads)
        added = sorted({u for feeders in fed.values() for u in feeders} - set(heads))
        print(f"values   {len(added)} unit(s) added, each writing >= {decl.value_share:.0%} of a traced head's output "
              f"through its values: " + (", ".join(unit_name(u) for u in added) or "none"))
        for head, feeders in sorted(fed.items()):
            print(f"  {unit_name(head)} <- " + ", ".join(unit_name(u) for u in sorted(feeders)))
    return 0


def _print_discovered(decl: Any, ev: Any, plan: Any) -> int:
    """`sadlang circuit` on a discovered circuit: its units and the ranking they were cut from."""
    from sadlang.circuits.attribution import edge_text
    from sadlang.circuits.nodes import discovered, unit_name
    from sadlang.evidence.store import PromptSetEvidence

    assert decl.twins is not None
    twins = PromptSetEvidence(ev.model, plan.prompt_sets[decl.twins].prompts, plan.options, ev.batch_size)
    s = plan.settings
    units, ranking = discovered(decl, {decl.traced_from: ev, decl.twins: twins}, s.metric, s.batch_size,
                                s.eap_ig_steps)
    top = f"top {decl.top_edges} edges" if decl.top_edges is not None else f"top {decl.top_nodes} nodes"
    print(f"discover {decl.discovery} of {decl.traced_from} ({len(ev)} prompts) from {decl.twins}, {top}; "
          f"metric {s.metric}; {ranking.passes} batched pass(es)")
    print(f"nodes    {len(units)}: " + ", ".join(unit_name(u) for u in units))
    if ranking.edges:
        print("edges    strongest first (score: first-order change of the metric when patched)")
        for e, score in ranking.edges[:decl.top_edges or 10]:
            print(f"  {score:+.4g}  {edge_text(e)}")
    print("nodes    strongest first" + (" (exact patching effect)" if not ranking.edges else " (sum of out-edges)"))
    for u, score in ranking.nodes[:max(10, decl.top_nodes or 0)]:
        print(f"  {score:+.4g}  {unit_name(u)}")
    return 0


def _check_answers(model: LoadedModel, prompt: str, answer: str, against: str | None) -> None:
    """--answer / --against must be single tokens (a usage error, exit 2, naming the tokens); one
    that lacks the leading space its model's next word carries gets a warning with the fix."""
    from sadlang.prompts.build import PromptError, single_token, space_hint

    for flag, text in (("--answer", answer), ("--against", against)):
        if text is None:
            continue
        try:
            single_token(model, text, flag[2:])
        except PromptError as exc:
            raise UsageError(f"{flag}: {exc}") from None
        hint = space_hint(model, prompt, text, flag)
        if hint:
            print(f"warning: {hint}", file=sys.stderr)


def cmd_trace(args: argparse.Namespace) -> int:
    from sadlang.models import load_model
    from sadlang.trace.graph import head_node, node_id, save_graph
    from sadlang.trace.options import TraceOptions
    from sadlang.trace.tracer import trace

    _threads()
    model = load_model(args.model, args.device)
    _check_answers(model, args.prompt, args.answer, args.against)
    opts = TraceOptions(method=args.method, threshold=args.threshold, signals=args.signals or bool(args.html))
    circuit = trace(model, args.prompt, args.answer, args.against, options=opts)[0]
    toks = model.decode(circuit.tokens)
    print(f"prompt   {args.prompt!r}  ({len(toks)} tokens incl. BOS)")
    print(f"logit    {args.answer!r} - {args.against!r}: {circuit.logit_diff:.3f} = {circuit.logit_total:.3f} from the "
          f"residual's components + {circuit.logit_bias:.3f} from the unembedding bias (which holds the final "
          f"norm's bias)")
    end = len(toks) - 1
    print("seeds    " + ", ".join(f"{node_id(s.component, end)} ({s.weight:+.2f})" for s in circuit.seeds))
    g = circuit.graph
    print(f"graph    {g.number_of_nodes()} nodes, {g.number_of_edges()} edges, {len(circuit.firings)} firings "
          f"decomposed ({args.method})")
    top = circuit.busiest_heads()[: args.top]
    print("heads    " + ", ".join(f"{l}.{h} x{n}" for (l, h), n in top))
    pairs = sorted(((f, e) for f in circuit.firings.values() for e in f.edges),
                   key=lambda fe: -fe[1].weight)[: args.top]
    print("edges    (strongest first, every kind; nodes as in the graph: head L.H@dest:src, mlp L@pos, "
          "embed@pos, ...; positions are token indices, BOS 0)")
    for f, e in pairs:
        up, down = node_id(e.component, e.at, (f.layer, f.head)), head_node(f.layer, f.head, f.d, f.s)
        print(f"  {up:>14} -> {down:<10} {e.side:<5} weight {e.weight:<8.3g} signal rank {len(e.svs):<3} "
              f"{_where(toks, e.component, e.at)} -> {_at(toks, f.d)} <- {_at(toks, f.s)}")
    if args.ablate:
        _print_ablations(model, circuit, args.ablate, toks)
    if args.out:
        try:
            path = save_graph(g, args.out, tokens=toks, n_layers=model.info.n_layers,
                              title=f"{args.prompt}  ({args.method}: {args.answer!r} vs {args.against!r})")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote    {path}")
    if args.html:
        _write_trace_html(args, model, circuit, toks)
        print(f"wrote    {args.html}")
    return 0


def _at(toks: list[str], i: int) -> str:
    """A position as the text output writes it: its token and index, `' said'@9`."""
    return f"{toks[i]!r}@{i}"


def _where(toks: list[str], comp: Component, at: int) -> str:
    """Where an upstream component writes, in tokens: a head's destination and source."""
    return f"{_at(toks, at)} <- {_at(toks, comp.src)}" if comp.kind == "head" and comp.src is not None \
        else _at(toks, at)


def _write_trace_html(args: argparse.Namespace, model: LoadedModel, circuit: Circuit, toks: list[str]) -> None:
    """The trace as an HTML page: the circuit viewer and the attention of its strongest heads
    (those whose traced writes weigh most: the seeds and the heads feeding them, not the early
    heads that merely fire most often)."""
    from sadlang.html import trace_page
    from sadlang.html.patterns import PatternBank, bank_prompt
    from sadlang.html.views import heatmap, strongest_heads, trace_graph_view

    heads = strongest_heads(circuit.graph, 4)
    pattern = circuit.decomposition.acts.pattern if circuit.decomposition is not None else None
    maps = [heatmap(pattern, h, 0, toks) for h in heads] if pattern is not None else []
    bank = None if pattern is None else PatternBank(
        n_layers=model.info.n_layers, n_heads=model.info.n_heads,
        prompts=[bank_prompt("0", "prompt", pattern, toks, dict(circuit.roles))])
    title = f"{args.prompt}  ({args.method}: {args.answer!r} vs {args.against!r})"
    graph = trace_graph_view(circuit.graph, toks, dict(circuit.roles), model.info.n_layers, title)
    info = {"prompt": args.prompt, "model": model.info.name, "fingerprint": model.info.fingerprint,
            "method": args.method, "answer": args.answer, "against": args.against,
            "measured": f"{len(circuit.firings)} firings decomposed; logit difference {circuit.logit_diff:.3f} "
                        f"({circuit.logit_total:.3f} from the residual's components, {circuit.logit_bias:.3f} from the "
                        f"unembedding bias)"}
    from sadlang.runner.outputs import write_output

    write_output(args.html, trace_page(f"sadlang trace: {args.prompt}", info, graph, maps, bank), "--html")


def _print_ablations(model: LoadedModel, circuit: Circuit, k: int, toks: list[str]) -> None:
    from sadlang.evidence.effects import ablate_strongest_edges

    clean, effects = ablate_strongest_edges(model, circuit, k)
    print(f"ablations (local; clean logit diff {clean:.3f}):")
    for x in effects:
        f, e = x.firing, x.edge
        print(f"  {e.component.label():>6}@{toks[e.at]!r}<-{toks[e.component.head_src[2]]!r} -> "
              f"{f.layer}.{f.head}@{toks[f.d]!r}<-{toks[f.s]!r} "
              f"{e.side:<5} attention {f.attention:.3f} -> {x.attention:.3f} (random {x.random_attention:.3f}); "
              f"logit diff {x.logit_diff:+.3f} (random {x.random_logit_diff:+.3f})")


def cmd_models(args: argparse.Namespace) -> int:
    from sadlang.models import availability, known_models

    if args.architectures:
        from sadlang.models.families import table

        print("Model families (HF config model_type). `exact`: the decomposition sums to the model's own "
              "hooked\nscores and activations (tests/test_exactness.py); `refused`: loading fails (exit 3) and "
              "names the feature.")
        for family, types, tiny, status, adds in table():
            print(f"\n{family:<8} model_type {types}; tiny model {tiny}\n  {status}\n  needs: {adds}")
        return 0
    for name, desc in known_models():
        ok, why = availability(name)
        label = "loadable" if ok else "refused" if why.startswith("refused") else "missing"
        print(f"{name:<14} {label:<9} {desc}  [{why}]")
    return 0


def _scan_prompts(args: argparse.Namespace, model: LoadedModel) -> tuple[list[list[int]], str]:
    """(token ids, where they came from) of the prompts to scan: `--prompt`s, or a spec's set."""
    if args.prompts:
        from sadlang.plan.compile import build_prompt_set, compile_spec

        path, _, name = args.prompts.rpartition(":")
        if not path or not name:
            raise UsageError(f"--prompts {args.prompts}: write SPEC:SET, e.g. specs/ioi.sad:ioi")
        spec = _validated([path], False)[0]
        if name not in spec.prompt_sets:
            raise UsageError(f"--prompts {args.prompts}: {path} has no prompt set {name!r} (it has "
                             f"{', '.join(spec.prompt_sets) or 'none'})")
        decl = spec.prompt_sets[name]
        # only the named set is built (a counterfactual set needs its source: the whole plan)
        prompts = (compile_spec(spec, model).prompt_sets[name].prompts if decl.source is not None
                   else build_prompt_set(spec, model, decl))
        return [list(p.tokens) for p in prompts], f"{len(prompts)} prompts of {name}"
    if not args.prompt:
        raise UsageError("sadlang scan needs prompts: --prompt TEXT (repeatable) or --prompts SPEC:SET")
    return [model.to_tokens(p) for p in args.prompt], f"{len(args.prompt)} prompt(s)"


def cmd_scan(args: argparse.Namespace) -> int:
    import torch

    from sadlang.decomp.activations import run_prompts
    from sadlang.evidence.scans import ranked, scan_heads
    from sadlang.models import load_model

    _threads()
    model = load_model(args.model, args.device)
    tokens, where = _scan_prompts(args, model)
    acts = run_prompts(model, tokens)
    patterns = [a.pattern for a in acts]
    scores, focused = scan_heads(patterns, tokens, args.pattern), scan_heads(patterns, tokens, args.pattern, True)
    from sadlang.evidence.scans import remember

    if bool(torch.isnan(focused).all()):
        raise UsageError(f"no prompt has a key that the {args.pattern} pattern marks (induction and "
                         f"duplicate-token need a repeated token)")
    print(f"scan     {args.pattern} heads of {model.info.name} on {where}: the share of each head's attention on "
          f"the pattern's keys, over the queries that have one (focused) and over every query (TransformerLens' "
          f"score); mean over prompts")
    remember(model.info.name, args.pattern, focused, where)
    print(" rank  head     focused  score")
    for rank, (layer, head, value) in enumerate(ranked(torch.nan_to_num(focused, nan=-1.0), args.top), 1):
        print(f"{rank:>5}  {f'{layer}.{head}':<7} {value:>7.3f}  {float(scores[layer, head]):.3f}")
    if args.svg:
        from sadlang.html.scan_svg import scan_svg
        from sadlang.runner.outputs import write_output

        write_output(args.svg, scan_svg(torch.nan_to_num(focused, nan=0.0),
                                        f"{args.pattern} (focused) of {model.info.name}, {where}"), "--svg")
        print(f"wrote    {args.svg}")
    return 0


def cmd_exactness(args: argparse.Namespace) -> int:
    from sadlang.models import load_model
    from sadlang.trace.exactness import measure_texts

    _threads()
    model = load_model(args.model, args.device, dtype=args.dtype)
    texts = args.prompt or EXACTNESS_PROMPTS
    result = measure_texts(model, texts)
    print(f"exactness of {model.info.name} on {model.device.type}, every head at every position: {result.text()}")
    if args.dtype == "fp32" and not result.within_fp32_bounds:
        print("error: an fp32 model past the bounds the tests hold: the decomposition does not sum to this "
              "model here (report it with this output)", file=sys.stderr)
        return 1
    return 0


EXACTNESS_PROMPTS = ["When Mary and John went to the store, John gave a drink to",
                     "The quick brown fox jumps over the lazy dog because it"]


def cmd_sinks(args: argparse.Namespace) -> int:
    from sadlang.control.sinks import survey
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.models import load_model
    from sadlang.prompts.build import PromptError, build_prompt
    from sadlang.trace.options import TraceOptions

    _threads()
    model = load_model(args.model, args.device)
    try:
        prompts = [build_prompt(model, p, {}) for p in args.prompt]
    except PromptError as exc:
        raise UsageError(f"--prompt: {exc}") from None
    ev = PromptSetEvidence(model, prompts, TraceOptions(method=args.method))
    layers = list(range(1, model.info.n_layers)) if args.layers is None else args.layers
    bad = [layer for layer in layers if not 0 <= layer < model.info.n_layers]
    if bad:
        raise UsageError(f"--layers {', '.join(map(str, bad))}: {model.info.name} has layers "
                         f"0..{model.info.n_layers - 1}")
    rows, protos = survey(ev, layers, args.min_share, args.consistency, args.cut)
    print(f"{'head':>6} {'sink share':>10} {'consistency':>11} {'firings':>7}  {'class':<8} {'proto':<6} "
          f"{'aligned':>7}  main writers of the query signal")
    for r in rows:
        prof = r.profile
        writers = ", ".join(f"{c} {w:.0%}" for c, w in prof.top_writers(2))
        proto = "P" + str(r.prototype) if r.prototype is not None else "-"
        aligned = "L" + str(prof.aligned_at) if prof.aligned_at is not None else "-"
        print(f"{r.layer:>3}.{r.head:<2} {r.share:>10.3f} {prof.consistency:>11.3f} {prof.n_firings:>7}  "
              f"{r.cls:<8} {proto:<6} {aligned:>7}  {writers}")
    for i, c in enumerate(protos):
        print(f"P{i}: " + ", ".join(f"{layer}.{head}" for layer, head in c))
    return 0


def _number(lo: float, hi: float, integer: bool = False) -> Callable[[str], float | int]:
    """An argparse type: a finite number in [lo, hi]."""
    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if integer else 'a number'}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
        return value
    return parse


def _int_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers, e.g. 3,4,18."""
    parts = text.split(",")
    if not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers like 3,4,18")
    return [int(p) for p in parts]


def _output_file(suffixes: tuple[str, ...] = ()) -> Callable[[str], str]:
    """An argparse type: a file we can write, checked before any model loads."""
    def parse(text: str) -> str:
        from sadlang.runner.outputs import output_problem

        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text!r}: the format comes from the extension, one of "
                                             f"{', '.join(suffixes)}")
        why = output_problem(text)
        if why:
            raise argparse.ArgumentTypeError(why)
        return text
    return parse


def build_parser() -> argparse.ArgumentParser:
    from sadlang.settings import Dtype
    from sadlang.trace.methods import METHODS

    p = argparse.ArgumentParser(
        prog="sadlang", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check circuit hypotheses about transformer language models, written as .sad specs, "
                    "by sparse attention decomposition.",
        epilog="examples:\n"
               "  sadlang check specs/ioi.sad\n"
               "  sadlang check specs/*.sad --junit report.xml --format json\n"
               "  sadlang plan specs/ioi.sad\n"
               "  sadlang trace --prompt \"When Mary and John went to the store, John gave a drink to\" "
               "--answer \" Mary\" --against \" John\" --out ioi.svg\n\n"
               "exit codes: 0 all claims held, 1 a claim failed, 2 spec error or bad argument, 3 runtime error.\n"
               "language reference: docs/language.md")
    p.add_argument("--version", action="version", version=f"sadlang {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="check every claim of one or more specs (exit 0 held, 1 failed or "
                       "inconclusive, 2 spec error, 3 runtime error)")
    c.add_argument("specs", nargs="+", help=".sad files (`-` reads one from stdin); several get one summary, "
                   "one JUnit file and one JSON document")
    c.add_argument("--format", choices=["text", "json"], default="text", help="report format on stdout")
    c.add_argument("--junit", metavar="FILE", type=_output_file(), help="also write a JUnit XML report")
    c.add_argument("--json-out", metavar="FILE", type=_output_file(), help="also write the JSON report to FILE")
    c.add_argument("--html", metavar="FILE", type=_output_file((".html", ".htm")),
                   help="also write a self-contained HTML report (works offline: claim cards, per-prompt "
                        "tables, attention heatmaps, interactive circuit graphs)")
    c.add_argument("--explore", type=_number(0, 100_000, integer=True), default=0, metavar="N",
                   help="search up to N (0..100000) generated prompts for a counterexample to each "
                        "per-prompt claim")
    c.add_argument("--claim", action="append", help="check only this claim (repeatable)")
    c.add_argument("--model", help="override the spec's model")
    c.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the spec's option device")
    c.add_argument("-v", "--verbose", action="store_true", help="show every prompt's evidence")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.add_argument("--progress", action="store_true",
                   help="progress bars on stderr even when it is not a terminal")
    c.add_argument("--profile", action="store_true",
                   help="print where the time went: validate, load, QK forms, compile, and per claim the seconds, "
                        "forward passes (count and seconds), decompositions and searched prompts")
    c.add_argument("--lenient", action="store_true",
                   help="comparisons that are always or never true (weight >= 0) warn instead of failing")
    c.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 when every claim is held or inconclusive (the data could not decide it at the "
                        "spec's confidence); by default an inconclusive claim exits 1 like a failed one")
    c.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="check on Ray actors: prompt shards and claims spread over the cluster at ADDRESS "
                        "(default: RAY_ADDRESS, else a local Ray instance); the same report as a local check "
                        "(docs/scaling.md)")
    c.add_argument("--actors", type=_number(1, 10_000, integer=True), metavar="N",
                   help="Ray actors (1..10000; implies --ray; default: option actors, else fill the cluster)")
    c.set_defaults(fn=cmd_check)

    f = sub.add_parser("fmt", help="rewrite specs in the canonical layout, comments kept (`-`: stdin to stdout)")
    f.add_argument("files", nargs="+", help=".sad files, or `-`")
    f.add_argument("--check", action="store_true",
                   help="change nothing: print a diff of each file that is not formatted and exit 1")
    f.set_defaults(fn=cmd_fmt)

    ls = sub.add_parser("lsp", help="run the language server on stdin/stdout (diagnostics, hover, completion, "
                        "go to definition; see docs/editors.md)")
    ls.set_defaults(fn=cmd_lsp)

    pl = sub.add_parser("plan", help="print what checking a spec will compute, validating heads and tokens "
                        "from the model's config and tokenizer (the weights load only when those files are "
                        "not at hand); runs no forward pass")
    pl.add_argument("spec")
    pl.add_argument("--model")
    pl.add_argument("--device", choices=["auto", "cpu", "cuda"])
    pl.add_argument("--lenient", action="store_true", help="vacuous comparisons warn instead of failing")
    pl.set_defaults(fn=cmd_plan)

    ci = sub.add_parser("circuit", help="print a circuit of a spec: its nodes, edges and sizes (a traced "
                        "circuit is traced first, and with `with values above X` lists the units feeding each "
                        "head's values; a discovered one is ranked and printed with its ranking)")
    ci.add_argument("spec")
    ci.add_argument("name", help="the circuit's name in the spec")
    ci.add_argument("--model")
    ci.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ci.add_argument("--progress", action="store_true", help="progress bars even off a terminal")
    ci.set_defaults(fn=cmd_circuit)

    t = sub.add_parser("trace", help="trace one prompt and print its circuit")
    t.add_argument("--model", default="smollm2-135m")
    t.add_argument("--prompt", required=True)
    t.add_argument("--answer", required=True, help='answer token, e.g. " Mary"')
    t.add_argument("--against", help='competing token, e.g. " John"')
    t.add_argument("--method", choices=list(METHODS), default="acc", help="selection method (default acc)")
    t.add_argument("--threshold", type=_number(0, 1),
                   help="fixed firing threshold in [0, 1] (default: the method's rule)")
    t.add_argument("--top", type=_number(1, 10_000, integer=True), default=10, help="rows to print (1..10000)")
    t.add_argument("--signals", action="store_true", help="store each edge's signal vector (JSON output)")
    t.add_argument("--out", type=_output_file((".graphml", ".json", ".svg")),
                   help="write the graph: .graphml, .json, or .svg (a picture)")
    t.add_argument("--html", type=_output_file((".html", ".htm")), metavar="FILE",
                   help="also write the circuit as a self-contained HTML page (interactive graph, edge "
                        "signals, attention heatmaps of the busiest heads)")
    t.add_argument("--ablate", type=_number(0, 1000, integer=True), default=0, metavar="K",
                   help="locally ablate the K strongest head->head edges and print the effect vs random")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.set_defaults(fn=cmd_trace)

    m = sub.add_parser("models", help="list known models and whether each can be loaded now")
    m.add_argument("--architectures", action="store_true",
                   help="list the model families instead: what each adds to attention and whether it is "
                        "decomposed exactly or refused")
    m.set_defaults(fn=cmd_models)

    from sadlang.evidence.scans import PATTERNS

    sc = sub.add_parser("scan", help="rank heads by how much of their attention follows a pattern "
                                     "(prev-token, duplicate-token, induction, sink) on prompts")
    sc.add_argument("--model", default="smollm2-135m")
    sc.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    sc.add_argument("--prompts", metavar="SPEC:SET", help="the prompts of a spec's prompt set, e.g. specs/ioi.sad:ioi")
    sc.add_argument("--pattern", choices=list(PATTERNS), required=True,
                    help="the attention pattern heads are scored on (TransformerLens' head-detector definitions)")
    sc.add_argument("--top", type=_number(1, 10_000, integer=True), default=10, help="heads listed, 1..10000")
    sc.add_argument("--svg", type=_output_file((".svg",)), metavar="FILE", help="also draw a layers x heads heatmap")
    sc.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    sc.set_defaults(fn=cmd_scan)

    ex = sub.add_parser("exactness", help="measure how exactly the decomposition sums to a model's own hooked "
                                          "scores and residual stream (every head and position; exit 1 when an "
                                          "fp32 model is past the tests' bounds)")
    ex.add_argument("--model", default="smollm2-135m")
    ex.add_argument("--prompt", action="append", help="a prompt (repeatable; default: two built-in sentences)")
    ex.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ex.add_argument("--dtype", choices=list(get_args(Dtype)), default="fp32",
                    help="run the model in this precision (the decomposition stays fp32)")
    ex.set_defaults(fn=cmd_exactness)
    s = sub.add_parser("sinks", help="per-head sink share, signal consistency, control/data class, prototypes")
    s.add_argument("--model", default="smollm2-135m")
    s.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable)")
    s.add_argument("--layers", type=_int_list, help="comma-separated layers, e.g. 3,4,18 (default: all but 0)")
    s.add_argument("--min-share", type=_number(0, 1), default=0.5,
                   help="only heads sinking at least this much, in [0, 1]")
    s.add_argument("--consistency", type=_number(-1, 1), default=0.8,
                   help="control if consistency >= this, in [-1, 1]")
    s.add_argument("--cut", type=_number(0, 2), default=0.6, help="prototype cosine-distance cut, in [0, 2]")
    s.add_argument("--method", choices=list(METHODS), default="acc",
                   help="selection method for the sink firings (sad falls back to acc: it never explains BOS)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.set_defaults(fn=cmd_sinks)
    return p


def _json_error(args: argparse.Namespace, exc: Exception, code: int) -> None:
    """With `check --format json`, stdout still gets a document when no report could be made."""
    if getattr(args, "fn", None) is cmd_check and getattr(args, "format", None) == "json":
        from sadlang.runner.report import error_json

        print(error_json(exc, code))


def main(argv: list[str] | None = None) -> int:
    calm_openmp()                               # before anything loads torch (sadlang/runtime.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.fn(args) or 0)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        _json_error(args, exc, 2)
        return 2
    except SadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _json_error(args, exc, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`sadlang models | head -1`): stop quietly, as a process killed by
        # SIGPIPE would, and keep Python from complaining while it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # never a bare traceback for users
        if args.debug:
            raise
        if not isinstance(exc, InternalError):
            exc = InternalError(f"{type(exc).__name__}: {exc}")
        print(f"internal error: {exc}", file=sys.stderr)
        return InternalError.exit_code


if __name__ == "__main__":
    sys.exit(main())
