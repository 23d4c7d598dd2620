"""Sweep children on a cluster: a Dask scheduler, or Slurm through submitit. Each child is
the same `child.run_child(job)` the local executor runs, called where the cluster puts it.

What the remote side needs (nothing here can check it from the submitting machine):
- the store at the job's `VESTIGE_DIR`, a path every worker or node sees (a shared
  filesystem), and the job's `cwd` there too;
- a Python that imports vestige: the child is `python -m vestige run` with the worker's
  interpreter (Dask) or with this interpreter's path on the node (submitit), and git on
  PATH for the code snapshot;
- the child records the worker's environment, not the submitting shell's.

Both executors cancel only what has not started, on `stop` or after the first failure
with `fail_fast`: a Dask task cannot be interrupted once running, and a child that runs
to its end is a recorded run either way. dask and submitit are optional extras, imported
when an executor is made, never at `import vestige`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import shutil
import uuid

from vestige.errors import UsageError
from vestige.sweep.child import run_child

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from pathlib import Path
    from types import ModuleType
    from typing import Any

#: Slurm states of a job that has started (or ended): on_start is due.
_STARTED = ("RUNNING", "COMPLETING", "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY")


def _require(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(
            f"the {extra} executor needs {module}, which is not installed: "
            f"pip install 'vestige[{extra}]'"
        ) from e


def _shipped(job: dict[str, Any]) -> dict[str, Any]:
    """The job as it runs remotely: its output captured (there is no terminal there)."""
    return {**job, "capture": True}


def _failed(job: dict[str, Any], why: str) -> dict[str, Any]:
    """The result of a job whose remote side raised (or vanished): no exit code, no run."""
    return {"index": job["index"], "exit_code": None, "run_id": None, "tail": why, "output": ""}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Starts:
    """on_start at most once per index: a start may be seen late (after the end), or twice."""

    def __init__(self, on_start: Callable[[int], None]) -> None:
        self.on_start = on_start
        self.seen: set[int] = set()

    def __call__(self, index: int) -> None:
        if index not in self.seen:
            self.seen.add(index)
            self.on_start(index)


# -- Dask ------------------------------------------------------------------------------------


def _dask_task(job: dict[str, Any], topic: str) -> dict[str, Any]:
    """Runs on the worker: tell the client the child starts, then run it."""
    from distributed import get_worker

    get_worker().log_event(topic, job["index"])
    return run_child(job)


class DaskExecutor:
    """Children as tasks of a running `distributed` scheduler (vestige starts no cluster).

    `options` go to `Client.submit` for every child: `resources={"GPU": 1}`, `retries=`,
    `workers=[...]`... A worker that dies mid-child makes Dask run it again elsewhere
    (up to `distributed.scheduler.allowed-failures`): the first attempt stays in the store
    as an interrupted run.
    """

    #: Seconds to reach the scheduler before giving up.
    connect_timeout: float = 30

    def __init__(self, scheduler: str | None, **options: Any) -> None:
        if not scheduler:
            raise UsageError(
                "the dask executor needs the address of a running scheduler: "
                "--scheduler tcp://HOST:8786 (vestige starts no cluster of its own)"
            )
        self.distributed = _require("distributed", "dask")
        self.scheduler = scheduler
        self.options = options

    def run(
        self,
        jobs: list[dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None],
        on_start: Callable[[int], None],
        stop: threading.Event,
        fail_fast: bool,
    ) -> None:
        try:
            client = self.distributed.Client(
                self.scheduler, timeout=self.connect_timeout, set_as_default=False
            )
        except OSError as e:  # TimeoutError too
            raise UsageError(
                f"cannot reach the Dask scheduler at {self.scheduler} (--scheduler): {e}"
            ) from e
        try:
            self._run(client, jobs, on_done, _Starts(on_start), stop, fail_fast)
        finally:
            client.close()

    def _run(
        self,
        client: Any,
        jobs: list[dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None],
        start: _Starts,
        stop: threading.Event,
        fail_fast: bool,
    ) -> None:
        sweep = uuid.uuid4().hex[:12]
        topic = f"vestige-sweep-{sweep}"
        # Start events arrive on the client's event-loop thread; callbacks are made here.
        starts: queue.SimpleQueue[int] = queue.SimpleQueue()
        client.subscribe_topic(topic, lambda event: starts.put(event[1]))
        pending: dict[str, tuple[Any, dict[str, Any]]] = {}
        try:
            for job in jobs:
                future = client.submit(
                    _dask_task, _shipped(job), topic,
                    key=f"vestige-child-{job['index']}-{sweep}", pure=False, **self.options,
                )  # fmt: skip
                pending[future.key] = (future, job)
            done = self.distributed.as_completed([f for f, _ in pending.values()], loop=client.loop)
            failed = False
            while pending and not failed and not stop.is_set():
                while not starts.empty():
                    start(starts.get())
                batch = done.next_batch(block=False)
                if not batch:
                    stop.wait(0.05)
                    continue
                for future in batch:
                    _, job = pending.pop(future.key)
                    result = _dask_result(future, job)
                    start(job["index"])
                    on_done(result)
                    failed = failed or (fail_fast and result["exit_code"] != 0)
        finally:
            if pending:  # stopped, failed fast, or interrupted: what has not run never will
                client.cancel([f for f, _ in pending.values()])
            client.unsubscribe_topic(topic)


def _dask_result(future: Any, job: dict[str, Any]) -> dict[str, Any]:
    if future.status == "finished":
        try:
            return future.result()  # type: ignore[no-any-return]
        except Exception as e:  # a result that does not unpickle here
            return _failed(job, _one_line(e))
    if future.status == "error":
        return _failed(job, _one_line(future.exception()))
    return _failed(job, f"{future.status} on the Dask cluster")


# -- Slurm (submitit) ------------------------------------------------------------------------


class SlurmExecutor:
    """Children as Slurm jobs (one job array), through submitit.

    `cluster` is submitit's: None means Slurm (refused where `sbatch` is missing, rather
    than submitit's silent fallback to running everything here at once); "local" runs each
    child as a local process, for tests. Submitit's logs and pickles go to `folder`, which
    the nodes must see. Unset values are left to submitit, except that its time limit
    defaults to 5 minutes, not to the partition's: give `time_min` for longer children.
    """

    #: Seconds between looks at the jobs' states (each look stats every unfinished job's
    #: folder; Slurm itself is asked through submitit's rate-limited sacct watcher).
    poll_interval: float = 1.0

    def __init__(
        self,
        folder: Path,
        partition: str | None,
        gpus: int | None,
        time_min: int | None,
        cpus: int | None,
        mem_gb: int | None,
        cluster: str | None = None,
    ) -> None:
        submitit = _require("submitit", "slurm")
        if cluster is None:
            if shutil.which("sbatch") is None:
                raise UsageError("the slurm executor needs Slurm: no `sbatch` on PATH here")
            cluster = "slurm"
        self.cluster = cluster
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        given = {
            "slurm_partition": partition,
            "gpus_per_node": gpus,
            "timeout_min": time_min,
            "cpus_per_task": cpus,
            "mem_gb": mem_gb,
        }
        self.executor.update_parameters(
            name="vestige-sweep", **{k: v for k, v in given.items() if v is not None}
        )
        if cluster == "local":
            self.poll_interval = 0.1

    def run(
        self,
        jobs: list[dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None],
        on_start: Callable[[int], None],
        stop: threading.Event,
        fail_fast: bool,
    ) -> None:
        start = _Starts(on_start)
        try:
            submitted = self.executor.map_array(run_child, [_shipped(job) for job in jobs])
        except Exception as e:  # sbatch refused (partition, limits): its message says why
            raise UsageError(f"{self.cluster} refused the sweep: {_one_line(e)}") from e
        pending = {job["index"]: (sjob, job) for sjob, job in zip(submitted, jobs, strict=True)}
        ok: list[Any] = []  # the jobs whose child ended ok: their files are tidied away
        try:
            while pending and not stop.is_set():
                for index, (sjob, job) in list(pending.items()):
                    if sjob.done():
                        del pending[index]
                        result = _slurm_result(sjob, job)
                        start(index)
                        on_done(result)
                        if result["exit_code"] == 0:
                            ok.append(sjob)
                        if fail_fast and result["exit_code"] != 0:
                            return
                    elif str(sjob.state).upper().startswith(_STARTED):
                        start(index)
                if pending:
                    stop.wait(self.poll_interval)
        finally:
            for index, (sjob, _) in pending.items():
                if index not in start.seen:
                    sjob.cancel(check=False)
            if not pending:  # (jobs still running may share a file with the ended ones)
                _tidy(ok, everything=len(ok) == len(submitted))


def _tidy(ok: list[Any], everything: bool) -> None:
    """Remove submitit's files of the jobs whose child ended ok (each child's run keeps its
    output; they would stay in the store's tmp/ forever), and the array's script and the
    folder when every job was ok. A failed job's files stay: its Slurm log says why."""
    paths = [sjob.paths for sjob in ok]
    names = ["stdout", "stderr", "submitted_pickle", "result_pickle"]
    if everything:
        names.append("submission_file")
    for p in paths:
        for name in names:
            with contextlib.suppress(OSError, AttributeError):
                os.unlink(getattr(p, name))
    if everything:
        for folder in {str(p.folder) for p in paths}:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # (only if nothing else is in it)


def _slurm_result(sjob: Any, job: dict[str, Any]) -> dict[str, Any]:
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        return sjob.result()  # type: ignore[no-any-return]
    except FailedJobError as e:  # raised in the job: the trace's last line is the exception
        parts = str(e).split("-" * 22)
        lines = [ln for ln in (parts[1] if len(parts) > 2 else str(e)).splitlines() if ln.strip()]
        return _failed(job, lines[-1].strip() if lines else "FailedJobError")
    except UncompletedJobError:  # killed, timed out, cancelled: no result pickle
        return _failed(job, f"{sjob.job_id} ended without a result (state {sjob.state})")
