"""The runs page (`/`): every run, newest first, a page at a time.

Its URL holds the whole view, so it can be shared: `where` (the --where language of
`vestige ls`), `q` (a substring of the command, a tag or a note), `sort` (#, started, ended,
duration, status, exit_code, command, metrics.KEY, params.KEY) and `dir`, `cols`
(metrics.KEY and params.KEY columns: only those are read), `open` (sweeps shown unfolded),
`fold=0` (children listed among the runs), `n` (rows a page) and `after` (the keyset
cursor of the page: a page never counts the rows before it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vestige.errors import WhereError
from vestige.index.runs import SORT_COLUMNS
from vestige.index.where import compile_where
from vestige.ui.state import Ui

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: The fixed columns: (sort name, heading).
COLUMNS = [("seq", "#"), ("status", "status"), ("started", "started"),
           ("duration", "took"), ("exit_code", "exit"), ("command", "command")]  # fmt: skip


@dataclass
class View:
    """What the URL asks for."""

    where: str = ""
    q: str = ""
    sort: str = "seq"
    desc: bool = True
    cols: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    fold: bool | None = None
    n: int = PAGE_SIZE
    after: list[Any] | None = None

    @classmethod
    def from_request(cls, request: Request) -> View:
        qp = request.query_params
        cols = [c.strip() for c in ",".join([qp.get("cols", ""), *qp.getlist("col")]).split(",")]
        n = qp.get("n", "")
        fold = qp.get("fold")
        return cls(
            where=qp.get("where", "").strip(),
            q=qp.get("q", "").strip(),
            sort=qp.get("sort", "seq") or "seq",
            desc=qp.get("dir", "desc") != "asc",
            cols=list(dict.fromkeys(c for c in cols if _column(c) is not None)),
            opened=[i for i in qp.get("open", "").split(",") if i],
            fold=None if fold is None else fold != "0",
            n=max(1, min(MAX_PAGE_SIZE, int(n))) if n.isdigit() else PAGE_SIZE,
            after=decode_cursor(qp.get("after", "")),
        )

    def sort_spec(self) -> tuple[str, str | None]:
        """(page()'s sort, key): an unknown sort falls back to #."""
        if self.sort in SORT_COLUMNS:
            return self.sort, None
        col = _column(self.sort)
        if col is not None:
            return col
        return "seq", None

    def folded(self) -> bool:
        """Sweeps fold their children by default in the plain listing by a run column."""
        if self.fold is not None:
            return self.fold
        return not self.where and not self.q and self.sort_spec()[1] is None

    def query(self, **changes: Any) -> str:
        """This view's URL with some parameters changed (None removes one); the cursor
        goes unless given."""
        params: dict[str, Any] = {
            "where": self.where, "q": self.q,
            "sort": "" if self.sort == "seq" else self.sort,
            "dir": "" if self.desc else "asc", "cols": ",".join(self.cols),
            "open": ",".join(self.opened),
            "fold": "" if self.fold is None else ("1" if self.fold else "0"),
            "n": "" if self.n == PAGE_SIZE else str(self.n), "after": "",
        }  # fmt: skip
        for k, v in changes.items():
            params[k] = "" if v is None else v
        pairs = [(k, v) for k, v in params.items() if v != ""]
        return "/?" + urlencode(pairs) if pairs else "/"


def _column(name: str) -> tuple[str, str] | None:
    """("metric"|"param", key) for metrics.KEY / params.KEY, else None."""
    kind, dot, key = name.partition(".")
    if dot and key and kind in ("metrics", "params"):
        return ("metric" if kind == "metrics" else "param"), key
    return None


def encode_cursor(cursor: list[Any] | None) -> str:
    if cursor is None:
        return ""
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> list[Any] | None:
    """A cursor from the URL; a damaged one is no cursor (the first page)."""
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        return None
    if (isinstance(value, list) and len(value) == 3 and isinstance(value[0], int)
            and isinstance(value[2], int | float)):  # fmt: skip
        return value
    return None


def where_error(e: WhereError) -> dict[str, Any]:
    """The error and the expression cut in three, the offending part in the middle."""
    m = re.match(r"bad --where at position \d+: (.*) \(in: .*\)$", e.message, re.DOTALL)
    text, pos = e.text, max(0, min(e.position, len(e.text)))
    end = pos + 1
    while end < len(text) and not text[end].isspace() and text[end] not in "(),":
        end += 1
    return {"message": m.group(1) if m else e.message, "position": e.position,
            "before": text[:pos], "bad": text[pos:end] or " ", "after": text[end:]}  # fmt: skip


def runs_page(request: Request) -> Response:
    """GET /: the runs table."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    view = View.from_request(request)
    sort, key = view.sort_spec()
    error = None
    compiled = None
    if view.where:
        try:
            compiled = compile_where(view.where)
        except WhereError as e:
            error = where_error(e)
    rows: list[Any] = []
    cursor = None
    if error is None:
        rows, cursor = repo.index.runs.page(
            where=compiled, search=view.q or None, sort=sort, key=key, desc=view.desc,
            after=view.after, limit=view.n, top_level=view.folded(),
        )  # fmt: skip
    ids = [r["id"] for r in rows]
    children = repo.index.runs.children_counts(ids) if view.folded() else {}
    opened: dict[str, list[Any]] = {}
    for rid in view.opened:
        if rid in children:
            opened[rid] = repo.index.runs.children_of(rid)
    every = ids + [c["id"] for kids in opened.values() for c in kids]
    metric_keys = [k for kind, k in map(_column, view.cols) if kind == "metric"]  # type: ignore[misc]
    param_keys = [k for kind, k in map(_column, view.cols) if kind == "param"]  # type: ignore[misc]
    metrics = repo.index.runs.metrics_of(every, metric_keys) if metric_keys else {}
    params = repo.index.runs.params_of(every, param_keys) if param_keys else {}
    tags = repo.index.runs.tags_of(every)
    available = repo.index.runs.keys_of(ids[:200])

    def cells(run_id: str) -> list[Any]:
        out = []
        for col in view.cols:
            kind, k = _column(col)  # type: ignore[misc]
            source = metrics if kind == "metric" else params
            out.append(source.get(run_id, {}).get(k))
        return out

    def line(row: Any, depth: int) -> dict[str, Any]:
        argv = json.loads(row["argv"])
        return {"row": row, "depth": depth, "argv": argv, "cells": cells(row["id"]),
                "tags": tags.get(row["id"], []), "children": children.get(row["id"], 0),
                "open": row["id"] in opened}  # fmt: skip

    lines = []
    for row in rows:
        lines.append(line(row, 0))
        for child in opened.get(row["id"], []):
            lines.append(line(child, 1))
    return ui.render(
        request, "runs.html", view=view, lines=lines, error=error,
        next_url=view.query(after=encode_cursor(cursor)) if cursor else None,
        first_url=view.query() if view.after else None,
        columns=COLUMNS, metric_keys=sorted({*available[0], *metric_keys}),
        param_keys=sorted({*available[1], *param_keys}),
        count_url="/runs/count?" + urlencode(
            [("where", view.where), ("q", view.q), ("fold", "1" if view.folded() else "0")]),
        readonly=repo.readonly, page_size=PAGE_SIZE,
    )  # fmt: skip


def runs_count(request: Request) -> Response:
    """GET /runs/count: how many runs the runs page's filter matches (fetched after the
    page is shown: at 100,000 runs it can cost more than the page)."""
    ui: Ui = request.app.state.ui
    qp = request.query_params
    try:
        compiled = compile_where(qp["where"]) if qp.get("where", "").strip() else None
    except WhereError as e:
        return JSONResponse({"error": e.message}, status_code=400)
    n = ui.repo().index.runs.count(where=compiled, search=qp.get("q") or None,
                                   top_level=qp.get("fold") == "1")  # fmt: skip
    return JSONResponse({"count": n})


routes = [Route("/", runs_page), Route("/runs/count", runs_count)]
