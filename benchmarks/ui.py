"""The UI's runs page over a 100,000-run index: server time, the app in-process.

The index is filled through the library by benchmarks/queries.py's `build` (params, metric
summaries, tags, sweeps of ten children). Each page is asked of the app itself (ASGI,
through its middleware, its thread pool and a Repo per thread, as uvicorn would call it)
and timed from the request to the last byte of the answer: the page's own work, without
the network or the browser. Goal (issue 16): the runs page, plain, filtered or sorted by
a metric, within 100 ms. Then the Compare page of ten real runs (`vestige run`s recorded
on top of the index: metrics, a figure, a table, a code change): the page, its chart data,
one pixel difference and the verdicts of the shared figure and table (fetched by the
page's script after it); goal: the page within 300 ms. Then the run page of a real run
with a 1,000,000-point series and its chart's data, whole and zoomed (goals: the page
within 200 ms, the chart's data within 200 KB), and the runs and run pages' load event
in Chromium from a real `vestige ui`.
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

from _bench import (
    Report,
    Table,
    bench_env,
    machine,
    median,
    ms,
    parse_args,
    progress,
    run,
    vestige_script,
)
from queries import build

GOAL_S = 0.100
#: The Compare page of COMPARED runs (issue 16): within 300 ms.
COMPARE_GOAL_S = 0.300
COMPARED = 10
#: The compared runs' script, run by `vestige run` on top of the index: two metric series
#: of 20,000 points, a 640x480 figure and a 1,000-row table, each run's numbers its own.
FIGURE_SCRIPT = """\
import csv, math, sys
from PIL import Image, ImageDraw
import vestige

k = int(sys.argv[1])
rate = 1e-3 * (k + 1)
for step in range(20_000):
    vestige.log(step=step, loss=1 / (1 + step * rate), acc=1 - 1 / (1 + step * rate))
