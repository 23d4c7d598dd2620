"""How fast can a script log metrics with vestige.log, and with MLflow, W&B and trackio?

The question (1,000,000 points by default): a script calls `vestige.log(step=i, loss=x)`
in a loop and then `vestige.flush()`, which returns once every point is in the run's
journal. How many points per second, timed from before the loop to the end of the flush,
and how much does the process's peak RSS grow meanwhile? Goals: at least 1,000,000
points/s, at most 64 MiB of peak RSS growth, and, in both modes below, at least half the
points/s of the floor `def floor(step=None, **kw)` (two array('d') appends per keyword).

Every measurement is a child process that times only its own loop and flush (imports
and set-up such as `mlflow.start_run` or `wandb.init` are not timed):

- vestige under `vestige run`: `vestige run python metric_logging.py --child vestige` in
  a fresh project (how users run: `import vestige` attaches to the run that `vestige run`
  started, VESTIGE_LIVE set, the capture shim loaded in the process; `vestige.start()` is
  called before the timed section, as the peers' init calls are);
- vestige in-process: `python metric_logging.py --child vestige` in the same project
  (a plain script: `vestige.start()`, untimed, starts a run of this process, which loads
  the capture shim into it; the run is sealed when the child exits);
- three floors without vestige, in the benchmark's own Python, each a module attribute
  called as `floor.log(step=i, loss=x)`, as `vestige.log` is: `def floor(step=None,
  **kw)` appending, for each keyword, the step and the value to two `array('d')` (the
  least work that records a point: it keeps no key, no wall time, checks nothing, writes
  nothing to disk, and has no flush to wait for; the goal's floor), a function that does
  nothing (the cost of the loop and the call itself), and one appending `(step, loss)`
  to a list;
- peers, when benchmarks/peers_metrics.sh installed them, each run by the peer venv's
  Python: MLflow `mlflow.log_metric` per point (fewer points, it is slow; synchronous,
  and asynchronous with `synchronous=False`, which `mlflow.end_run` waits for) and
  `MlflowClient.log_batch` in batches of 1,000 `Metric` objects, each against a SQLite
  and a file tracking URI in a temporary directory; W&B `wandb.log({"loss": x}, step=i)`
  in offline mode, then `wandb.finish()` (its flush); trackio `trackio.log({"loss": x},
  step=i)` in local mode (a SQLite file), then `trackio.finish()`. MLflow runs end with
  `mlflow.end_run()` inside the timed section. The peers run with no network at all
  (`unshare --net`, loopback only) when that works, and always with their telemetry
  switched off by environment variables.

Memory: each child first sleeps 0.5 s, so that the processes around it (the `vestige
run` process capturing the environment, wandb-core) have finished starting, as they have
after a real script's imports. Then, before the loop, it resets its peak RSS (`echo 5 >
/proc/self/clear_refs`) and reads VmRSS from /proc/self/status; after the flush it reads
VmHWM (the peak since the reset). "peak RSS growth" is VmHWM after minus VmRSS before:
exact, but of the logging process only. "tree growth" adds the processes around it (the
`vestige run` process for vestige, wandb-core for W&B): the benchmark samples the summed
VmRSS of the child's whole process tree every 20 ms and reports the highest sample inside
the timed section minus the last sample before it (approximate: a shorter spike can be
missed).

After the timed section each child counts the points the tool actually stored (a SQL
count, the lines of MLflow's metric file, the history records of W&B's .wandb file):
a tool that returns before its data is written shows fewer than it was given.

Usage: .venv/bin/python benchmarks/metric_logging.py [--quick] [--markdown] [--runs N]
       [--points N] [--peer-points N] [--mlflow-points N] [--peer-runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
from array import array
from collections.abc import Sequence
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PEERS,
    PYTHON,
    CommandFailed,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    vestige_script,
)

GOAL_POINTS_PER_S = 1_000_000
GOAL_RSS_MIB = 64
GOAL_OF_FLOOR = 0.5  # vestige.log's points/s over the two-array floor's, in both modes
SCRIPT = str(Path(__file__).resolve())
PEER_VENV = PEERS / "metrics-venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
RESULT = "metric-logging-result: "
BATCH = 1_000  # MLflow's limit of metrics in one log_batch call
SAMPLE_S = 0.02
SETTLE_S = 0.5
KIB = 1024

# Every peer process gets these: nothing may phone home (each tool's documented switch).
QUIET_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_DISABLE_CODE": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    # MLflow 3 refuses a file tracking URI ("maintenance mode") unless this is set.
    "MLFLOW_ALLOW_FILE_STORE": "true",
}


# --------------------------------------------------------------------------------------
# The child side: runs in the project's venv (vestige, floors) or the peers' venv. It
# imports nothing from the tools until its function runs, and prints one RESULT line.


def vm_status() -> dict[str, int]:
    """The Vm* lines of /proc/self/status, in KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Vm"):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


