"""gc: free the kept files of old runs that can be re-made (`du` is du.py).

Only **payloads** are ever freed: the objects of runs' kept outputs, kept inputs and
artefact files. Manifests, code trees and code files, outside modules, logs, metrics,
environment and annotations objects stay, and so does every object that a run gc keeps
names in any role, that a pinned or tagged run names, that a live run named so far, or
that was written less than `grace` seconds ago (real clock). An input no run
made is never freed (nothing could re-make it); an output or artefact is freed only when
a run that made it can still be re-made afterwards: status ok, its whole code snapshot
kept, and each of its inputs kept, inside the project and not freed.

A freed object leaves `refs/freed/<hash>` (the run and path that re-make it, and when),
written before the object goes, so fsck tells freed from lost, and `cat`, `restore` and
`rerun` name the run to re-make it with. docs/format.md, "Freed objects" and "Write
order", is the contract; the locking protocol with concurrent runs is described there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat as stat_mod
import time
from collections.abc import Iterator
from pathlib import Path

from vestige.errors import StoreLocked, UsageError
from vestige.records import Factory, Record
from vestige.store.freed import freed_dir, freed_records
from vestige.store.layout import TEMP_PREFIXES
from vestige.upkeep import usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.repo import Repo
    from vestige.store.local import Store

LOCK_FILE = "gc.lock"
#: Objects written (mtime) this recently are never freed: young bytes are the likeliest to be
#: named by a run that is still going on (docs/format.md, "Write order").
GRACE_S = 600.0
PAYLOAD_ROLES = ("output", "artefact", "input")
SEALED = ("ok", "failed", "interrupted")
KINDS = ("output", "input", "artefact", "code", "log", "metrics", "env", "manifest")


# -- locks ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _flock(path: Path, mode: int, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if path.is_dir() else \
        os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreLocked(f"{path} is locked by another vestige process; "
                                      "try again when it is done") from None  # fmt: skip
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def writer_lock(store_path: Path, timeout: float = 3600.0) -> Iterator[None]:
    """The shared side of gc's lock, for a seal around "objects exist -> ref written"."""
    with _flock(store_path / LOCK_FILE, fcntl.LOCK_SH, timeout):
        yield


@contextlib.contextmanager
def gc_locks(store: Store, timeout: float) -> Iterator[None]:
    """gc's exclusive lock, and shared locks on the pins and annotations refs, so that a run
    pinned or tagged meanwhile waits for gc instead of losing files."""
    for kind in ("pins", "annotations"):
        (store.path / "refs" / kind).mkdir(parents=True, exist_ok=True)
    with (
        _flock(store.path / LOCK_FILE, fcntl.LOCK_EX, timeout),
        _flock(store.path / "refs" / "pins", fcntl.LOCK_SH, timeout),
        _flock(store.path / "refs" / "annotations", fcntl.LOCK_SH, timeout),
    ):
        yield


# -- policy and plan --------------------------------------------------------------------------


class Policy(Record):
    """Which runs are candidates, and how much of their payloads to free."""

    keep_last: int | None = None
    older_than: float | None = None  # seconds
    max_size: int | None = None  # bytes in objects/ to get under
    min_size: int = 0  # free only objects at least this large

    def check(self) -> None:
        if self.keep_last is None and self.older_than is None and self.max_size is None:
            # There is no default policy to fall back on (issue 23): what to free is the
            # user's call, so say how to make it rather than guess one.
            raise UsageError(
                "gc needs a policy and has no default one: give --keep-last N, --older-than "
                "DURATION or --max-size SIZE, e.g. vestige gc --older-than 90d --keep-last 50 "
                "--dry-run"
            )
        if (self.keep_last or 0) < 0 or (self.older_than or 0) < 0:
            raise UsageError("--keep-last and --older-than cannot be negative")


class Item(Record):
    """One object to free: through which candidate run, and how to re-make it."""

    hash: str
    size: int
    run: str  # the oldest candidate run that named it
    path: str
    role: str
    maker: str  # the run whose rerun re-makes it
    maker_path: str
    maker_role: str  # output or artefact

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._fields}


