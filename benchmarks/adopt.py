"""How fast does `vestige adopt` take in an MLflow store, and `vestige export-mlflow` give one back?

An MLflow file store (`mlruns/`) of 1,000 runs x 1,000 metric steps (two keys) x 5
artifacts is written by MLflow's own client in a subprocess (not timed): per run three
params, a tag, a note, and five files: a `config.json` and a `README.txt` every run
shares, a `metrics.csv`, a `plot.png` and a 64 KiB `model.bin` of its own. Then, as
whole commands:
- `vestige adopt mlruns/` into a fresh project: runs/s, and the store's size against the
  source's (the shared files are stored once);
- `vestige export-mlflow` of the adopted runs into a real `mlflow server` (sqlite
  backend, 127.0.0.1), beside the floor: a Python process doing what the export does
  with MLflow's client in a plain loop (create the run, one `log_batch` per 1,000
  metrics with the params and tags, `log_artifacts` of the same five files, end it)
  into another experiment of the same server.
Goal (issue 18): record the numbers; the export within 2x of the floor.

`.venv/bin/python benchmarks/adopt.py [--quick] [--markdown] [--runs N] [--count N]
[--steps N]` (--quick: 20 runs x 50 steps)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    run,
    secs,
    time_command,
    vestige_script,
)
from ui_mlflow import free_port, stop, wait_for

#: Writes the MLflow store: argv count, steps, folder of the shared files.
MAKE = """
import os, sys, time, random
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
count, steps, shared = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
client = MlflowClient(tracking_uri="file:./mlruns")
exp = client.create_experiment("bench")
rng = random.Random(7)
own = os.path.abspath("own")
for i in range(count):
    run = client.create_run(exp, run_name=f"run-{i}", tags={"mlflow.user": "bench"})
    rid = run.info.run_id
    t0 = int(time.time() * 1000)
    metrics = [Metric(k, rng.random(), t0 + s, s) for s in range(steps) for k in ("loss", "acc")]
    params = [Param("lr", str(0.001 * (i % 10 + 1))), Param("model", ("small", "large")[i % 2]),
              Param("seed", str(i))]
    tags = [RunTag("stage", "bench"), RunTag("mlflow.note.content", f"run {i} of the benchmark")]
    for start in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[start:start + 1000],
                         params=params if start == 0 else [], tags=tags if start == 0 else [])
    os.makedirs(own, exist_ok=True)
    for name in os.listdir(own):
        os.unlink(os.path.join(own, name))
    with open(os.path.join(own, "metrics.csv"), "w") as f:
        f.write("step,loss\\n" + "".join(f"{s},{rng.random()}\\n" for s in range(100)))
    with open(os.path.join(own, "plot.png"), "wb") as f:
        f.write(b"\\x89PNG\\r\\n\\x1a\\n" + os.urandom(2048))
    with open(os.path.join(own, "model.bin"), "wb") as f:
        f.write(os.urandom(65536))
    client.log_artifacts(rid, shared)
    client.log_artifacts(rid, own)
    client.set_terminated(rid, "FINISHED")
"""

#: The floor: MLflow's client in a plain loop doing what the export does, from the same
#: bytes (read back from the MLflow store made above). argv: tracking URI, mlruns folder.
FLOOR = """
import os, sys
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient
uri, mlruns = sys.argv[1], sys.argv[2]
source = MlflowClient(tracking_uri="file:" + mlruns)
runs = []
for exp in source.search_experiments(view_type=ViewType.ALL):
    runs += source.search_runs([exp.experiment_id], max_results=50000)
target = MlflowClient(tracking_uri=uri)
exp = target.create_experiment("floor")
for r in runs:
    metrics = [m for key in r.data.metrics for m in source.get_metric_history(r.info.run_id, key)]
    new = target.create_run(exp, start_time=r.info.start_time, run_name=r.info.run_name)
    rid = new.info.run_id
    params = [Param(k, v) for k, v in r.data.params.items()]
    tags = [RunTag(k, v) for k, v in r.data.tags.items()]
    for start in range(0, max(1, len(metrics)), 1000):
        target.log_batch(rid, metrics=metrics[start:start + 1000],
                         params=params if start == 0 else [], tags=tags if start == 0 else [])
    artifacts = r.info.artifact_uri.removeprefix("file://")
    target.log_artifacts(rid, artifacts)
    target.set_terminated(rid, "FINISHED", end_time=r.info.end_time)