class Probe:
    """The timed section: wall seconds, RSS before, peak RSS after (see the docstring)."""

    def __init__(self) -> None:
        self.result: dict[str, object] = {}

    def start(self) -> None:
        # Let the processes around this one settle first: the `vestige run` process
        # captures the environment and the project during its first ~0.3 s, wandb-core
        # starts up. A real script's imports give them that time; the sampled tree
        # growth would otherwise count their start-up as the cost of logging.
        time.sleep(SETTLE_S)
        try:
            fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
            try:
                os.write(fd, b"5")  # reset VmHWM to the current VmRSS
            finally:
                os.close(fd)
            self.result["peak_reset"] = True
        except OSError:
            self.result["peak_reset"] = False
        self.result["rss_before_kib"] = vm_status()["VmRSS"]
        self.result["t0"] = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
        self._start = time.perf_counter()

    def stop(self) -> None:
        self.result["seconds"] = time.perf_counter() - self._start
        self.result["t1"] = time.monotonic()
        self.result["peak_kib"] = vm_status()["VmHWM"]

    def emit(self, points: int, stored: int | None, version: str) -> None:
        self.result.update(points=points, stored=stored, version=version)
        sys.stdout.write(RESULT + json.dumps(self.result) + "\n")
        sys.stdout.flush()


def child_floor(probe: Probe, n: int, variant: str) -> tuple[int | None, str]:
    """The loop with a module-level `log` that does nothing, or only keeps the point."""
    floor = types.ModuleType("floor")
    kept: list[tuple[int, float]] = []
    steps, values = array("d"), array("d")
    if variant == "arrays":

        def log(step: float | None = None, **kw: float) -> None:
            """The goal's floor: record each keyword's point, (step, value), and no more."""
            for _key, value in kw.items():
                steps.append(step)  # type: ignore[arg-type]
                values.append(value)

    elif variant == "noop":

        def log(step: float | None = None, **kw: float) -> None:
            pass

    else:

        def log(step: float | None = None, **kw: float) -> None:
            kept.append((step, kw["loss"]))  # type: ignore[arg-type]

    floor.log = log  # type: ignore[attr-defined]
    probe.start()
    for i in range(n):
        floor.log(step=i, loss=1.0 / (i + 1))  # type: ignore[attr-defined]
    probe.stop()
    stored = {"arrays": len(values), "append": len(kept)}.get(variant)
    return stored, ""


def child_vestige(probe: Probe, n: int) -> tuple[int | None, str]:
    import vestige

    missing = [name for name in ("log", "flush") if not hasattr(vestige, name)]
    if missing:
        raise SystemExit(
            f"metric_logging: this vestige ({vestige.__file__}) has no "
            f"{' or '.join('vestige.' + m for m in missing)}: the metrics API is missing"
        )
    probe.result["live"] = bool(os.environ.get("VESTIGE_LIVE"))  # under `vestige run`
    if hasattr(vestige, "start"):
        vestige.start()
    probe.start()
    for i in range(n):
        vestige.log(step=i, loss=1.0 / (i + 1))
    vestige.flush()
    probe.stop()
    return None, vestige.__version__


def child_mlflow(probe: Probe, n: int, method: str, backend: str) -> tuple[int | None, str]:
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    work = Path.cwd()
    if backend == "sqlite":
        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    else:
        mlflow.set_tracking_uri((work / "mlruns").as_uri())
    mlflow.set_experiment("bench")
    run = mlflow.start_run()
    run_id = run.info.run_id
    if method == "log_batch":
        client = MlflowClient()
        probe.start()
        for start in range(0, n, BATCH):
            stamp = int(time.time() * 1000)
            metrics = [
                Metric("loss", 1.0 / (i + 1), stamp, i) for i in range(start, min(n, start + BATCH))
            ]
            client.log_batch(run_id, metrics=metrics)
        mlflow.end_run()
        probe.stop()
    else:
        synchronous = method == "log_metric"
        probe.start()
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=synchronous)
        mlflow.end_run()  # waits for the asynchronous queue
        probe.stop()
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(work / "mlflow.db") as db:
            stored = db.execute(
                "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = 'loss'", (run_id,)
            ).fetchone()[0]
    else:
        files = list((work / "mlruns").glob(f"*/{run_id}/metrics/loss"))
        stored = sum(1 for _ in files[0].open()) if files else 0
    return stored, mlflow.__version__


