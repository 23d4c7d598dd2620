"""`vestige cells RUN`: the cells a notebook or IPython session executed, in order."""

from __future__ import annotations

from typing import Any

import click

from vestige.cli._common import RUN_ARG_SETTINGS, iso, open_repo, print_json, when
from vestige.errors import UsageError
from vestige.units import duration


@click.command("cells", context_settings=RUN_ARG_SETTINGS, epilog="""\b
A cell's number (N, the first column) is its step: the order cells were executed in;
[n] is the execution count the notebook showed.
Examples:
  vestige cells @last
  vestige cells 42 --source > history.py
  vestige cells 42 --cell 3
  vestige cells 42 --json | jq '.cells[] | select(.status == "error")'
""")  # fmt: skip
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="The cells as JSON.")
@click.option("--source", is_flag=True, help="Print every cell's source, in execution order.")
@click.option("--cell", "step", type=int, metavar="N", help="Show cell N in full.")
def command(run: str, as_json: bool, source: bool, step: int | None) -> None:
    """Show the cells a notebook or IPython session executed: order, count, time, status."""
    from vestige.recording.cells import of_run

    repo = open_repo()
    record = repo.run(run)
    data = of_run(repo, record)
    cells: list[dict[str, Any]] = data["cells"]
    if step is not None:
        if not 1 <= step <= len(cells):
            raise UsageError(f"run #{record.seq} has cells 1..{len(cells)}; there is no cell "
                             f"{step}")  # fmt: skip
        cell = cells[step - 1]
        if as_json:
            print_json(cell)
        else:
            click.echo(_full(record.seq, cell))
        return
    if as_json:
        print_json({"run": record.id, "seq": record.seq, "notebook": record.notebook,
                    "kernels": data.get("kernels") or [], "cells": cells})  # fmt: skip
        return
    if source:
        click.echo("".join(_source(c) for c in cells), nl=False)
        return
    click.echo(_table(record, cells))


def _status(cell: dict[str, Any]) -> str:
    err = cell.get("error") or {}
    if cell.get("status") == "error":
        return f"error {str(err.get('type') or '').rsplit('.', 1)[-1]}".rstrip()
    return str(cell.get("status"))


def _count(cell: dict[str, Any]) -> str:
    return f"[{cell['count']}]" if cell.get("count") is not None else "[ ]"


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line if len(line) <= 60 else line[:57] + "..."
    return ""


def _table(record: Any, cells: list[dict[str, Any]]) -> str:
    nb = record.notebook or {}
    errors = sum(1 for c in cells if c.get("status") == "error")
    where = f"  {nb['path']}" if nb.get("path") else ""
    head = f"run #{record.seq}  {len(cells)} cells, {errors} error{'s' * (errors != 1)}{where}"
    rows = [("step", "[n]", "started", "took", "status", "out", "source")]
    for c in cells:
        rows.append((str(c.get("step")), _count(c), when(c.get("started")),
                     duration(c.get("duration")), _status(c), str(len(c.get("outputs") or ())),
                     _first_line(str(c.get("source") or ""))))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [head]
    for r in rows:
        right = (True, True, False, True, False, True)
        cols = [r[i].rjust(w) if right[i] else r[i].ljust(w) for i, w in enumerate(widths)]
        cols.append(r[6])
        lines.append("  ".join(cols).rstrip())
    return "\n".join(lines)


def _source(cell: dict[str, Any]) -> str:
    """A cell in the percent format (`# %%`), so the history reads as a script."""
    text = str(cell.get("source") or "")
    head = f"# %% step {cell.get('step')} {_count(cell)} {_status(cell)}"
    return f"{head}\n{text.rstrip()}\n\n"


def _full(seq: int, cell: dict[str, Any]) -> str:
    lines = [f"cell {cell.get('step')} of run #{seq}  {_count(cell)}  {_status(cell)}"]
    add = lines.append
    add(f"  started   {iso(cell.get('started'))}   took {duration(cell.get('duration'))}")
    if cell.get("id"):
        add(f"  cell id   {cell['id']}")
    err = cell.get("error")
    if err:
        add(f"  error     {err.get('type')}: {err.get('message')}")
    for key in ("reads", "writes", "removed"):
        for path in cell.get(key) or ():
            add(f"  {key:9} {path}")
    for k, out in enumerate(cell.get("outputs") or (), 1):
        files = ", ".join(out.get("files") or ()) or "-"
        add(f"  output {k}  {out.get('type')} ({', '.join(out.get('mime') or ())}): {files}")
        text = str(out.get("text") or "")
        if text:
            lines.extend("      " + line for line in text.splitlines()[:20])
    add("source")
    lines.extend("  " + line for line in str(cell.get("source") or "").splitlines())
    for stream in ("stdout", "stderr"):
        text = str(cell.get(stream) or "")
        if text:
            add(stream)
            lines.extend("  " + line for line in text.rstrip("\n").splitlines())
    if err and err.get("traceback"):
        add("traceback")
        lines.extend("  " + line for line in str(err["traceback"]).rstrip().splitlines())
    return "\n".join(lines)
