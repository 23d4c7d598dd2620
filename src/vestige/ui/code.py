"""A run's code on the run page: its snapshot as a file tree, one file of it highlighted
(`/run/<run>/code/<path>`), and what changed since the previous run of the same script
(`/run/<run>/diff`, the code section `vestige diff` prints, history/diff.code_changes).

Files are found in the run's tree object (and its modules imported from outside the
project), by exact path, never on disk: a path the snapshot does not hold reaches nothing.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vestige.errors import CorruptObject, VestigeError
from vestige.records import Run
from vestige.repo import Repo
from vestige.ui import artefacts
from vestige.ui.state import Ui

#: Code files larger than this are not highlighted (Pygments takes ~1 s a MiB).
MAX_SHOWN = 1024 * 1024
#: Files drawn in a tree (a snapshot of a huge project lists the rest as a count).
MAX_TREE = 3000
#: The folder the tree shows modules imported from outside the project in.
OUTSIDE = "(outside the project)"


def code_record(repo: Repo, run: Run) -> dict[str, Any]:
    """The run's `code` record: the manifest's, or for a running run what its live
    directory holds once the snapshot is stored ({} before)."""
    if run.code or run.status != "running":
        return dict(run.code or {})
    from vestige.store.live import LiveRun

    return dict(LiveRun(repo.store.live_dir(run.id)).code or {})


def files_of(repo: Repo, code: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file of a snapshot: {path, size, hash, kept, outside}, the tree's in path
    order, then the modules imported from outside the project."""
    from vestige.store.tree import read_tree

    out: list[dict[str, Any]] = []
    if code.get("tree"):
        try:
            entries = read_tree(repo.store.objects, code["tree"])
        except (CorruptObject, OSError, ValueError):
            entries = []
        out += [{"path": e.path, "size": e.size, "hash": e.hash, "kept": e.kept,
                 "outside": False} for e in entries]  # fmt: skip
    for m in code.get("modules") or ():
        out.append({"path": str(m.get("path")), "size": m.get("size"), "hash": m.get("hash"),
                    "kept": bool(m.get("kept")), "outside": True})  # fmt: skip
    return out


def file_url(run_id: str, path: str) -> str:
    """The URL of one code file of a run (an absolute path as `?abs=1`, as artefacts)."""
    if path.startswith("/"):
        return f"/run/{run_id}/code/{quote(path.lstrip('/'))}?abs=1"
    return f"/run/{run_id}/code/{quote(path)}"


def tree(run_id: str, files: list[dict[str, Any]], current: str | None = None) -> dict[str, Any]:
    """The files as nested folders: {"name", "path", "dirs": [...], "files": [...],
    "open"}; a folder is open when it holds `current` (the file shown). The first
    MAX_TREE files only (and `current`): the root's "more" counts the others."""
    shown = files[:MAX_TREE] + [f for f in files[MAX_TREE:] if f["path"] == current]
    root: dict[str, Any] = {"name": "", "path": "", "dirs": {}, "files": [], "open": True,
                            "more": len(files) - len(shown)}  # fmt: skip
    for f in shown:
        parts = [OUTSIDE, f["path"]] if f["outside"] else f["path"].split("/")
        node = root
        for i, part in enumerate(parts[:-1]):
            path = "/".join(parts[: i + 1])
            node = node["dirs"].setdefault(part, {"name": part, "path": path, "dirs": {},
                                                  "files": [], "open": False})  # fmt: skip
            if current is not None and current.startswith(path + "/"):
                node["open"] = True
        node["files"].append({**f, "name": parts[-1], "url": file_url(run_id, f["path"]),
                              "current": f["path"] == current})  # fmt: skip
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    node["dirs"] = [_sorted(d) for _n, d in sorted(node["dirs"].items())]
    return node


