"""The index over one store: SQLite in WAL mode, written only from sealed manifests.

`Index` opens it and hands out its parts by what they serve: `index.record` writes a
run's rows; `index.runs` (runs and what hangs off them), `index.files` (who made or read
which bytes), `index.debt` (the debt ledger) and `index.marks` (published copies, pins,
freed objects) read.

Readers never trust it further than the store: a row names a manifest by hash, and the
store is the truth (docs/format.md, invariant I1). Concurrent runs share it through
SQLite's locking with a busy timeout.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from vestige.index.schema import drop_all, migrate

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.index.debt import Debt
    from vestige.index.files import Files
    from vestige.index.marks import Marks
    from vestige.index.record import Recorder
    from vestige.index.runs import Runs

BUSY_TIMEOUT_S = 30.0


def connect(path: Path, timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open the index with WAL and a busy timeout; autocommit unless `with conn:`."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    # Switching to WAL needs a moment alone with the file and SQLite does not wait for it
    # (it answers "locked" at once, ignoring the busy timeout): retry until the timeout.
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


class Index:
    """index.sqlite opened: its connection, and the parts that share it. Each part is made
    (its module imported) on first use: `vestige run` needs only `record`, and each module
    costs ~0.15-0.5 ms to import on the CI machine."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._record: Recorder | None = None
        self._runs: Runs | None = None
        self._files: Files | None = None
        self._debt: Debt | None = None
        self._marks: Marks | None = None

    @property
    def record(self) -> Recorder:
        """Writes a run's rows (vestige/index/record.py)."""
        if self._record is None:
            from vestige.index.record import Recorder

            self._record = Recorder(self.conn)
        return self._record

    @property
    def runs(self) -> Runs:
        """Resolves and lists runs (vestige/index/runs.py)."""
        if self._runs is None:
            from vestige.index.runs import Runs

            self._runs = Runs(self.conn)
        return self._runs

    @property
    def files(self) -> Files:
        """Who made or read which bytes (vestige/index/files.py)."""
        if self._files is None:
            from vestige.index.files import Files

            self._files = Files(self.conn)
        return self._files

    @property
    def debt(self) -> Debt:
        """The debt ledger's queries (vestige/index/debt.py)."""
        if self._debt is None:
            from vestige.index.debt import Debt

            self._debt = Debt(self.conn)
        return self._debt

    @property
    def marks(self) -> Marks:
        """Published copies, pins, freed objects (vestige/index/marks.py)."""
        if self._marks is None:
            from vestige.index.marks import Marks

            self._marks = Marks(self.conn)
        return self._marks

    @classmethod
    def open(cls, path: Path, timeout: float = BUSY_TIMEOUT_S) -> tuple[Index, bool]:
        """Open (creating or migrating) the index; returns (index, needs_rebuild)."""
        fresh = not path.exists()
        try:
            conn = connect(path, timeout)
            ok = migrate(conn)
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorcode", None) not in (11, 26):  # CORRUPT, NOTADB
                raise
            # Not a database (any more): the index is a cache, so set it aside and rebuild.
            for suffix in ("", "-wal", "-shm"):
                damaged = path.with_name(path.name + suffix)
                if damaged.exists():
                    os.replace(damaged, path.with_name(f"{path.name}{suffix}.damaged"))
            conn = connect(path, timeout)
            ok = migrate(conn)
            fresh = True
        if not ok:
            drop_all(conn)
            migrate(conn)
            fresh = True
        return cls(conn), fresh

    def close(self) -> None:
        """Close the connection (the groups share it)."""
        self.conn.close()

    def clear(self) -> None:
        """Empty every derived table (reindex); the stat cache stays."""
        drop_all(self.conn)
        migrate(self.conn)
