"""`vestige cat RUN PATH`: a kept file's bytes, as the run saw or made them."""

from __future__ import annotations

import sys

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo


@click.command("cat", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Examples:
  vestige cat 42 out/result.csv
  vestige cat @last analyze.py > analyze_as_run.py
""")  # fmt: skip
@click.argument("run")
@click.argument("path")
def command(run: str, path: str) -> None:
    """Write a file of RUN (an output, an input, or its code) to stdout."""
    repo = open_repo()
    out = sys.stdout.buffer
    for chunk in repo.open_file(run, path):
        out.write(chunk)
    out.flush()