def script_units(run: Run) -> list[str]:
    """The root-relative paths of the script a run ran (its notebook; `python x.py`,
    `x.py`; both forms of `-m a.b`): the code units whose runs are its predecessors."""
    from vestige.recording.process import python_script

    base = run.cwd if run.cwd and not run.cwd.startswith("/") else ""
    nb = (run.notebook or {}).get("path")
    argv = list(run.command)
    if isinstance(nb, str) and nb:
        script: str | None = nb
    elif argv and argv[0].endswith(".py"):
        script = argv[0]  # (`vestige run x.py`: recorded as typed)
    elif argv and os.path.basename(argv[0]).startswith("python") and "-m" in argv[1:3]:
        i = argv.index("-m")
        mod = argv[i + 1].replace(".", "/") if i + 1 < len(argv) else ""
        if mod.startswith("vestige/"):
            return []
        return [f"{mod}.py", f"{mod}/__main__.py"] if mod else []
    else:
        script = python_script(argv) if argv else None
    if not script or script.startswith("/"):
        return []
    return [posixpath.normpath(posixpath.join(base, script))]


def previous_run(repo: Repo, run: Run) -> Run | None:
    """The latest run before this one of the same script (its code units' runs, those
    whose own script it was), or None."""
    units = script_units(run)
    best: tuple[float, int, str] | None = None
    for unit in units:
        for row in repo.index.debt.unit_runs(unit, now=run.started):
            if row["id"] == run.id or row["seq"] >= run.seq:
                continue
            try:
                other = Run(id=row["id"], seq=row["seq"], status=row["status"],
                            command=json.loads(row["argv"]), cwd=row["cwd"] or "",
                            root=row["root"] or "", started=row["started"])  # fmt: skip
            except (ValueError, TypeError):
                continue
            if unit not in script_units(other):
                continue  # it only imported the script
            key = (row["started"], row["seq"], row["id"])
            if best is None or key > best:
                best = key
    return repo.run(best[2]) if best is not None else None


def _not_found(ui: Ui, request: Request, message: str) -> Response:
    return ui.render(request, "error.html", status=404, message=message)


def code_file(request: Request) -> Response:
    """GET /run/<run>/code/<path>: one file of the run's code snapshot, highlighted,
    beside the snapshot's tree."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    raw = request.path_params["path"]
    path = "/" + raw if request.query_params.get("abs") == "1" else raw
    try:
        run = repo.run(request.path_params["run"])
    except VestigeError as e:
        return _not_found(ui, request, str(e))
    files = files_of(repo, code_record(repo, run))
    found = next((f for f in files if f["path"] == path), None)
    if found is None:
        return _not_found(ui, request, f"the code snapshot of run #{run.seq} holds no "
                          f"file {path!r}")  # fmt: skip
    shown = _shown(repo, found)
    return ui.render(request, "code.html", run=run, file=found, shown=shown,
                     tree=tree(run.id, files, current=path))  # fmt: skip


def _shown(repo: Repo, f: dict[str, Any]) -> dict[str, Any]:
    """{html} of a file highlighted, or {why} it is not shown."""
    digest = f.get("hash")
    if not digest or not f.get("kept") or not repo.store.objects.available(digest):
        return {"why": "the snapshot recorded this file's hash but kept no copy of it"}
    if (f.get("size") or 0) > MAX_SHOWN:
        return {"why": f"too large to show here ({f['size']:,} bytes): `vestige cat` prints it"}
    try:
        data = repo.store.objects.read_bytes(digest, verify=True)
    except CorruptObject as e:
        return {"why": str(e)}
    if b"\0" in data[:8192]:
        return {"why": "a binary file"}
    text = data.decode("utf-8", "replace")
    return {"html": artefacts.highlight(f["path"], text), "lines": text.count("\n") + 1}


def code_diff(request: Request) -> Response:
    """GET /run/<run>/diff[?against=<run>]: the code changes from the previous run of the
    same script (or the run `against` names) to this one, as `vestige diff` shows them."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    try:
        run = repo.run(request.path_params["run"])
        against = request.query_params.get("against", "").strip()
        before = repo.run(against) if against else previous_run(repo, run)
    except VestigeError as e:
        return _not_found(ui, request, str(e))
    units = script_units(run)
    if before is None:
        return ui.render(request, "diff.html", run=run, before=None, units=units, changes=None)
    from vestige.history.diff import code_changes

    changes = code_changes(repo, before, run)
    for f in changes["files"]:
        f["html"] = artefacts.highlight("x.diff", f["diff"]) if f.get("diff") else None
    return ui.render(request, "diff.html", run=run, before=before, units=units,
                     changes=changes)  # fmt: skip


routes = [
    Route("/run/{run}/code/{path:path}", code_file),
    Route("/run/{run}/diff", code_diff),
]