def wandb_history_count(path: Path, key: str) -> int:
    """History rows holding `key` in a .wandb file (LevelDB log format, wandb's Records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    block, header = 32768, 7
    pos, pending, count = 7, b"", 0  # the file starts with a 7-byte wandb header
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start a record
        if kind in (1, 4):  # FULL or LAST ends it
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                count += any(
                    item.key == key or list(item.nested_key) == [key]
                    for item in record.history.item
                )
            pending = b""
    return count


def child_wandb(probe: Probe, n: int) -> tuple[int | None, str]:
    import wandb

    work = Path.cwd()
    run = wandb.init(project="bench", mode="offline", dir=str(work))
    probe.start()
    for i in range(n):
        wandb.log({"loss": 1.0 / (i + 1)}, step=i)
    wandb.finish()
    probe.stop()
    files = list(Path(run.dir).parent.glob("*.wandb"))
    stored = wandb_history_count(files[0], "loss") if files else 0
    return stored, wandb.__version__


def child_trackio(probe: Probe, n: int) -> tuple[int | None, str]:
    import trackio

    trackio.init(project="bench", auto_log_cpu=False, auto_log_gpu=False)
    probe.start()
    for i in range(n):
        trackio.log({"loss": 1.0 / (i + 1)}, step=i)
    trackio.finish()
    probe.stop()
    import sqlite3

    stored = 0
    for db_path in Path(os.environ["TRACKIO_DIR"]).glob("*.db"):
        with sqlite3.connect(db_path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if "metrics" in tables:
                stored += db.execute("SELECT count(*) FROM metrics").fetchone()[0]
    return stored, trackio.__version__


def child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    parser.add_argument("--points", type=int, required=True)
    args = parser.parse_args(argv)
    probe = Probe()
    kind, _, detail = args.child.partition(":")
    if kind == "floor":
        stored, version = child_floor(probe, args.points, detail)
    elif kind == "vestige":
        stored, version = child_vestige(probe, args.points)
    elif kind == "mlflow":
        method, _, backend = detail.partition("/")
        stored, version = child_mlflow(probe, args.points, method, backend)
    elif kind == "wandb":
        stored, version = child_wandb(probe, args.points)
    elif kind == "trackio":
        stored, version = child_trackio(probe, args.points)
    else:
        raise SystemExit(f"metric_logging: unknown child {args.child!r}")
    probe.emit(args.points, stored, version)
    return 0


# --------------------------------------------------------------------------------------
# The benchmark side.


def tree_rss_kib(root: int, pids: set[int]) -> tuple[int, set[int]]:
    """Summed VmRSS (KiB) of `pids`; refreshed to root and all its descendants if empty."""
    if not pids:
        parent_of: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                parent_of[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        pids = {root}
        grew = True
        while grew:
            found = {pid for pid, ppid in parent_of.items() if ppid in pids} - pids
            pids |= found
            grew = bool(found)
    total = 0
    page_kib = os.sysconf("SC_PAGE_SIZE") // KIB
    for pid in list(pids):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page_kib
        except (OSError, IndexError, ValueError):
            pids.discard(pid)
    return total, pids


class TreeSampler(threading.Thread):
    """Samples (monotonic time, summed RSS of the process tree) every SAMPLE_S seconds."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        pids: set[int] = set()
        tick = 0
        while not self.done.is_set():
            if tick % 10 == 0:
                pids = set()  # look for new descendants every tenth sample
            total, pids = tree_rss_kib(self.root, pids)
            self.samples.append((time.monotonic(), total))
            tick += 1
            self.done.wait(SAMPLE_S)

    def growth_kib(self, t0: float, t1: float) -> int | None:
        before = [kib for t, kib in self.samples if t <= t0]
        inside = [kib for t, kib in self.samples if t0 < t <= t1]
        if not before or not inside:
            return None
        return max(0, max(inside) - before[-1])


