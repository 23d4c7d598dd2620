"""Refs: `refs/runs/<run-id>` holds the hash of the run's sealed manifest.

A run ref is written once, atomically, after its manifest object exists (write order,
docs/format.md). Readers trust a ref only when the manifest it names exists.
`refs/annotations/<run-id>` (tags and notes added after a run was sealed) uses the same
class; it is the one kind of ref that is rewritten, always atomically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vestige.store.hashing import is_hash
from vestige.store.layout import fsync_dir, make_temp


class Refs:
    """The refs of one kind (`runs`, `annotations`) in one store."""

    def __init__(self, root: Path, kind: str = "runs") -> None:
        self.dir = root / "refs" / kind
        self.tmp = root / "tmp"

    @contextlib.contextmanager
    def locked(self, shared: bool = False) -> Iterator[None]:
        """A flock on this kind's folder (no extra file): exclusive to rewrite refs that
        change (annotations, published, pins), so concurrent writers all land; shared to
        read them all at once (gc)."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def set(self, run_id: str, digest: str, sync: bool = True) -> None:
        """Point `run_id` at an object (atomic); `sync=False` leaves durability to the
        caller's barrier (layout.sync_filesystem), as for objects."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = make_temp(self.tmp, "ref-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(digest + "\n")
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.dir / run_id)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if sync:
            fsync_dir(self.dir)

    def get(self, run_id: str) -> str | None:
        """The manifest hash of a sealed run, or None."""
        try:
            text = (self.dir / run_id).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return text if is_hash(text) else None

    def raw(self, run_id: str) -> str:
        """A ref file's text as stored (fsck checks it)."""
        return (self.dir / run_id).read_text()

    def __iter__(self) -> Iterator[str]:
        """Every run id with a ref, in id (= time) order."""
        if not self.dir.is_dir():
            return iter(())
        return iter(sorted(p.name for p in self.dir.iterdir() if not p.name.startswith(".")))
