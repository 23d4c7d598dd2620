"""A run's kept files: served at `/artefact/<run>/<path>` and previewed on the run page.

The path is looked up in the run's manifest (its outputs, inputs and kept artefacts), by
exact match, and the bytes come from the store's object of that hash, checked against
it: the filesystem is never asked, so `..`, `%2e%2e`, absolute paths and symbolic links
reach nothing but what the run recorded. A path recorded as absolute (an input outside
the project) is asked as its path without the leading `/` and `?abs=1`.

The type comes from the name; only images, text and tables are shown inline. HTML and
SVG may hold scripts: they are answered inline only to a frame (Sec-Fetch-Dest: iframe)
and always under a `sandbox` CSP (no script, an origin of their own); anything else is
a download.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vestige.errors import CorruptObject, VestigeError
from vestige.records import Run, safe_recorded, safe_relative
from vestige.repo import Repo
from vestige.ui.state import Ui

#: Shown inline (the type a browser gets); anything else is a download.
INLINE = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "text/plain", "text/csv", "application/json",
}  # fmt: skip
#: Active content: inline only inside a sandboxed frame.
ACTIVE = {"text/html", "image/svg+xml", "application/xhtml+xml"}
IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
TEXT_SUFFIXES = {
    ".txt", ".log", ".md", ".rst", ".py", ".r", ".jl", ".sh", ".yaml", ".yml", ".toml",
    ".ini", ".cfg", ".tex", ".bib", ".sql", ".c", ".h", ".cpp", ".js", ".ts", ".css",
    ".xml", ".ipynb", ".out", ".err",
}  # fmt: skip
#: A user's file answered inline runs no script and loads nothing (its own origin).
ARTEFACT_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "media-src 'self'; frame-ancestors 'self'"
)
PREVIEW_BYTES = 64 * 1024
PREVIEW_ROWS = 20
#: Files larger than this get no preview (their bytes are checked before any is shown).
PREVIEW_MAX_SIZE = 64 * 1024 * 1024


def content_type(path: str) -> str:
    """The type of a file by its name; text-like names are text/plain."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if suffix == ".tsv":
        return "text/plain"
    return guessed or "application/octet-stream"


def recorded(run: Run, path: str) -> tuple[str, dict[str, Any]] | None:
    """(role, {path, hash, size, kept, note}) of the file the run recorded at exactly
    `path` (outputs first, then kept artefacts, then inputs), or None."""
    for role, files in (("output", run.outputs), ("input", run.inputs)):
        for f in files:
            if f.path == path:
                return role, f.to_dict()
        if role == "output":
            for a in reversed(run.artefacts):
                for f in a.get("files") or ():
                    if f.get("path") == path:
                        return "artefact", dict(f)
    return None


def url(run_id: str, path: str) -> str:
    """The URL of a recorded file of a run."""
    if path.startswith("/"):
        return f"/artefact/{run_id}/{quote(path.lstrip('/'))}?abs=1"
    return f"/artefact/{run_id}/{quote(path)}"


def _not_found(why: str) -> Response:
    return Response(f"{why}\n", status_code=404, media_type="text/plain",
                    headers={"content-security-policy": "default-src 'none'"})  # fmt: skip


def artefact(request: Request) -> Response:
    """GET /artefact/<run>/<path>: the bytes the run kept at that path."""
    ui: Ui = request.app.state.ui
    repo = ui.repo()
    raw = request.path_params["path"]
    path = "/" + raw if request.query_params.get("abs") == "1" else raw
    if not (safe_recorded(path) if path.startswith("/") else safe_relative(path)):
        return _not_found("no such file in this run")
    try:
        run = repo.run(request.path_params["run"])
    except VestigeError as e:
        return _not_found(str(e))
    found = recorded(run, path)
    if found is None:
        return _not_found(f"run #{run.seq} recorded no file {path!r}")
    _role, f = found
    digest = f.get("hash")
    if not digest or not f.get("kept", True) or not repo.store.objects.available(digest):
        return _not_found(f"run #{run.seq} kept no copy of {path!r}")
    try:
        repo.store.objects.verify(digest)  # never hand out bytes that are not what was kept
    except CorruptObject as e:
        return Response(f"{e}\n", status_code=500, media_type="text/plain")
    kind = content_type(path)
    frame = request.headers.get("sec-fetch-dest") == "iframe"
    inline = request.query_params.get("download") != "1" and (
        kind in INLINE or (kind in ACTIVE and frame)
    )
    name = PurePosixPath(path).name
    headers = {
        "content-security-policy": ARTEFACT_CSP,
        "x-frame-options": "SAMEORIGIN",
        "content-disposition": ("inline" if inline else "attachment")
        + f"; filename*=UTF-8''{quote(name)}",
        "cache-control": "private, max-age=3600",
    }
    if inline and kind == "text/csv":
        kind = "text/plain"  # (Chromium saves text/csv to disk whatever the disposition)
    if kind.startswith("text/") or kind == "application/json":
        kind += "; charset=utf-8"
    if not inline:
        kind = "application/octet-stream" if kind.split(";")[0] in ACTIVE else kind
    size = f.get("size")
    if size is not None:
        headers["content-length"] = str(size)
    return StreamingResponse(_chunks(repo, digest), media_type=kind, headers=headers)


def _chunks(repo: Repo, digest: str) -> Any:
    with repo.store.objects.open(digest) as f:
        while chunk := f.read(1 << 20):
            yield chunk


# -- previews on the run page ----------------------------------------------------------------