class Measurement:
    def __init__(self, tool: str, method: str) -> None:
        self.tool, self.method = tool, method
        self.results: list[dict] = []
        self.status: str | None = None  # why there is no number: "not installed", "failed: ..."

    def med(self, key: str) -> float:
        return median([float(r[key]) for r in self.results])

    @property
    def points(self) -> int:
        return int(self.results[0]["points"])

    @property
    def speed(self) -> float:
        return self.points / self.med("seconds")


def measure_once(
    argv: Sequence[str], cwd: Path, env: dict[str, str], *, vestige: bool = False
) -> dict:
    """Run one child (its stdout and stderr captured), sampling its process tree's RSS."""
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    sampler.done.set()
    sampler.join()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr[-2000:]}")
    if vestige and "vestige: warning" in stderr:
        raise CommandFailed(
            f"{' '.join(argv)} warned (the run was not recorded cleanly):\n{stderr}"
        )
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT)]
    if not lines:
        tail = (stdout[-1000:] + stderr[-1000:]).strip()
        raise CommandFailed(f"{' '.join(argv)} printed no result:\n{tail}")
    result = json.loads(lines[-1][len(RESULT) :])
    result["tree_kib"] = sampler.growth_kib(result["t0"], result["t1"])
    return result


def network_isolation() -> list[str]:
    """A prefix that runs a command with loopback as its only network, or [] if unavailable."""
    if shutil.which("unshare") is None:
        return []
    up_lo = 'ip link set lo up 2>/dev/null; exec "$@"'
    prefix = ["unshare", "--net", "--", "sh", "-c", up_lo, "sh"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else []


def peer_env(work: Path) -> dict[str, str]:
    """The environment of a peer child: telemetry off, every tool's files inside `work`."""
    return bench_env(
        **QUIET_ENV,
        HOME=str(work / "home"),
        WANDB_DIR=str(work),
        WANDB_CONFIG_DIR=str(work / "wandb-config"),
        WANDB_CACHE_DIR=str(work / "wandb-cache"),
        WANDB_DATA_DIR=str(work / "wandb-data"),
        TRACKIO_DIR=str(work / "trackio"),
        HF_HOME=str(work / "hf"),
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}",
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_CONFIG_HOME=str(work / "config"),
    )


def measure_ours(args: argparse.Namespace, tmp: Path) -> list[Measurement]:
    """vestige in both modes and the three floors, `args.runs` times each, interleaved:
    [under vestige run, in-process, two-array floor, no-op floor, list floor]."""
    project = tmp / "project"
    project.mkdir()
    env = bench_env()
    vestige_cmd = [vestige_script(), "run", "python", SCRIPT, "--child", "vestige"]
    floor_cmd = [PYTHON, SCRIPT, "--child"]
    rows = {
        "vestige": (Measurement("vestige", "vestige.log + flush, under vestige run"), vestige_cmd),
        "inprocess": (Measurement("vestige", "vestige.log + flush, in-process run"),
                      [PYTHON, SCRIPT, "--child", "vestige"]),
        "arrays": (Measurement("floor", "floor(step=None, **kw): 2 array('d') appends"),
                   [*floor_cmd, "floor:arrays"]),
        "noop": (Measurement("floor", "no-op function call"), [*floor_cmd, "floor:noop"]),
        "append": (Measurement("floor", "list.append((step, loss))"), [*floor_cmd, "floor:append"]),
    }  # fmt: skip
    ours = ("vestige", "inprocess")
    progress("warm-up: vestige (both modes) and the floors, 1,000 points each")
    for key, (_, argv) in rows.items():
        measure_once([*argv, "--points", "1000"], project, env, vestige=key in ours)
    for run in range(args.runs):
        progress(f"vestige and floors, {args.points:,} points, run {run + 1} of {args.runs}")
        for key, (m, argv) in rows.items():
            argv = [*argv, "--points", str(args.points)]
            m.results.append(measure_once(argv, project, env, vestige=key in ours))
            if key in ours:
                m.results[-1]["stored"] = vestige_stored(project, env)
                if m.results[-1].get("live") != (key == "vestige"):
                    raise CommandFailed(f"{key}: VESTIGE_LIVE was {m.results[-1].get('live')}")
    return [m for m, _ in rows.values()]


