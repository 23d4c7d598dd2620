"""Refresh: rerun the stale runs in the project, producers first (like `dvc repro`).

`lineage.stale` says which runs no longer follow from the project and which of them made
another's inputs. Each is run again where it ran, with the code and inputs as they are
now, as `vestige run` records a run (a child process each: posix_spawn has no working
directory, so runs in different folders cannot share this process); the new run gets a
note naming the run it refreshes. It is not recorded with `rerun_of`: that says "the old
snapshot again", which lineage and debt skip as a maker and a version, and a refresh runs
the new code.

A run starts once every stale run that made its inputs has been refreshed; one that a
later run of the same command already did with the code and inputs as they are now (an
earlier refresh) is fresh and does not run. The first failure stops the refresh (the runs
going on finish; none starts), unless `keep_going`: then only the runs downstream of a
failure are skipped.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from vestige.history import lineage
from vestige.records import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo


class Step(Record):
    """One stale run to refresh, and how its refresh went."""

    _frozen = False

    id: str
    seq: int
    command: list[str]
    cwd: str  # relative to the project's root, as recorded
    refresh: str  # the shell line that refreshes it (lineage.refresh_command)
    reasons: list[str] = Factory(list)
    upstream: list[str] = Factory(list)  # ids of the steps that must be refreshed first
    #: pending, running, then: ok (refreshed), failed (its command, or its record), skipped
    #: (a run upstream failed), fresh (a later run did it with the code and inputs of now),
    #: not run (the refresh stopped first)
    status: str = "pending"
    why: str = ""  # for failed, skipped, fresh and not run: in words
    exit_code: int | None = None
    new_id: str | None = None
    new_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "seq": self.seq, "command": self.command, "cwd": self.cwd,
            "refresh": self.refresh, "reasons": self.reasons, "upstream": self.upstream,
            "status": self.status, "why": self.why, "exit_code": self.exit_code,
            "new_id": self.new_id, "new_seq": self.new_seq,
        }  # fmt: skip


def plan(repo: Repo) -> list[Step]:
    """The stale runs as steps, producers before consumers (the order `stale` lists)."""
    items = lineage.stale(repo)
    root = repo.store.root
    return [
        Step(id=i.id, seq=i.seq, command=list(i.command), cwd=i.cwd,
             refresh=lineage.refresh_command(i, root), reasons=list(i.reasons),
             upstream=list(i.upstream))
        for i in items
    ]  # fmt: skip


class Output:
    """Where the commands' output goes: to ours as it comes (`on_line` None; stdout to our
    stderr when ours carries JSON), or line by line to `on_line(step, line)` (several at
    once, so that each line can say whose it is)."""

    def __init__(
        self, on_line: Callable[[Step, str], None] | None = None, stdout_to_stderr: bool = False,
        on_start: Callable[[Step], None] | None = None,
        on_end: Callable[[Step], None] | None = None,
    ) -> None:  # fmt: skip
        self.on_line = on_line
        self.stdout_to_stderr = stdout_to_stderr
        self.on_start = on_start or (lambda step: None)
        self.on_end = on_end or (lambda step: None)


def refresh(
    repo: Repo, steps: list[Step], jobs: int = 1, keep_going: bool = False,
    output: Output | None = None,
) -> list[Step]:  # fmt: skip
    """Run the steps, up to `jobs` at once, each after its upstream; the steps, ended.
    Ctrl-C lets the runs going on end, marks the others, then raises KeyboardInterrupt."""
    output = output or Output()
    by_id = {s.id: s for s in steps}
    pending = list(steps)
    running: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    ended: queue.Queue[Step] = queue.Queue()
    stop = ""  # why no more steps start, once something failed (without keep_going)
    while pending or running:
        waiting = len(pending)
        if not stop:
            for step in list(pending):
                if len(running) >= jobs:
                    break
                ups = [by_id[u] for u in step.upstream if u in by_id]
                bad = [u for u in ups if u.status in ("failed", "skipped")]
                if bad:
                    pending.remove(step)
                    _end(step, "skipped", f"upstream run #{bad[0].seq} was not refreshed", output)
                    continue
                if any(u.status not in ("ok", "fresh") for u in ups):
                    continue  # an upstream step is still pending or running
                pending.remove(step)
                fresh = _fresh(repo, step)
                if fresh:
                    _end(step, "fresh", fresh, output)
                    continue
                started = _start(repo, step, output, ended)
                if started is not None:
                    running[step.id] = started
                elif not keep_going:
                    stop = f"run #{step.seq} failed"
        if not running:
            if pending and not stop and len(pending) == waiting:  # (cannot happen: the
                stop = "their upstream never ran"  # list is in start order; never hang)
            if stop or not pending:
                break
            continue  # (steps skipped or fresh just now: look again)
        try:
            step = _next(ended)
        except KeyboardInterrupt:
            if stop == "interrupted":
                raise  # a second Ctrl-C: stop waiting for the runs going on
            stop = "interrupted"
            _interrupt(running)
            continue
        proc, id_file = running.pop(step.id)
        _finish(repo, step, proc, id_file)
        output.on_end(step)
        if step.status == "failed" and not keep_going and not stop:
            stop = f"run #{step.seq} failed"
    for step in pending:
        _end(step, "not run", f"stopped: {stop}", output)
    if stop == "interrupted":  # every step has its end: now the caller learns of Ctrl-C
        raise KeyboardInterrupt
    return steps


def _next(ended: queue.Queue[Step]) -> Step:
    """The next step whose command ended (waiting in short slices: Ctrl-C gets through)."""
    while True:
        try:
            return ended.get(timeout=0.2)
        except queue.Empty:
            continue


def _interrupt(running: dict[str, tuple[subprocess.Popen[bytes], str]]) -> None:
    """Ctrl-C: the runs going on end because of it. The terminal sent it to them already
    when we are its foreground group; otherwise (a `kill`) pass it on."""
    import signal

    from vestige.recording.process import terminal_sent_to_group

    if terminal_sent_to_group():
        return
    for proc, _id_file in running.values():
        try:
            proc.send_signal(signal.SIGINT)
        except OSError:
            pass


def _end(step: Step, status: str, why: str, output: Output) -> None:
    step.status, step.why = status, why
    output.on_end(step)


def _fresh(repo: Repo, step: Step) -> str:
    """Why the run need not run now, or "": a later `ok` run of the same command in the same
    folder ran the code and inputs as they are now (an earlier refresh did it: the run is
    listed because a stale run downstream read what it made then, as `stale` says)."""
    from vestige.recording.sweeps import same_command

    try:
        run = repo.run(step.id)
    except Exception:
        return ""
    for run_id, argv in repo.index.runs.ok_commands(step.cwd):  # newest first
        if run_id == step.id or not same_command(json.loads(argv), step.command):
            continue
        later = repo.run(run_id)
        if later.started > run.started and not _changes(repo, later):
            return f"run #{later.seq} ran it since, with the code and inputs as they are now"
        break
    return ""


def _changes(repo: Repo, run: Run) -> list[str]:
    """What changed since the run (lineage.changes_since), hashing only the files it names."""
    wanted = list((run.code or {}).get("imported") or [])
    wanted += [f.path for f in run.inputs if not f.path.startswith("/")]
    return lineage.changes_since(repo, run, _hashes(repo, repo.store.root, wanted))


def _hashes(repo: Repo, root: Path, rels: list[str]) -> dict[str, str]:
    """{path: hash} of the named files that exist, through the stat cache."""
    from vestige.records import safe_relative
    from vestige.store.hashing import hash_file
    from vestige.store.stat import Stat
    from vestige.store.statcache import StatCache

    cache = StatCache(repo.index.conn)
    out: dict[str, str] = {}
    for rel in rels:
        if not safe_relative(rel):
            continue
        full = str(root / rel)
        try:
            st = Stat.of(os.stat(full))
            digest = cache.get(full, st)
            if digest is None:
                digest = hash_file(Path(full), st.size)
                cache.put(full, st, digest)
        except OSError:
            continue
        out[rel] = digest
    cache.flush()
    return out


def _start(
    repo: Repo, step: Step, output: Output, ended: queue.Queue[Step]
) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start `vestige run` of the step's command in its folder; None if it cannot start
    (the step is then failed and reported)."""
    root = repo.store.root
    cwd = root / step.cwd if step.cwd not in ("", ".") else root
    fd, id_file = tempfile.mkstemp(prefix="vestige-refresh-", suffix=".id")
    os.close(fd)
    # VESTIGE_ID_OUT: `vestige run` writes its run's id there (as for a sweep's child)
    env = {**os.environ, "VESTIGE_DIR": str(repo.store.path), "VESTIGE_ID_OUT": id_file}
    argv = [sys.executable, "-m", "vestige", "run", "--", *step.command]
    lines = output.on_line is not None
    step.status = "running"
    output.on_start(step)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL if lines else None,
            stdout=subprocess.PIPE if lines else (2 if output.stdout_to_stderr else None),
            stderr=subprocess.STDOUT if lines else None,
        )  # fmt: skip
    except OSError as e:
        os.unlink(id_file)
        step.status, step.why = "failed", f"cannot start in {cwd}: {e.strerror}"
        output.on_end(step)
        return None

    def wait() -> None:
        if lines:
            assert proc.stdout is not None and output.on_line is not None
            for raw in iter(proc.stdout.readline, b""):
                # a progress bar's \r updates: the last state of the line is what matters
                line = raw.decode("utf-8", "replace").rstrip("\r\n").split("\r")[-1]
                output.on_line(step, line)
        proc.wait()
        ended.put(step)

    threading.Thread(target=wait, name=f"vestige-refresh-{step.seq}", daemon=True).start()
    return proc, id_file