def preview(repo: Repo, run: Run, role: str, f: dict[str, Any]) -> dict[str, Any]:
    """How the run page shows one file: {kind: image|frame|table|text|download, ...}."""
    path = f["path"]
    out: dict[str, Any] = {"path": path, "role": role, "size": f.get("size"),
                           "url": url(run.id, path), "kind": "download"}  # fmt: skip
    digest = f.get("hash")
    kept = bool(digest) and f.get("kept", True) and repo.store.objects.available(digest)
    if not kept:
        out["kind"] = "missing"
        out["why"] = f.get("note") or "no copy kept"
        return out
    kind = content_type(path)
    if kind in IMAGES:
        out["kind"] = "image"
    elif kind in ACTIVE:
        out["kind"] = "frame"
    elif PurePosixPath(path).suffix.lower() == ".parquet":
        out.update(_parquet_preview(repo, digest, f.get("size") or 0))
    elif (f.get("size") or 0) <= PREVIEW_MAX_SIZE and (kind.startswith("text/") or kind in (
            "application/json",)):  # fmt: skip
        try:
            repo.store.objects.verify(digest)
            with repo.store.objects.open(digest) as fh:
                head = fh.read(PREVIEW_BYTES)
        except (CorruptObject, OSError) as e:
            out["kind"], out["why"] = "missing", str(e)
            return out
        out.update(_text_preview(path, kind, head, (f.get("size") or 0) > len(head)))
    return out


def _text_preview(path: str, kind: str, head: bytes, cut: bool) -> dict[str, Any]:
    """A table (CSV, TSV, JSON records) of the first rows, or highlighted text."""
    text = head.decode("utf-8", "replace")
    if cut and "\n" in text:
        text = text[: text.rfind("\n") + 1]
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        table = _csv_table(text, "\t" if suffix == ".tsv" else ",")
        if table is not None:
            return {"kind": "table", **table, "cut": cut}
    if suffix == ".json" and not cut:
        table = _json_table(text)
        if table is not None:
            return {"kind": "table", **table, "cut": False}
    lines = text.splitlines()
    shown = "\n".join(lines[:400])
    return {"kind": "text", "html": highlight(path, shown),
            "cut": cut or len(lines) > 400}  # fmt: skip


def _parquet_preview(repo: Repo, digest: str, size: int) -> dict[str, Any]:
    """A parquet file as a table: its first rows and each column's type (pyarrow's, from
    the file's schema); or why not (pyarrow missing, too large, not parquet)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return {"kind": "missing", "why": "a parquet table: install pyarrow to preview it "
                "here (pip install pyarrow)"}  # fmt: skip
    if size > PREVIEW_MAX_SIZE:
        return {"kind": "missing", "why": f"a parquet table too large to preview ({size:,} "
                "bytes)"}  # fmt: skip
    try:
        # (the whole file: parquet is read from its footer, and objects may be compressed)
        data = repo.store.objects.read_bytes(digest, verify=True)
        table = pq.ParquetFile(pa.BufferReader(data))
        batch = next(table.iter_batches(batch_size=PREVIEW_ROWS), None)
    except (CorruptObject, OSError, pa.ArrowException) as e:
        return {"kind": "missing", "why": f"not a parquet table pyarrow can read: {e}"}
    schema = table.schema_arrow
    header = list(schema.names)
    rows = [] if batch is None else [[_any_cell(v) for v in row.values()]
                                     for row in batch.to_pylist()]  # fmt: skip
    total = table.metadata.num_rows
    return {"kind": "table", "header": header, "types": [str(t) for t in schema.types],
            "rows": rows, "more": total > len(rows), "cut": False, "total": total}  # fmt: skip


def _csv_table(text: str, delimiter: str) -> dict[str, Any] | None:
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return None
    if not rows:
        return None
    header, body = rows[0], rows[1 : PREVIEW_ROWS + 1]
    return {"header": header, "rows": body, "types": _types(header, body),
            "more": len(rows) - 1 > PREVIEW_ROWS}  # fmt: skip


def _json_table(text: str) -> dict[str, Any] | None:
    """A list of objects as rows, or an object as key/value rows."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        items = list(data.items())
        body = [[k, json.dumps(v)[:200]] for k, v in items[:PREVIEW_ROWS]]
        return {"header": ["key", "value"], "rows": body, "types": ["text", "json"],
                "more": len(items) > PREVIEW_ROWS}  # fmt: skip
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data[:PREVIEW_ROWS]):
        header = list(dict.fromkeys(k for x in data[:PREVIEW_ROWS] for k in x))
        body = [[_cell(x.get(k)) for k in header] for x in data[:PREVIEW_ROWS]]
        return {"header": header, "rows": body, "types": _types(header, body),
                "more": len(data) > PREVIEW_ROWS}  # fmt: skip
    return None


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)[:200]


def _any_cell(value: Any) -> str:
    """A table cell of any type (dates, bytes, decimals: as text)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)[:200]


def _types(header: list[str], body: list[list[str]]) -> list[str]:
    """Each column's type by its values: int, float or text."""
    types = []
    for n in range(len(header)):
        values = [row[n] for row in body if n < len(row) and row[n] != ""]
        kind = "int"
        for v in values:
            try:
                int(v)
            except ValueError:
                try:
                    float(v)
                    kind = "float"
                except ValueError:
                    kind = "text"
                    break
        types.append(kind if values else "text")
    return types


def highlight(path: str, text: str) -> str:
    """Text as HTML highlighted by Pygments (its lexer by the file name; classes, no
    inline styles: the page's CSP allows none); plain escaped text when none fits."""
    from pygments import highlight as pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(PurePosixPath(path).name, stripnl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False)
    return pyg_highlight(text, lexer, HtmlFormatter(cssclass="hl", nowrap=False))


def pygments_css() -> str:
    """The stylesheet of `highlight`'s classes."""
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs(".hl"))


routes = [Route("/artefact/{run}/{path:path}", artefact, methods=["GET", "HEAD"])]
