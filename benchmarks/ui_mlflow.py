"""`vestige ui` beside `mlflow server` (sqlite backend) on the same runs: search and page load.

For each size (1,000 and 10,000 runs; `--quick`: 200) the same kind of runs as
benchmarks/ui.py's index (params i, model, lr, seed; metrics loss and acc; a tag on one
run in fifty) go into a vestige index through the library and into an MLflow sqlite
store through MLflow's own client (`MlflowClient`, in the venv benchmarks/peers_ui.sh
makes), the load stopped after LOAD_BUDGET_S (the table says how many it loaded). Then,
over HTTP from this process to a real server of each on 127.0.0.1: MLflow's search-runs
API (`POST /api/2.0/mlflow/runs/search`, a filter on a param, ordered by a metric, 50 a
page) against vestige's runs page with the same filter and sort; and in the same
Chromium (Debian's, through Playwright) the load event of MLflow's runs view against
vestige's runs page, and when the newest run's row is on screen (MLflow's view fetches
its rows after the load event). Without the venv it says so and times vestige alone.
`--sizes 1000` and `--budget 480` (seconds) shorten it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import Report, Table, bench_env, machine, median, ms, parse_args, progress
from queries import MODELS, NOW, build

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".peers" / "ui-venv"
#: How long MLflow's client may spend loading one size's runs (issue 16: 15 minutes).
LOAD_BUDGET_S = 15 * 60
FILTER = ("params.model = 'vit'", "metrics.loss")
#: Loads runs like queries.build's into an MLflow store through MlflowClient; argv: the
#: tracking URI, how many, the budget in seconds. Prints one JSON line at the end.
LOADER = """\
import json, random, sys, time
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

uri, n, budget, now, models = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \\
    float(sys.argv[4]), sys.argv[5].split(",")
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment("bench")
rng = random.Random(11)
start = time.perf_counter()
loaded = 0
for seq in range(1, n + 1):
    if time.perf_counter() - start > budget:
        break
    t = int((now - (n - seq) * 60.0) * 1000)
    loss = rng.random() ** 3
    status = "FINISHED" if rng.random() < 0.9 else "FAILED"
    params = {"i": seq, "model": rng.choice(models), "lr": rng.choice((0.1, 0.01, 0.001)),
              "seed": rng.randrange(10)}
    tags = {"best": "1"} if seq % 50 == 0 else {}
    run = client.create_run(exp, start_time=t, run_name=f"run-{seq}", tags=tags)
    client.log_batch(run.info.run_id,
                     metrics=[Metric("loss", loss, t, 99), Metric("acc", 1 - loss, t, 99)],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status=status, end_time=t + 30_000)
    loaded += 1
print(json.dumps({"experiment": exp, "loaded": loaded,
                  "seconds": time.perf_counter() - start}))
"""


def mlflow_version() -> str | None:
    """The installed MLflow's version, or None when benchmarks/peers_ui.sh has not run."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, env=peer_env())  # fmt: skip
    return done.stdout.decode().strip() if done.returncode == 0 else None


def peer_env() -> dict[str, str]:
    """MLflow's environment: no telemetry, nothing from vestige's."""
    env = bench_env()
    # (no background job runner: its worker processes compete for the 2 cores)
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # fmt: skip
    return env


def free_port() -> int:
    """A port free on 127.0.0.1 now (MLflow's server takes no port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 300) -> None:
    """Until `url` answers 200 (the server is up), or the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"benchmark: {what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # (polling a server's start, not timing anything)
    raise SystemExit(f"benchmark: {what} did not answer within {timeout:.0f} s")


