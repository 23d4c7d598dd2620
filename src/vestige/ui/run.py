"""The run page (`/run/<run>`): what a run was, read, wrote, printed and logged; its
tags and notes, which a form changes (POST with the CSRF token: no GET changes
anything). `<run>` is anything `vestige show` takes: an id, a prefix, a number.

Its parts with pages of their own: the code (code.py), a notebook's cells and extract
(cells.py), a running run's live events (live.py); their routes are listed with these."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vestige.errors import StoreReadOnly, UsageError, VestigeError
from vestige.records import Run
from vestige.repo import Repo
from vestige.ui import artefacts, cells, charts, code, live
from vestige.ui.ansi import to_html
from vestige.ui.security import CHART_CSP
from vestige.ui.state import Ui

#: A log page: this many bytes (cut at a line's end).
LOG_PAGE = 128 * 1024
#: Previews on one page (each reads up to 64 KiB); the rest are listed.
MAX_PREVIEWS = 24
#: Inputs and outputs whose maker/readers are looked up (one-hop lineage).
MAX_LINKED = 200


def log_pages(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each page of a log, cut after a newline where there is one."""
    pages, start = [], 0
    while start < len(data):
        end = min(len(data), start + LOG_PAGE)
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            end = cut + 1 if cut > start else end
        pages.append((start, end))
        start = end
    return pages or [(0, 0)]


def _log(repo: Repo, run: Run, stream: str, page: int | None) -> dict[str, Any]:
    """One page of a stream (the last unless asked), as HTML with its colours."""
    data = repo.output_log(run.id, stream)
    pages = log_pages(data)
    number = len(pages) - 1 if page is None else max(0, min(page, len(pages) - 1))
    start, end = pages[number]
    return {"stream": stream, "html": to_html(data[start:end].decode("utf-8", "replace")),
            "page": number, "pages": len(pages), "size": len(data)}  # fmt: skip


def _env(repo: Repo, run: Run) -> dict[str, Any] | None:
    env = repo.environment(run)
    if env is None:
        return None
    python = env.get("python") or {}
    return {
        "python": python.get("version") or python.get("implementation"),
        "executable": python.get("executable"),
        "platform": env.get("platform") or {},
        "cpu": env.get("cpu") or {},
        "memory": env.get("memory_bytes"),
        "gpus": env.get("gpus") or [],
        "conda": env.get("conda"),
        "packages": [tuple(d) for d in env.get("distributions") or []],
        "env_vars": sorted((env.get("env_vars") or {}).items()),
    }


