"""One child of a sweep on a remote executor (a Dask worker, a Slurm job): `vestige run`
of the substituted command, in a subprocess. (Local children are `Launch`es in the
sweep's own process: sweep/local.py.)

A job is a plain dict so every executor can ship it (pickle, JSON):

    {"index": 3, "argv": ["python", "eval.py", "--model", "vit"], "params": {"model": "vit"},
     "cwd": "/abs/project/sub", "env": {"VESTIGE_DIR": "/abs/project/.vestige",
     "VESTIGE_RUN_ID": "<the sweep's id>"}, "capture": True}

and its result another: {"index", "exit_code", "run_id" (None if vestige could not record),
"tail" (the last line it printed, when captured), "output" (all it printed, when captured
and not streamed)}. The child's full output is kept by its own run in any case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def command_for(job: dict[str, Any]) -> list[str]:
    """The `vestige run` command line of a job (its values recorded as params)."""
    cmd = [sys.executable, "-m", "vestige", "run"]
    for key, value in job.get("params", {}).items():
        cmd += ["--param", f"{key}={value}"]
    if job.get("trace") in ("always", "never"):
        cmd.append("--trace" if job["trace"] == "always" else "--no-trace")
    return [*cmd, "--", *job["argv"]]


def run_child(
    job: dict[str, Any],
    on_line: Callable[[str], None] | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> dict[str, Any]:
    """Run one child to its end; never raises for the child's own failure."""
    if job.get("push"):
        return _pushed_child(job, on_line, on_start)
    fd, id_file = tempfile.mkstemp(prefix="vestige-child-", suffix=".id")
    os.close(fd)
    env = {**os.environ, **job.get("env", {}), "VESTIGE_ID_OUT": id_file}
    capture = bool(job.get("capture", True))
    tail = ""
    chunks: list[bytes] = []
    try:
        try:
            proc = subprocess.Popen(
                command_for(job), cwd=job["cwd"], env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.STDOUT if capture else None,
            )  # fmt: skip
        except OSError as e:
            return {"index": job["index"], "exit_code": 127, "run_id": None,
                    "tail": f"cannot start: {e.strerror}", "output": ""}  # fmt: skip
        if on_start is not None:
            on_start(proc)
        if capture:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                chunks.append(raw)
                line = raw.decode("utf-8", "replace").rstrip("\r\n").split("\r")[-1]
                if line.strip():
                    tail = line
                    if on_line is not None:
                        on_line(line)
        code = proc.wait()
        with open(id_file) as f:
            run_id = f.read().strip() or None
    finally:
        try:
            os.unlink(id_file)
        except OSError:
            pass
    return {
        "index": job["index"],
        "exit_code": code,
        "run_id": run_id,
        "tail": tail,
        "output": b"".join(chunks).decode("utf-8", "replace") if capture else "",
    }


def _pushed_child(
    job: dict[str, Any],
    on_line: Callable[[str], None] | None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None,
) -> dict[str, Any]:
    """`run --push` on a worker (Dask, Slurm): the child records into a scratch store of its
    own (the worker needs no shared filesystem), its run is pushed from there to the
    remote, and the scratch store removed. The result says `pushed`; when the push fails,
    `push_error` says why and the scratch store is kept (its path is in the message)."""
    import shutil
    from pathlib import Path

    scratch = tempfile.mkdtemp(prefix="vestige-scratch-")
    store = os.path.join(scratch, "store")
    inner = {**job, "push": None, "env": {**job.get("env", {}), "VESTIGE_DIR": store}}
    result = run_child(inner, on_line, on_start)
    if result["run_id"] is None:  # (nothing recorded: nothing to push or keep)
        shutil.rmtree(scratch, ignore_errors=True)
        return result
    try:
        from vestige.remote.sync import push_store

        done = push_store(Path(store), [result["run_id"]], job["push"], Path(job["cwd"]))
        if done.left_out:
            raise RuntimeError(done.left_out[0][1])
    except Exception as e:
        from vestige.remote.failures import scrub

        why = scrub(str(e)) or type(e).__name__
        kept = f"the run is kept on {os.uname().nodename} in {store}"
        return {**result, "pushed": False, "push_error": f"{why}; {kept}"}
    shutil.rmtree(scratch, ignore_errors=True)
    return {**result, "pushed": True}