class Plan(Record):
    """What gc frees (or, with dry_run, would free) and why the rest stays."""

    _frozen = False

    now: float
    candidates: list[str] = Factory(list)
    items: list[Item] = Factory(list)
    kept: dict[str, list[int]] = Factory(dict)  # reason -> [objects, bytes]
    stored_before: int = 0
    stale_records: list[str] = Factory(list)  # freed records whose object is back
    temporary: list[tuple[str, int]] = Factory(list)  # (tmp/ path, bytes) of dead writers
    warnings: list[str] = Factory(list)  # a remote that could not be listed
    done: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(i.size for i in self.items)

    @property
    def temporary_bytes(self) -> int:
        return sum(size for _path, size in self.temporary)

    def to_dict(self, seqs: dict[str, int]) -> dict[str, Any]:
        runs = sorted({i.run for i in self.items}, key=lambda r: seqs.get(r, 0))
        return {
            "dry_run": not self.done,
            "now": self.now,
            "candidates": len(self.candidates),
            "runs": [{"id": r, "seq": seqs.get(r)} for r in runs],
            "objects": len(self.items),
            "bytes": self.freed_bytes,
            "stored_before": self.stored_before,
            "stored_after": self.stored_before - self.freed_bytes,
            "kept": {k: {"objects": v[0], "bytes": v[1]} for k, v in sorted(self.kept.items())},
            "items": [{**i.to_dict(), "seq": seqs.get(i.run)} for i in self.items],
            "temporary": {"files": len(self.temporary), "bytes": self.temporary_bytes},
            "warnings": list(self.warnings),
        }


def _manifest_hashes(repo: Repo, digest: str, present: dict[str, Any]) -> set[str]:
    """Every object a manifest names (for runs the index does not know yet)."""
    try:
        m = json.loads(repo.store.objects.path(digest).read_bytes())
    except (OSError, ValueError):
        return set()
    code = m.get("code") or {}
    out = {digest, m.get("env"), code.get("tree"), (m.get("metrics") or {}).get("object"),
           (m.get("notebook") or {}).get("cells")}  # fmt: skip
    out |= {(m.get(s) or {}).get("hash") for s in ("stdout", "stderr")}
    out |= {f.get("hash") for role in ("inputs", "outputs") for f in m.get(role) or []}
    out |= {f.get("hash") for a in m.get("artefacts") or [] for f in a.get("files") or []}
    out |= {x.get("hash") for x in code.get("modules") or []}
    if code.get("tree"):
        out |= usage.tree_entries(repo, code["tree"], present)[0]
    return {h for h in out if isinstance(h, str)}