def _lineage(repo: Repo, run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs with the run that made their bytes, outputs with the runs that read them."""
    inputs = []
    for f in run.inputs[:MAX_LINKED]:
        maker = repo.producer(f.hash, before=run.started, path=f.path) if f.hash else None
        inputs.append({"file": f, "url": artefacts.url(run.id, f.path) if f.kept else None,
                       "maker": maker})  # fmt: skip
    outputs = []
    for f in run.outputs[:MAX_LINKED]:
        readers = []
        if f.hash:
            seen = set()
            for r in repo.index.files.readers_of(f.hash):
                if r["id"] != run.id and r["id"] not in seen:
                    seen.add(r["id"])
                    readers.append(r)
        outputs.append({"file": f, "url": artefacts.url(run.id, f.path) if f.kept else None,
                        "readers": readers[:5], "more": max(0, len(readers) - 5)})  # fmt: skip
    return inputs, outputs


def _gallery(repo: Repo, run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(previews, the files beyond MAX_PREVIEWS): outputs, then kept artefacts."""
    files: list[tuple[str, dict[str, Any]]] = [("output", f.to_dict()) for f in run.outputs]
    seen = {f["path"] for _r, f in files}
    for a in run.artefacts:
        for f in a.get("files") or ():
            if f.get("path") not in seen:
                seen.add(f.get("path"))
                files.append(("artefact", dict(f)))
    shown = [artefacts.preview(repo, run, role, f) for role, f in files[:MAX_PREVIEWS]]
    rest = [{"path": f["path"], "url": artefacts.url(run.id, f["path"]), "size": f.get("size")}
            for _r, f in files[MAX_PREVIEWS:]]  # fmt: skip
    return shown, rest


def _run_or_404(ui: Ui, request: Request) -> tuple[Repo, Run] | Response:
    repo = ui.repo()
    try:
        return repo, repo.run(request.path_params["run"])
    except VestigeError as e:
        return ui.render(request, "error.html", status=404, message=str(e))


def run_page(request: Request) -> Response:
    """GET /run/<run>."""
    ui: Ui = request.app.state.ui
    found = _run_or_404(ui, request)
    if isinstance(found, Response):
        return found
    repo, run = found
    parent = repo.index.runs.row(run.parent) if run.parent else None
    children = repo.index.runs.children_of(run.id) if run.sweep else []
    keys = sorted(((run.metrics or {}).get("keys") or {}).items())
    if run.status == "running":
        keys = [(k, {"count": len(s)}) for k, s in sorted(repo.metrics(run).items())]
    inputs, outputs = _lineage(repo, run)
    gallery, rest = _gallery(repo, run)
    snapshot = code.code_record(repo, run)
    files = code.files_of(repo, snapshot)
    running = run.status == "running"
    page = ui.render(
        request, "run.html", run=run, parent=parent, children=children,
        git=snapshot.get("git") or {}, env=_env(repo, run),
        stdout=_log(repo, run, "stdout", None), stderr=_log(repo, run, "stderr", None),
        metric_keys=keys, inputs=inputs, outputs=outputs, gallery=gallery, rest=rest,
        params=sorted(run.params.items()), readonly=repo.readonly,
        json=lambda v: json.dumps(v, ensure_ascii=False),
        code_tree=code.tree(run.id, files) if files else None, code_files=len(files),
        script=(code.script_units(run) or [None])[0], cells=cells.cells_of(repo, run),
        running=running,
    )  # fmt: skip
    if keys or running:  # (a running run's charts may appear at any moment)
        page.headers["content-security-policy"] = CHART_CSP
    return page


def log_page(request: Request) -> Response:
    """GET /run/<run>/log/<stdout|stderr>?page=N: one page of what the run printed."""
    ui: Ui = request.app.state.ui
    found = _run_or_404(ui, request)
    if isinstance(found, Response):
        return found
    repo, run = found
    stream = request.path_params["stream"]
    if stream not in ("stdout", "stderr"):
        return ui.render(request, "error.html", status=404, message=f"no stream {stream!r}")
    page = request.query_params.get("page", "")
    log = _log(repo, run, stream, int(page) if page.isdigit() else 0)
    return ui.render(request, "log.html", run=run, log=log)


def metrics_json(request: Request) -> Response:
    """GET /run/<run>/metrics.json?key=K[&start=S&end=E]: a series, downsampled to draw;
    with a range (what a zoomed chart shows), that range's points at full resolution,
    downsampled again only past MAX_POINTS."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    qp = request.query_params
    try:
        bounds = [_bound(qp.get(name)) for name in ("start", "end")]
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    key = qp.get("key", "")
    try:
        run = repo.run(request.path_params["run"])
        series = charts.one_series(repo, run, key)
    except VestigeError as e:
        return JSONResponse({"error": str(e)}, status_code=404)
    if series is None:
        return JSONResponse({"error": f"run #{run.seq} has no metric {key!r}"}, status_code=404)
    out = charts.series_json(charts.in_range(series, *bounds))
    if bounds != [None, None]:
        out.update(start=bounds[0], end=bounds[1], total=len(series))
    return JSONResponse(out)


def _bound(text: str | None) -> float | None:
    """A range bound of the query (a step), or None when not given."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number: start and end are steps") from None
    if value != value:
        raise ValueError("start and end are steps, not nan")
    return value


async def annotate(request: Request) -> Response:
    """POST /run/<run>/note (text) or /run/<run>/tags (add, remove: words): through the
    library's annotate, as `vestige note` / `vestige tag` do; then back to the run."""
    ui: Ui = request.app.state.ui
    if request.path_params["what"] not in ("note", "tags"):
        return Response("not found\n", status_code=404, media_type="text/plain")
    try:
        form = await ui.form(request)
    except PermissionError as e:
        return Response(f"{e}\n", status_code=403, media_type="text/plain")
    from starlette.concurrency import run_in_threadpool

    what = request.path_params["what"]
    try:
        run_id = await run_in_threadpool(_annotate, ui, request.path_params["run"], what, form)
    except (UsageError, StoreReadOnly) as e:
        return ui.render(request, "error.html", status=400, message=str(e))
    except VestigeError as e:
        return ui.render(request, "error.html", status=404, message=str(e))
    return RedirectResponse(f"/run/{run_id}#{'notes' if what == 'note' else 'tags'}", 303)


def _annotate(ui: Ui, ref: str, what: str, form: dict[str, str]) -> str:
    from vestige.api.calls import check_tag

    repo = ui.repo()
    if repo.readonly:
        raise StoreReadOnly(f"the store {repo.store.path} is read-only: nothing can be added")
    if what == "note":
        text = form.get("text", "").strip("\n")
        if not text.strip():
            raise UsageError("the note is empty")
        return repo.annotate(ref, note=text).id
    add, remove = form.get("add", "").split(), form.get("remove", "").split()
    for t in (*add, *remove):
        try:
            check_tag(t)
        except ValueError:
            raise UsageError(f"{t!r} is not a tag: use a word without spaces or commas") from None
    return repo.annotate(ref, add=add, remove=remove).id


routes = [
    *code.routes,
    *cells.routes,
    *live.routes,
    Route("/run/{run}", run_page),
    Route("/run/{run}/log/{stream}", log_page),
    Route("/run/{run}/metrics.json", metrics_json),
    Route("/run/{run}/{what:str}", annotate, methods=["POST"]),
]
