"""`vestige reindex`: rebuild index.sqlite from manifests and refs alone."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo
from vestige.errors import ReindexIncomplete


@click.command(
    "reindex",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
The index (index.sqlite) is a cache of the store: this drops it and reads every
sealed manifest again. Nothing is lost; `vestige ls` gives the same answer after.
A run whose ref or manifest cannot be read is named on stderr and left out (exit 1).
Examples:
  vestige reindex
  rm .vestige/index.sqlite && vestige ls   # the next command rebuilds it too
""",
)
def command() -> None:
    """Rebuild the index from the store (the index is only a cache of it)."""
    repo = open_repo()
    skipped: list[tuple[str, str]] = []
    count = repo.reindex(skipped)
    click.echo(f"reindexed {count} run{'s' if count != 1 else ''}")
    for run_id, why in skipped:
        click.echo(f"skipped: run {run_id}: {why}", err=True)
    if skipped:
        n = len(skipped)
        raise ReindexIncomplete(
            f"{n} sealed run{'s' if n != 1 else ''} left out of the index: "
            f"{'its' if n == 1 else 'their'} ref or manifest could not be read "
            f"({', '.join(r for r, _ in skipped[:5])}{', ...' if n > 5 else ''}); "
            "see `vestige fsck`"
        )
