"""The lookup page (`/lookup`): a file dropped, pasted or chosen, and the runs that made
it: exactly those bytes (`vestige which`), else the kept images that look like it
(`vestige which --similar`, with the `similar` extra).

The file comes as a multipart POST with the page's CSRF token (the same checks as
state.Ui.form: the token in constant time, a same-site request; parsed by Starlette's
multipart parser), at most MAX_UPLOAD
bytes. It is compared and forgotten: it goes to a private temporary folder outside the
store for the library's calls (which take a path, like the CLI's), never into the store.
"""

from __future__ import annotations

import hmac
import re
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vestige.errors import UsageError
from vestige.repo import one_per_run
from vestige.ui import artefacts
from vestige.ui.state import Ui, same_site
from vestige.units import size

#: The largest file looked up (figures and screenshots are far smaller).
MAX_UPLOAD = 16 * 1024 * 1024
#: The form's other fields and the multipart framing, beyond the file.
FORM_SLACK = 64 * 1024
#: A body over the cap is still read (and dropped) up to this, so the browser gets the
#: answer rather than a broken connection; a larger declared length is refused unread.
DRAIN = 4 * MAX_UPLOAD
#: What a file over the cap is told.
OVER = (f"the file is larger than {size(MAX_UPLOAD)}: look up a figure or a screenshot here, "
        "or a large file with `vestige which FILE`")  # fmt: skip
#: Look-alike images listed.
SIMILAR_LIMIT = 5


class TooLarge(Exception):
    """The upload is over MAX_UPLOAD."""


async def _body(request: Request) -> bytes:
    """The request's body, at most MAX_UPLOAD + FORM_SLACK bytes, else TooLarge."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN:
        raise TooLarge
    cap = MAX_UPLOAD + FORM_SLACK
    body = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > DRAIN:
            break
        if seen <= cap:
            body += chunk
    if seen > cap:
        raise TooLarge
    return bytes(body)


async def parse_multipart(request: Request, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (file name or None, bytes)} of the multipart/form-data body (read
    already, within the cap), parsed by Starlette's parser (python-multipart); UsageError
    when it is not such a form."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "multipart/form-data"
    ):
        raise UsageError("send the file as multipart/form-data, as the page's form does")

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=8,
                             max_part_size=FORM_SLACK)  # fmt: skip
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise UsageError(f"the form could not be read ({e.message}); send it from the "
                         "page's form") from None  # fmt: skip
    fields: dict[str, tuple[str | None, bytes]] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = (None, value.encode())
            else:
                fields[name] = (value.filename or "", await value.read())
    finally:
        await form.close()
    return fields


def answer(ui: Ui, name: str, data: bytes) -> dict[str, Any]:
    """What `which` says of these bytes; `which --similar` when no run made them."""
    from vestige.history import similar

    repo = ui.repo()
    suffix = "".join(re.findall(r"\.[A-Za-z0-9]{1,8}$", name))[:9]
    out: dict[str, Any] = {"name": name, "size": len(data), "similar": None, "note": None}
    with tempfile.TemporaryDirectory(prefix="vestige-lookup-") as tmp:
        path = Path(tmp) / ("upload" + suffix.lower())
        path.write_bytes(data)
        digest, makers, readers = repo.which(path)
        out.update(hash=digest, makers=one_per_run(makers), readers=one_per_run(readers))
        if makers:
            return out
        try:
            found = similar.similar(repo, path, limit=SIMILAR_LIMIT)
        except UsageError as e:
            out["note"] = str(e).replace(str(path), name or "the file")
            return out
    matches = []
    for m in found.matches:
        runs, how = (m.made_by, "made") if m.made_by else (m.read_by, "read")
        kept = [r for r in runs if r.kept] or runs
        image = artefacts.url(kept[0].run_id, kept[0].path) if kept else None
        matches.append({"distance": m.distance, "how": how, "runs": one_per_run(runs),
                        "image": image, "same": m.hash == digest})  # fmt: skip
    out["similar"] = {"compared": found.compared, "skipped": found.skipped,
                      "nearest": found.nearest, "threshold": found.threshold,
                      "bits": similar.BITS, "matches": matches}  # fmt: skip
    return out


def lookup_form(request: Request) -> Response:
    """GET /lookup: the form."""
    ui: Ui = request.app.state.ui
    return ui.render(request, "lookup.html", result=None, limit=size(MAX_UPLOAD))


async def lookup(request: Request) -> Response:
    """POST /lookup: the answer for the file sent."""
    ui: Ui = request.app.state.ui

    def refuse(status: int, message: str) -> Response:
        """The form again, with one line saying what was wrong."""
        return ui.render(request, "lookup.html", status=status, result=None,
                         error=message, limit=size(MAX_UPLOAD))  # fmt: skip

    try:
        same_site(request)
        body = await _body(request)
    except PermissionError as e:
        return Response(f"{e}\n", status_code=403, media_type="text/plain")
    except TooLarge:
        return refuse(413, OVER)
    try:
        fields = await parse_multipart(request, body)
    except UsageError as e:
        return refuse(400, str(e))
    token = fields.get("csrf", (None, b""))[1]
    if not hmac.compare_digest(token, ui.csrf.encode()):
        return Response("the form's CSRF token is missing or stale; reload the page\n",
                        status_code=403, media_type="text/plain")  # fmt: skip
    name, data = fields.get("file", (None, b""))
    if name is None or (not name and not data):
        return refuse(400, "no file was sent: drop one on the box or choose one")
    if len(data) > MAX_UPLOAD:
        return refuse(413, OVER)
    result = await run_in_threadpool(answer, ui, Path(name).name or "the file", data)
    return ui.render(request, "lookup.html", result=result, limit=size(MAX_UPLOAD))


routes = [Route("/lookup", lookup_form, methods=["GET"]),
          Route("/lookup", lookup, methods=["POST"])]  # fmt: skip
