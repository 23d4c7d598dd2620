"""Run a sweep: the parent run, the children through an executor, the summary.

The parent has a live directory like any run (so a killed sweep is sealed later as
`interrupted`, with the children it had), but no process of its own to capture: its
manifest holds the spec and, per combination, the values, the child run, its status and
exit code (`skipped` when --skip-done found an identical `ok` run).
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from pathlib import Path

from vestige.errors import UsageError
from vestige.sweep import (
    SweepOptions,
    check_placeholders,
    combinations,
    load_grid,
    parse_each,
    substitute,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo


def label(values: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def plan(options: SweepOptions, command: list[str], cwd: Path) -> list[dict[str, str]]:
    """The combinations, checked against the command (errors before anything runs)."""
    if options.each and options.grid:
        raise UsageError("give --each or --grid, not both")
    axes = [parse_each(item, cwd) for item in options.each]
    if options.grid:
        axes = load_grid(options.grid, cwd)
    if not axes:
        raise UsageError("a sweep needs --each NAME=V1,V2 or --grid FILE")
    combos = combinations(axes)
    check_placeholders(command, [n for n, _ in axes])
    return combos


def main(options: SweepOptions, command: list[str], argv: list[str]) -> int:
    """`vestige run --each/--grid ... -- command`; returns the exit code."""
    from vestige.repo import Repo

    cwd = Path.cwd()
    combos = plan(options, command, cwd)
    executor = _executor(options)
    repo = Repo.open(create=True, notice=True)
    parent = _begin_parent(repo, argv, options, combos)
    env = {"VESTIGE_DIR": str(repo.store.path), "VESTIGE_RUN_ID": parent["id"]}
    jobs = []
    children: list[dict[str, Any]] = []
    for i, values in enumerate(combos):
        child_argv = substitute(command, values)
        children.append({"index": i, "values": values, "argv": child_argv, "run_id": None,
                         "status": "not started", "exit_code": None})  # fmt: skip
        jobs.append({"index": i, "argv": child_argv,
                     "params": {**options.params, **values}, "cwd": str(cwd), "env": env,
                     "root": str(repo.store.root), "capture": True})  # fmt: skip
    if options.skip_done:
        done = _done_runs(repo, children, str(cwd))
        for i, run in done.items():
            children[i].update(run_id=run.id, status="skipped", exit_code=0, seq=run.seq)
        jobs = [j for j in jobs if j["index"] not in done]
    from vestige.sweep.local import Board

    stop = threading.Event()
    board = Board([label(c["values"]) for c in children], live=sys.stdout.isatty())
    for c in children:
        if c["status"] == "skipped":
            board.done(c["index"], "skipped", f"#{c['seq']}", "done already")

    def on_done(result: dict[str, Any]) -> None:
        c = children[result["index"]]
        code = result["exit_code"]
        status = result.get("status")  # as sealed (local); else judged from the exit code
        if status is None:
            status = "ok" if code == 0 else ("interrupted" if stop.is_set() else "failed")
        if code in (130, -2) or (code is not None and code < 0):
            status = "interrupted"
        c.update(run_id=result.get("run_id"), exit_code=code, status=status)
        seq = result.get("seq") or _seq(repo, result.get("run_id"))  # (local: known already)
        c["seq"] = seq
        note = "" if code == 0 else f"exit {code}: {result.get('tail', '')}"
        board.done(result["index"], status, f"#{seq}" if seq else "", note)

    interrupted = False
    with board:
        try:
            board.tail_of = getattr(executor, "tail", None)
            executor.run(jobs, on_done, board.start, stop, options.fail_fast)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()  # nothing new starts; the running children are interrupted and sealed
            interrupt = getattr(executor, "interrupt", None)
            if interrupt is not None:
                interrupt()
            _join(executor)
    for c in children:
        if c["status"] == "not started" and interrupted:
            c["status"] = "interrupted"  # Ctrl-C; after --fail-fast they stay "not started"
    status = _parent_status(children, interrupted)
    _seal_parent(repo, parent, children, status, options)
    return _summary(children, status, parent)


def _join(executor: Any) -> None:
    """Wait for the children that were running to end (a second Ctrl-C stops waiting)."""
    join = getattr(executor, "join", None)
    if join is None:
        return
    try:
        join(60.0)
    except KeyboardInterrupt:
        pass


def _executor(options: SweepOptions) -> Any:
    if options.executor == "local":
        from vestige.sweep.local import LocalExecutor

        return LocalExecutor(options.jobs)
    if options.executor == "dask":
        from vestige.sweep.remote import DaskExecutor

        return DaskExecutor(options.scheduler)
    if options.executor == "slurm":
        from vestige.sweep.remote import SlurmExecutor

        s = options.slurm
        folder = Path(s.get("folder") or (Path.cwd() / ".vestige" / "tmp" / "slurm"))
        return SlurmExecutor(folder=folder, partition=s.get("partition"), gpus=s.get("gpus"),
                             time_min=s.get("time"), cpus=s.get("cpus"), mem_gb=s.get("mem"),
                             cluster=s.get("cluster"))  # fmt: skip
    raise UsageError(f"--executor {options.executor!r}: choose local, dask or slurm")


def _seq(repo: Repo, run_id: str | None) -> int | None:
    if not run_id:
        return None
    row = repo.index.run_row(run_id)
    return int(row["seq"]) if row is not None else None


def _done_runs(repo: Repo, children: list[dict[str, Any]], cwd: str) -> dict[int, Run]:
    """--skip-done: combinations with an `ok` run of the same command, whose code and
    inputs have not changed since (the run-cache idea: same code, params, input hashes)."""
    import json

    from vestige.lineage import changes_since, current_hashes

    now = current_hashes(repo)
    rel = os.path.relpath(cwd, repo.store.root)
    ok_runs = [
        (run_id, json.loads(argv))
        for run_id, argv in repo.index.conn.execute(
            "SELECT id, argv FROM runs WHERE status = 'ok' AND cwd = ? ORDER BY started DESC",
            (rel,),
        )
    ]
    found: dict[int, Run] = {}
    for c in children:
        for run_id, argv in ok_runs:
            if _same_command(argv, c["argv"]):
                run = repo.run(run_id)
                if not changes_since(repo, run, now):
                    found[c["index"]] = run
                    break
    return found


def _same_command(recorded: list[str], wanted: list[str]) -> bool:
    """`x.py ...` is recorded as `<python> x.py ...`."""
    if recorded == wanted:
        return True
    return (len(recorded) == len(wanted) + 1 and wanted[:1] and wanted[0].endswith(".py")
            and recorded[1:] == wanted)  # fmt: skip


def _begin_parent(
    repo: Repo, argv: list[str], options: SweepOptions, combos: list[dict[str, str]]
) -> dict[str, Any]:
    from vestige.capture.redact import Redactor
    from vestige.fastpath import boot_id, hostname, proc_start
    from vestige.ids import new_run_id
    from vestige.live import LiveRun
    from vestige.records import Run

    redactor = Redactor(repo.store.secret_key())
    redactor.redact_env(os.environ)
    run_id = new_run_id()
    started = time.time()
    root = str(repo.store.root)
    command = redactor.scrub_argv(["vestige", "run", *argv])
    info = {
        "id": run_id, "started": started, "root": root,
        "cwd": os.path.relpath(os.getcwd(), root), "host": hostname(),
        "runner_pid": os.getpid(), "runner_start": proc_start(os.getpid()),
        "boot_id": boot_id(), "parent": os.environ.get("VESTIGE_RUN_ID") or None,
        "command": command, "sweep": {"spec": _spec(options), "size": len(combos)},
    }  # fmt: skip
    live = repo.store.live_dir(run_id)
    live.mkdir(parents=True)
    LiveRun(live).update_info(**info)
    seq = repo.index.begin_run(Run(
        id=run_id, seq=0, status="running", command=command, cwd=info["cwd"], root=root,
        started=started, host=info["host"], pid=os.getpid(), parent=info["parent"],
    ))  # fmt: skip
    info["seq"] = seq
    LiveRun(live).update_info(seq=seq)
    return info


def _spec(options: SweepOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {"executor": options.executor, "jobs": options.jobs}
    if options.each:
        spec["each"] = list(options.each)
    if options.grid:
        spec["grid"] = options.grid
    if options.fail_fast:
        spec["fail_fast"] = True
    if options.skip_done:
        spec["skip_done"] = True
    return spec


def _parent_status(children: list[dict[str, Any]], interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    if all(c["status"] in ("ok", "skipped") for c in children):
        return "ok"
    return "failed"


def _seal_parent(
    repo: Repo, info: dict[str, Any], children: list[dict[str, Any]], status: str,
    options: SweepOptions | None,
) -> Run:  # fmt: skip
    """Manifest, ref, index row, then the live directory goes (the usual write order)."""
    from vestige._version import __version__
    from vestige.live import LiveRun
    from vestige.records import Run

    ended = time.time()
    failed = [c for c in children if c["status"] == "failed"]
    sweep = dict(info.get("sweep") or {})
    sweep["children"] = [
        {k: c.get(k) for k in ("index", "values", "run_id", "status", "exit_code")}
        for c in children
    ]
    run = Run(
        id=info["id"], seq=int(info["seq"]), status=status, command=list(info["command"]),
        cwd=info["cwd"], root=info["root"], started=float(info["started"]), host=info["host"],
        pid=info.get("runner_pid"), ended=ended, duration=round(ended - info["started"], 6),
        exit_code=0 if status == "ok" else (130 if status == "interrupted" else 1),
        params=dict(options.params) if options else {}, parent=info.get("parent"),
        sweep=sweep, vestige_version=__version__,
        warnings=tuple(f"child {c['index']} ({label(c['values'])}) failed with exit "
                       f"{c['exit_code']}" for c in failed),
    )  # fmt: skip
    digest = repo.store.objects.put_json(run.to_dict())
    repo.store.refs.set(run.id, digest)
    sealed = Run.from_dict(run.to_dict(), manifest=digest)
    repo.index.record_run(sealed)
    LiveRun(repo.store.live_dir(run.id)).remove()
    return sealed


def seal_orphan(repo: Repo, info: dict[str, Any]) -> None:
    """Recovery: a sweep whose vestige died; its children are found through the index."""
    import json

    rows = repo.index.conn.execute(
        "SELECT id, status, exit_code, argv FROM runs WHERE parent = ? ORDER BY seq",
        (info["id"],),
    ).fetchall()
    children = [
        {
            "index": i,
            "values": {},
            "run_id": r[0],
            "status": r[1],
            "exit_code": r[2],
            "argv": json.loads(r[3]),
        }
        for i, r in enumerate(rows)
    ]
    _seal_parent(repo, info, children, "interrupted", None)


def _say(text: str) -> None:
    from vestige.sweep.local import Board

    Board.say(text)


def _summary(children: list[dict[str, Any]], status: str, parent: dict[str, Any]) -> int:
    counts: dict[str, int] = {}
    for c in children:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    say = _say
    say(f"sweep #{parent['seq']}: {len(children)} children: {parts}")
    for c in children:
        if c["status"] == "failed":
            seq = f"#{c.get('seq')}" if c.get("seq") else "not recorded"
            say(f"  failed: {label(c['values'])} ({seq}, exit {c['exit_code']}): "
                f"{shlex.join(c['argv'])}")  # fmt: skip
    say(f"  see: vestige ls --sweep {parent['seq']}; vestige compare --sweep {parent['seq']}")
    if status == "interrupted":
        return 130
    return 0 if status == "ok" else 1
