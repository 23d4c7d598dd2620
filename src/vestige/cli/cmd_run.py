"""`vestige run [OPTIONS] COMMAND [ARGS]...`: run and record a command."""

from __future__ import annotations

import click

from vestige.cli._run import fast_run

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
