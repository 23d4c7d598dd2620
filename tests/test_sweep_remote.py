"""The remote sweep executors against real backends: a `distributed` LocalCluster with
worker processes, and submitit's local executor (one real process per job). The children
are real `vestige run`s into a real store; nothing is mocked."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest
from conftest import clean_environment, git, vestige

from vestige.errors import UsageError
from vestige.store.layout import create
from vestige.sweep.remote import DaskExecutor, SlurmExecutor

#: The child: leaves start-/end- marks outside the project (so the test can tell which
#: children ran at all), prints one line, exits as asked.
WORK = """\
import argparse, pathlib, time
p = argparse.ArgumentParser()
p.add_argument("--value")
p.add_argument("--sleep", type=float, default=0)
p.add_argument("--exit", type=int, default=0)
p.add_argument("--marks")
p.add_argument("--wait-for")
a = p.parse_args()
marks = pathlib.Path(a.marks)
(marks / f"start-{a.value}").touch()
time.sleep(a.sleep)
deadline = time.monotonic() + 300
while a.wait_for and not pathlib.Path(a.wait_for).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print(f"value {a.value} done")
(marks / f"end-{a.value}").touch()
raise SystemExit(a.exit)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real scheduler and two single-threaded worker processes, started in the clean
    environment (workers inherit it, and the children inherit theirs)."""
    base = tmp_path_factory.mktemp("dask")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        with distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as c:
            yield c


@pytest.fixture
def sweep_project(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(project with work.py committed and its store made, folder of the children's marks)."""
    (project / "work.py").write_text(WORK)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "work")
    create(str(project / ".vestige"))
    marks = tmp_path / "marks"
    marks.mkdir()
    return project, marks


def job(
    project: Path, marks: Path, index: int, value: str, sleep: float = 0, exit: int = 0
) -> dict[str, Any]:
    argv = [sys.executable, "work.py", "--value", value, "--marks", str(marks)]
    return {
        "index": index,
        "argv": [*argv, "--sleep", str(sleep), "--exit", str(exit)],
        "params": {"value": value},
        "cwd": str(project),
        "env": {"VESTIGE_DIR": str(project / ".vestige")},
    }