def vestige_stored(project: Path, env: dict[str, str]) -> int | None:
    """The points of `loss` that the last run kept, as `vestige metrics` reads them."""
    proc = subprocess.run([vestige_script(), "metrics", "@last", "--json"], cwd=project,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    try:
        return int(json.loads(proc.stdout)["loss"]["count"])
    except (ValueError, KeyError, TypeError):
        progress(f"vestige metrics @last --json gave no count: {proc.stderr.strip()[-300:]}")
        return None


PEER_ROWS = (  # child name, tool, method; mlflow per-point rows use --mlflow-points
    ("mlflow:log_metric/sqlite", "mlflow", "log_metric per point, sqlite"),
    ("mlflow:log_metric/file", "mlflow", "log_metric per point, file store"),
    ("mlflow:log_metric_async/sqlite", "mlflow", "log_metric(synchronous=False), sqlite"),
    ("mlflow:log_batch/sqlite", "mlflow", f"log_batch of {BATCH:,}, sqlite"),
    ("mlflow:log_batch/file", "mlflow", f"log_batch of {BATCH:,}, file store"),
    ("wandb", "wandb", "wandb.log + finish, offline"),
    ("trackio", "trackio", "trackio.log + finish, local"),
)


def peer_installed(module: str, tmp: Path) -> bool:
    if not PEER_PYTHON.exists():
        return False
    probe = subprocess.run([str(PEER_PYTHON), "-c", f"import {module}"], cwd=tmp,
                           env=peer_env(tmp), capture_output=True, check=False)  # fmt: skip
    return probe.returncode == 0


def measure_peers(args: argparse.Namespace, tmp: Path, isolate: list[str]) -> list[Measurement]:
    out = []
    installed: dict[str, bool] = {}
    for child, tool, method in PEER_ROWS:
        m = Measurement(tool, method)
        out.append(m)
        if tool not in installed:
            installed[tool] = peer_installed(tool, tmp)
        if not installed[tool]:
            m.status = "not installed (run benchmarks/peers_metrics.sh)"
            continue
        per_point = child.startswith("mlflow:log_metric")
        points = args.mlflow_points if per_point else args.peer_points
        argv = [*isolate, str(PEER_PYTHON), SCRIPT, "--child", child]
        try:
            for run in range(-1 if not args.quick else 0, args.peer_runs):
                warm = run < 0
                n = min(points, 100) if warm else points
                label = "warm-up" if warm else f"run {run + 1} of {args.peer_runs}"
                progress(f"{tool}: {method}, {n:,} points, {label}")
                work = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=tmp))
                result = measure_once([*argv, "--points", str(n)], work, peer_env(work))
                shutil.rmtree(work, ignore_errors=True)
                if not warm:
                    m.results.append(result)
        except CommandFailed as e:
            progress(f"{tool} ({method}) failed: {e}")
            m.status = f"failed: {str(e).splitlines()[-1][:80]}"
    return out


def mib(kib: float | None) -> str:
    return "" if kib is None else f"{kib / KIB:.1f}"


def growth(m: Measurement) -> float:
    """Median peak RSS growth, KiB. Linux keeps RSS counters per thread and folds them in
    now and then, so a process that grows nothing can read slightly negative: shown as 0."""
    return max(0.0, median([float(r["peak_kib"]) - float(r["rss_before_kib"]) for r in m.results]))


def tree_growth(m: Measurement) -> float | None:
    got = [float(r["tree_kib"]) for r in m.results if r.get("tree_kib") is not None]
    return median(got) if got else None


def stored_text(m: Measurement) -> str:
    stored = [r.get("stored") for r in m.results]
    if any(s is None for s in stored):
        return "nothing kept" if m.tool == "floor" else "not checked"
    least = min(int(s) for s in stored)  # type: ignore[arg-type]
    return "all" if least == m.points else f"{least:,} of {m.points:,}"


def extra_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=None,
                        help="points for vestige, the floors and the fast peers "
                        "(default 1,000,000; --quick: 20,000)")  # fmt: skip
    parser.add_argument("--peer-points", type=int, default=None,
                        help="points for W&B, trackio and MLflow log_batch "
                        "(default: --points; --quick: 2,000)")  # fmt: skip
    parser.add_argument("--mlflow-points", type=int, default=None,
                        help="points for MLflow's per-point log_metric (default 10,000; "
                        "--quick: 200)")  # fmt: skip
    parser.add_argument(
        "--peer-runs",
        type=int,
        default=1,
        help="repetitions of each peer (default 1: they take minutes)",
    )


