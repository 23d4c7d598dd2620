"""`vestige run [OPTIONS] COMMAND [ARGS]...`: run and record a command."""

from __future__ import annotations

from typing import Any

import click

from vestige.errors import UsageError

HELP = """Run COMMAND and record everything it reads, writes and prints.

\b
Options go before the command; everything from the command on is passed to it as is.
A first argument ending in .py runs with the current Python (the active virtualenv's
or conda env's, else vestige's own).

\b
Examples:
  vestige run python analyze.py --lr 0.1
  vestige run analyze.py --model vit
  vestige run --param note=baseline bash make_figs.sh
"""


def parse(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """(params, command) from `vestige run` arguments; None when help was asked for."""
    from vestige.capture.params import parse_param_option

    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if arg in ("-p", "--param") or arg.startswith("--param="):
            if "=" in arg and arg.startswith("--param="):
                value = arg.split("=", 1)[1]
            else:
                if i + 1 >= len(args):
                    raise UsageError(f"{arg} needs a value: {arg} name=value")
                i += 1
                value = args[i]
            try:
                key, parsed = parse_param_option(value)
            except ValueError:
                raise UsageError(
                    f"--param {value!r} is not name=value; write e.g. --param lr=0.1"
                ) from None
            params[key] = parsed
            i += 1
            continue
        if arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg} for `vestige run`; options go before the command "
                "(see `vestige run --help`)"
            )
        break
    command = args[i:]
    if not command:
        raise UsageError("no command given; usage: vestige run [--param k=v] COMMAND [ARGS]...")
    return params, command


def fast_run(args: list[str]) -> int | None:
    """Run without importing click; None means `--help` (left to click)."""
    parsed = parse(args)
    if parsed is None:
        return None
    params, command = parsed
    from vestige.runner import Launch, RunOptions, die_like

    code = Launch(command, RunOptions(params=params)).execute()
    return die_like(code)


@click.command(
    "run",
    help=HELP,
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Record a param (overrides what the command's own parsing found).")  # fmt: skip
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def command(params: tuple[str, ...], command: tuple[str, ...]) -> int:
    args: list[str] = []
    for p in params:
        args += ["--param", p]
    code = fast_run([*args, "--", *command])
    raise SystemExit(code or 0)
