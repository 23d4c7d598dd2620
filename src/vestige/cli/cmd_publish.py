"""`vestige publish SRC DEST`: copy bytes a run made out of the project, and record that
they left (vestige/upkeep/publish.py; the debt ledger counts them)."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli._common import open_repo, print_json


@click.command("publish", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
SRC is a file whose bytes a recorded run made (the latest such run is the source),
or RUN:path for an output or artefact a run kept. DEST is a file or a folder,
inside or outside the project. The copy is atomic and verified; a DEST with other
bytes is left alone unless --force. The event (hash, source run, DEST, time) is
kept in the store: `vestige which DEST` names the origin, `vestige debt` counts it.
Examples:
  vestige publish out/fig.png ~/paper/figures/fig3.png
  vestige publish 42:out/table.csv ~/shared/
  vestige publish out/fig.png ~/paper/fig3.png --force --json
""")  # fmt: skip
@click.argument("src")
@click.argument("dest")
@click.option("--force", is_flag=True, help="Replace a DEST that holds other bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
def command(src: str, dest: str, force: bool, as_json: bool) -> None:
    """Copy SRC (bytes a run made) to DEST and record that it left the project."""
    from vestige import clock
    from vestige.upkeep import publish

    now = clock.now()
    repo = open_repo()
    done = publish.publish(repo, src, dest, now, force=force)
    if as_json:
        print_json(done.to_dict())
        return
    verb = {"copied": "copied", "same": "already there:", "replaced": "replaced"}[done.status]
    here = Path(done.dest)
    click.echo(f"{verb} {done.source} (run #{done.seq}, blake3 {done.hash[:12]}) -> {here}")
    if not done.recorded:
        click.echo("this publish was already recorded")
