"""`vestige compare RUN... | --where EXPR`: params and metrics of runs side by side."""

from __future__ import annotations

import sys
from typing import Any

import click

from vestige.cli._common import RUN_ARG_SETTINGS, fmt_number, open_repo, print_json, status_style
from vestige.errors import UsageError


@click.command("compare", context_settings=RUN_ARG_SETTINGS, epilog="""\b
One row per run: #, status, then a column per param and per metric (its last value).
Columns whose values differ across the runs come first; columns that are the same in
every run are hidden (listed under the table as "constant: ...") unless --all.
Runs named on the command line keep that order; --where lists them oldest first.
RUN is a number (42 or #42), @last, -1 (the newest), -2, ..., or an id prefix;
name runs or give --where, not both.
Examples:
  vestige compare 40 41 42
  vestige compare --where 'tag = sweep-lr' --all
  vestige compare -3 -2 -1 --json
""")  # fmt: skip
@click.argument("runs", nargs=-1, metavar="RUN...")
@click.option("--where", "where", metavar="EXPR", help="Compare the runs this query finds.")
@click.option("--sweep", "sweep", metavar="RUN", help="Compare the children of this sweep.")
@click.option("--all", "show_all", is_flag=True, help="Also show the columns that are constant.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def command(
    runs: tuple[str, ...], where: str | None, sweep: str | None, show_all: bool, as_json: bool
) -> None:
    """Compare the params and metrics of several runs in one table."""
    from vestige.history.diff import compare_runs

    repo = open_repo()
    if where is not None:
        from vestige.index.where import hints

        for line in hints(where):  # (a `~` without a wildcard: almost always a miss)
            click.echo(line, err=True)
    if sweep is not None:
        if runs:
            raise UsageError("name runs or give --sweep, not both")
        from vestige.sweep.run import sweep_of, sweep_where

        parent_run = sweep_of(repo, sweep)
        children = sweep_where(repo, sweep)
        wanted = f"({where}) and {children}" if where else children
        n = len(repo.runs(where=wanted))
        if n < 2:  # (said here: compare_runs would speak of a --where the user did not give)
            children = "child" if n == 1 else "children"
            holds = " for which --where holds" if where else ""
            raise UsageError(f"compare needs at least 2 runs; sweep #{parent_run.seq} has {n} "
                             f"recorded {children}{holds}")  # fmt: skip
        where = wanted
    table = compare_runs(repo, runs, where)
    if as_json:
        print_json(table)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    differing = [c for c in table["columns"] if c["differs"]]
    constant = [c for c in table["columns"] if not c["differs"]]
    shown = differing + constant if show_all else differing
    out = Table(box=None, pad_edge=False, header_style="bold")
    out.add_column("#", justify="right", no_wrap=True)
    out.add_column("status", no_wrap=True)
    for c in shown:
        out.add_column(c["name"], justify="right" if c["kind"] == "metric" else "left",
                       no_wrap=True, header_style="bold" if c["differs"] else "dim")  # fmt: skip
    for i, run in enumerate(table["runs"]):
        style = status_style(run["status"])
        cells = [escape(_cell(c, i)) for c in shown]
        out.add_row(str(run["seq"]), f"[{style}]{run['status']}[/]", *cells)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)
    console.print(out)
    if not differing:
        click.echo("no param or metric differs across these runs")
    if constant and not show_all:
        listed = ", ".join(f"{c['name']}={_cell(c, 0)}" for c in constant)
        click.echo(f"constant: {listed}")


def _cell(column: dict[str, Any], i: int) -> str:
    if not column["present"][i]:
        return ""
    value = column["values"][i]
    if column["kind"] == "metric":
        return "nan" if value is None else fmt_number(value)
    return str(value)
