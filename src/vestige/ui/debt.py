"""The debt page (`/debt`): the ledger of `vestige debt` (history/debt.py), each code unit
with its verdict, lifetime, runs, interest and reasons; `/debt?unit=X` is `vestige debt
X`'s detail; `/debt/code?unit=X` the unit's latest version, highlighted.

`since` (90d, 12w, a date) and `verdict` filter as the CLI's --since and --verdict do.
The code is read by its hash from the store (the ledger's latest version), never from a
path on disk.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vestige.errors import CorruptObject, UsageError, VestigeError
from vestige.ui.state import Ui

#: Code shown on the code page (the rest is a download away: `vestige restore`).
CODE_BYTES = 512 * 1024


def _window(request: Request) -> tuple[float, float | None]:
    """(now, start of the window or None) from `since`; UsageError when it is bad."""
    from vestige import clock

    now = clock.now()
    since = request.query_params.get("since", "").strip()
    return now, clock.parse_since(since, now, "since") if since else None


def _day(ts: float) -> str:
    """A date as the CLI's ledger prints it."""
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def debt_page(request: Request) -> Response:
    """GET /debt[?since=W][&verdict=V] or /debt?unit=X[&since=W]."""
    from vestige.history import debt

    ui: Ui = request.app.state.ui
    q = request.query_params
    unit, only = q.get("unit"), q.get("verdict") or None
    repo = ui.repo()
    try:
        if only is not None and only not in debt.VERDICTS:
            raise UsageError(f"verdict={only!r} is not one of {', '.join(debt.VERDICTS)}")
        if unit is not None and only is not None:
            raise UsageError("verdict= filters the ledger; leave it out with unit=")
        now, since = _window(request)
        if unit is not None:
            if not unit.strip():
                raise UsageError("unit= is empty: give a code unit's path, as the ledger lists")
            found = debt.detail(repo, unit, now, since)
            return ui.render(request, "debt.html", detail=found, book=None, day=_day,
                             since=q.get("since", ""), only=None, verdicts=debt.VERDICTS,
                             most=max((w["runs"] for w in found.weeks), default=1))  # fmt: skip
        book = debt.ledger(repo, now, since)
    except UsageError as e:
        return ui.render(request, "error.html", status=400, message=str(e))
    counts = {v: sum(1 for u in book.units if u.verdict == v) for v in debt.VERDICTS}
    if only is not None:
        book = book.replace(units=[u for u in book.units if u.verdict == only])
    return ui.render(request, "debt.html", book=book, detail=None, day=_day, counts=counts,
                     since=q.get("since", ""), only=only, verdicts=debt.VERDICTS)  # fmt: skip


def code_page(request: Request) -> Response:
    """GET /debt/code?unit=X: the unit's latest version (by its hash), highlighted."""
    from vestige import clock
    from vestige.history import debt
    from vestige.ui.artefacts import highlight

    ui: Ui = request.app.state.ui
    text = request.query_params.get("unit", "")
    repo = ui.repo()
    now = clock.now()
    try:
        if not text.strip():
            raise UsageError("unit= is empty: give a code unit's path, as the ledger lists")
        path = debt.resolve_unit(repo, text, now)
    except UsageError as e:
        return ui.render(request, "error.html", status=400, message=str(e))
    digest, seq, run_id = repo.index.debt.latest(now).get(path, (None, 0, ""))
    code, why = None, None
    if digest is None or not repo.store.objects.available(digest):
        why = f"the store keeps no copy of {path}'s latest version"
    else:
        try:
            data = repo.store.objects.read_bytes(digest, verify=True)
            shown = data[:CODE_BYTES].decode("utf-8", "replace")
            code = highlight(path, shown)
            if len(data) > CODE_BYTES:
                why = f"the first {CODE_BYTES // 1024} KiB only"
        except (CorruptObject, VestigeError, OSError) as e:
            why = str(e)
    return ui.render(request, "debt_code.html", path=path, digest=digest, seq=seq,
                     run_id=run_id, code=code, why=why)  # fmt: skip


routes = [Route("/debt", debt_page), Route("/debt/code", code_page)]
