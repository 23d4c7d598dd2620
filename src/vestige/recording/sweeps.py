"""A sweep's parent run: a run without a process of its own (docs/format.md, "Sweeps").

Its live directory's run.json holds the whole plan (each combination's values and
command) and `children.jsonl` journals each child's run as it starts and ends; its
manifest holds the spec and, per combination, the values, the child run, its status and
exit code. Recovery seals a sweep whose vestige died from those, with every combination.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from vestige._version import __version__
from vestige.fastpath import boot_id, hostname, proc_start
from vestige.ids import new_run_id
from vestige.records import Run
from vestige.store.live import LiveRun

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.repo import Repo


def label(values: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def begin_parent(
    repo: Repo,
    argv: list[str],
    spec: dict[str, Any],
    combos_argv: list[tuple[dict[str, str], list[str]]],
) -> dict[str, Any]:
    """The parent's live directory and index row. Its run.json holds the whole plan (each
    combination's values and command) and `children.jsonl` is appended as children get a
    run and end, so a sweep whose vestige died is sealed with every combination."""
    from vestige.capture.redact import Redactor

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
        "command": command, "sweep": {"spec": spec, "size": len(combos_argv),
                                      "plan": [{"index": i, "values": v, "argv": argv}
                                               for i, (v, argv) in enumerate(combos_argv)]},
    }  # fmt: skip
    live = repo.store.live_dir(run_id)
    live.mkdir(parents=True)
    LiveRun(live).update_info(**info)
    seq = repo.index.record.begin(Run(
        id=run_id, seq=0, status="running", command=command, cwd=info["cwd"], root=root,
        started=started, host=info["host"], pid=os.getpid(), parent=info["parent"],
    ))  # fmt: skip
    info["seq"] = seq
    LiveRun(live).update_info(seq=seq)
    return info


def seal_parent(
    repo: Repo, info: dict[str, Any], children: list[dict[str, Any]], status: str,
    params: dict[str, Any] | None = None, ended: float | None = None, recovered: bool = False,
) -> Run:  # fmt: skip
    """Manifest, ref, index row, then the live directory goes (the usual write order).
    `ended` is now unless recovery knows when the sweep was last seen working; a sweep
    sealed by recovery has no exit code of its own (nothing ended it with one)."""
    ended = time.time() if ended is None else max(ended, float(info["started"]))
    failed = [c for c in children if c["status"] == "failed"]
    sweep = dict(info.get("sweep") or {})
    sweep.pop("plan", None)  # (the live directory's copy, for recovery: `children` says it)
    sweep["children"] = [
        {k: c.get(k) for k in ("index", "values", "run_id", "status", "exit_code")}
        for c in children
    ]
    run = Run(
        id=info["id"], seq=int(info["seq"]), status=status, command=list(info["command"]),
        cwd=info["cwd"], root=info["root"], started=float(info["started"]), host=info["host"],
        pid=info.get("runner_pid"), ended=ended, duration=round(ended - info["started"], 6),
        exit_code=None if recovered else (0 if status == "ok" else
                                          (130 if status == "interrupted" else 1)),
        params=dict(params or {}), parent=info.get("parent"),
        sweep=sweep, vestige_version=__version__,
        warnings=(("vestige was stopped while the sweep ran; sealed later with what its "
                   "children recorded",) if recovered else ())
        + tuple(f"child {label(c['values'])} failed with exit {c['exit_code']}"
                for c in failed),
    )  # fmt: skip
    from vestige.capture.redact import Redactor

    redactor = Redactor(repo.store.secret_key())  # (a sweep over --each password=a,b)
    redactor.redact_env(os.environ)
    run = Run.from_dict(redactor.scrub_manifest(run.to_dict()))
    digest = repo.store.objects.put_json(run.to_dict())
    repo.store.refs.set(run.id, digest)
    sealed = Run.from_dict(run.to_dict(), manifest=digest)
    repo.index.record.run(sealed)
    LiveRun(repo.store.live_dir(run.id)).remove()
    return sealed


def seal_orphan(repo: Repo, info: dict[str, Any]) -> None:
    """Recovery: a sweep whose vestige died. Every combination of its plan is a child; its
    run comes from the parent's journal, else from the index (a child of this parent with
    the same command); its status and exit code from that run as sealed (recovery seals
    the children first). A combination without a run was not started: `interrupted`."""
    sweep = info.get("sweep") or {}
    plan = sweep.get("plan")
    rows = {r[0]: r for r in repo.index.runs.children(info["id"])}
    if not isinstance(plan, list):  # (a sweep started by a vestige without the plan)
        plan = [{"index": i, "values": {}, "argv": json.loads(r[3])}
                for i, r in enumerate(rows.values())]  # fmt: skip
        journal = {i: r[0] for i, r in enumerate(rows.values())}
    else:
        journal = {e["index"]: e["run_id"] for e in read_journal(repo, info["id"])
                   if e.get("run_id") and e["run_id"] in rows}  # fmt: skip
    unclaimed = [r for r in rows.values() if r[0] not in set(journal.values())]
    children = []
    for entry in plan:
        i = entry["index"]
        run_id = journal.get(i)
        if run_id is None:
            wanted = list(entry["argv"])
            match = next((r for r in unclaimed if same_command(json.loads(r[3]), wanted)), None)
            if match is not None:
                unclaimed.remove(match)
                run_id = match[0]
        row = rows.get(run_id) if run_id else None
        status = row[1] if row is not None else "interrupted"
        children.append({"index": i, "values": entry.get("values") or {}, "run_id": run_id,
                         "status": "interrupted" if status == "running" else status,
                         "exit_code": row[2] if row is not None else None,
                         "argv": list(entry["argv"])})  # fmt: skip
    # It ended when it was last seen working (its journal, its children's ends; those
    # recovery sealed end at their last activity), not now: recovery may come days later.
    seen = [r[4] for r in rows.values() if isinstance(r[4], int | float)]
    for path in (
        journal_path(repo, info["id"]),
        str(repo.store.live_dir(info["id"]) / "run.json"),
    ):
        with contextlib.suppress(OSError):
            seen.append(os.stat(path).st_mtime)
    seal_parent(repo, info, children, "interrupted", None, max(seen) if seen else None,
                recovered=True)  # fmt: skip


def journal_path(repo: Repo, parent_id: str) -> str:
    return os.path.join(str(repo.store.live_dir(parent_id)), "children.jsonl")


def journal(repo: Repo, parent: dict[str, Any], entry: dict[str, Any]) -> None:
    """Append one line to the parent's children.jsonl (O_APPEND, one write per line)."""
    path = journal_path(repo, parent["id"])
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the journal only helps recovery; the sweep goes on without it


def read_journal(repo: Repo, parent_id: str) -> list[dict[str, Any]]:
    """The parent's journal lines (a torn last line is skipped)."""
    path = journal_path(repo, parent_id)
    entries = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                    entries.append(entry)
    except OSError:
        pass
    return entries


def same_command(recorded: list[str], wanted: list[str]) -> bool:
    """`x.py ...` is recorded as `<python> x.py ...`."""
    if recorded == wanted:
        return True
    return (len(recorded) == len(wanted) + 1 and wanted[:1] and wanted[0].endswith(".py")
            and recorded[1:] == wanted)  # fmt: skip
