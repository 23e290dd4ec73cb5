"""The `%%sad` cell magic (`%load_ext sadlang`): the cell is a spec, checked against a model of
the session, and the cell's value is the Report (shown as the HTML report's cards).

    %%sad --model model                 # `model`: a variable of the notebook (HF model, bridge,
    model smollm2-135m                  #  LoadedModel) or a model reference; default: the spec's
    prompts ioi: ...                    #  own `model` line
    claim ...

Options: `--model NAME` (a variable of the session or a model reference), `--explore N`,
`--option NAME=VALUE` (repeatable, as `option` lines), `--as VAR` (also store the report in
that variable). A spec error is printed with its line and caret, not raised as a traceback.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%sad", add_help=False, exit_on_error=False)
    p.add_argument("--model", default=None)
    p.add_argument("--explore", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--as", dest="var", default=None)
    return p


def _value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return None if text == "none" else text


def run_cell(line: str, cell: str, namespace: dict[str, Any]) -> Any:
    """What `%%sad line` does with `cell` in a session whose variables are `namespace`: the
    Report, or None after printing a spec error."""
    from sadlang.api import check
    from sadlang.errors import SadError, SpecError, UsageError

    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise UsageError(f"%%sad {line}: {exc}; usage: %%sad [--model VAR|NAME] [--explore N] "
                         f"[--option NAME=VALUE] [--as VAR]") from None
    options = {}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option {item}: write NAME=VALUE")
        options[name.strip()] = _value(value.strip())
    model = namespace.get(args.model, args.model) if args.model else None
    try:
        report = check(cell, model, explore=args.explore, **options)
    except SpecError as exc:
        print(exc.render())
        return None
    except SadError as exc:
        print(f"error: {exc}")
        return None
    if args.var:
        namespace[args.var] = report
    return report


def register(ipython: Any) -> None:
    """Register `%%sad` on an IPython shell."""
    def sad(line: str, cell: str) -> Any:
        return run_cell(line, cell, ipython.user_ns)

    ipython.register_magic_function(sad, magic_kind="cell", magic_name="sad")
