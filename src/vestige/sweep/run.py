"""Run a sweep: the parent run, the children through an executor, the summary.

The parent has a live directory like any run (its run.json holds the plan, and
children.jsonl journals each child's run: a killed sweep is sealed later as
`interrupted`, with every combination), but no process of its own to capture: its
manifest holds the spec and, per combination, the values, the child run, its status and
exit code (`skipped` when --skip-done found an identical `ok` run: sweep/skip.py).
"""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path

from vestige.errors import UsageError
from vestige.recording.sweeps import begin_parent, journal, label, seal_parent
from vestige.sweep.spec import (
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
    _check_programs(command, combos)
    return combos


def _check_programs(command: list[str], combos: list[dict[str, str]]) -> None:
    """Each distinct command as a single `vestige run` checks it (a script or notebook that
    does not exist, a program not on PATH: exit 2), before the parent run is created.
    The program itself may come from a placeholder, so this is per combination. Relative
    names are resolved from the current directory, as `main` runs the children in it."""
    from vestige.errors import VestigeError
    from vestige.recording.process import resolve_command

    seen: set[tuple[str, ...]] = set()
    for values in combos:
        argv = substitute(command, values)
        # only the program matters, except for a notebook (its options are checked too)
        key = tuple(argv) if argv[:1] and argv[0].endswith(".ipynb") else tuple(argv[:1])
        if key in seen:
            continue
        seen.add(key)
        try:
            resolve_command(argv)
        except VestigeError as e:
            if argv[0] != command[0]:  # the program came from a placeholder: say which
                e.message = f"{e.message} (the command for {label(values)})"
            raise


def main(options: SweepOptions, command: list[str], argv: list[str]) -> int:
    """`vestige run --each/--grid ... -- command`; returns the exit code."""
    import gc

    from vestige.recording.recover import recover
    from vestige.repo import Repo

    # What is loaded now (modules, classes) lives as long as the sweep: the collector
    # need not walk it again (its work was ~7% of a sweep's own CPU in one perf profile).
    gc.freeze()

    cwd = Path.cwd()
    if options.executor not in ("local", "dask", "slurm"):  # (before the command's checks)
        raise UsageError(f"--executor {options.executor!r}: choose local, dask or slurm")
    combos = plan(options, command, cwd)
    executor = _executor(options)
    repo = Repo.open(create=True, notice=True)
    recover(repo)
    parent = begin_parent(
        repo, argv, _spec(options), [(values, substitute(command, values)) for values in combos]
    )
    env = {"VESTIGE_DIR": str(repo.store.path), "VESTIGE_RUN_ID": parent["id"]}
    jobs = []
    children: list[dict[str, Any]] = []
    for i, values in enumerate(combos):
        child_argv = substitute(command, values)
        children.append({"index": i, "values": values, "argv": child_argv, "run_id": None,
                         "status": "not started", "exit_code": None})  # fmt: skip
        jobs.append({"index": i, "argv": child_argv,
                     "params": {**options.params, **values}, "cwd": str(cwd), "env": env,
                     "root": str(repo.store.root), "capture": True,
                     "trace": options.trace})  # fmt: skip
        if options.push is not None and options.executor != "local":
            jobs[-1]["push"] = options.push  # pushed from the worker (sweep/child.py)
    if options.skip_done:
        from vestige.sweep.skip import done_runs

        done = done_runs(repo, children, str(cwd))
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
        if result.get("pushed"):  # (its run is on the remote only: its metadata comes here)
            _pull_child(repo, options.push, result["run_id"])
        status, code = _judge(result, stop.is_set())
        c.update(run_id=result.get("run_id"), exit_code=code, status=status)
        seq = result.get("seq") or _seq(repo, result.get("run_id"))  # (local: known already)
        c["seq"] = seq
        journal(repo, parent, {"index": c["index"], "run_id": c["run_id"], "status": status,
                                "exit_code": code})  # fmt: skip
        tail = result.get("tail", "")
        note = "" if code == 0 else (f"exit {code}: {tail}" if tail else f"exit {code}")
        if result.get("push_error"):
            note = f"{note}; not pushed: {result['push_error']}".lstrip("; ")
        board.done(result["index"], status, f"#{seq}" if seq else "", note, last=tail)

    interrupted = False
    if hasattr(executor, "on_run"):  # the parent's journal knows each child's run at once
        executor.on_run = lambda i, run_id: journal(repo, parent, {"index": i, "run_id": run_id})
    with board:
        try:
            board.tail_of = getattr(executor, "tail", None)
            executor.run(jobs, on_done, board.start, stop, options.fail_fast)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()  # nothing new starts; the running children are interrupted and sealed
            from vestige.recording.process import terminal_sent_to_group

            interrupt = getattr(executor, "interrupt", None)
            if interrupt is not None:  # (a terminal's Ctrl-C reached them already: not twice)
                interrupt(forward=not terminal_sent_to_group())
            _join(executor)
        for c in children:
            if c["status"] == "not started" and interrupted:
                c["status"] = "interrupted"  # Ctrl-C; after --fail-fast they stay "not started"
                board.mark(c["index"], "interrupted")
    status = _parent_status(children, interrupted)
    seal_parent(repo, parent, children, status, options.params)
    if options.push is not None:
        _push_sweep(repo, options.push, parent["id"], children)
    return _summary(children, status, parent)


def _pull_child(repo: Repo, remote: dict[str, Any], run_id: str) -> None:
    """Bring a child that a worker pushed (`--push` on Dask or Slurm) into this store, so
    the board, the summary and `ls --sweep` see it as a local child's; a failure is said
    and the sweep goes on (`vestige pull` brings it later)."""
    from vestige.errors import VestigeError
    from vestige.remote.sync import pull

    try:
        pull(repo, remote["name"], [run_id])
    except (VestigeError, OSError) as e:
        _say(f"vestige: warning: child run {run_id} was pushed to {remote['name']} but not "
             f"pulled back ({e}); `vestige pull {remote['name']} {run_id}` brings it")  # fmt: skip


def _push_sweep(
    repo: Repo, remote: dict[str, Any], parent_id: str, children: list[dict[str, Any]]
) -> None:
    """`run --each ... --push`: send the sweep and its children (those recorded here) to
    the remote once it is sealed; a failure is a warning, the sweep's exit code unchanged."""
    from vestige.remote.sync import push_store

    ids = [parent_id, *(c["run_id"] for c in children if c.get("run_id"))]
    ids = [r for r in dict.fromkeys(ids) if repo.store.refs.get(r) is not None]
    try:
        done = push_store(repo.store.path, ids, remote, repo.store.root)
    except Exception as e:
        from vestige.remote.failures import scrub

        why = scrub(str(e)) or type(e).__name__
        _say(f"vestige: warning: the sweep was not pushed to {remote['name']} ({why}); "
             f"`vestige push {remote['name']}` sends it")  # fmt: skip
        return
    for run_id, why in done.left_out:
        _say(f"vestige: warning: run {run_id} was not pushed to {remote['name']}: {why}")
    _say(f"vestige: pushed the sweep to {remote['name']} ({len(ids)} runs, "
         f"{done.objects} objects)")  # fmt: skip


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
    row = repo.index.runs.row(run_id)
    return int(row["seq"]) if row is not None else None


def sweep_of(repo: Repo, ref: str) -> Run:
    """The sweep `ref` names (`ls --sweep`, `compare --sweep`); a run that is not one is
    exit 2, rather than an empty list of children. A sweep still running has its `sweep`
    field in its live directory only."""
    from vestige.store.live import LiveRun

    run = repo.run(ref)
    if run.sweep is not None:
        return run
    if run.status == "running" and LiveRun(repo.store.live_dir(run.id)).info.get("sweep"):
        return run
    raise UsageError(
        f"run #{run.seq} is not a sweep (its manifest has no sweep field); "
        "vestige ls --where 'command ~ \"vestige run*\"' lists the sweeps"
    )


def sweep_where(repo: Repo, ref: str) -> str:
    """The `--where` text of a sweep's children (`ls`/`compare --sweep`): its own runs, and
    the earlier runs it reused for the combinations --skip-done skipped (the whole grid)."""
    run = sweep_of(repo, ref)
    where = f'parent = "{run.id}"'  # ULIDs: nothing to escape
    reused = [c["run_id"] for c in (run.sweep or {}).get("children") or ()
              if c.get("status") == "skipped" and isinstance(c.get("run_id"), str)
              and c["run_id"].isalnum()]  # fmt: skip
    if reused:
        where += " or id in (" + ", ".join(f'"{r}"' for r in reused) + ")"
    return f"({where})"


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


def _judge(result: dict[str, Any], stopping: bool) -> tuple[str, int | None]:
    """(status, exit code as a shell reports it) of an ended child. A local child comes
    with its sealed status and exit code; a remote one only with the exit code of its
    `vestige run` process, which ends like its command (process.classify reads it)."""
    from vestige.recording.process import classify

    code = result["exit_code"]
    if result.get("status") is not None:
        return result["status"], result.get("recorded_exit", code)
    if code is None:
        return ("interrupted" if stopping else "failed"), None
    if code == 130:  # a shell's "ended by Ctrl-C"
        return "interrupted", code
    status, exit_code, _signal = classify(code, None)
    return status, exit_code


def _say(text: str) -> None:
    from vestige.sweep.local import Board

    Board.say(text)


def _summary(children: list[dict[str, Any]], status: str, parent: dict[str, Any]) -> int:
    counts: dict[str, int] = {}
    for c in children:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    say = _say
    n = len(children)
    say(f"sweep #{parent['seq']}: {n} {'child' if n == 1 else 'children'}: {parts}")
    for c in children:
        if c["status"] == "failed":
            seq = f"#{c.get('seq')}" if c.get("seq") else "not recorded"
            say(f"  failed: {label(c['values'])} ({seq}, exit {c['exit_code']}): "
                f"{shlex.join(c['argv'])}")  # fmt: skip
    say(f"  see: vestige ls --sweep {parent['seq']}; vestige compare --sweep {parent['seq']}")
    if status == "interrupted":
        return 130
    return 0 if status == "ok" else 1