def main(argv: list[str]) -> int:
    if "--child" in argv:
        return child_main(argv)
    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1, extra=extra_args)
    if args.points is None:
        args.points = 20_000 if args.quick else 1_000_000
    if args.peer_points is None:
        args.peer_points = 2_000 if args.quick else args.points
    if args.mlflow_points is None:
        args.mlflow_points = 200 if args.quick else 10_000
    args.peer_runs = max(1, args.peer_runs)
    report = Report(args.markdown)
    isolate = network_isolation()
    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as name:
        tmp = Path(name)
        ours = measure_ours(args, tmp)
        peers = measure_peers(args, tmp, isolate)

    vestige, inprocess, floor = ours[0], ours[1], ours[2]
    table = Table(
        f"metric logging: points timed from before the loop to the end of the flush "
        f"(vestige and floors: median of {args.runs}; peers: median of {args.peer_runs})",
        ["tool", "method", "points", "seconds", "points/s", "vestige is", "peak RSS growth MiB",
         "tree growth MiB", "stored"],
        right=(2, 3, 4, 5, 6, 7),
    )  # fmt: skip
    for m in [*ours, *peers]:
        if m.status is not None:
            table.add(m.tool, m.method, "", "", "", "", "", "", m.status)
            continue
        ratio = vestige.speed / m.speed
        table.add(m.tool, m.method, f"{m.points:,}", f"{m.med('seconds'):.3f}",
                  f"{m.speed:,.0f}", f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x",
                  mib(growth(m)), mib(tree_growth(m)), stored_text(m))  # fmt: skip
    report.table(table)

    versions = {}
    for m in peers:
        if m.results:
            versions[m.tool] = str(m.results[0]["version"])
    if versions:
        network = "no network (unshare --net)" if isolate else "telemetry off by environment"
        peer_line = ", ".join(f"{tool} {v}" for tool, v in versions.items())
        peer_line += f" ({PEER_VENV.relative_to(PEERS.parent.parent)}, {network})"
    else:
        peer_line = "none measured"
    report.note(
        f"vestige {vestige.results[0]['version']}, under `vestige run` (VESTIGE_LIVE set, the "
        "capture shim loaded) and in-process (`python script.py`, `vestige.start()` untimed). "
        f"Peers: {peer_line}. "
        '"vestige is": how many times faster vestige under `vestige run` is than that row '
        "(its points/s over the row's). The floors time the loop only (nothing to flush); "
        "the two-array floor keeps step and value per keyword and nothing else: no key, no "
        "wall time, no checks, no disk. "
        '"peak RSS growth": VmHWM after the flush minus VmRSS before the loop, '
        'of the logging process; "tree growth": the same for the summed RSS of its process '
        f'tree, sampled every {SAMPLE_S * 1000:.0f} ms. "stored": points the tool had '
        "written when its flush returned, counted afterwards (floors: kept in memory)."
    )
    if not all(r.get("peak_reset") for m in [*ours, *peers] for r in m.results):
        report.note("Note: /proc/self/clear_refs was not writable: peak RSS is since the start.")

    speed = vestige.speed
    report.goal(f">= {GOAL_POINTS_PER_S:,} points/s, vestige.log to the end of vestige.flush",
                speed >= GOAL_POINTS_PER_S,
                f"{speed:,.0f} points/s, {vestige.points:,} points")  # fmt: skip
    for m, mode in ((vestige, "under `vestige run`"), (inprocess, "in-process run")):
        ratio = m.speed / floor.speed
        report.goal(f"vestige.log >= {GOAL_OF_FLOOR:.2f}x the floor's points/s, {mode} "
                    f"(floor: def floor(step=None, **kw), two array('d') appends per keyword)",
                    ratio >= GOAL_OF_FLOOR,
                    f"{ratio:.2f}x: {m.speed:,.0f} vs {floor.speed:,.0f} points/s")  # fmt: skip
    rss = growth(vestige) / KIB
    tree = tree_growth(vestige)
    tree_text = "" if tree is None else f"; with the vestige run process: {tree / KIB:.1f} MiB"
    report.goal(f"<= {GOAL_RSS_MIB} MiB peak RSS growth while logging {vestige.points:,} points",
                rss <= GOAL_RSS_MIB, f"{rss:.1f} MiB{tree_text}")  # fmt: skip
    report.note(f"Machine: {machine()}. {NOISE_NOTE}")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
