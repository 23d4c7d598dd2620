"""`vestige adopt SOURCE...`: MLflow stores, W&B run folders and Hydra job folders become
vestige runs marked `adopted` (issue 18)."""

from __future__ import annotations

import sys
from typing import Any

import click

from vestige.cli._common import open_repo, print_json
from vestige.units import size

EPILOG = """\b
Each foreign run becomes a sealed run with its params, full metric series, tags, notes,
logged files (kept in the store as outputs) and code (from this project's git at the
commit the tool recorded, when git has it). The source is only read. Adopting the same
source again adds nothing; a run that changed since is updated.
Sources, recognised by their contents:
  mlruns/                  MLflow's file store (the legacy default)
  sqlite:///mlflow.db      MLflow's SQL store (its artifacts from the artifact root)
  wandb/                   W&B run folders (offline-run-*, run-*), no account needed
  outputs/ multirun/       Hydra job folders (.hydra/config.yaml, overrides.yaml)
Exit code 1 when a run or file of a source could not be adopted (each named on stderr;
the rest is adopted), 2 when a source is none of these.
Examples:
  vestige adopt mlruns/ --dry-run
  vestige adopt sqlite:///mlflow.db wandb/ multirun/
  vestige ls --where 'adopted = mlflow'
"""


@click.command("adopt", epilog=EPILOG)
@click.argument("sources", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Say what would be adopted; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(sources: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Adopt the runs of MLflow, W&B or Hydra as vestige runs."""
    from vestige.adopt.sources import detect, read
    from vestige.adopt.write import Writer, plan
    from vestige.errors import NoStore
    from vestige.repo import Repo

    tools = [(source, detect(source)) for source in sources]  # every source checked first
    if not dry_run:  # adopting into a project makes its store, as `vestige run` does
        Repo.open(create=True).close()
    try:
        writer: Writer | None = Writer(open_repo())
    except NoStore:  # (a dry run where there is no store yet: every run would be new)
        writer = None
    report: list[dict[str, Any]] = []
    skipped = 0
    for source, tool in tools:
        found = read(source, tool)
        if writer is None:
            done = plan(found.runs, lambda _run_id: None)
        else:
            done = writer.plan(found.runs) if dry_run else writer.adopt(found.runs)
        skipped += len(found.skipped)
        for s in found.skipped:
            click.echo(f"skipped: {s.where}: {s.why}", err=True)
        lost = [{"where": s.where, "why": s.why} for s in found.skipped]
        report.append({"source": source, "tool": tool, "runs": [a.to_dict() for a in done],
                       "skipped": lost})  # fmt: skip
        if not as_json:
            _say(source, tool, done, len(found.skipped), dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "sources": report})
    if skipped:
        sys.exit(1)


def _say(source: str, tool: str, done: list[Any], skipped: int, dry_run: bool) -> None:
    """One line per source: how many runs are (or would be) new, updated and unchanged."""
    counts = {k: sum(1 for a in done if a.action == k) for k in ("new", "updated", "unchanged")}
    files = sum(a.files for a in done if a.action != "unchanged")
    nbytes = sum(a.size for a in done if a.action != "unchanged")
    verb = "would adopt" if dry_run else "adopted"
    runs = counts["new"] + counts["updated"]
    line = f"{source} ({tool}): {verb} {runs} run{'s' if runs != 1 else ''}"
    if counts["updated"]:
        line += f" ({counts['updated']} updated)"
    if runs:
        line += f", {files} file{'s' if files != 1 else ''}, {size(nbytes)}"
    if counts["unchanged"]:
        line += f"; {counts['unchanged']} already adopted"
    if skipped:
        line += f"; {skipped} skipped"
    numbers = [f"#{a.seq}" for a in done if a.action != "unchanged" and a.seq is not None]
    if numbers and not dry_run:
        line += ": " + " ".join(numbers[:20]) + (" ..." if len(numbers) > 20 else "")
    click.echo(line)