def _finish(repo: Repo, step: Step, proc: subprocess.Popen[bytes], id_file: str) -> None:
    """Record how the step ended; note on its new run which run it refreshes."""
    try:
        with open(id_file) as f:
            new_id = f.read().strip() or None
    except OSError:
        new_id = None
    finally:
        try:
            os.unlink(id_file)
        except OSError:
            pass
    code = proc.returncode
    step.exit_code = code if code >= 0 else 128 - code  # (killed by signal N: as a shell says)
    recorded = new_id is not None and repo.store.refs.get(new_id) is not None
    if recorded:
        assert new_id is not None
        step.new_id = new_id
        because = "; ".join(step.reasons)
        try:
            step.new_seq = repo.annotate(new_id, note=f"refresh of run #{step.seq}: "
                                         f"it was stale ({because})").seq  # fmt: skip
        except Exception:  # the run is recorded; the note is a courtesy
            step.new_seq = repo.run(new_id).seq
    if code != 0:
        step.status = "failed"
        step.why = f"exit {step.exit_code}"
    elif not recorded:
        step.status = "failed"
        step.why = "it ran but was not recorded (see the warnings above)"
    else:
        step.status = "ok"


def dry_run_lines(steps: list[Step]) -> list[str]:
    """The order and the commands, as `--dry-run` prints them."""
    seqs = {s.id: s.seq for s in steps}
    out = []
    for n, step in enumerate(steps, 1):
        after = [f"#{seqs[u]}" for u in step.upstream if u in seqs]
        out.append(f"{n}. run #{step.seq}" + (f" (after {', '.join(after)})" if after else ""))
        out.append(f"     {step.refresh}")
    return out
