"""`vestige log RUN [--stderr]`: what a run printed."""

from __future__ import annotations

import sys

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo


@click.command("log", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Progress-bar updates (carriage returns) are kept as their final state.
Examples:
  vestige log @last
  vestige log 42 --stderr
""")  # fmt: skip
@click.argument("run")
@click.option("--stderr", "stream", flag_value="stderr", help="Print stderr instead of stdout.")
@click.option("--stdout", "stream", flag_value="stdout", default=True, hidden=True)
def command(run: str, stream: str) -> None:
    """Print what RUN wrote to stdout (or stderr)."""
    repo = open_repo()
    sys.stdout.buffer.write(repo.output_log(run, stream))
    sys.stdout.flush()
