"""The stat cache: (path, dev, inode, size, mtime_ns, ctime_ns) -> hash, like git's index.

An unchanged file is never re-hashed. An entry is trusted only if it was hashed at
least RACY_NS after the file's last change: a file written again within the same
timestamp tick as its hashing would otherwise look unchanged (git's "racy clean").
"""

from __future__ import annotations

import sqlite3
import time

from vestige.store.objects import escape_surrogates
from vestige.store.stat import Stat

RACY_NS = 2_000_000_000  # 2 s: covers the coarsest common timestamp granularity (FAT, SMB)

DDL = """
CREATE TABLE IF NOT EXISTS statcache (
    path TEXT PRIMARY KEY,
    dev INTEGER, inode INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
    hash TEXT NOT NULL,
    hashed_ns INTEGER NOT NULL
)
"""


class StatCache:
    """Stat-cache lookups for a batch of paths, with updates written back in one go."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self._known: dict[str, tuple[tuple[int, int, int, int, int], str, int]] = {}
        self._new: dict[str, tuple[Stat, str, int]] = {}
        self._preloaded: list[str] = []

    def preload(self, prefix: str) -> None:
        """Load every entry under a directory (one query instead of one per file)."""
        if self.conn is None:
            return
        lo, hi = prefix.rstrip("/") + "/", prefix.rstrip("/") + "0"  # '0' sorts after '/'
        try:
            rows = self.conn.execute(
                "SELECT path, dev, inode, size, mtime_ns, ctime_ns, hash, hashed_ns"
                " FROM statcache WHERE path >= ? AND path < ?",
                (lo, hi),
            ).fetchall()
        except sqlite3.Error:
            return
        for path, dev, ino, size, mt, ct, digest, hashed in rows:
            self._known[path] = ((dev, ino, size, mt, ct), digest, hashed)
        self._preloaded.append(lo)

    def get(self, path: str, stat: Stat, racy_ns: int = RACY_NS) -> str | None:
        """The cached hash of `path` if its stat is unchanged and the entry is not racy.
        `racy_ns=0` for the store's own objects (ObjectStore.intact): never written after
        they are made, their entries are recorded right after writing or verifying them."""
        path = escape_surrogates(path)  # (SQLite takes valid UTF-8 only)
        hit = self._new.get(path)
        if hit is not None and hit[0].key() == stat.key():
            return hit[1]
        known = self._known.get(path)
        if known is None and self.conn is not None and not path.startswith(tuple(self._preloaded)):
            try:
                row = self.conn.execute(
                    "SELECT dev, inode, size, mtime_ns, ctime_ns, hash, hashed_ns"
                    " FROM statcache WHERE path = ?",
                    (path,),
                ).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None:
                known = (tuple(row[:5]), row[5], row[6])  # type: ignore[assignment]
                self._known[path] = known  # type: ignore[assignment]  # so put() can skip it
        if known is None:
            return None
        key, digest, hashed_ns = known
        if key != stat.key():
            return None
        if hashed_ns - max(stat.mtime_ns, stat.ctime_ns) < racy_ns:
            return None
        return digest

    def put(self, path: str, stat: Stat, digest: str) -> None:
        """Remember the hash of `path` at `stat` (a no-op when the cache already says so)."""
        path = escape_surrogates(path)
        known = self._known.get(path)
        if (
            known is not None
            and known[0] == stat.key()
            and known[1] == digest
            and known[2] - max(stat.mtime_ns, stat.ctime_ns) >= RACY_NS
        ):
            return
        self._new[path] = (stat, digest, time.time_ns())

    def flush(self) -> None:
        """Write new entries back; a failure only costs re-hashing next time. Not to an
        index opened read-only (its connection's `readonly`: the store cannot be written)."""
        if self.conn is None or not self._new or getattr(self.conn, "readonly", False):
            return
        rows = [(p, *s.key(), d, h) for p, (s, d, h) in self._new.items()]
        try:
            with self.conn:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO statcache"
                    " (path, dev, inode, size, mtime_ns, ctime_ns, hash, hashed_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            for path, (stat, digest, hashed) in self._new.items():  # a reused cache sees them
                self._known[path] = (stat.key(), digest, hashed)
            self._new.clear()
        except sqlite3.Error:
            pass
