"""The UI's runs page over a 100,000-run index: server time, the app in-process.

The index is filled through the library by benchmarks/queries.py's `build` (params, metric
summaries, tags, sweeps of ten children). Each page is asked of the app itself (ASGI,
through its middleware, its thread pool and a Repo per thread, as uvicorn would call it)
and timed from the request to the last byte of the answer: the page's own work, without
the network or the browser. Goal (issue 16): the runs page, plain, filtered or sorted by
a metric, within 100 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import Report, Table, machine, median, ms, parse_args, progress
from queries import build

GOAL_S = 0.100

#: (what, query string of `/`); "after" pages continue from the 20th page's cursor.
PAGES = [
    ("plain (sweeps folded)", {}),
    ("plain, every run (fold=0)", {"fold": "0"}),
    ("page 21 (keyset cursor)", {"fold": "0", "_deep": "20"}),
    ("where params.model = 'vit'", {"where": "params.model = 'vit'"}),
    ("where tag = best", {"where": "tag = best"}),
    ("where params.i = 1234 (one run)", {"where": "params.i = 1234"}),
    ("where status = 'failed' and params.seed in (1, 2)",
     {"where": "status = 'failed' and params.seed in (1, 2)"}),
    ("sorted by metrics.loss, 2 columns",
     {"sort": "metrics.loss", "cols": "metrics.loss,params.lr"}),
    ("sorted by metrics.loss ascending", {"sort": "metrics.loss", "dir": "asc"}),
    ("where params.model = 'vit', sorted by metrics.loss",
     {"where": "params.model = 'vit'", "sort": "metrics.loss", "cols": "metrics.loss"}),
    ("where params.i = 1234, sorted by metrics.loss (gathered)",
     {"where": "params.i = 1234", "sort": "metrics.loss"}),
    ("sorted by params.lr (3 values)", {"sort": "params.lr", "cols": "params.lr"}),
    ("sorted by duration (no index)", {"sort": "duration"}),
    ("search q = i=1234", {"q": "i=1234"}),
]  # fmt: skip
#: Not part of the page (fetched after it, by the page's script).
COUNTS = [
    ("count, plain", {}),
    ("count, where params.model = 'vit'", {"where": "params.model = 'vit'"}),
    ("count, where params.model = 'vit' and metrics.loss < 0.05",
     {"where": "params.model = 'vit' and metrics.loss < 0.05"}),
]  # fmt: skip


async def get(app: Any, target: str) -> tuple[int, bytes]:
    """One GET through the ASGI app: (status, body)."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": unquote(path), "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8725")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8725),
    }  # fmt: skip
    status: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(body)


async def timed(app: Any, target: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, bytes) of one request: on a machine
    others share, the CPU time is the request's own work, the wall time also its waits."""
    start, cpu = time.perf_counter(), time.process_time()
    status, body = await get(app, target)
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    if status != 200:
        raise SystemExit(f"GET {target} answered {status}: {body[:300]!r}")
    return elapsed, used, len(body)


async def deep_target(app: Any, params: dict[str, str], pages: int) -> str:
    """The URL of page `pages + 1`, found by following the pages' next links."""
    import html
    import re

    target = "/?" + urlencode(params)
    for _ in range(pages):
        _status, body = await get(app, target)
        m = re.search(rb'href="([^"]+)" id="next-page"', body)
        assert m, "no next page"
        target = html.unescape(m.group(1).decode())
    return target


async def measure(app: Any, runs: int) -> list[tuple[str, str, float, float, int]]:
    """(kind, what, median wall seconds, median CPU seconds, bytes) of each page, each
    asked `runs` times, interleaved."""
    targets = []
    for label, params in PAGES:
        params = dict(params)
        deep = int(params.pop("_deep", "0"))
        target = await deep_target(app, params, deep) if deep else "/?" + urlencode(params)
        targets.append(("page", label, target))
    for label, params in COUNTS:
        targets.append(("count", label, "/runs/count?" + urlencode(params)))
    for _ in range(3):  # warm-up: every worker thread opens its Repo, SQLite's cache fills
        for _kind, _label, target in targets:
            await timed(app, target)
    walls: dict[str, list[float]] = {t[2]: [] for t in targets}
    cpus: dict[str, list[float]] = {t[2]: [] for t in targets}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        for _kind, _label, target in targets:
            elapsed, used, size = await timed(app, target)
            walls[target].append(elapsed)
            cpus[target].append(used)
            sizes[target] = size
    return [(kind, label, median(walls[t]), median(cpus[t]), sizes[t])
            for kind, label, t in targets]  # fmt: skip


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=11, quick_runs=2)
    n_runs = 5_000 if args.quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-ui-"))
    try:
        project = work / "proj"
        project.mkdir()
        subprocess.run(["git", "init", "-q", str(project)], check=True)  # (its own store)
        progress(f"ui: an index of {n_runs:,} runs")
        built = build(project, n_runs)
        from vestige.ui.app import create_app

        app = create_app(project / ".vestige", project)
        progress("ui: timing the runs page")
        results = asyncio.run(measure(app, args.runs))
        app.state.ui.close()
        table = Table(f"The runs page's server time over {n_runs:,} runs (build {built:.1f} s, "
                      "not timed)", ["request", "what", "wall ms", "CPU ms", "KiB"],
                      right=(2, 3, 4))  # fmt: skip
        worst = 0.0
        for kind, label, seconds, cpu, size in results:
            table.add(kind, label, ms(seconds), ms(cpu), f"{size / 1024:.1f}")
            if kind == "page":
                worst = max(worst, seconds)
        report = Report(args.markdown)
        report.table(table)
        if not args.quick:
            report.goal(f"the runs page within {GOAL_S * 1000:.0f} ms (100,000 runs)",
                        worst <= GOAL_S, f"slowest {worst * 1000:.1f} ms")  # fmt: skip
        else:
            report.note("goal: not judged in --quick mode (5,000 runs)")
        load = os.getloadavg()[0]
        report.note(f"{machine()}; load average {load:.1f} when it ended. Medians of "
                    f"{args.runs}, the requests interleaved.")  # fmt: skip
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
