"""`vestige pull [NAME] [RUN... | --all | --where EXPR]`: bring runs from a remote."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS
from vestige.cli.cmd_push import split_remote
from vestige.cli.cmd_remote import open_writable, progress_for, report

EPILOG = """\b
Brings what this store lacks, every object verified (BLAKE3) before it is written: a
corrupt one is refused, naming it and the remote. Pulled runs keep their ids and get
numbers here (`vestige ls` lists them with the rest); pulling a run twice changes
nothing. NAME may be left out when there is one remote. RUN: a remote run's id or id
prefix (`vestige remote ls NAME`). Without runs: every run this store lacks.
--metadata-only leaves files over 1 MiB on the remote: reading one (cat, restore, diff,
export, the UI) fetches it then; `vestige pull --all` brings them all.
Examples:
  vestige pull
  vestige pull origin 01JF3K2
  vestige pull --metadata-only
  vestige pull origin --where 'params.lr < 0.01 and status = "ok"'
"""


@click.command("pull", context_settings=RUN_ARG_SETTINGS, epilog=EPILOG)
@click.argument("args", metavar="[NAME] [RUN...]", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every run; repair those already here.")
@click.option("--where", metavar="EXPR", help="The remote's runs matching (as `ls --where`).")
@click.option("--metadata-only", "metadata_only", is_flag=True,
              help="Leave files over 1 MiB on the remote; fetch each when it is read.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON; no progress bar.")
def command(
    args: tuple[str, ...], every: bool, where: str | None, metadata_only: bool, as_json: bool
) -> None:
    """Bring runs from a remote: those this store lacks, or the runs named."""
    from vestige.remote.sync import pull

    repo = open_writable()
    name, runs = split_remote(repo.config.remotes, args)
    if sum((bool(runs), every, where is not None)) > 1:
        raise click.UsageError("give runs, --all or --where: one of them")
    bar = progress_for("pulling", as_json)
    try:
        name, done = pull(repo, name, runs, every=every, where=where, progress=bar,
                          metadata_only=metadata_only)  # fmt: skip
    finally:
        if bar is not None:
            bar.stop()
    report(done, "pulled", name, as_json, repo)
