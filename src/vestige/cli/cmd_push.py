"""`vestige push [NAME] [RUN... | --all]`: send runs to a remote (issue 17)."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo
from vestige.cli.cmd_remote import progress_for, report

EPILOG = """\b
Sends what the remote lacks: each run's objects, then its manifest, then its ref, so an
interrupted push leaves the remote valid and pushing again finishes it. NAME may be left
out when there is one remote. Without runs: every sealed run the remote lacks.
--all also checks the runs already there and sends any object they miss.
Examples:
  vestige push
  vestige push origin 42 57
  vestige push origin --all --json
"""


@click.command("push", context_settings=RUN_ARG_SETTINGS, epilog=EPILOG)
@click.argument("args", metavar="[NAME] [RUN...]", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every run; repair those already there.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON; no progress bar.")
def command(args: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Send runs to a remote: those it lacks, or the runs named."""
    from vestige.remote.sync import push

    repo = open_repo()
    name, runs = split_remote(repo.config.remotes, args)
    if every and runs:
        raise click.UsageError("give runs or --all, not both")
    bar = progress_for("pushing", as_json)
    try:
        name, done = push(repo, name, runs, every=every, progress=bar)
    finally:
        if bar is not None:
            bar.stop()
    report(done, "pushed", name, as_json, repo)


def split_remote(remotes: dict[str, object], args: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """(remote name or None, the other arguments): the first is a remote's name if one is
    so named."""
    if args and args[0] in remotes:
        return args[0], list(args[1:])
    return None, list(args)