im = Image.new("RGB", (640, 480), "white")
points = [(x, 470 - 460 * (1 - math.exp(-x * rate * 10))) for x in range(0, 640, 4)]
ImageDraw.Draw(im).line(points, fill=(31, 95, 168), width=2)
im.save("out/curve.png")
with open("out/table.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["step", "loss", "acc"])
    for i in range(1000):
        w.writerow([i, 1 / (1 + i * rate), 1 - 1 / (1 + i * rate)])
"""

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


def record_compared(project: Path, n: int) -> list[str]:
    """`n` real runs of FIGURE_SCRIPT (`vestige run`, numbered after the index's), the
    script changed every second run (a code diff to show); their ids, oldest first."""
    from vestige.repo import Repo

    (project / "out").mkdir(exist_ok=True)
    env = bench_env()
    for k in range(n):
        (project / "fig.py").write_text(FIGURE_SCRIPT + f"# variant {k // 2}\n")
        run([vestige_script(), "run", "python", "fig.py", str(k)], cwd=project, env=env)
    repo = Repo.open(project)
    try:
        return [repo.resolve(f"-{i}") for i in range(n, 0, -1)]
    finally:
        repo.close()


async def measure_compare(
    app: Any, ids: list[str], runs: int
) -> list[tuple[str, float, float, int]]:
    """(what, median wall seconds, median CPU seconds, bytes) of the Compare page of these
    runs (named by number, as a person types them), then of what its script fetches after
    it (in parallel): the chart data, each shared file's verdicts, a pixel difference."""
    from vestige.repo import Repo

    ui = app.state.ui
    repo: Repo = ui.repo()
    refs = ",".join(str(repo.index.runs.row(i)["seq"]) for i in ids)
    targets = [
        (f"the page of {len(ids)} runs (table, code diffs, figures)", f"/compare?runs={refs}"),
        ("then: chart data (2 metrics x 10 runs of 20,000 points)",
         "/compare/metrics.json?" + urlencode({"runs": refs})),
        ("then: verdicts of the figure (9 pairs of 640x480 PNGs)",
         "/compare/verdicts.json?" + urlencode({"runs": refs, "path": "out/curve.png"})),
        ("then: verdicts of the table (9 pairs of 1,000-row CSVs)",
         "/compare/verdicts.json?" + urlencode({"runs": refs, "path": "out/table.csv"})),
        ("then: one pixel difference (640x480 PNG), of 9",
         "/compare/pixels.png?" + urlencode({"a": ids[0], "b": ids[1], "path": "out/curve.png"})),
    ]  # fmt: skip
    for _ in range(2):  # warm-up
        for _label, target in targets:
            await timed(app, target)
    walls: dict[str, list[float]] = {t: [] for _l, t in targets}
    cpus: dict[str, list[float]] = {t: [] for _l, t in targets}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        for _label, target in targets:
            elapsed, used, size = await timed(app, target)
            walls[target].append(elapsed)
            cpus[target].append(used)
            sizes[target] = size
    return [(label, median(walls[t]), median(cpus[t]), sizes[t]) for label, t in targets]


#: The run page of a run with a 1,000,000-point series (issue 16): within 200 ms; the
#: chart's data (what its script fetches after the page) within 200 KB.
RUN_GOAL_S = 0.200
CHART_GOAL_BYTES = 200 * 1024
LONG_POINTS = 1_000_000
LONG_SCRIPT = f"""\
import vestige

for step in range({LONG_POINTS}):
    vestige.log(step=step, loss=1 / (1 + step) + (step % 1000) * 1e-7)
"""


def record_long_series(project: Path) -> str:
    """A real run (`vestige run`) that logs LONG_POINTS points of one metric; its id."""
    from vestige.repo import Repo

    (project / "long.py").write_text(LONG_SCRIPT)
    run([vestige_script(), "run", "python", "long.py"], cwd=project, env=bench_env())
    repo = Repo.open(project)
    try:
        return repo.resolve("@last")
    finally:
        repo.close()


async def measure_run(app: Any, run_id: str, runs: int) -> list[tuple[str, float, float, int]]:
    """(what, median wall seconds, median CPU seconds, bytes) of the run page of a run
    with a 1,000,000-point series, and of the chart data its script fetches after it:
    the whole series (downsampled to 2,000 points) and zoomed ranges."""
    series = f"/run/{run_id}/metrics.json?key=loss"
    targets = [
        ("the run page (1,000,000-point series)", f"/run/{run_id}"),
        ("then: the chart's data (downsampled to 2,000)", series),
        ("zoomed: steps 500,000..501,999 (every point)", series + "&start=500000&end=501999"),
        ("zoomed: steps 0..500,000 (downsampled again)", series + "&start=0&end=500000"),
    ]
    for _ in range(2):  # warm-up
        for _label, target in targets:
            await timed(app, target)
    walls: dict[str, list[float]] = {t: [] for _l, t in targets}
    cpus: dict[str, list[float]] = {t: [] for _l, t in targets}
    sizes: dict[str, int] = {}
    for _ in range(runs):
        for _label, target in targets:
            elapsed, used, size = await timed(app, target)
            walls[target].append(elapsed)
            cpus[target].append(used)
            sizes[target] = size
    return [(label, median(walls[t]), median(cpus[t]), sizes[t]) for label, t in targets]


LOAD_EVENT_MS = "performance.getEntriesByType('navigation')[0].loadEventEnd"
CHARTS_DRAWN = "Array.from(document.querySelectorAll('.chart')).every(d => d.dataset.ready === '1')"


def load_in_chromium(project: Path, paths: list[tuple[str, str]], runs: int
                     ) -> list[tuple[str, float, float, float | None]] | None:  # fmt: skip
    """(what, first load ms, median load ms, median ms to the charts drawn or None) of
    each page in Chromium (Debian's, driven by Playwright) from a real `vestige ui`: the
    load event as the page's own Navigation Timing gives it; the first load with an empty
    cache. None when Chromium or Playwright is missing."""
    import re
    import shutil as sh

    chromium = os.environ.get("VESTIGE_TEST_CHROMIUM") or sh.which("chromium") or ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    server = subprocess.Popen([vestige_script(), "ui", "--port", "0"], cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=bench_env())  # fmt: skip
    try:
        assert server.stdout is not None
        line = b""
        while b"serving at " not in line:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("benchmark: vestige ui printed no URL")
        m = re.search(rb"serving at (\S+)", line)
        assert m is not None
        base = m.group(1).decode().rstrip("/")
        out = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update"])  # fmt: skip
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                for label, path in paths:
                    loads, drawn = [], []
                    for _ in range(runs + 1):
                        page = context.new_page()
                        page.goto(base + path, wait_until="load")
                        loads.append(page.evaluate(LOAD_EVENT_MS))
                        if page.locator(".chart").count():
                            while not page.evaluate(CHARTS_DRAWN):
                                page.wait_for_timeout(5)
                            drawn.append(page.evaluate("performance.now()"))
                        page.close()
                    out.append((label, loads[0], median(loads[1:]),
                                median(drawn[1:]) if drawn else None))  # fmt: skip
            finally:
                browser.close()
        return out
    finally:
        server.terminate()
        server.wait(timeout=60)


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
        progress(f"ui: {COMPARED} real runs to compare (vestige run)")
        compared = record_compared(project, COMPARED)
        progress(f"ui: a run of {LONG_POINTS:,} points (vestige run)")
        long_run = record_long_series(project)
        from vestige.ui.app import create_app

        app = create_app(project / ".vestige", project)
        progress("ui: timing the runs page")
        results = asyncio.run(measure(app, args.runs))
        progress("ui: timing the Compare page")
        compare_results = asyncio.run(measure_compare(app, compared, args.runs))
        progress("ui: timing the run page")
        run_results = asyncio.run(measure_run(app, long_run, args.runs))
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
        table = Table(f"The Compare page of {COMPARED} runs over {n_runs:,} runs (server time)",
                      ["what", "wall ms", "CPU ms", "KiB"], right=(1, 2, 3))  # fmt: skip
        for label, seconds, cpu, size in compare_results:
            table.add(label, ms(seconds), ms(cpu), f"{size / 1024:.1f}")
        report.table(table)
        page_s = compare_results[0][1]
        report.goal(f"the Compare page of {COMPARED} runs within {COMPARE_GOAL_S * 1000:.0f} ms",
                    page_s <= COMPARE_GOAL_S, f"{page_s * 1000:.1f} ms")  # fmt: skip
        table = Table(f"The run page of a run with a {LONG_POINTS:,}-point series (server time)",
                      ["what", "wall ms", "CPU ms", "KiB"], right=(1, 2, 3))  # fmt: skip
        for label, seconds, cpu, size in run_results:
            table.add(label, ms(seconds), ms(cpu), f"{size / 1024:.1f}")
        report.table(table)
        page_s, chart_bytes = run_results[0][1], run_results[1][3]
        report.goal(f"the run page within {RUN_GOAL_S * 1000:.0f} ms",
                    page_s <= RUN_GOAL_S, f"{page_s * 1000:.1f} ms")  # fmt: skip
        report.goal(f"the chart's data within {CHART_GOAL_BYTES // 1024} KB",
                    chart_bytes <= CHART_GOAL_BYTES, f"{chart_bytes / 1024:.1f} KiB")  # fmt: skip
        progress("ui: the pages in Chromium")
        pages = [("the runs page", "/"), ("the run page (1,000,000 points)", f"/run/{long_run}")]
        loads = load_in_chromium(project, pages, max(3, args.runs // 2))
        if loads is None:
            report.note("Chromium or Playwright missing: no page loads timed (make chromium)")
        else:
            table = Table("Pages in Chromium (a real `vestige ui`; ms from the navigation's "
                          "start)", ["page", "load, first (empty cache)", "load, median",
                                     "charts drawn, median"], right=(1, 2, 3))  # fmt: skip
            for label, first, load_ms, drawn_ms in loads:
                table.add(label, f"{first:.0f}", f"{load_ms:.0f}",
                          "-" if drawn_ms is None else f"{drawn_ms:.0f}")  # fmt: skip
            report.table(table)
        load = os.getloadavg()[0]
        report.note(f"{machine()}; load average {load:.1f} when it ended. Medians of "
                    f"{args.runs}, the requests interleaved.")  # fmt: skip
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