def runs(project: Path) -> list[dict[str, Any]]:
    done = vestige("ls", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def ran(marks: Path) -> set[str]:
    return {p.name.split("-", 1)[1] for p in marks.glob("start-*")}


def settle(marks: Path, timeout: float = 20) -> None:
    """Wait until every child that started has ended (a running Dask task cannot be
    cancelled: it runs on after the executor returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = {p.name.split("-", 1)[1] for p in marks.glob("end-*")}
        if ended >= ran(marks):
            time.sleep(0.3)  # a queued task would have started by now
            if {p.name.split("-", 1)[1] for p in marks.glob("end-*")} >= ran(marks):
                return
        time.sleep(0.05)
    raise AssertionError(f"children still running: {ran(marks)}")


def wait_recorded(project: Path, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listing = runs(project)
        if sum(r["status"] != "running" for r in listing) >= count or time.monotonic() > deadline:
            return listing
        time.sleep(0.1)


def one_worker(cluster: Any) -> str:
    return sorted(cluster.scheduler_info["workers"])[0]  # type: ignore[no-any-return]


# -- Dask ------------------------------------------------------------------------------------


def test_dask_runs_every_child_and_the_store_records_them(
    cluster: Any, sweep_project: tuple[Path, Path]
) -> None:
    project, marks = sweep_project
    jobs = [job(project, marks, i, v) for i, v in enumerate(["a", "b", "c", "d"])]
    done: list[dict[str, Any]] = []
    started: list[int] = []
    DaskExecutor(cluster.scheduler_address).run(
        jobs, done.append, started.append, threading.Event(), fail_fast=False
    )
    assert sorted(r["index"] for r in done) == [0, 1, 2, 3]
    assert sorted(started) == [0, 1, 2, 3]
    assert all(r["exit_code"] == 0 for r in done), done
    by_index = {r["index"]: r for r in done}
    assert by_index[2]["tail"] == "value c done"
    assert "value c done" in by_index[2]["output"]  # captured: no terminal on a worker
    ids = {r["run_id"] for r in done}
    assert None not in ids and len(ids) == 4
    listing = runs(project)
    assert {r["id"] for r in listing} == ids
    assert {r["status"] for r in listing} == {"ok"}
    assert sorted(r["params"]["value"] for r in listing) == ["a", "b", "c", "d"]


def test_dask_fail_fast_cancels_what_has_not_started(
    cluster: Any, sweep_project: tuple[Path, Path]
) -> None:
    project, marks = sweep_project
    jobs = [job(project, marks, 0, "slow", sleep=0.5, exit=3)]
    jobs += [job(project, marks, i, f"v{i}", sleep=0.3) for i in (1, 2, 3)]
    done: list[dict[str, Any]] = []
    # all on one single-threaded worker: they run one after the other, in order
    DaskExecutor(cluster.scheduler_address, workers=[one_worker(cluster)]).run(
        jobs, done.append, lambda i: None, threading.Event(), fail_fast=True
    )
    assert done[0]["index"] == 0
    assert done[0]["exit_code"] == 3
    assert done[0]["run_id"] is not None  # a failed child is still a recorded run
    settle(marks)
    assert "slow" in ran(marks)
    assert len(ran(marks)) < 4, ran(marks)  # at least one never ran
    listing = wait_recorded(project, len(ran(marks)))
    assert len(listing) == len(ran(marks))
    assert {r["exit_code"] for r in listing if r["params"]["value"] == "slow"} == {3}


def test_dask_stop_from_another_thread_cancels(
    cluster: Any, sweep_project: tuple[Path, Path]
) -> None:
    project, marks = sweep_project
    slow = job(project, marks, 0, "slow")
    slow["argv"] += ["--wait-for", str(marks.parent / "go")]  # (ends only once we say so)
    jobs = [slow, *(job(project, marks, i, f"v{i}") for i in (1, 2, 3))]
    stop = threading.Event()
    first_started = threading.Event()
    stopper = threading.Thread(target=lambda: first_started.wait(60) and stop.set())
    stopper.start()
    done: list[dict[str, Any]] = []
    DaskExecutor(cluster.scheduler_address, workers=[one_worker(cluster)]).run(
        jobs, done.append, lambda i: i == 0 and first_started.set(), stop, fail_fast=False
    )
    stopper.join()
    assert first_started.is_set()
    assert not (marks / "end-slow").exists()  # returned while the first child still ran
    assert done == []
    (marks.parent / "go").touch()
    settle(marks, timeout=120)
    assert ran(marks) == {"slow"}  # the queued ones never ran
    listing = wait_recorded(project, 1)
    assert [(r["params"]["value"], r["status"]) for r in listing] == [("slow", "ok")]


def test_dask_remote_exception_is_a_result(cluster: Any, project: Path) -> None:
    broken = {"index": 0, "cwd": str(project), "env": {}}  # no argv: run_child raises there
    done: list[dict[str, Any]] = []
    DaskExecutor(cluster.scheduler_address).run(
        [broken], done.append, lambda i: None, threading.Event(), fail_fast=False
    )
    assert done == [
        {"index": 0, "exit_code": None, "run_id": None, "tail": "KeyError: 'argv'", "output": ""}
    ]


def test_dask_needs_a_scheduler() -> None:
    with pytest.raises(UsageError, match="--scheduler"):
        DaskExecutor(None)


def test_dask_unreachable_scheduler_is_a_usage_error(tmp_path: Path) -> None:
    executor = DaskExecutor("tcp://127.0.0.1:9")  # the discard port: nothing listens
    executor.connect_timeout = 1
    with pytest.raises(UsageError, match=r"cannot reach the Dask scheduler.*--scheduler"):
        executor.run([], lambda r: None, lambda i: None, threading.Event(), fail_fast=False)


# -- Slurm through submitit ------------------------------------------------------------------


def test_slurm_local_runs_every_child_and_the_store_records_them(
    sweep_project: tuple[Path, Path], tmp_path: Path
) -> None:
    project, marks = sweep_project
    jobs = [job(project, marks, i, v) for i, v in enumerate(["x", "y", "z"])]
    jobs.append({"index": 3, "cwd": str(project), "env": {}})  # no argv: raises in the job
    executor = SlurmExecutor(
        folder=tmp_path / "slurm", partition=None, gpus=None, time_min=5, cpus=None,
        mem_gb=None, cluster="local",
    )  # fmt: skip
    done: list[dict[str, Any]] = []
    started: list[int] = []
    executor.run(jobs, done.append, started.append, threading.Event(), fail_fast=False)
    assert sorted(started) == [0, 1, 2, 3]
    by_index = {r["index"]: r for r in done}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[3] == {
        "index": 3, "exit_code": None, "run_id": None, "tail": "KeyError: 'argv'", "output": "",
    }  # fmt: skip
    children = [by_index[i] for i in (0, 1, 2)]
    assert [r["exit_code"] for r in children] == [0, 0, 0]
    assert by_index[1]["tail"] == "value y done"
    listing = runs(project)
    assert {r["id"] for r in listing} == {r["run_id"] for r in children}
    assert {r["status"] for r in listing} == {"ok"}
    assert sorted(r["params"]["value"] for r in listing) == ["x", "y", "z"]
    # submitit's files of the ok children are gone; the failed one's stay (its log)
    logs = [p for p in (tmp_path / "slurm").iterdir() if p.name.endswith("_log.err")]
    assert len(logs) == 1 and "KeyError" in logs[0].read_text()


def test_slurm_local_fail_fast_returns_at_the_first_failure(
    sweep_project: tuple[Path, Path], tmp_path: Path
) -> None:
    project, marks = sweep_project
    slow = job(project, marks, 1, "slow")
    slow["argv"] += ["--wait-for", str(tmp_path / "go")]  # (ends only once we say so)
    jobs = [job(project, marks, 0, "bad", exit=3), slow]
    executor = SlurmExecutor(tmp_path / "slurm", None, None, 5, None, None, cluster="local")
    done: list[dict[str, Any]] = []
    executor.run(jobs, done.append, lambda i: None, threading.Event(), fail_fast=True)
    assert [(r["index"], r["exit_code"]) for r in done] == [(0, 3)]
    assert not (marks / "end-slow").exists()  # returned without waiting for the slow one
    (tmp_path / "go").touch()
    settle(marks, timeout=120)  # local jobs start at once: nothing left to cancel, slow ran
    listing = wait_recorded(project, 2)
    assert sorted((r["params"]["value"], r["exit_code"]) for r in listing) == [
        ("bad", 3), ("slow", 0)
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="Slurm is installed here")
def test_slurm_without_slurm_is_a_usage_error(tmp_path: Path) -> None:
    # submitit alone would fall back to running every child here at once
    with pytest.raises(UsageError, match="sbatch"):
        SlurmExecutor(tmp_path / "slurm", None, None, None, None, None)


# -- optional extras -------------------------------------------------------------------------

BLOCKED = """\
import sys
sys.modules[{module!r}] = None  # as if not installed
from vestige.errors import UsageError
from vestige.sweep.remote import DaskExecutor, SlurmExecutor
try:
    {make}
except UsageError as e:
    print(e)
"""


@pytest.mark.parametrize(
    ("module", "make", "extra"),
    [
        ("distributed", "DaskExecutor('tcp://127.0.0.1:8786')", "dask"),
        ("submitit", "SlurmExecutor('f', None, None, None, None, None, 'local')", "slurm"),
    ],
)
def test_missing_library_names_the_extra(
    tmp_path: Path, module: str, make: str, extra: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED.format(module=module, make=make)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"pip install 'vestige[{extra}]'" in done.stdout


def test_remote_module_imports_no_backend(tmp_path: Path) -> None:
    code = "import sys, vestige.sweep.remote; print(sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    top = {name.split(".", 1)[0] for name in ast.literal_eval(done.stdout)}
    assert not top & {"dask", "distributed", "submitit", "cloudpickle"}


def test_cli_sweep_on_the_dask_cluster(cluster: Any, sweep_project: tuple[Path, Path]) -> None:
    """`vestige run --executor dask --scheduler ADDR --each ...` end to end."""
    project, marks = sweep_project
    done = vestige(
        "run", "--executor", "dask", "--scheduler", cluster.scheduler_address,
        "--each", "v=a,b,c", "--", "work.py", "--value", "{v}", "--marks", str(marks),
        cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    assert "3 children: 3 ok" in done.stdout.decode()
    recorded = runs(project)
    parent = next(r for r in recorded if r["command"][:2] == ["vestige", "run"])
    children = [r for r in recorded if r["parent"] == parent["id"]]
    assert sorted(c["params"]["v"] for c in children) == ["a", "b", "c"]
    assert all(c["status"] == "ok" for c in children)


def test_cli_sweep_through_submitit_local(sweep_project: tuple[Path, Path]) -> None:
    """`--executor slurm` with submitit's local cluster (a real process per child)."""
    project, marks = sweep_project
    done = vestige(
        "run", "--executor", "slurm", "--slurm-cluster", "local", "--slurm-time", "5",
        "--each", "v=x,y", "--", "work.py", "--value", "{v}", "--marks", str(marks),
        cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    assert "2 children: 2 ok" in done.stdout.decode()
    assert ran(marks) == {"x", "y"}
    assert not (project / ".vestige" / "tmp" / "slurm").exists()  # all ok: tidied away
