"""Publish: copy an artefact out of the project, and record that it left.

An artefact that left the project (a figure in a paper, a table sent to a colleague) is
the strongest sign that the code that made it is no longer short-lived (docs/debt.md).
`vestige publish SRC DEST` copies bytes some run made and records a publish event;
`vestige which` of a copy found outside the project records a sighting the same way.

Events live in the store, not only in the index (a cache): the refs of
vestige/store/published.py first, then the index's `published` row.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vestige.errors import NotKept, PathMissing, UsageError, VestigeError
from vestige.records import Record
from vestige.store.published import PublishedRefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.repo import Maker, Repo


class Published(Record):
    """What `vestige publish` did: `copied`, `same` (DEST already had these bytes) or
    `replaced` (other bytes there, --force)."""

    hash: str
    dest: str
    source: str
    run_id: str
    seq: int
    size: int
    t: float
    status: str
    recorded: bool  # False when the same publish (bytes, DEST) was already recorded

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def record(repo: Repo, digest: str, event: dict[str, Any]) -> bool:
    """Store the event (ref), then index it; False when it was already recorded."""
    added = PublishedRefs(repo.store).add(digest, event)
    if added:
        repo.index.marks.add_published([{**event, "hash": digest}])
    return added


class Source(Record):
    """The bytes to publish: their hash, the run that made them, where to read them."""

    hash: str
    run_id: str
    seq: int
    path: str  # as the run recorded it
    size: int
    disk: Path | None  # the file on disk, when SRC named one


def source(repo: Repo, text: str) -> Source:
    """SRC: a file whose bytes a run made (the latest maker is the source), or RUN:path."""
    local = Path(text).expanduser()
    if ":" in text and not local.exists():
        ref, _, rel = text.partition(":")
        run = repo.run(ref)
        role, rec, digest = repo.find_file(run, rel)
        if role not in ("output", "artefact"):
            raise UsageError(f"{rel!r} is {'an' if role == 'input' else 'a'} {role} of run "
                             f"#{run.seq}, not something it made: publish an output")  # fmt: skip
        if rec is None or not rec.kept or not repo.store.objects.exists(digest):
            raise NotKept(f"{rel}: run #{run.seq} recorded its hash but kept no copy; "
                          "publish the file from disk instead")  # fmt: skip
        return Source(digest, run.id, run.seq, rec.path, rec.size, None)
    if not local.is_file():
        raise PathMissing(f"no such file: {text} (give a file, or RUN:path for a kept output)")
    from vestige.store.hashing import hash_file

    digest = hash_file(local)
    row = repo.producer(digest) or repo.producer(digest, copies=True)
    if row is None:
        raise UsageError(f"{text}: no recorded run made these bytes (blake3 {digest[:12]}); "
                         "publish copies what a run made: `vestige which` tells")  # fmt: skip
    return Source(digest, row["id"], row["seq"], row["file_path"], local.stat().st_size, local)


def destination(repo: Repo, text: str, src: Source) -> Path:
    """DEST as an absolute path (a folder gets SRC's name); never inside the store."""
    dest = Path(text).expanduser()
    if dest.is_dir() or text.endswith(os.sep):
        dest = dest / Path(src.path).name
    dest = Path(os.path.abspath(dest))
    parent = dest.parent.resolve()
    store = repo.store.path.resolve()
    if parent == store or store in parent.parents:
        raise UsageError(f"{text}: DEST is inside the store {store}; publish outside .vestige")
    if dest.is_dir():
        raise UsageError(f"{text}: is a folder holding {dest.name}; name another DEST")
    return parent / dest.name


def publish(repo: Repo, src_text: str, dest_text: str, now: float, force: bool = False
            ) -> Published:  # fmt: skip
    """Copy SRC's bytes to DEST atomically (never over other bytes without `force`) and
    record the publish event in the store and the index."""
    from vestige.store.hashing import hash_if_file

    src = source(repo, src_text)
    dest = destination(repo, dest_text, src)
    status = "copied"
    there = hash_if_file(dest) if dest.exists() else None
    if there == src.hash:
        status = "same"
    elif dest.exists() and not force:
        raise UsageError(f"{dest} exists with other bytes; pass --force to replace them")
    else:
        status = "replaced" if dest.exists() else "copied"
        status = _write(repo, src, dest, force) or status
    event = {"t": now, "dest": str(dest), "how": "publish", "run": src.run_id,
             "source": src.path, "size": src.size}  # fmt: skip
    added = record(repo, src.hash, event)
    return Published(src.hash, str(dest), src.path, src.run_id, src.seq, src.size, now, status,
                     added)  # fmt: skip


def _write(repo: Repo, src: Source, dest: Path, force: bool) -> str | None:
    """Temp file beside DEST, verified, fsynced, then linked (no clobber) or renamed
    (--force) into place. Returns `same` if DEST got these bytes meanwhile."""
    from vestige.store.hashing import hash_file, hash_if_file
    from vestige.store.layout import fsync_dir
    from vestige.store.objects import copy_into

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.vestige-publish-{os.getpid()}")
    objects = repo.store.objects
    try:
        if objects.exists(src.hash):
            objects.verify(src.hash)  # never hand out bytes that are not what was made
            reader = objects.open(src.hash)
        else:
            assert src.disk is not None  # RUN:path requires a kept object
            reader = open(src.disk, "rb")  # noqa: SIM115 - closed just below
        with reader, open(tmp, "wb") as out:
            copy_into(reader, out)
            out.flush()
            os.fsync(out.fileno())
        if hash_file(tmp) != src.hash:  # the file changed on disk while we read it
            raise UsageError(f"{src.disk} changed while it was copied; try again")
        os.chmod(tmp, 0o666 & ~_umask())
        if force:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)  # fails if DEST appeared meanwhile: never clobber
            except FileExistsError:
                if hash_if_file(dest) == src.hash:
                    return "same"
                raise UsageError(
                    f"{dest} exists with other bytes; pass --force to replace them"
                ) from None
            except OSError:  # a filesystem without hard links: check again, then rename
                if dest.exists():
                    raise UsageError(f"{dest} exists; pass --force to replace it") from None
                os.replace(tmp, dest)
        fsync_dir(str(dest.parent))
    finally:
        tmp.unlink(missing_ok=True)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- vestige which -------------------------------------------------------------------------


def note_which(repo: Repo, path: Path, digest: str, makers: list[Maker], now: float
               ) -> list[dict[str, Any]]:  # fmt: skip
    """`which` found a run's bytes at `path`: outside the project, record that they left
    (best effort: `which` stays a lookup if the store cannot be written). Returns every
    publish event of these bytes, for `which` to show."""
    full = Path(os.path.abspath(path))
    root = repo.store.root.resolve()
    inside = full.resolve() == root or root in full.resolve().parents
    if makers and not inside:
        row = repo.producer(digest) or repo.producer(digest, copies=True)
        if row is not None:
            event = {"t": now, "dest": str(full), "how": "which", "run": row["id"],
                     "source": row["file_path"], "size": full.stat().st_size}  # fmt: skip
            known = {e.get("dest") for e in PublishedRefs(repo.store).events(digest)}
            if str(full) not in known:
                with contextlib.suppress(OSError, VestigeError):
                    record(repo, digest, event)
    return [dict(r) for r in repo.index.marks.published_of([digest]) if r["t"] <= now]
