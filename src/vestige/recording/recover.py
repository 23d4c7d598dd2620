"""Crash recovery: seal the live runs whose vestige died, keeping all that was captured so
far: with the command's own end when its tee process outlived vestige and recorded it
(recording/tee.py), else as `interrupted`; finish the index rows of runs sealed just
before a crash."""

from __future__ import annotations

import contextlib
import os
import time

from vestige.fastpath import boot_id, hostname, proc_start
from vestige.records import Run
from vestige.store.live import LiveRun, pid_alive

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)

if TYPE_CHECKING:
    from vestige.repo import Repo

#: A live directory without run.json this young may be a run being created right now.
CREATION_GRACE_S = 60.0
#: The warning of a run whose command ran on after vestige died, its end recorded by its tee.
RAN_ON = ("vestige died while the command ran (killed?); the command ran on to its end, "
          "its output and how it ended kept by vestige's tee process")  # fmt: skip


def recover(repo: Repo) -> list[str]:
    """What every command does as it opens a store: seal each live run whose vestige is
    gone (the first command after a crash marks them `interrupted`, keeping what they
    captured); return their ids. First put back the objects a gc that died had moved
    aside (one listdir of tmp/, usually empty). Nothing on a store that cannot be
    written (a read-only mount, an archive): its live runs are read as they are."""
    if repo.readonly:
        return []
    try:
        names = os.listdir(repo.store.path / "tmp")
    except OSError:
        names = []
    leftovers = [n for n in names if n.startswith("gc-")]
    if leftovers:
        restore_quarantined(repo, leftovers)
    if len(names) > len(leftovers):
        remove_dead_temporaries(repo, [n for n in names if not n.startswith("gc-")])
    if not repo.store.live.is_dir():
        return []
    return recover_orphans(repo)


def recover_orphans(repo: Repo) -> list[str]:
    """Seal or tidy every live run that no running vestige owns; return their ids."""
    recovered: list[str] = []
    try:
        entries = sorted(repo.store.live.iterdir())
    except OSError:
        return recovered
    lives = [(LiveRun(path), LiveRun(path).info) for path in entries]
    # A sweep's parent last: its manifest takes each child's status as sealed.
    lives.sort(key=lambda pair: "sweep" in pair[1])  # (stable: the others keep their order)
    for live, info in lives:
        path = live.path
        digest = repo.store.refs.get(live.id)
        if digest is not None and repo.store.objects.exists(digest):
            _finish_index(repo, live, digest)
            continue
        if not info:
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > CREATION_GRACE_S:
                    live.remove()
            continue
        if live.runner_alive(info) is not False or not live.claim():
            continue
        try:
            _seal_orphan(repo, live, info)
            recovered.append(live.id)
        except Exception as e:  # said, not raised: the command asked for goes on
            _unsealed(live, e)
    return recovered


def _unsealed(live: LiveRun, error: Exception) -> None:
    """Say that a run vestige lost could not be sealed yet (a full disk: how it ended and
    all it captured wait in its live directory) and give the claim back for next time."""
    from vestige.fastpath import warn
    from vestige.recording.process import describe

    seq = live.info.get("seq")
    name = f"run #{seq}" if seq else f"run {live.id}"
    room = isinstance(error, OSError) and error.errno in (28, 122)  # ENOSPC, EDQUOT
    hint = "free space in the store; " if room else ""
    warn(f"{name} could not be sealed ({describe(error)}); {hint}the next vestige command "
         "will try again")  # fmt: skip
    with contextlib.suppress(OSError):
        (live.path / "sealing").unlink()


def _finish_index(repo: Repo, live: LiveRun, digest: str) -> None:
    """The run was sealed (its ref exists) but vestige died before the index or cleanup."""
    with contextlib.suppress(Exception):
        row = repo.index.runs.row(live.id)
        if row is None or row["manifest"] != digest:
            repo.index.record.run(
                Run.from_dict(repo.store.objects.read_json(digest), manifest=digest)
            )
        live.remove()


def _seal_orphan(repo: Repo, live: LiveRun, info: dict[str, object]) -> None:
    from vestige.capture.redact import Redactor
    from vestige.recording.seal import Sealer, SealInput
    from vestige.store.statcache import StatCache

    redactor = Redactor(repo.store.secret_key())
    redactor.redact_env(os.environ)  # learn this user's secret values, to scrub the logs
    if info.get("sweep") and "seq" in info:  # a sweep's parent: no process to seal
        from vestige.recording.sweeps import seal_orphan

        seal_orphan(repo, dict(info))
        return
    last = _last_activity(live)  # (before this recovery writes into the live directory)
    if "command" not in info:
        info["command"] = ["<unknown: vestige stopped before recording the command>"]
        live.update_info(command=info["command"])
    if "seq" not in info:  # vestige stopped before the index gave the run its number
        start = Run(
            id=live.id, seq=0, status="running", command=list(info["command"]),  # type: ignore[arg-type]
            cwd=str(info.get("cwd", "")), root=str(info.get("root", "")),
            started=float(info.get("started") or last),  # type: ignore[arg-type]
        )  # fmt: skip
        live.update_info(seq=repo.index.record.begin(start))
    result = live.result
    if result:
        stopped = "sealed after vestige stopped before finishing the record"
        if result.get("unsealed"):
            stopped = f"sealed later: it could not be sealed when it ended ({result['unsealed']})"
        why = RAN_ON if result.get("runner_died") else stopped
        seal_input = SealInput.from_result(result, [why])
    else:
        seal_input = SealInput(
            status="interrupted",
            exit_code=None,
            signal=None,
            ended=last,
            warnings=[_stopped_while_running(info)],
        )
    sealer = Sealer(repo.store, repo.index, StatCache(repo.index.conn), repo.config, redactor)
    sealer.recovering = True
    parent = info.get("parent")
    if isinstance(parent, str):  # a sweep's child: its siblings wrote into the same tree
        sealer.foreign_of = lambda: _sibling_writes(repo, live, parent)
    sealer.seal(live, seal_input, live.code)