"""


def size_of(folder: Path) -> int:
    """Bytes of the files under `folder` (as stored: what `du --apparent-size` says)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def start_mlflow(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`mlflow server` (sqlite, artifacts in a folder) on 127.0.0.1; its base URL."""
    port = free_port()
    mlflow = str(Path(PYTHON).with_name("mlflow"))
    proc = subprocess.Popen(
        [mlflow, "server", "--backend-store-uri", f"sqlite:///{work / 'server.db'}",
         "--artifacts-destination", str(work / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/health", proc, "mlflow server")
    return proc, base


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=int, default=None,
                            help="runs (default 1,000; --quick 20)")  # fmt: skip
        parser.add_argument("--steps", type=int, default=None,
                            help="metric steps per key (default 1,000; --quick 50)")  # fmt: skip

    args = parse_args(__doc__.splitlines()[0], default_runs=1, quick_runs=1, extra=extra)
    count = args.count or (20 if args.quick else 1000)
    steps = args.steps or (50 if args.quick else 1000)
    try:
        import mlflow  # noqa: F401 (only asked whether it is installed)
    except ImportError:
        raise SystemExit("benchmark: needs MLflow (pip install 'vestige[mlflow]')") from None
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-adopt-"))
    env = bench_env(HOME=str(work / "home"), MLFLOW_ALLOW_FILE_STORE="true",
                    MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                    MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # fmt: skip
    (work / "home").mkdir()
    vestige = vestige_script()
    report = Report(args.markdown)
    server = None
    try:
        source = work / "source"
        source.mkdir()
        shared = source / "shared"
        shared.mkdir()
        (shared / "config.json").write_text('{"optimizer": "adam", "layers": [64, 64]}\n' * 40)
        (shared / "README.txt").write_text("The benchmark's shared notes.\n" * 100)
        progress(f"MLflow writes {count:,} runs x {steps:,} steps x 5 artifacts (not timed)")
        start = time.perf_counter()
        run([PYTHON, "-c", MAKE, str(count), str(steps), str(shared)], source, env)
        made = time.perf_counter() - start
        mlruns = source / "mlruns"
        source_bytes = size_of(mlruns)

        adopt_times: list[float] = []
        store_bytes = 0
        project = work / "project"
        for rep in range(args.runs):
            progress(f"vestige adopt: repetition {rep + 1}/{args.runs}")
            shutil.rmtree(project, ignore_errors=True)
            project.mkdir()
            run(["git", "init", "-q"], project, env)
            adopt_times.append(time_command([vestige, "adopt", str(mlruns)], project, env))
            store_bytes = size_of(project / ".vestige" / "objects")
        again = time_command([vestige, "adopt", str(mlruns)], project, env)

        progress("starting mlflow server (sqlite)")
        server, url = start_mlflow(work, env)
        export_times: list[float] = []
        floor_times: list[float] = []
        for rep in range(args.runs):
            progress(f"export-mlflow and the floor: repetition {rep + 1}/{args.runs}")
            export = [vestige, "export-mlflow", "--tracking-uri", url, "--experiment",
                      f"vestige-{rep}"]  # fmt: skip
            export_times.append(time_command(export, project, env))
            floor_times.append(time_command([PYTHON, "-c", FLOOR.replace('"floor"',
                                             f'"floor-{rep}"'), url, str(mlruns)],
                                            source, env))  # fmt: skip
        export_again = time_command([vestige, "export-mlflow", "--tracking-uri", url,
                                     "--experiment", "vestige-0"], project, env)  # fmt: skip

        adopt_s, export_s, floor_s = (median(t) for t in (adopt_times, export_times, floor_times))
        table = Table(f"adopt an MLflow store, export to an MLflow server ({machine()})",
                      ["step", "runs", "seconds", "runs/s", "against"],
                      right=[1, 2, 3])  # fmt: skip
        table.add("vestige adopt mlruns/", count, secs(adopt_s), f"{count / adopt_s:,.1f}",
                  f"source {source_bytes / 1e6:.1f} MB -> store {store_bytes / 1e6:.1f} MB "
                  f"({store_bytes / source_bytes:.2f}x)")  # fmt: skip
        table.add("vestige adopt again (nothing new)", count, secs(again),
                  f"{count / again:,.1f}", "-")  # fmt: skip
        table.add("vestige export-mlflow", count, secs(export_s), f"{count / export_s:,.1f}",
                  f"{export_s / floor_s:.2f}x the floor")  # fmt: skip
        table.add("floor: MLflow client loop (log_batch, log_artifacts)", count, secs(floor_s),
                  f"{count / floor_s:,.1f}", "-")  # fmt: skip
        table.add("vestige export-mlflow again (nothing new)", count, secs(export_again),
                  f"{count / export_again:,.1f}", "-")  # fmt: skip
        report.table(table)
        report.note(
            f"{count:,} runs x {steps:,} steps of two metric keys x 5 artifacts (two shared by "
            f"every run), written by MLflow's client in {made:.0f} s (not timed). Whole "
            f"commands, medians of {args.runs}; the source size is the mlruns folder's files "
            "(metric files, meta.yaml, artifacts), the store's is its objects (compressed "
            "by nothing; shared files stored once, metrics as one binary object a run). "
            f"Load average {os.getloadavg()[0]:.1f} at the end. {NOISE_NOTE}"
        )
        report.goal("export-mlflow within 2x of MLflow's own client loop", export_s <= 2 * floor_s,
                    f"{export_s / floor_s:.2f}x")  # fmt: skip
        report.goal("store no larger than the source (dedup)", store_bytes <= source_bytes,
                    f"{store_bytes / source_bytes:.2f}x")  # fmt: skip
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)
    report.print()


if __name__ == "__main__":
    sys.exit(main())
