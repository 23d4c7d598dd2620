"""`vestige note RUN [TEXT]`: add a note to a run, or print its notes."""

from __future__ import annotations

import sys

import click

from vestige.cli._common import RUN_ARG_SETTINGS, iso, open_repo
from vestige.errors import UsageError


@click.command("note", context_settings=RUN_ARG_SETTINGS, epilog="""\b
TEXT "-" reads the note from stdin. Notes are kept beside the sealed run and shown by
`vestige show`. Examples:
  vestige note 42 "loss spikes at step 3k, LR too high?"
  vestige note 42
""")  # fmt: skip
@click.argument("run")
@click.argument("text", required=False)
def command(run: str, text: str | None) -> None:
    """Add a note to a run, or print its notes."""
    if text == "-":
        text = sys.stdin.read()
    if text is not None and not text.strip():
        raise UsageError("the note is empty; give some text, or no TEXT to print the notes")
    repo = open_repo()
    if text is not None:
        record = repo.annotate(run, note=text.strip("\n"))
        click.echo(f"run #{record.seq}: {len(record.notes)} note(s)")
        return
    record = repo.run(run)
    if not record.notes:
        click.echo(f"run #{record.seq} has no notes")
    for n in record.notes:
        click.echo(f"{iso(n.get('t'))}  {n.get('text', '')}")
