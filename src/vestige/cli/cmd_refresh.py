"""`vestige refresh`: rerun the stale runs, upstream first (the same as `vestige stale --run`)."""

from __future__ import annotations

import click

from vestige.cli.cmd_stale import refresh


@click.command("refresh", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Reruns what `vestige stale` lists, in its order: each run's command again in its
folder, with the code and inputs as they are now, recorded as a new run (with a note
naming the run it refreshes). A run starts once the stale runs that made its inputs
are refreshed; one a later run of the same command did with the code and inputs as
they are now (an earlier refresh) is fresh and does not run.
The first failure stops the refresh (runs going on finish) unless --keep-going: then
only the runs downstream of a failure are skipped. Exit code 1 when a run failed,
130 when interrupted, else 0 (also when nothing was stale).
Examples:
  vestige refresh --dry-run
  vestige refresh -j 4 --keep-going
""")  # fmt: skip
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="N", help="Up to N independent runs at once.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print the order and the commands; run nothing.")
@click.option("--keep-going", is_flag=True,
              help="After a failure, go on with the runs that do not need it.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the runs and how each ended as JSON.")
def command(jobs: int, dry_run: bool, keep_going: bool, as_json: bool) -> None:
    """Rerun the stale runs in dependency order, upstream first (like `dvc repro`)."""
    refresh(jobs, dry_run, keep_going, as_json)
