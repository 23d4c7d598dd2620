"""A notebook run on the run page: its cells in the order they ran, with what each printed,
showed (text, images) and raised, as `vestige cells` reads them (recording/cells.of_run);
and `/run/<run>/extract?artefact=NAME | output=PATH | cell=N`, the script `vestige
extract` makes for one of them (extract/script.extract).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vestige.errors import UsageError, VestigeError
from vestige.records import Run
from vestige.repo import Repo
from vestige.ui import artefacts
from vestige.ui.ansi import to_html
from vestige.ui.state import Ui

#: Cells shown with their outputs on one page (a session may run thousands).
MAX_CELLS = 500
#: Characters of a cell's printed text and of an output's text shown.
MAX_TEXT = 20_000
#: Files a cell wrote that are figures: each gets an "extract" link.
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf", ".gif", ".webp")


def cells_of(repo: Repo, run: Run) -> dict[str, Any] | None:
    """The run's cells ready to show ({cells, total, errors, path}), or None when it is
    not a notebook run (or ran no cell)."""
    if not run.notebook:
        return None
    from vestige.recording.cells import of_run

    try:
        data = of_run(repo, run)
    except VestigeError:
        return None
    cells: list[dict[str, Any]] = data.get("cells") or []
    kept = {str(f.get("path")) for a in run.artefacts for f in a.get("files") or ()}
    outputs = {f.path for f in run.outputs if f.kept and f.hash}
    shown = [_cell(run, c, kept, outputs) for c in cells[:MAX_CELLS]]
    return {"cells": shown, "total": len(cells), "path": (run.notebook or {}).get("path"),
            "errors": sum(1 for c in cells if c.get("status") == "error")}  # fmt: skip


def extract_url(run_id: str, **target: str | int) -> str:
    """The URL of the script `vestige extract` makes for one target of a run."""
    return f"/run/{run_id}/extract?{urlencode(target)}"


def _cell(run: Run, c: dict[str, Any], kept: set[str], outputs: set[str]) -> dict[str, Any]:
    err = c.get("error") or None
    shown_outputs = []
    for out in c.get("outputs") or ():
        images = []
        for f in out.get("files") or ():
            f = str(f)
            if f in kept:
                stem = f.rsplit(".", 1)[0] if "." in f.rsplit("/", 1)[-1] else f
                images.append({"path": f, "url": artefacts.url(run.id, f),
                               "extract": extract_url(run.id, artefact=stem)})  # fmt: skip
        text = str(out.get("text") or "")
        shown_outputs.append({"type": out.get("type"), "images": images,
                              "text": None if images else _cut(text)})  # fmt: skip
    written = []
    for path in c.get("writes") or ():
        path = str(path)
        figure = PurePosixPath(path).suffix.lower() in FIGURE_SUFFIXES
        written.append({
            "path": path,
            "url": artefacts.url(run.id, path) if path in outputs else None,
            "extract": extract_url(run.id, output=path) if figure else None,
        })  # fmt: skip
    return {
        "step": c.get("step"),
        "count": c.get("count"),
        "status": c.get("status"),
        "duration": c.get("duration"),
        "source": artefacts.highlight("cell.py", str(c.get("source") or "")),
        "stdout": to_html(_cut(str(c.get("stdout") or ""))),
        "stderr": to_html(_cut(str(c.get("stderr") or ""))),
        "outputs": shown_outputs,
        "written": written,
        "error": None if err is None else {
            "type": str(err.get("type") or ""), "message": str(err.get("message") or ""),
            "traceback": to_html(_cut(str(err.get("traceback") or "")))},
        "extract": extract_url(run.id, cell=int(c.get("step") or 0)),
    }  # fmt: skip


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n... ({len(text):,} characters)"


def extract_page(request: Request) -> Response:
    """GET /run/<run>/extract?artefact=NAME|output=PATH|cell=N[&download=1]: the script
    that re-makes that output, highlighted (or as a file); a bad target is a 400 that
    says what was wrong, as `vestige extract` does."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    qp = request.query_params
    try:
        run = repo.run(request.path_params["run"])
    except VestigeError as e:
        return ui.render(request, "error.html", status=404, message=str(e))
    cell = qp.get("cell")
    try:
        if cell is not None and not cell.strip().isdigit():
            raise UsageError(f"cell={cell!r} is not a cell number: give one of `vestige cells "
                             f"{run.seq}`")  # fmt: skip
        from vestige.extract.script import extract

        result = extract(repo, run, output=qp.get("output"), artefact=qp.get("artefact"),
                         cell=int(cell) if cell is not None else None,
                         cwd=Path(run.root) / run.cwd)  # fmt: skip
    except UsageError as e:
        return ui.render(request, "error.html", status=400, message=str(e))
    except VestigeError as e:
        return ui.render(request, "error.html", status=404, message=str(e))
    if qp.get("download") == "1":
        name = f"extract-{run.seq}-step-{result.target}.py"
        return Response(result.script, media_type="text/x-python; charset=utf-8", headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name)}"})  # fmt: skip
    query = urlencode([*((k, v) for k, v in qp.multi_items() if k != "download"),
                       ("download", "1")])  # fmt: skip
    return ui.render(request, "extract.html", run=run, result=result,
                     html=artefacts.highlight("extract.py", result.script),
                     download=f"/run/{run.id}/extract?{query}")  # fmt: skip


routes = [Route("/run/{run}/extract", extract_page)]