def start_vestige(project: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real `vestige ui` on the project and the URL it printed."""
    from _bench import vestige_script

    proc = subprocess.Popen([vestige_script(), "ui", "--port", "0"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=bench_env())  # fmt: skip
    assert proc.stdout is not None
    line = b""
    while b"serving at " not in line:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("benchmark: vestige ui printed no URL")
    m = re.search(rb"serving at (\S+)", line)
    assert m is not None
    return proc, m.group(1).decode().rstrip("/")


def start_mlflow(db: Path, artefacts: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`mlflow server` on the sqlite store, 127.0.0.1, one worker; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{db}", "--default-artifact-root", artefacts.as_uri(), "--host",
         "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=peer_env(),
        start_new_session=True,  # (its own process group: stop() ends its workers too)
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/health", proc, "mlflow server")
    return proc, base


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a server and, for MLflow's (a session of its own), the processes it started."""
    own_group = os.getpgid(proc.pid) == proc.pid if proc.poll() is None else False
    signal_it = (lambda sig: os.killpg(proc.pid, sig)) if own_group else proc.send_signal
    signal_it(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        signal_it(signal.SIGKILL)
        proc.wait()
    if own_group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # (workers left behind by the server)
        except ProcessLookupError:
            pass


def timed_http(request: urllib.request.Request) -> tuple[float, int]:
    """(seconds to the last byte, bytes) of one HTTP request."""
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as r:
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"benchmark: {request.full_url} answered {r.status}")
    return time.perf_counter() - start, len(body)


def search_requests(vestige: str, mlflow: str | None, experiment: str | None
                    ) -> list[tuple[str, str, urllib.request.Request]]:  # fmt: skip
    """(tool, what, request) of the searches compared: unfiltered, then filtered and
    sorted, 50 runs a page each."""
    where, sort = FILTER
    out = [
        ("vestige", "newest 50", urllib.request.Request(vestige + "/?fold=0")),
        ("vestige", f"where {where}, by {sort} desc", urllib.request.Request(
            vestige + "/?" + urlencode({"where": where, "sort": sort, "fold": "0"}))),
    ]  # fmt: skip
    if mlflow is not None:
        for what, body in (
            ("newest 50", {"experiment_ids": [experiment], "max_results": 50}),
            (f"where {where}, by {sort} desc", {
                "experiment_ids": [experiment], "filter": where, "max_results": 50,
                "order_by": [f"{sort} DESC"]}),
        ):  # fmt: skip
            out.append(("mlflow", what, urllib.request.Request(
                mlflow + "/api/2.0/mlflow/runs/search", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, method="POST")))  # fmt: skip
    return out


def time_searches(requests: list[tuple[str, str, urllib.request.Request]], runs: int
                  ) -> dict[tuple[str, str], tuple[float, int]]:  # fmt: skip
    """{(tool, what): (median seconds, bytes)}, the requests interleaved after 2 warm-ups."""
    for _ in range(2):
        for _tool, _what, req in requests:
            timed_http(req)
    times: dict[tuple[str, str], list[float]] = {(t, w): [] for t, w, _r in requests}
    sizes: dict[tuple[str, str], int] = {}
    for _ in range(runs):
        for tool, what, req in requests:
            seconds, size = timed_http(req)
            times[(tool, what)].append(seconds)
            sizes[(tool, what)] = size
    return {k: (median(v), sizes[k]) for k, v in times.items()}


LOAD_EVENT_MS = "performance.getEntriesByType('navigation')[0].loadEventEnd"


def load_pages(pages: list[tuple[str, str, str]], runs: int
               ) -> list[tuple[str, float, float, float | None]] | None:  # fmt: skip
    """(what, first load ms, median load ms, median ms until `selector` is on the page) of
    each (what, url, selector) in Chromium; None when Chromium or Playwright is missing."""
    chromium = os.environ.get("VESTIGE_TEST_CHROMIUM") or shutil.which("chromium") or ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update"])  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for label, url, selector in pages:
                loads, shown = [], []
                for _ in range(runs + 1):
                    page = context.new_page()
                    page.goto(url, wait_until="load")
                    loads.append(page.evaluate(LOAD_EVENT_MS))
                    try:
                        page.wait_for_selector(selector, timeout=120_000)
                        shown.append(page.evaluate("performance.now()"))
                    except Exception:  # (the row never showed: say so with a '-')
                        pass
                    page.close()
                out.append((label, loads[0], median(loads[1:]),
                            median(shown[1:]) if len(shown) > 1 else None))  # fmt: skip
        finally:
            browser.close()
    return out


def one_size(work: Path, n: int, runs: int, version: str | None, report: Report,
             budget: float) -> None:  # fmt: skip
    """Both tools at one size: load, search, page loads; a table each."""
    project = work / f"proj-{n}"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    progress(f"ui_mlflow: {n:,} runs into vestige's index")
    built = build(project, n)
    mlflow = experiment = None
    loaded, load_s = 0, 0.0
    servers = []
    try:
        if version is not None:
            db = work / f"mlflow-{n}.db"
            progress(f"ui_mlflow: {n:,} runs into MLflow through MlflowClient")
            done = subprocess.run(
                [str(MLFLOW_VENV / "bin" / "python"), "-c", LOADER, f"sqlite:///{db}", str(n),
                 str(budget), str(NOW), ",".join(MODELS)],
                capture_output=True, env=peer_env(),
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"benchmark: MLflow's loader failed: {done.stderr[-2000:]!r}")
            info = json.loads(done.stdout.decode().strip().splitlines()[-1])
            experiment, loaded, load_s = info["experiment"], info["loaded"], info["seconds"]
            proc, mlflow = start_mlflow(db, work / f"mlflow-artefacts-{n}")
            servers.append(proc)
        proc, vestige = start_vestige(project)
        servers.append(proc)
        progress("ui_mlflow: timing the searches")
        results = time_searches(search_requests(vestige, mlflow, experiment), runs)
        table = Table(
            f"Search, {n:,} runs (vestige's index built in {built:.1f} s"
            + (f"; MLflow's client loaded {loaded:,} runs in {load_s:.0f} s)" if mlflow else ")"),
            ["what", "vestige ui ms", "MLflow search API ms", "vestige KiB", "MLflow KiB"],
            right=(1, 2, 3, 4),
        )  # fmt: skip
        for what in dict.fromkeys(w for _t, w in results):
            v, m = results[("vestige", what)], results.get(("mlflow", what))
            table.add(what, ms(v[0]), ms(m[0]) if m else "-", f"{v[1] / 1024:.1f}",
                      f"{m[1] / 1024:.1f}" if m else "-")  # fmt: skip
        report.table(table)
        progress("ui_mlflow: the pages in Chromium")
        pages = [("vestige ui: the runs page", vestige + "/?fold=0", f"tr[data-seq='{n}']")]
        if mlflow is not None:
            view = f"{mlflow}/#/experiments/{experiment}/runs"
            pages.append(("MLflow: the experiment's runs view", view, f'text="run-{loaded}"'))
        loads = load_pages(pages, max(3, runs // 2))
        if loads is None:
            report.note("Chromium or Playwright missing: no page loads timed")
            return
        table = Table(f"Pages in Chromium, {n:,} runs (ms from the navigation's start)",
                      ["page", "load, first", "load, median", "newest run shown, median"],
                      right=(1, 2, 3))  # fmt: skip
        for label, first, load_ms, shown_ms in loads:
            table.add(label, f"{first:.0f}", f"{load_ms:.0f}",
                      "-" if shown_ms is None else f"{shown_ms:.0f}")  # fmt: skip
        report.table(table)
    finally:
        for proc in servers:
            stop(proc)


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sizes", default="1000,10000", help="numbers of runs, by commas")
        parser.add_argument("--budget", type=float, default=LOAD_BUDGET_S,
                            help="seconds MLflow may load runs for, each size")  # fmt: skip

    args = parse_args(__doc__.splitlines()[0], default_runs=11, quick_runs=2, extra=extra)
    sizes = [200] if args.quick else [int(n) for n in args.sizes.split(",")]
    version = mlflow_version()
    report = Report(args.markdown)
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-ui-mlflow-"))
    try:
        for n in sizes:  # (each size's tables printed when done: 10,000 runs take long)
            part = Report(args.markdown)
            one_size(work, n, args.runs, version, part, args.budget)
            part.print()
            print(flush=True)
        if version is None:
            report.note("MLflow not installed (bash benchmarks/peers_ui.sh): vestige alone")
        else:
            report.note(f"MLflow {version} (mlflow server, sqlite backend, one worker)")
        load = os.getloadavg()[0]
        report.note(f"{machine()}; load average {load:.1f} when it ended. Medians of "
                    f"{args.runs}, the requests interleaved.")  # fmt: skip
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
