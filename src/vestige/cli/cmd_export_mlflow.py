"""`vestige export-mlflow`: write runs into an MLflow tracking server (issue 18)."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo, print_json

EPILOG = """\b
Without RUN or --where: every sealed run. Each run becomes an MLflow run tagged
vestige.run_id, with its params, every metric series in full, its tags (k=v as key k,
others as vestige.tag.NAME), its notes (mlflow.note.content), its status and times, and
as artifacts its kept outputs, artefacts (artefacts/), logs (logs/) and code snapshot
(code/). Exporting again updates those runs (tags, note, what they lack); it never
duplicates them. --tracking-uri defaults to MLFLOW_TRACKING_URI; --experiment to the
project folder's name (made when missing).
Examples:
  vestige export-mlflow --tracking-uri http://127.0.0.1:5000
  vestige export-mlflow 42 57 --experiment baseline
  vestige export-mlflow --where 'tag = "paper"' --json
"""


@click.command("export-mlflow", context_settings=RUN_ARG_SETTINGS, epilog=EPILOG)
@click.argument("refs", metavar="[RUN...]", nargs=-1)
@click.option("--tracking-uri", "uri", metavar="URI",
              help="The MLflow tracking server (default: $MLFLOW_TRACKING_URI).")  # fmt: skip
@click.option("--where", "where", metavar="EXPR", help="The sealed runs matching a query.")
@click.option("--all", "every", is_flag=True, help="Every sealed run (the default).")
@click.option("--experiment", metavar="NAME", help="MLflow experiment (default: the project's).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, a record per run.")
def command(
    refs: tuple[str, ...], uri: str | None, where: str | None, every: bool,
    experiment: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Write runs into an MLflow tracking server: params, metrics, tags, notes, artifacts."""
    from vestige.adopt.to_mlflow import export_mlflow, select, tracking_uri

    if sum((bool(refs), where is not None, every)) > 1:
        raise click.UsageError("give runs, --where or --all: one of them")
    uri = tracking_uri(uri)
    repo = open_repo()
    runs = select(repo, refs, where)
    report = export_mlflow(repo, runs, uri, experiment or repo.store.root.name)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    if as_json:
        print_json([r.to_dict() for r in report.runs])
        return
    for r in report.runs:
        click.echo(f"#{r.seq}  {r.action:<9}  {r.mlflow_run_id}")
    actions = [r.action for r in report.runs]
    counts = {a: actions.count(a) for a in ("created", "updated", "unchanged")}
    click.echo(f"{len(report.runs)} run{'s' if len(report.runs) != 1 else ''} exported to "
               f"{report.tracking_uri}, experiment {report.experiment!r}: "
               + ", ".join(f"{n} {a}" for a, n in counts.items()))  # fmt: skip
