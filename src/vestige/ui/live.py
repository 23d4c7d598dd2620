"""A running run, as it goes: `/run/<run>/events`, server-sent events read from the run's
live directory (store/live.py), as `vestige log` and `vestige metrics` read a running run:

- `log`: {stream, html}: what the run printed since the last event (whole lines; the
  page gives the byte offsets it already shows as `?stdout=N&stderr=M`);
- `metric`: a series whose journal grew, downsampled as metrics.json gives it;
- `outputs`: the files the run has written so far (the shim's journals) and the
  artefacts it kept: names only, their bytes are stored when it is sealed;
- `end`: {status}: the run is sealed; the stream ends (the page reloads once).

Each look is a few stats; a journal is read again only when its size changed. The
server may be stopping (Ctrl-C): a stream open in a browser ends at once then, since
uvicorn waits for every open response before it exits, without telling the app.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vestige.errors import VestigeError
from vestige.ui import charts
from vestige.ui.ansi import to_html
from vestige.ui.state import Ui

#: Seconds between two looks at the live directory.
POLL_S = 0.5
#: A metric chart is redrawn at most this often (the journals are flushed every second).
METRIC_S = 1.0
#: A comment is sent after this many quiet seconds, so proxies keep the stream open.
KEEPALIVE_S = 15.0
#: Bytes of a log sent in one event; a line longer than this is sent cut.
LOG_CHUNK = 64 * 1024
#: Outputs listed live (the sealed run's page lists them all).
MAX_OUTPUTS = 200


def event(name: str, data: Any) -> str:
    """One server-sent event: a name and one line of JSON."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def server_exiting() -> bool:
    """Whether uvicorn was told to stop (its signal handler is a method of its Server,
    which sets `should_exit`): read, never changed."""
    handler = signal.getsignal(signal.SIGINT)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


class Watch:
    """What of a running run was already sent, and the next look at its live directory."""

    def __init__(self, ui: Ui, ref: str, offsets: dict[str, int]) -> None:
        self.ui = ui
        repo = ui.repo()
        run = repo.run(ref)
        self.run_id = run.id
        self.live = Path(repo.store.live_dir(run.id))
        self.root = run.root
        self.offsets = dict(offsets)
        self.sizes: dict[str, tuple[int, ...]] = {}
        self.counts: dict[str, int] = {}
        self.metrics_at = 0.0

    def look(self) -> tuple[list[str], str | None]:
        """(events to send, the run's status once it is sealed, else None)."""
        repo = self.ui.repo()
        sealed = repo.store.refs.get(self.run_id) is not None
        out = [*self._logs(), *self._metrics(force=sealed), *([] if sealed else self._outputs())]
        if not sealed:
            return out, None
        try:
            status = repo.run(self.run_id).status
        except VestigeError:
            status = "sealed"
        return out, status

    def _logs(self) -> list[str]:
        out = []
        for stream in ("stdout", "stderr"):
            start = self.offsets.get(stream, 0)
            try:
                with open(self.live / stream, "rb") as f:
                    f.seek(start)
                    data = f.read(LOG_CHUNK)
            except OSError:
                continue  # (not made yet, or gone: the run is being sealed)
            cut = data.rfind(b"\n") + 1 if len(data) < LOG_CHUNK else len(data)
            if cut <= 0:
                continue  # a line still being written: sent once it ends
            self.offsets[stream] = start + cut
            text = data[:cut].decode("utf-8", "replace")
            out.append(event("log", {"stream": stream, "html": to_html(text),
                                     "offset": self.offsets[stream]}))  # fmt: skip
        return out

    def _changed(self, folder: str) -> bool:
        """Whether the files of live/<folder>/ changed in size or number since the last look."""
        try:
            with os.scandir(self.live / folder) as entries:
                sizes = tuple(sorted((e.name, e.stat().st_size) for e in entries))
        except OSError:
            sizes = ()
        if self.sizes.get(folder) == sizes:
            return False
        self.sizes[folder] = sizes
        return True

    def _metrics(self, force: bool = False) -> list[str]:
        now = time.monotonic()
        if not force and now - self.metrics_at < METRIC_S:
            return []
        if not self._changed("metrics"):
            return []
        self.metrics_at = now
        from vestige.store.metrics import read_journals

        out = []
        for key, series in sorted(read_journals(self.live).items()):
            if self.counts.get(key) != len(series):
                self.counts[key] = len(series)
                out.append(event("metric", charts.series_json(series)))
        return out

    def _outputs(self) -> list[str]:
        events_changed = self._changed("events")
        if not (self._changed("api") or events_changed):
            return []
        from vestige.capture.events import read_api_events, read_events

        seen = read_events(self.live)
        files = []
        root = self.root.rstrip("/") + "/"
        for path in sorted(seen.writes - seen.removed):
            if path.startswith(root):
                files.append(path[len(root) :])
        kept = [str(e.get("name")) for e in read_api_events(self.live)
                if e.get("e") == "keep" and e.get("name")]  # fmt: skip
        return [event("outputs", {"files": files[:MAX_OUTPUTS], "more": len(files) > MAX_OUTPUTS,
                                  "kept": kept[:MAX_OUTPUTS]})]  # fmt: skip


async def events(request: Request) -> Response:
    """GET /run/<run>/events[?stdout=N&stderr=M]: the run's progress as server-sent
    events until it is sealed (at once `end` for a run sealed already)."""
    ui: Ui = request.app.state.ui
    qp = request.query_params
    offsets = {s: int(qp[s]) for s in ("stdout", "stderr") if qp.get(s, "").isdigit()}
    try:
        watch = await run_in_threadpool(Watch, ui, request.path_params["run"], offsets)
    except VestigeError as e:
        return Response(f"{e}\n", status_code=404, media_type="text/plain")

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"  # (a dropped connection is retried after 2 s)
        quiet_since = time.monotonic()
        while not server_exiting():
            sent, status = await run_in_threadpool(watch.look)
            for item in sent:
                yield item
            if status is not None:
                yield event("end", {"status": status})
                return
            if sent:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": still running\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={
        "cache-control": "no-store", "x-accel-buffering": "no"})  # fmt: skip


routes = [Route("/run/{run}/events", events)]
