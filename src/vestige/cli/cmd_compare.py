"""`vestige compare RUN... | --where EXPR`: params and metrics of runs side by side."""

from __future__ import annotations

from collections.abc import Iterator
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
    differing = [c for c in table["columns"] if c["differs"]]
    constant = [c for c in table["columns"] if not c["differs"]]
    shown = differing + constant if show_all else differing
    header = ["#", "status", *(c["name"] for c in shown)]
    right = [True, False, *(c["kind"] == "metric" for c in shown)]
    rows = [[str(run["seq"]), run["status"], *(_cell(c, i) for c in shown)]
            for i, run in enumerate(table["runs"])]  # fmt: skip
    header_styles = ["bold", "bold", *("bold" if c["differs"] else "dim" for c in shown)]
    for line in _aligned(header, rows, right, header_styles):
        click.echo(line)
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


def _aligned(
    header: list[str], rows: list[list[str]], right: list[bool], header_styles: list[str]
) -> Iterator[str]:
    """The table as aligned lines, two spaces between columns; styled on a colour terminal.

    Plain string work, not rich's Table: that took ~4 s of CPU for 3,000 rows (issue 23),
    and it shortened wide cells with an ellipsis where a comparison wants every digit.
    """
    from rich.cells import cell_len

    widths = [cell_len(h) for h in header]
    for row in rows:
        for j, cell in enumerate(row):
            n = cell_len(cell) if not cell.isascii() else len(cell)
            if n > widths[j]:
                widths[j] = n
    paint = _painter()

    def line(cells: list[str], styles: list[str | None]) -> str:
        parts = []
        for j, cell in enumerate(cells):
            pad = " " * (widths[j] - (len(cell) if cell.isascii() else cell_len(cell)))
            text = paint(cell, styles[j]) if styles[j] else cell
            parts.append(pad + text if right[j] else text + pad)
        return "  ".join(parts).rstrip()

    yield line(header, list(header_styles))
    plain: list[str | None] = [None] * len(header)
    for row in rows:
        styles = list(plain)
        styles[1] = status_style(row[1])
        yield line(row, styles)


def _painter() -> Any:
    """A function styling text with ANSI codes when stdout is a colour terminal, else as is.

    rich decides (NO_COLOR, TERM=dumb, FORCE_COLOR, a pipe), as for every other table.
    """
    from rich.console import Console
    from rich.style import Style

    system = Console().color_system
    if system is None:
        return lambda text, style: text
    from rich.color import ColorSystem

    cs = {"standard": ColorSystem.STANDARD, "256": ColorSystem.EIGHT_BIT,
          "truecolor": ColorSystem.TRUECOLOR, "windows": ColorSystem.WINDOWS}[system]  # fmt: skip
    cache: dict[str, Style] = {}

    def paint(text: str, style: str) -> str:
        parsed = cache.get(style) or cache.setdefault(style, Style.parse(style))
        return parsed.render(text, color_system=cs)

    return paint