def _stopped_while_running(info: dict[str, object]) -> str:
    """The warning of a run whose vestige stopped while its command ran and whose end is
    not known: that command may be running still (its tee outlived vestige), and then the
    run is `interrupted` because its record was cut short, not the command."""
    pid = info.get("child_pid")
    if isinstance(pid, int) and _still_running(pid, info):
        return (f"vestige died while the command ran; the command (pid {pid}) was still "
                "running when this run was sealed: recorded until vestige died, not how "
                "the command ended")  # fmt: skip
    return "vestige was stopped while the command ran; captured until then"


def _still_running(pid: int, info: dict[str, object]) -> bool:
    """Whether the run's command is still running here (this host and boot; the same
    process start time, so not another process that reused its pid; not a zombie)."""
    if info.get("host") != hostname() or info.get("boot_id") not in (None, boot_id()):
        return False
    start = proc_start(pid)
    known = info.get("child_start")
    return start is not None and (known is None or start == known) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether the process has ended and only waits for its parent to collect it: an
    orphaned command whose new parent (init, or a container's first process) reaps it late,
    or never. It is not running any more."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _sibling_writes(repo: Repo, live: LiveRun, parent: str) -> set[str]:
    """What the other children of `parent` were seen writing: the journals of those still
    live, the confirmed outputs of those sealed (as the sweep tells a child's seal)."""
    from vestige.capture.events import read_events

    paths: set[str] = set()
    for other in repo.store.live.iterdir():
        if other != live.path and LiveRun(other).info.get("parent") == parent:
            with contextlib.suppress(Exception):
                paths |= read_events(other).writes
    for root, path in repo.index.files.children_outputs(parent):
        paths.add(path if path.startswith("/") else os.path.join(root or "", path))
    return paths


#: A temp file of a dead writer, untouched this long, is removed by the next command (a
#: writer on another host sharing the store, whose pid means nothing here, touches its
#: file as it writes; gc removes any temp file untouched for an hour).
DEAD_TEMP_S = 30.0


def remove_dead_temporaries(repo: Repo, names: list[str], now: float | None = None) -> int:
    """Remove the store's temp files (`obj-`, `ref-`, `w-` + the writer's pid) whose writer
    is gone: a kill while storing a large output leaves up to its size there. Returns how
    many were removed."""
    from vestige.store.layout import TEMP_PREFIXES

    clock = time.time() if now is None else now
    tmp = repo.store.path / "tmp"
    removed = 0
    for name in names:
        prefix = next((p for p in TEMP_PREFIXES if name.startswith(p)), None)
        pid = name[len(prefix) :].partition("-")[0] if prefix else ""
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            st = os.stat(tmp / name, follow_symlinks=False)
            if (st.st_mode & 0o170000) == 0o100000 and clock - st.st_mtime >= DEAD_TEMP_S:
                os.unlink(tmp / name)
                removed += 1
    return removed


def restore_quarantined(repo: Repo, names: list[str]) -> list[str]:
    """Put back the objects a `vestige gc` that died had moved aside (tmp/gc-<pid>-<hash>):
    one a run sealed meanwhile may name, and gc decides again at its next pass. A file of
    that name may also be gc's freed record half written: it is kept only when its bytes
    have the object's hash. Returns the hashes put back."""
    from vestige.store.freed import freed_dir
    from vestige.store.hashing import hash_file, is_hash

    tmp = repo.store.path / "tmp"
    objects = repo.store.objects
    restored = []
    for name in names:
        _gc, _sep, rest = name.partition("-")
        pid, _sep, digest = rest.partition("-")
        if not pid.isdigit() or not is_hash(digest) or pid_alive(int(pid)):
            continue  # not gc's, or a gc still at work
        path = tmp / name
        with contextlib.suppress(OSError):
            if objects.exists(digest) or hash_file(path) != digest:
                path.unlink()  # a copy, or the record that gc wrote first
                continue
            dest = objects.path(digest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            (freed_dir(repo.store) / digest).unlink(missing_ok=True)
            restored.append(digest)
    return restored


def _last_activity(live: LiveRun) -> float:
    """When the run was last seen doing something (its newest live file; not the claim
    of the recovery that is sealing it now)."""
    latest = 0.0
    for root, _dirs, files in os.walk(live.path):
        for name in files:
            if name == "sealing" and root == str(live.path):
                continue
            with contextlib.suppress(OSError):
                latest = max(latest, os.stat(os.path.join(root, name)).st_mtime)
    return latest or time.time()
