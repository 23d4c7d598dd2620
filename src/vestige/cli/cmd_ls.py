"""`vestige ls`: runs, newest first, filtered by status or a --where expression."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

import click

from vestige.cli._common import fmt_number, open_repo, print_json, status_style, when
from vestige.errors import UsageError
from vestige.records import STATUSES
from vestige.units import duration

EPILOG = """\b
Examples:
  vestige ls --status failed
  vestige ls --where 'params.lr < 0.01 and status = "ok"' --limit 5
  vestige ls --where 'started > "7d" and command contains "train"' --json
  vestige ls --where 'note contains "spike" or name matches "^base"'
  vestige ls --cols loss,acc --where 'metrics.loss < 0.3'
  vestige ls --sweep 57 --cols loss

--cols NAME,...: a column per metric (its last value) or param; a bare name is a
metric if any listed run logged it, else a param; metrics.NAME / params.NAME choose.
\b
--where fields: params.NAME, metrics.NAME, status, exit_code, command, started,
ended, duration, id, seq, parent, rerun_of, tag, note, name, pinned, adopted; operators
= != < <= > >= ~ (glob, whole text), contains (substring, any case), matches (regular
expression), in (...), is null, and, or, not, parentheses. See docs/cli.md.
"""


@click.command("ls", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--where", "where", metavar="EXPR", help="Filter with a query (see below).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="At most N runs.")
@click.option("--sweep", "sweep", metavar="RUN", help="Only the children of this sweep.")
@click.option("--cols", "cols", metavar="NAMES", help="Extra columns: metrics or params.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (stable, docs/cli.md).")
def command(
    status: str | None, where: str | None, limit: int | None, sweep: str | None,
    cols: str | None, as_json: bool,
) -> None:  # fmt: skip
    """List runs, newest first."""
    repo = open_repo()
    if sweep is not None:
        from vestige.sweep.run import sweep_where

        children = sweep_where(repo, sweep)
        where = f"({where}) and {children}" if where else children
    if where is not None and not sweep:
        from vestige.index.where import hints

        for line in hints(where):  # (a `~` without a wildcard: almost always a miss)
            click.echo(line, err=True)
    cap = limit if limit else (None if as_json else 50)
    runs = repo.runs(where=where, status=status, limit=cap)
    pinned = repo.index.marks.pinned_of([r["id"] for r in runs])  # `vestige pin`: gc keeps them
    for r in runs:
        r["pinned"] = r["id"] in pinned
    came = _origins(repo, runs)  # pulled runs: where they were made, which remote brought them
    for r in runs:
        r["origin"] = came.get(r["id"])
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs match" if (where or status) else "no runs yet: try `vestige run ...`")
        return
    total = len(runs)
    if cap is not None and len(runs) == cap:  # (cut, perhaps: say how many there are)
        from vestige.index.where import compile_where

        total = repo.index.runs.count_rows(compile_where(where) if where else None, status)
    from rich.console import Console
    from rich.table import Table

    extra = _columns(cols, runs)
    if pinned:
        extra.insert(0, ("pinned", "pinned", ""))
    # name and tags columns when a listed run has one (`vestige name`, `vestige tag`)
    named, tagged = any(r.get("name") for r in runs), any(r["tags"] for r in runs)
    rows = []
    for r in runs:
        rows.append(
            (
                str(r["seq"]),
                r["id"][:10],
                *((r.get("name") or "",) if named else ()),
                r["status"],
                when(r["started"]),
                duration(r["duration"]),
                "" if r["exit_code"] is None else str(r["exit_code"]),
                _command(r),
                " ".join(f"{k}={v}" for k, v in r["params"].items()),
                *((" ".join(r["tags"]),) if tagged else ()),
                *((_from(r["origin"]),) if came else ()),
                *(_cell(r, kind, key) for _label, kind, key in extra),
            )
        )

    tty = sys.stdout.isatty()
    base = ("#", "id", *(("name",) if named else ()), "status", "started", "took", "exit",
            "command", "params", *(("tags",) if tagged else ()),
            *(("from",) if came else ()))  # fmt: skip
    names = (*base, *(label for label, _kind, _key in extra))
    status_at = base.index("status")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for n, name in enumerate(names):
        wide = n < len(base) and name in ("command", "params", "tags")
        natural = max(len(name), *(len(row[n]) for row in rows))
        # (metrics and params right, the pinned mark, first of the extra columns, left)
        right = name in ("#", "took", "exit") if n < len(base) else not (pinned and n == len(base))
        table.add_column(
            name,
            justify="right" if right else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=None if wide else natural,
            max_width=60 if wide and tty else None,
        )
    for row in rows:
        status_cell = f"[{status_style(row[status_at])}]{row[status_at]}[/]"
        table.add_row(*row[:status_at], status_cell, *row[status_at + 1 :])
    # On a terminal, fit its width (long commands are cut); in a pipe, print whole lines.
    width = None if tty else 10_000
    Console(highlight=False, width=width).print(table)
    if total > len(runs):  # (on stderr: a pipe gets the rows only)
        click.echo(f"{len(runs)} of {total:,} shown (-n N)", err=True)


def _columns(cols: str | None, runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(label, "metrics" or "params", key) for each name of --cols."""
    if not cols:
        return []
    out = []
    for raw in cols.split(","):
        name = raw.strip()
        if not name:
            continue
        kind, dot, key = name.partition(".")
        if dot and kind in ("metrics", "params") and key:
            out.append((key, kind, key))
            continue
        metric = any(name in r["metrics"] for r in runs)
        if not metric and not any(name in r["params"] for r in runs):
            raise UsageError(f"--cols: no listed run has a metric or param {name!r}")
        out.append((name, "metrics" if metric else "params", name))
    if not out:
        raise UsageError("--cols needs names, e.g. --cols loss,acc")
    return out


def _cell(run: dict[str, Any], kind: str, key: str) -> str:
    if kind == "pinned":
        return "pinned" if run["pinned"] else ""
    if key not in run[kind]:
        return ""
    value = run[kind][key]
    return fmt_number(value) if kind == "metrics" else str(value)


def _origins(repo: Any, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{run id: origin} of the pulled runs listed (`vestige pull`; remote/sync.py)."""
    from vestige.store.arrivals import arrivals_dir

    if not runs or not arrivals_dir(repo.store).is_dir():  # (nothing pulled: nothing to read)
        return {}
    from vestige.remote.sync import origins

    return origins(repo, runs)


def _from(origin: dict[str, Any] | None) -> str:
    """The `from` cell: user@host and the remote a pulled run came from; empty when made here."""
    if origin is None:
        return ""
    who = "@".join(p for p in (origin["user"], origin["host"]) if p)
    return f"{who} via {origin['remote']}" if who else f"via {origin['remote']}"


def _command(r: dict[str, Any]) -> str:
    """The command, its program without its folder; an adopted run whose tool named no
    command says which tool it came from."""
    argv = r["command"]
    if not argv:
        return f"({r['adopted']} run)" if r.get("adopted") else "-"
    return shlex.join([os.path.basename(argv[0]), *argv[1:]])
