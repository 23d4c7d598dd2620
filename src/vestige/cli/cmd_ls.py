"""`vestige ls`: runs, newest first, filtered by status or a --where expression."""

from __future__ import annotations

import os
import shlex
import sys

import click

from vestige.cli._common import duration, open_repo, print_json, status_style, when
from vestige.records import STATUSES

EPILOG = """\b
Examples:
  vestige ls --status failed
  vestige ls --where 'params.lr < 0.01 and status = "ok"' --limit 5
  vestige ls --where 'started > "7d" and command ~ "*train*"' --json
\b
--where fields: params.NAME, metrics.NAME, status, exit_code, command, started,
ended, duration, id, seq, tag; operators = != < <= > >= ~ (glob), in (...),
is null, and, or, not, parentheses. See docs/cli.md.
"""


@click.command("ls", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--where", "where", metavar="EXPR", help="Filter with a query (see below).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (stable, docs/cli.md).")
def command(status: str | None, where: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first."""
    repo = open_repo()
    runs = repo.runs(
        where=where, status=status, limit=limit if limit else (None if as_json else 50)
    )
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs match" if (where or status) else "no runs yet: try `vestige run ...`")
        return
    from rich.console import Console
    from rich.table import Table

    rows = []
    for r in runs:
        rows.append(
            (
                str(r["seq"]),
                r["id"][:10],
                r["status"],
                when(r["started"]),
                duration(r["duration"]),
                "" if r["exit_code"] is None else str(r["exit_code"]),
                shlex.join([os.path.basename(r["command"][0]), *r["command"][1:]]),
                " ".join(f"{k}={v}" for k, v in r["params"].items()),
            )
        )

    tty = sys.stdout.isatty()
    names = ("#", "id", "status", "started", "took", "exit", "command", "params")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for n, name in enumerate(names):
        wide = name in ("command", "params")
        natural = max(len(name), *(len(row[n]) for row in rows))
        table.add_column(
            name,
            justify="right" if name in ("#", "took", "exit") else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=None if wide else natural,
            max_width=60 if wide and tty else None,
        )
    for row in rows:
        table.add_row(*row[:2], f"[{status_style(row[2])}]{row[2]}[/]", *row[3:])
    # On a terminal, fit its width (long commands are cut); in a pipe, print whole lines.
    width = None if tty else 10_000
    Console(highlight=False, width=width).print(table)
