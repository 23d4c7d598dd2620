"""Crash recovery: seal the live runs whose vestige died, as `interrupted`, keeping all
that was captured so far; finish the index rows of runs sealed just before a crash."""

from __future__ import annotations

import contextlib
import os
import time

from vestige.records import Run
from vestige.store.live import LiveRun, pid_alive

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)

if TYPE_CHECKING:
    from vestige.repo import Repo

#: A live directory without run.json this young may be a run being created right now.
CREATION_GRACE_S = 60.0


def recover(repo: Repo) -> list[str]:
    """What every command does as it opens a store: seal each live run whose vestige is
    gone (the first command after a crash marks them `interrupted`, keeping what they
    captured); return their ids. First put back the objects a gc that died had moved
    aside (one listdir of tmp/, usually empty)."""
    try:
        leftovers = [n for n in os.listdir(repo.store.path / "tmp") if n.startswith("gc-")]
    except OSError:
        leftovers = []
    if leftovers:
        restore_quarantined(repo, leftovers)
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
        if live.runner_alive() is not False or not live.claim():
            continue
        with contextlib.suppress(Exception):
            _seal_orphan(repo, live, info)
            recovered.append(live.id)
    return recovered


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
        seal_input = SealInput.from_result(
            result, ["sealed after vestige stopped before finishing the record"]
        )
    else:
        seal_input = SealInput(
            status="interrupted",
            exit_code=None,
            signal=None,
            ended=last,
            warnings=["vestige was stopped while the command ran; captured until then"],
        )
    sealer = Sealer(repo.store, repo.index, StatCache(repo.index.conn), repo.config, redactor)
    sealer.recovering = True
    parent = info.get("parent")
    if isinstance(parent, str):  # a sweep's child: its siblings wrote into the same tree
        sealer.foreign_of = lambda: _sibling_writes(repo, live, parent)
    sealer.seal(live, seal_input, live.code)


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
