"""`vestige extract`: the part of a recorded notebook history that made one output, as a
plain script.

The target is a file a cell wrote (`--output`), a kept artefact (a displayed image
`cell-<n>/output-<k>`, or anything `vestige.keep` kept while a cell ran), or a cell
(`--cell N`, its step in execution order). The history is the run's cells object (the
versions that ran, in the order they ran, with the files each read and wrote); the
backward slice (slicing.py) keeps what the target needs and the script says where it
came from. A figure the cell only showed inline is saved by the script as the inline
backend rendered it (inline.py).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from vestige.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.extract.analysis import Step
    from vestige.extract.inline import InlineFigure
    from vestige.extract.slicing import Slice
    from vestige.records import Run
    from vestige.repo import Repo


class Extraction:
    """The script for one target, and what the slice had to say about it."""

    def __init__(self, script: str, steps: tuple[int, ...], total: int, target: int,
                 what: str, warnings: tuple[str, ...], needs: tuple[str, ...]) -> None:  # fmt: skip
        self.script = script
        self.steps = steps  # 1-based steps kept, in execution order
        self.total = total
        self.target = target  # 1-based step of the target
        self.what = what
        self.warnings = warnings
        self.needs = needs


def find_target(
    run: Run, cells: list[dict[str, Any]], *, output: str | None = None,
    artefact: str | None = None, cell: int | None = None, cwd: Path | None = None,
) -> tuple[int, str]:  # fmt: skip
    """(0-based index of the target cell, a description of the target)."""
    given = [x for x in (output, artefact, cell) if x is not None]
    if len(given) != 1:
        raise UsageError("give exactly one target: --output PATH, --artefact NAME or --cell N")
    if cell is not None:
        if not 1 <= cell <= len(cells):
            raise UsageError(f"run #{run.seq} executed cells 1..{len(cells)}; there is no "
                             f"cell {cell} (see `vestige cells {run.seq}`)")  # fmt: skip
        return cell - 1, f"cell {cell}"
    if output is not None:
        return _writer(run, cells, output, cwd or Path.cwd())
    assert artefact is not None
    return _artefact_cell(run, cells, artefact)


def _writer(run: Run, cells: list[dict[str, Any]], path: str, cwd: Path) -> tuple[int, str]:
    """The last cell that wrote `path` (its bytes at the end are that cell's)."""
    from vestige.repo import path_forms

    forms = path_forms(path, Path(run.root), cwd)
    for i in range(len(cells) - 1, -1, -1):
        if forms & set(cells[i].get("writes") or ()):
            name = next(p for p in cells[i]["writes"] if p in forms)
            return i, f"{name} (written by cell {i + 1})"
    made = any(f.path in forms for f in run.outputs)
    why = ("the run wrote it, but from no cell's own code (a child process?)" if made
           else "no cell of the run wrote it")  # fmt: skip
    raise UsageError(f"{path}: {why}; name the cell with --cell N (see `vestige cells "
                     f"{run.seq}`)")  # fmt: skip


def _artefact_cell(run: Run, cells: list[dict[str, Any]], name: str) -> tuple[int, str]:
    """The cell that displayed or kept the artefact `name` (with or without extension)."""
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    for i in range(len(cells) - 1, -1, -1):
        for out in cells[i].get("outputs") or ():
            for f in out.get("files") or ():
                if f == name or f.rsplit(".", 1)[0] == stem:
                    return i, f"{f} (shown by cell {i + 1})"
    for a in run.artefacts:  # vestige.keep: the cell running when it was kept
        files = [f.get("path") for f in a.get("files") or ()]
        if a.get("name") != name and name not in files:
            continue
        t = a.get("t")
        for i, c in enumerate(cells):
            start, end = c.get("started"), c.get("ended")
            if (
                isinstance(t, int | float)
                and isinstance(start, int | float)
                and start <= t
                and (end is None or t <= end)
            ):
                return i, f"{name} (kept by cell {i + 1})"
    names = sorted({f for c in cells for o in c.get("outputs") or () for f in o.get("files") or ()}
                   | {str(a.get("name")) for a in run.artefacts})  # fmt: skip
    hint = f"; the run's artefacts: {', '.join(names[:8])}" if names else ""
    raise UsageError(f"run #{run.seq} has no artefact {name!r} made by a cell{hint}")


def history(cells: list[dict[str, Any]]) -> list[Step]:
    """The cells as the slicer's steps (reads/writes as the run recorded them)."""
    from vestige.extract.analysis import Step

    return [
        Step(
            source=str(c.get("source") or ""),
            execution_count=c.get("count") if isinstance(c.get("count"), int) else None,
            ok=c.get("status") == "ok",
            reads=tuple(c.get("reads") or ()),
            writes=tuple(c.get("writes") or ()),
        )
        for c in cells
    ]


def extract(
    repo: Repo, run: Run, *, output: str | None = None, artefact: str | None = None,
    cell: int | None = None, names: list[str] | None = None, cwd: Path | None = None,
) -> Extraction:  # fmt: skip
    """The script that recomputes one target of a notebook run."""
    from vestige.extract.slicing import backward_slice, to_script
    from vestige.recording.cells import of_run

    cells: list[dict[str, Any]] = of_run(repo, run)["cells"]
    target, what = find_target(run, cells, output=output, artefact=artefact, cell=cell, cwd=cwd)
    steps = history(cells)
    sl: Slice = backward_slice(steps, target, names=names or None)
    inline = None
    if artefact is not None and not names:
        inline, note = _inline(cells, target, artefact, steps)
        if inline is not None:
            what += f"; the script saves it as {inline.path}"
        if note:
            sl = sl.replace(warnings=(*sl.warnings, note))
    missing = [n for n in names or () if n in sl.needs]
    if missing or not sl.steps:
        which = ", ".join(missing or names or ())
        raise UsageError(f"no cell up to cell {target + 1} defines {which}; see `vestige cells "
                         f"{run.seq} --source` for the names the history has")  # fmt: skip
    kept = tuple(i + 1 for i in sl.steps)
    again = (f"--output {output}" if output is not None else
             f"--artefact {artefact}" if artefact is not None else f"--cell {cell}")  # fmt: skip
    again += "".join(f" --name {n}" for n in names or ())
    script = to_script(steps, sl, _header(run, what, kept, len(cells), again), inline)
    return Extraction(script, kept, len(cells), target + 1, what, sl.warnings, sl.needs)


def _inline(
    cells: list[dict[str, Any]], target: int, artefact: str, steps: list[Step]
) -> tuple[InlineFigure | None, str | None]:
    """The figure the target cell only showed inline (the script saves it), or a note that
    the displayed image is not one the script can make."""
    from vestige.extract.inline import inline_figure

    figure = inline_figure(cells, target, artefact, [s.source for s in steps])
    if figure is not None:
        return figure, None
    stem = artefact.rsplit(".", 1)[0] if "." in artefact.rsplit("/", 1)[-1] else artefact
    for out in cells[target].get("outputs") or ():
        if any(str(f).rsplit(".", 1)[0] == stem for f in out.get("files") or ()):
            return None, (
                f"{artefact} is an image the cell displayed, not a matplotlib figure: the "
                "script re-runs the cell but does not save it"
            )
    return None, None


def _header(run: Run, what: str, kept: tuple[int, ...], total: int, again: str) -> str:
    when = _dt.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M")
    notebook = (run.notebook or {}).get("path") or "an IPython session"
    return "\n".join([
        f"Extracted by vestige from run #{run.seq} ({run.id}), {notebook}, started {when}.",
        f"Target: {what}.",
        f"Cells kept: {len(kept)} of {total} executed (steps {', '.join(map(str, kept))}),",
        "in the order they ran, each as the version that ran.",
        f"Again: vestige extract {run.seq} {again}",
    ])  # fmt: skip
