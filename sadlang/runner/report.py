"""Reporters: readable text, JSON (stable schema), JUnit XML."""

from __future__ import annotations

import json
import math
from typing import Any
from xml.etree import ElementTree as ET

from sadlang.errors import printable
from sadlang.runner.verdict import STATUSES, Report, Verdict

# 2: verdicts carry interval, confidence and n_prompts; status may be "inconclusive"; a mean
# claim's prompts have passed = null (not judged one by one)
JSON_SCHEMA_VERSION = 2


def json_safe(obj: Any) -> Any:
    """Floats rounded to 6 digits, NaN and infinities as null, dict keys sorted: the form every
    report (JSON, HTML) embeds."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 6)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def to_json(report: Report, allow_inconclusive: bool = False) -> str:
    """Deterministic JSON: sorted keys, floats rounded to 6 digits, NaN as null."""
    data = {"schema": JSON_SCHEMA_VERSION, **report.model_dump()}
    data["exit_code"] = report.exit_code_with(allow_inconclusive)
    data["summary"] = summary_counts(report)
    return json.dumps(json_safe(data), indent=2, sort_keys=True)


def error_json(exc: Exception, exit_code: int) -> str:
    """The JSON document of a check that produced no report: a spec error (exit 2, with every
    diagnostic's file, line, column, message and hint) or a runtime error (exit 3), so that CI
    parsing stdout always gets a document. `verdicts` is empty and `summary` all zero."""
    from sadlang.errors import SpecError, SpecErrors

    diagnostics = []
    if isinstance(exc, SpecError):
        for e in exc.errors if isinstance(exc, SpecErrors) else [exc]:
            span = e.span
            diagnostics.append({"file": getattr(span, "file", None), "line": getattr(span, "line", None),
                                "column": getattr(span, "column", None), "message": e.message, "hint": e.hint,
                                "severity": "error"})
    data = {"schema": JSON_SCHEMA_VERSION, "exit_code": exit_code, "verdicts": [],
            "summary": dict.fromkeys(STATUSES, 0),
            "error": {"kind": "spec" if isinstance(exc, SpecError) else "runtime", "message": str(exc),
                      "diagnostics": diagnostics}}
    return json.dumps(data, indent=2, sort_keys=True)


def to_json_many(reports: list[Report], allow_inconclusive: bool = False) -> str:
    """One JSON document over several specs: each report as to_json writes it, and totals."""
    data = {"schema": JSON_SCHEMA_VERSION,
            "reports": [json.loads(to_json(r, allow_inconclusive)) for r in reports],
            "summary": _totals(reports), "exit_code": max(r.exit_code_with(allow_inconclusive) for r in reports)}
    return json.dumps(data, indent=2, sort_keys=True)


def _totals(reports: list[Report]) -> dict[str, int]:
    out: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for r in reports:
        for k, v in summary_counts(r).items():
            out[k] += v
    return out


def total_line(reports: list[Report]) -> str:
    c = _totals(reports)
    return f"all {len(reports)} specs: {counts_text(c)}"


def counts_text(c: dict[str, int]) -> str:
    return f"{c['held']} held, {c['failed']} failed, {c['inconclusive']} inconclusive, {c['error']} errors"


def summary_counts(report: Report) -> dict[str, int]:
    out: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for v in report.verdicts:
        out[v.status] += 1
    return out


MARK = {"held": "HELD  ", "failed": "FAILED", "inconclusive": "INCONCLUSIVE", "error": "ERROR "}
ROW = {True: "ok ", False: "bad", None: "   "}


def format_verdict(v: Verdict, verbose: bool = False) -> str:
    lines = [f"{MARK[v.status]} {v.name}  ({printable(v.location)})", f"       {printable(v.claim)}",
             f"       claimed:  {printable(v.claimed)}", f"       measured: {printable(v.measured)}"]
    judged = any(p.passed is not None for p in v.prompts)
    worst = v.worst(3) if judged and not verbose else [p for p in v.prompts]
    if v.status != "held" or verbose:
        for p in worst:
            lines.append(f"       {ROW[p.passed]} prompt {p.index}: {p.text!r}: {p.detail}")
    if v.counterexample is not None:
        c = v.counterexample
        lines.append(f"       counterexample: {c.text!r}: {c.detail}")
    return "\n".join(lines)


def to_text(report: Report, verbose: bool = False) -> str:
    out = [f"sadlang check {report.spec}  model={report.model} ({report.model_fingerprint})  "
           f"method={report.method}", ""]
    for v in report.verdicts:
        out.append(format_verdict(v, verbose))
        out.append("")
    out.append(counts_text(summary_counts(report)))
    return "\n".join(out)


def to_junit_many(reports: list[Report]) -> str:
    """One <testsuites> document with a suite per spec."""
    c = _totals(reports)
    root = ET.Element("testsuites", tests=str(sum(c.values())), failures=str(c["failed"]), errors=str(c["error"]),
                      skipped=str(c["inconclusive"]))
    for r in reports:
        root.append(ET.fromstring(to_junit(r)))
    return ET.tostring(root, encoding="unicode")


def to_junit(report: Report) -> str:
    c = summary_counts(report)
    suite = ET.Element("testsuite", name=report.spec, tests=str(len(report.verdicts)),
                       failures=str(c["failed"]), errors=str(c["error"]), skipped=str(c["inconclusive"]))
    for v in report.verdicts:
        case = ET.SubElement(suite, "testcase", classname=report.spec, name=v.name)
        if v.status == "failed":
            ET.SubElement(case, "failure", message=f"claimed {v.claimed}; measured {v.measured}").text = \
                format_verdict(v)
        elif v.status == "error":
            ET.SubElement(case, "error", message=v.measured).text = format_verdict(v)
        elif v.status == "inconclusive":
            # not a failure, not a pass: JUnit's skipped, with why (the CLI still exits 1 unless
            # --allow-inconclusive)
            ET.SubElement(case, "skipped", message=f"inconclusive: claimed {v.claimed}; measured {v.measured}")
        else:
            ET.SubElement(case, "system-out").text = f"measured: {v.measured}"
    return ET.tostring(suite, encoding="unicode")
