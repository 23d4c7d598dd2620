"""`vestige restore RUN [PATHS...]`: a run's kept code, inputs or outputs back on disk."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo, print_json


@click.command("restore", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Without --to, files go back to their recorded place in the project (artefacts to
artefacts-N/). A file already there with other bytes is not overwritten unless
--force. Without PATHS and role options, the run's code is restored.
Examples:
  vestige restore 42                          # the code snapshot of run 42
  vestige restore 42 analysis/plot_loss.py    # one deleted script, byte for byte
  vestige restore 42 --inputs --outputs --to /tmp/run42
  vestige restore 42 'out/*.csv' --dry-run
""")  # fmt: skip
@click.argument("run")
@click.argument("paths", nargs=-1)
@click.option("--to", "to", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Write under DIR instead of the project.")  # fmt: skip
@click.option("--code", "code", is_flag=True, help="The code snapshot (the default).")
@click.option("--inputs", "inputs", is_flag=True, help="The files the run read.")
@click.option("--outputs", "outputs", is_flag=True, help="The files the run wrote.")
@click.option("--artefacts", "artefacts", is_flag=True, help="Its kept artefacts.")
@click.option("--all", "all_", is_flag=True, help="Code, inputs, outputs and artefacts.")
@click.option("--force", is_flag=True, help="Overwrite files that have other bytes now.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
def command(
    run: str, paths: tuple[str, ...], to: Path | None, code: bool, inputs: bool,
    outputs: bool, artefacts: bool, all_: bool, force: bool, dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Write RUN's kept files back: its code (default), inputs, outputs or artefacts."""
    from vestige.history import restore

    roles = {r for r, on in zip(restore.ROLES, (code, inputs, outputs, artefacts), strict=True)
             if on}  # fmt: skip
    if all_ or (paths and not roles):
        roles = set(restore.ROLES)
    elif not roles:
        roles = {"code"}
    repo = open_repo()
    record = repo.run(run)
    chosen = restore.select(restore.candidates(repo, record), list(paths), roles,
                            repo.store.root, Path.cwd(), repo, record)  # fmt: skip
    results = restore.restore(repo, record, chosen, to, force=force, dry_run=dry_run)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            click.echo(f"{r.status:11} {r.dest}")
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do"
        click.echo(f"run #{record.seq}: {summary}")
        if counts.get("exists"):
            click.echo("  (files with other bytes were left alone; --force overwrites them)")
    if any(r.status == "not-kept" for r in results):
        raise SystemExit(1)
