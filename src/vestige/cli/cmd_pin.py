"""`vestige pin RUN...` and `vestige unpin RUN...`: runs whose files gc never frees."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo

EPILOG = """\b
A pinned run keeps every file it read, wrote and kept whatever `vestige gc`'s policy;
`vestige ls --where 'pinned = true'` lists them. Tagged runs are kept too.
Examples:
  vestige pin 42 57
  vestige unpin 42
"""


def _pin(runs: tuple[str, ...], on: bool) -> None:
    from vestige import clock
    from vestige.upkeep.pin import pin

    repo = open_repo()
    for seq, _run_id, changed in pin(repo, list(runs), clock.now(), on=on):
        word = "pinned" if on else "unpinned"
        click.echo(f"{word} run #{seq}" if changed else f"run #{seq} was already {word}")


@click.command("pin", context_settings=RUN_ARG_SETTINGS, epilog=EPILOG)
@click.argument("runs", metavar="RUN...", nargs=-1, required=True)
def command(runs: tuple[str, ...]) -> None:
    """Pin runs: `vestige gc` never frees their files."""
    _pin(runs, True)


@click.command("unpin", context_settings=RUN_ARG_SETTINGS, epilog=EPILOG.replace(
    "  vestige pin 42 57\n", ""))  # fmt: skip
@click.argument("runs", metavar="RUN...", nargs=-1, required=True)
def unpin(runs: tuple[str, ...]) -> None:
    """Unpin runs: gc's policy applies to them again."""
    _pin(runs, False)
