"""`vestige export RUN --to DIR`: a run as a self-contained folder for someone else."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo, print_json


@click.command("export", context_settings=RUN_ARG_SETTINGS, epilog="""\b
DIR gets project/ (the code as it ran, with its kept inputs in place), outputs/,
artefacts/ and metrics.csv (when the run had some), requirements.txt pinned from the
recorded environment (plus a no-op stand-in for vestige's API when the code imports
vestige), inputs.json, run.json, environment.json, and a README.md saying what ran,
when, on what, and how to run it again with plain Python.
Examples:
  vestige export 42 --to ~/share/fig3-run
  vestige export @last --to /tmp/handoff --json
""")  # fmt: skip
@click.argument("run")
@click.option("--to", "to", required=True, type=click.Path(path_type=Path, file_okay=False),
              metavar="DIR", help="A new (or empty) folder to write.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def command(run: str, to: Path, as_json: bool) -> None:
    """Write RUN as a self-contained folder: code, inputs, outputs, metrics, README."""
    from vestige.history.export import export

    repo = open_repo()
    record = repo.run(run)
    summary = export(repo, record, to)
    if as_json:
        print_json(summary)
        return
    click.echo(f"run #{record.seq} exported to {to}: {summary['code']} code files, "
               f"{summary['inputs']} inputs, {summary['outputs']} outputs, "
               f"{summary['artefacts']} artefacts, {summary['metric_points']} metric points; "
               f"see {to / 'README.md'}")  # fmt: skip
