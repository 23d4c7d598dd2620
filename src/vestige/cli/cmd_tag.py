"""`vestige tag RUN [TAG...]`: tag a run from the shell (or untag, or list its tags)."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo
from vestige.errors import UsageError


@click.command("tag", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Tags are words without spaces or commas; `vestige ls --where 'tag = baseline'` finds
them. A sealed run's manifest never changes: tags added here are kept beside it.
Examples:
  vestige tag 42 baseline paper
  vestige tag 42 --rm paper
  vestige tag 42
""")  # fmt: skip
@click.argument("run")
@click.argument("tags", nargs=-1)
@click.option("--rm", "remove", multiple=True, metavar="TAG", help="Remove this tag (repeatable).")
def command(run: str, tags: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Add tags to a run, remove them with --rm, or list them."""
    from vestige.api.calls import check_tag

    for t in (*tags, *remove):
        try:
            check_tag(t)
        except ValueError:
            raise UsageError(f"{t!r} is not a tag: use a word without spaces or commas") from None
    repo = open_repo()
    record = repo.annotate(run, add=tags, remove=remove) if tags or remove else repo.run(run)
    click.echo(f"run #{record.seq}: " + (" ".join(record.tags) if record.tags else "no tags"))
