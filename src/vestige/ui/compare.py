"""The Compare page (`/compare?runs=12,15,@last`): two or more runs side by side.

Read through the library as `vestige compare` and `vestige diff` read (history/compare.py):
the params and metrics table (differing rows first, the same ones behind a toggle), a
chart per metric with a trace per run (`/compare/metrics.json`, downsampled on the
server), each run's code against the first run's (unified, per file, highlighted), and
each figure and table the runs made at one path: figures side by side, overlaid with a
slider, and their pixel difference (`/compare/pixels.png`, drawn on the server); tables
with filediff's verdict and, for CSV, the numeric difference (`/compare/verdicts.json`,
fetched after the page: it reads and parses every copy). Runs are named as the CLI
names them (`runs=` may repeat; `run=` too, as the runs page's checkboxes send them).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vestige.errors import UsageError, VestigeError
from vestige.history import compare as comparing
from vestige.records import Run
from vestige.repo import Repo
from vestige.ui import artefacts, charts, fmt
from vestige.ui.security import CHART_CSP
from vestige.ui.state import Ui

#: Charts on one page (a chart per metric); the other metrics are listed.
MAX_CHARTS = 24
#: Unified diff text highlighted per pair of runs; past it, files are listed, not shown.
MAX_DIFF_CHARS = 400_000
#: Significant digits of the values drawn (a chart shows 3 or 4): with all 17, the chart
#: data of 10 runs of benchmarks/ui.py was 197 KiB.
DIGITS = 7
#: The pixel difference of an image pair: (a, b, path) names it, the bytes never change.
PIXELS_CACHE = "private, max-age=86400"


def _refs(request: Request) -> list[str]:
    """The run references of the URL: `runs=` (comma-separated, may repeat) and `run=`."""
    qp = request.query_params
    return comparing.parse_refs([*qp.getlist("runs"), *qp.getlist("run")])


def points_per_series(n_runs: int) -> int:
    """Points drawn per run in an overlaid chart: the run page's 2,000 for two runs,
    fewer for more: 4,000 a chart (10 runs: 400 each), at least 200 a run."""
    return max(200, min(charts.MAX_POINTS, 2 * charts.MAX_POINTS // max(1, n_runs)))


def metric_keys(repo: Repo, runs: list[Run]) -> list[str]:
    """Every metric any of the runs logged, sorted (a running run's from its journals)."""
    keys: set[str] = set()
    for run in runs:
        if run.status == "running":
            keys.update(repo.metrics(run))
        else:
            keys.update(((run.metrics or {}).get("keys") or {}).keys())
    return sorted(keys)


def _table_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """compare_runs' columns as rows of the page: a name, a cell per run, differs."""
    rows = []
    for c in table["columns"]:
        cells = []
        for value, present in zip(c["values"], c["present"], strict=True):
            if not present:
                cells.append({"text": "", "absent": True})
            elif c["kind"] == "metric":
                cells.append({"text": "nan" if value is None else fmt.number(value)})
            else:
                cells.append({"text": value if isinstance(value, str) else json.dumps(value)})
        rows.append({"name": c["name"], "kind": c["kind"], "differs": c["differs"], "cells": cells})
    return rows


def _code_view(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair's changed files, their diffs highlighted until MAX_DIFF_CHARS."""
    out = []
    for pair in pairs:
        budget = MAX_DIFF_CHARS
        files = []
        for f in pair["code"]["files"]:
            diff = f["diff"] or ""
            shown = bool(diff) and len(diff) <= budget
            if shown:
                budget -= len(diff)
            files.append(
                {
                    **f,
                    "html": artefacts.highlight("changes.diff", diff) if shown else None,
                    "cut": bool(diff) and not shown,
                }
            )
        out.append(
            {
                "base": pair["base"],
                "run": pair["run"],
                "files": files,
                "git": pair["code"]["git"],
                "data_files": pair["code"]["data_files"],
            }
        )
    return out


def _verdicts_url(runs: list[Run], path: str) -> str:
    """Where the page's script gets the verdicts of one shared file (verdicts_json)."""
    return "/compare/verdicts.json?" + urlencode(
        {"runs": ",".join(r.id for r in runs), "path": path}
    )


def _figure_view(runs: list[Run], shared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each shared figure: its copy in each run, and each run against the base copy (the
    overlay and the pixel difference, unless the bytes are the same)."""
    out = []
    for item in shared:
        path, base, files = item["path"], item["base"], item["files"]
        copies = [
            {"run": run, "url": artefacts.url(run.id, path) if f and f[2] else None,
             "present": f is not None}
            for run, f in zip(runs, files, strict=True)
        ]  # fmt: skip
        pairs = []
        for i, f in enumerate(files):
            if i == base or f is None:
                continue
            query = urlencode({"a": runs[base].id, "b": runs[i].id, "path": path})
            pairs.append({"base": copies[base], "other": copies[i],
                          "identical": f[1] is not None and f[1] == files[base][1],
                          "pixels": f"/compare/pixels.png?{query}"})  # fmt: skip
        out.append({"path": path, "copies": copies, "pairs": pairs,
                    "verdicts": _verdicts_url(runs, path),
                    "browser_image": artefacts.content_type(path) in artefacts.IMAGES})  # fmt: skip
    return out


def _tables_view(runs: list[Run], shared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each shared table: the runs whose copy is compared with the base copy."""
    out = []
    for item in shared:
        base, files = item["base"], item["files"]
        others = [r for i, (r, f) in enumerate(zip(runs, files, strict=True))
                  if f is not None and i != base]  # fmt: skip
        absent = [r for r, f in zip(runs, files, strict=True) if f is None]
        out.append({"path": item["path"], "kind": item["kind"], "base": runs[base],
                    "others": others, "url": artefacts.url(runs[base].id, item["path"]),
                    "verdicts": _verdicts_url(runs, item["path"]), "absent": absent})  # fmt: skip
    return out


def compare_page(request: Request) -> Response:
    """GET /compare?runs=A,B,...: the page; without runs, a form to name them."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    refs = _refs(request)
    if not refs:
        return ui.render(request, "compare.html", refs="", error=None, runs=[])
    try:
        found = comparing.compare(repo, refs)
    except VestigeError as e:  # (a bad reference: 400; a damaged store object: 500)
        status = 400 if isinstance(e, UsageError) else 500
        return ui.render(
            request, "compare.html", status=status, refs=",".join(refs), error=e.message, runs=[]
        )
    runs: list[Run] = found["runs"]
    keys = metric_keys(repo, runs)
    rows = _table_rows(found["table"])
    ids = ",".join(r.id for r in runs)
    page = ui.render(
        request,
        "compare.html",
        refs=",".join(refs),
        error=None,
        runs=runs,
        rows=rows,
        same=sum(1 for r in rows if not r["differs"]),
        show_same=request.query_params.get("same") == "1",
        chart_keys=keys[:MAX_CHARTS],
        more_keys=keys[MAX_CHARTS:],
        metrics_url="/compare/metrics.json?" + urlencode({"runs": ids}),
        code=_code_view(found["code"]),
        figures=_figure_view(runs, found["figures"]),
        more_figures=found["more_figures"],
        tables=_tables_view(runs, found["tables"]),
        more_tables=found["more_tables"],
        pillow=comparing.pillow_missing(),
    )
    if keys:
        page.headers["content-security-policy"] = CHART_CSP
    return page


def metrics_json(request: Request) -> Response:
    """GET /compare/metrics.json?runs=A,B,...: {"keys": {key: [series per run]}}, each
    series as the run page's (charts.series_json: at most points_per_series points, its
    values to DIGITS significant digits) with its run's id and number."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    try:
        runs = comparing.resolve_runs(repo, _refs(request))
    except UsageError as e:
        return JSONResponse({"error": e.message}, status_code=400)
    n_out = points_per_series(len(runs))
    keys = set(metric_keys(repo, runs)[:MAX_CHARTS])
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in sorted(keys)}
    errors = []
    for run in runs:
        try:
            series = repo.metrics(run)
        except VestigeError as e:  # (a damaged object: the other runs are still drawn)
            errors.append(f"run #{run.seq}: {e.message}")
            continue
        for key in out:
            if key in series:
                drawn = charts.series_json(series[key], n_out)
                drawn["y"] = [None if v is None else float(f"{v:.{DIGITS}g}") for v in drawn["y"]]
                out[key].append({**drawn, "run": run.id, "seq": run.seq})
    return JSONResponse({"keys": out, "errors": errors})


def verdicts_json(request: Request) -> Response:
    """GET /compare/verdicts.json?runs=A,B,...&path=P: each run's copy of P against the
    first copy, as filediff judges it: {"verdicts": {seq: {"verdict", "kind", "summary",
    "html"}}} (`html`: the page's line for it, with the numeric difference of a CSV).
    Fetched by the page after it is shown: reading and parsing the copies costs more
    than the rest of the page."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    try:
        runs = comparing.resolve_runs(repo, _refs(request))
        first, diffs = comparing.compare_shared(repo, runs, request.query_params.get("path", ""))
    except UsageError as e:
        return JSONResponse({"error": e.message}, status_code=400)
    base = runs[first]
    line = ui.templates.get_template("compare_verdict.html")
    out = {
        str(run.seq): {"verdict": d["verdict"], "kind": d["kind"], "summary": d["summary"],
                       "html": line.render(base=base, run=run, diff=d)}
        for run, d in zip(runs, diffs, strict=True) if d is not None
    }  # fmt: skip
    return JSONResponse({"verdicts": out})


def pixels_png(request: Request) -> Response:
    """GET /compare/pixels.png?a=RUN&b=RUN&path=P: where b's copy of image P differs
    from a's, drawn on the server (history.compare.pixel_diff)."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    qp = request.query_params
    try:
        a, b = repo.run(qp.get("a", "")), repo.run(qp.get("b", ""))
        png = comparing.pixel_diff(repo, a, b, qp.get("path", ""))
    except VestigeError as e:
        status = 501 if e.message == comparing.PILLOW_MISSING else 404
        status = status if isinstance(e, UsageError) else 500  # (a damaged object)
        return Response(
            f"{e.message}\n",
            status_code=status,
            media_type="text/plain",
            headers={"content-security-policy": "default-src 'none'"},
        )
    return Response(
        png,
        media_type="image/png",
        headers={"cache-control": PIXELS_CACHE, "content-security-policy": artefacts.ARTEFACT_CSP},
    )


routes = [
    Route("/compare", compare_page),
    Route("/compare/metrics.json", metrics_json),
    Route("/compare/verdicts.json", verdicts_json),
    Route("/compare/pixels.png", pixels_png),
]
