"""`vestige reindex`: rebuild index.sqlite from manifests and refs alone."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo


@click.command(
    "reindex",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
The index (index.sqlite) is a cache of the store: this drops it and reads every
sealed manifest again. Nothing is lost; `vestige ls` gives the same answer after.
Examples:
  vestige reindex
  rm .vestige/index.sqlite && vestige ls   # the next command rebuilds it too
""",
)
def command() -> None:
    """Rebuild the index from the store (the index is only a cache of it)."""
    repo = open_repo()
    count = repo.reindex()
    click.echo(f"reindexed {count} run{'s' if count != 1 else ''}")