def _live_hashes(repo: Repo, present: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(objects named by live runs so far: code snapshot and kept artefacts, their ids)."""
    from vestige.capture.events import read_api_events
    from vestige.store.live import LiveRun

    out: set[str] = set()
    ids: set[str] = set()
    if not repo.store.live.is_dir():
        return out, ids
    for path in repo.store.live.iterdir():
        ids.add(path.name)
        code = LiveRun(path).code or {}
        if code.get("tree"):
            out.add(code["tree"])
            out |= usage.tree_entries(repo, code["tree"], present)[0]
        out |= {x.get("hash") for x in code.get("modules") or [] if isinstance(x, dict)}
        for e in read_api_events(path):
            for f in e.get("files") or [] if e.get("e") == "keep" else []:
                if isinstance(f, dict) and isinstance(f.get("hash"), str):
                    out.add(f["hash"])
    return out, ids


def _tagged(repo: Repo) -> set[str]:
    """Runs with tags: the index's, and any with tags added in annotations (conservative)."""
    out = repo.index.runs.tagged()
    from vestige.store.annotations import Annotations

    annotations = Annotations(repo.store)
    for run_id in annotations.refs:
        with contextlib.suppress(Exception):
            if annotations.get(run_id)["added"]:
                out.add(run_id)
    return out


def ensure_index(repo: Repo) -> set[str]:
    """Reindex an index from before migration 0004; return the runs whose ref the index
    does not match (sealed meanwhile): gc keeps everything they name."""
    if repo.index.runs.unindexed():
        repo.reindex()
    indexed = repo.index.runs.manifests()
    return {run_id for run_id in repo.store.refs
            if repo.store.refs.get(run_id) != indexed.get(run_id)}  # fmt: skip


def plan(repo: Repo, policy: Policy, now: float, grace: float = GRACE_S,
         clock: float | None = None, force: bool = False) -> Plan:  # fmt: skip
    """Decide what to free (nothing is changed). `now` is the policy's clock (simulated by
    VESTIGE_NOW); `clock` the real time that objects' last use compares with. When the
    store has remotes, a payload no remote holds stays unless `force` (issue 17)."""
    policy.check()
    unknown = ensure_index(repo)
    view = usage.view(repo)
    real = time.time() if clock is None else clock
    guard = real - grace
    result = Plan(now=now, stored_before=sum(s for s, _m in view.present.values()))
    result.temporary = stale_temporaries(repo.store, real)
    old = {h for h in freed_records(repo.store) if h in view.present}
    result.stale_records = sorted(old)
    pinned = set(_pins_of(repo))
    tagged = _tagged(repo)
    live_objects, live_ids = _live_hashes(repo, view.present)
    newest = sorted(view.runs, key=lambda r: -view.runs[r][0])[: policy.keep_last or 0]
    limit = None if policy.older_than is None else now - policy.older_than
    candidates = sorted(
        (r for r, (_s, status, started, manifest, _a) in view.runs.items()
         if status in SEALED and manifest and r not in live_ids and r not in unknown
         and r not in pinned and r not in tagged and r not in newest
         and (limit is None or started <= limit)),
        key=lambda r: (view.runs[r][2], view.runs[r][0]),
    )  # fmt: skip
    result.candidates = candidates
    cand = set(candidates)
    protected = set(live_objects)
    for run_id in unknown:
        protected |= _manifest_hashes(repo, repo.store.refs.get(run_id) or "", view.present)
    for _run, kind, digest, _size in view.blobs:
        protected.add(digest)
        if kind == "code":
            protected |= view.trees.get(digest, (set(), False))[0]
    payload: dict[str, list[tuple[str, str, str, int]]] = {}
    makers: dict[str, list[tuple[str, str, str]]] = {}
    inputs: dict[str, list[tuple[str, str, int]]] = {}
    for run_id, role, path, digest, _size, kept in view.files:
        if role in ("output", "artefact"):
            makers.setdefault(digest, []).append((run_id, path, role))
        if role == "input":
            inputs.setdefault(run_id, []).append((digest, path, kept))
        if role not in PAYLOAD_ROLES or run_id not in cand:
            protected.add(digest)
        elif kept:
            payload.setdefault(run_id, []).append((role, path, digest, _size))
    tree_of = {r: d for r, kind, d, _s in view.blobs if kind == "code"}
    records = freed_records(repo.store)
    freed: set[str] = set(records) - old
    # what re-makes bytes freed before must stay re-makeable: its maker's inputs stay
    required = {h for d in freed for h, _p, _k in inputs.get(records[d]["run"], [])}
    stored = result.stored_before

    def remakeable(maker: str, digest: str) -> bool:
        info = view.runs.get(maker)
        if info is None or info[1] != "ok" or not info[3] or maker in unknown:
            return False
        if not view.trees.get(tree_of.get(maker, ""), (set(), False))[1]:
            return False
        return all(kept and h != digest and h in view.present and h not in freed
                   and not p.startswith("/") for h, p, kept in inputs.get(maker, []))  # fmt: skip

    def keep(reason: str, size: int) -> None:
        counts = result.kept.setdefault(reason, [0, 0])
        counts[0] += 1
        counts[1] += size

    pushed, unlisted = (None, []) if force or not repo.config.remotes else on_remotes(repo)
    result.warnings = unlisted
    unpushed = "on no remote yet (`vestige push` it, or gc --force)"
    if unlisted:
        unpushed = "not known to be on a remote (one could not be listed; or gc --force)"
    decided: set[str] = set()
    order = {"output": 0, "artefact": 1, "input": 2}
    for run_id in candidates:
        for role, path, digest, _size in sorted(payload.get(run_id, []),
                                                key=lambda x: (order[x[0]], x[1])):  # fmt: skip
            if digest in decided or digest in freed or digest not in view.present:
                continue
            decided.add(digest)
            size, written = view.present[digest]
            if digest in protected:
                keep("named by a kept, pinned, tagged or live run, or not a payload", size)
            elif policy.max_size is not None and stored <= policy.max_size:
                keep("the store is under --max-size", size)
            elif size < policy.min_size:
                keep("smaller than --min-size", size)
            elif digest in required:
                keep("an input needed to re-make a freed file", size)
            elif written >= guard:
                keep("written recently (a run may still name it)", size)
            elif digest not in makers:
                keep("an input that no run made (nothing could re-make it)", size)
            else:
                maker = next((m for m in sorted(makers[digest], key=lambda m: (
                    view.runs.get(m[0], (0, "", 0.0))[2], m[0])) if remakeable(m[0], digest)),
                    None)  # fmt: skip
                if maker is None:
                    keep("no run that made it can be re-made", size)
                    continue
                if pushed is not None and digest not in pushed:
                    keep(unpushed, size)
                    continue
                freed.add(digest)
                required |= {h for h, _p, _k in inputs.get(maker[0], [])}
                stored -= size
                result.items.append(Item(digest, size, run_id, path, role, *maker))
    return result


def on_remotes(repo: Repo) -> tuple[set[str], list[str]]:
    """(the objects some remote of the store holds: one listing of each, the remotes'
    lines of why they could not be listed). A remote nobody pushed to yet holds none."""
    from vestige.errors import VestigeError
    from vestige.remote.location import open_side

    held: set[str] = set()
    failed: list[str] = []
    for name in sorted(repo.config.remotes):
        try:
            _name, side = open_side(repo.config, name, repo.store.path)
            if side.exists():
                held |= side.object_names()
        except (VestigeError, OSError) as e:
            failed.append(f"remote {name} could not be listed, so gc kept what only it could "
                          f"hold: {e}")  # fmt: skip
    return held, failed


def _pins_of(repo: Repo) -> dict[str, float]:
    from vestige.store.pins import Pins

    return Pins(repo.store).all()


# -- doing it ---------------------------------------------------------------------------------


def collect(repo: Repo, policy: Policy, now: float, dry_run: bool = False,
            grace: float = GRACE_S, timeout: float | None = None,
            force: bool = False) -> Plan:  # fmt: skip
    """Plan, and unless dry_run free the planned objects under gc's locks.

    A run being sealed meanwhile may have found one of these objects present (dedup) and
    not named it in a ref yet: so the objects are first moved aside (quarantine), gc waits
    for the seals in progress to end, then puts back whatever a new ref or a live run
    names, and only then deletes the rest (docs/format.md, "Write order")."""
    if dry_run:
        return plan(repo, policy, now, grace, force=force)
    wait = repo.config.index_timeout if timeout is None else timeout
    with gc_locks(repo.store, wait):
        refs_before = set(repo.store.refs)
        result = plan(repo, policy, now, grace, force=force)
        folder = freed_dir(repo.store)
        folder.mkdir(parents=True, exist_ok=True)
        for digest in result.stale_records:
            (folder / digest).unlink(missing_ok=True)
        aside = [(i, q) for i in result.items if (q := _quarantine(repo, i, now)) is not None]
        _wait_for_seals(repo, wait)
        named = _named_since(repo, refs_before)
        done: list[Item] = []
        for item, moved in aside:
            if item.hash in named:  # a run sealed meanwhile uses it: it stays
                os.replace(moved, repo.store.objects.path(item.hash))
                (folder / item.hash).unlink(missing_ok=True)
            else:
                os.unlink(moved)
                done.append(item)
        _sync(repo.store, folder, done)
        result.items = done
        result.temporary = _remove_temporaries(repo.store, result.temporary)
        result.done = True
        repo.index.marks.set_freed(add=[_record(i, now) for i in done], drop=result.stale_records)
    return result


#: A store write's temp file (objects.py `obj-`, refs.py `ref-`, layout.write_atomic
#: `w-<pid>-`) untouched this long was left by a process that died: a write in progress
#: touches its file as it goes. Nothing else in tmp/ is touched: gc's own aside files
#: (`gc-<pid>-`) are put back by recovery (recover.restore_quarantined), and folders (a
#: Slurm sweep's job folder, tmp/slurm) may belong to something still running.
STALE_TEMP_S = 3600.0


def stale_temporaries(store: Store, clock: float) -> list[tuple[str, int]]:
    """(path, bytes) of the store's temp files untouched for STALE_TEMP_S at `clock`."""
    out: list[tuple[str, int]] = []
    try:
        entries = list(os.scandir(store.path / "tmp"))
    except OSError:
        return out
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if stat_mod.S_ISREG(st.st_mode) and clock - st.st_mtime > STALE_TEMP_S:
                out.append((entry.path, st.st_size))
    return sorted(out)


def _remove_temporaries(store: Store, stale: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Remove what is still stale now (a writer may have come back to it); return those."""
    again = {p for p, _b in stale_temporaries(store, time.time())}
    removed = []
    for path, size in stale:
        if path in again:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append((path, size))
    return removed


def _record(item: Item, now: float) -> dict[str, Any]:
    return {"hash": item.hash, "size": item.size, "run": item.maker, "path": item.maker_path,
            "role": item.maker_role, "t": now, "by": "gc"}  # fmt: skip


def _quarantine(repo: Repo, item: Item, now: float) -> Path | None:
    """Write the freed record, then move the object aside into tmp/ (None: it is gone)."""
    from vestige.store.objects import canonical_json

    store = repo.store
    record = freed_dir(store) / item.hash
    tmp = store.path / "tmp" / f"gc-{os.getpid()}-{item.hash}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(canonical_json(_record(item, now)) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, record)  # the record first: a crash leaves a record, never a loss
    try:
        os.rename(store.objects.path(item.hash), tmp)
    except FileNotFoundError:
        record.unlink(missing_ok=True)
        return None
    return tmp


def _busy(path: Path) -> bool:
    """Whether a live run may hold objects it found present but has not named yet: it is
    being sealed (its command ended, or a process claimed it for recovery) or is storing
    its code snapshot (not in code.json or run.json yet), by a process still alive."""
    from vestige.store.live import LiveRun

    claim = path / "sealing"
    if claim.exists():
        try:
            os.kill(int(claim.read_text() or "0"), 0)
            return True
        except (ValueError, OSError):
            return False
    pending = (path / "result.json").exists() or not LiveRun(path).has_code()
    return pending and LiveRun(path).runner_alive() is not False


def _wait_for_seals(repo: Repo, timeout: float) -> None:
    """Wait until the seals that may have reused a quarantined object have written their
    ref. A seal that starts later finds the object absent and writes it again."""
    time.sleep(0.2)  # a put that found an object present names it within microseconds
    live = repo.store.live
    sealing = [p for p in live.iterdir() if _busy(p)] if live.is_dir() else []
    deadline = time.monotonic() + timeout
    while sealing and time.monotonic() < deadline:
        time.sleep(0.05)
        sealing = [p for p in sealing if p.exists() and _busy(p)]


def _named_since(repo: Repo, refs_before: set[str]) -> set[str]:
    """Objects named by refs written since gc planned, or by live runs now."""
    present = usage.present_objects(repo.store)
    named, _ids = _live_hashes(repo, present)
    for run_id in set(repo.store.refs) - refs_before:
        named |= _manifest_hashes(repo, repo.store.refs.get(run_id) or "", present)
    return named


def _sync(store: Store, folder: Path, done: list[Item]) -> None:
    from vestige.store.layout import fsync_dir

    fsync_dir(str(folder))
    for fan in sorted({i.hash[:2] for i in done}):
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(str(store.objects.dir / fan))
