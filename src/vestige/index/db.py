"""The index over one store: SQLite in WAL mode, written only from sealed manifests.

`Index` opens it and hands out its parts by what they serve: `index.record` writes a
run's rows; `index.runs` (runs and what hangs off them), `index.files` (who made or read
which bytes), `index.debt` (the debt ledger) and `index.marks` (published copies, pins,
freed objects) read.

Readers never trust it further than the store: a row names a manifest by hash, and the
store is the truth (docs/format.md, invariant I1). Concurrent runs share it through
SQLite's locking with a busy timeout. A file that is empty, not a database or unreadable
is set aside and rebuilt; a store that cannot be written (a read-only mount, an archive)
has its index opened read-only, or built in memory, and nothing is written to it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

from vestige.index.schema import SCHEMA_VERSION, current_version, drop_all, empty_all, migrate

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.index.debt import Debt
    from vestige.index.files import Files
    from vestige.index.marks import Marks
    from vestige.index.record import Recorder
    from vestige.index.runs import Runs

BUSY_TIMEOUT_S = 30.0
#: SQLite's primary result codes that mean the file is not (or no longer) a usable index:
#: SQLITE_CORRUPT, SQLITE_NOTADB; SQLITE_CANTOPEN only when the file itself is unreadable.
CORRUPT, CANTOPEN, NOTADB = 11, 14, 26
#: The caches that commands reading a read-only store still fill (du, which --similar,
#: debt): shadowed by in-memory copies, by the group of the index that writes them.
SHADOWED = {"files": ("objsize", "phash"), "debt": ("debt_shingles",)}


class ReadOnlyConnection(sqlite3.Connection):
    """A connection to an index that must not be written (`readonly`: the stat cache and
    recovery look at it and skip their writes)."""

    readonly = True


def connect(path: Path | str, timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
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


def _connect_readonly(path: Path, query: str, timeout: float
                      ) -> tuple[sqlite3.Connection | None, str | None]:  # fmt: skip
    """The index opened through a `file:` URI with `query` (`mode=ro`, `immutable=1`), if it
    is a whole index of this schema: (connection, None); else (None, what is wrong with the
    file, or None when it could not be opened at all or is of another schema)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path))}?{query}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False, factory=ReadOnlyConnection)  # fmt: skip
    except sqlite3.Error:
        return None, None
    why = None
    try:
        if current_version(conn) == SCHEMA_VERSION:
            conn.execute("PRAGMA temp_store=MEMORY")  # (the shadowed caches: no temp file)
            return conn, None
    except sqlite3.DatabaseError as e:
        if (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF in (CORRUPT, NOTADB):
            why = f"was damaged ({e})"
    conn.close()
    return None, why


def _damage(path: Path) -> str | None:
    """Why an index file that exists cannot be used as it is (None: it may be)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"could not be read ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a file"
    if st.st_size == 0:
        return "was empty (0 bytes)"
    if not os.access(path, os.R_OK):
        return "could not be read (permission denied)"
    return None


class Index:
    """index.sqlite opened: its connection, and the parts that share it. Each part is made
    (its module imported) on first use: `vestige run` needs only `record`, and each module
    costs ~0.15-0.5 ms to import on the CI machine.

    `store` (the store's folder) lets the index number a new run above every run the
    store holds; `readonly`: nothing may be written to the file (the caches commands
    fill are in-memory copies); `damage`: why the file was set aside or could not serve,
    for the caller to say so as it rebuilds."""

    def __init__(
        self, conn: sqlite3.Connection, store: Path | None = None, readonly: bool = False
    ) -> None:
        self.conn = conn
        from vestige.index.regexp import register

        register(conn)  # `--where '... matches "re"'` (index/where.py) on any query
        self.store = store
        self.readonly = readonly
        self.damage: str | None = None
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

            self._record = Recorder(self.conn, self.store)
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

            self._shadow("files")
            self._files = Files(self.conn)
        return self._files

    @property
    def debt(self) -> Debt:
        """The debt ledger's queries (vestige/index/debt.py)."""
        if self._debt is None:
            from vestige.index.debt import Debt

            self._shadow("debt")
            self._debt = Debt(self.conn)
        return self._debt

    @property
    def marks(self) -> Marks:
        """Published copies, pins, freed objects (vestige/index/marks.py)."""
        if self._marks is None:
            from vestige.index.marks import Marks

            self._marks = Marks(self.conn)
        return self._marks

    def _shadow(self, part: str) -> None:
        """On a read-only file, give the caches `part` writes in-memory copies (TEMP tables
        come first in SQLite's name lookup): they are read as stored and written for this
        command only."""
        if not isinstance(self.conn, ReadOnlyConnection):
            return
        import re

        for table in SHADOWED[part]:
            row = self.conn.execute(
                "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if row is None:
                continue
            ddl = re.sub(r"^CREATE TABLE( IF NOT EXISTS)?", "CREATE TEMP TABLE", row[0])
            with contextlib.suppress(sqlite3.Error):  # (at worst: a cache unfilled)
                self.conn.execute(ddl)
                self.conn.execute(f"INSERT INTO temp.{table} SELECT * FROM main.{table}")

    @classmethod
    def open(
        cls, path: Path, timeout: float = BUSY_TIMEOUT_S, store: Path | None = None,
        readonly: bool = False,
    ) -> tuple[Index, bool]:  # fmt: skip
        """Open (creating or migrating) the index; returns (index, needs_rebuild).

        A file that is empty, not a database or unreadable is set aside (an empty one is
        reused) and needs a rebuild; `damage` says why. `readonly`: the file is opened
        with `mode=ro` (or `immutable=1` where its -wal and -shm cannot be made), or, if it
        cannot serve as it is (missing, damaged, of another schema), an index is made in
        memory, to be rebuilt from the store; nothing is written to the file either way.
        """
        if readonly:
            return cls._open_readonly(path, timeout, store)
        damage = _damage(path)
        fresh = damage is not None or not path.exists()
        try:
            if damage is not None and damage != "was empty (0 bytes)":
                _set_aside(path)  # (an empty file is reused: it may be another's, new)
            conn = connect(path, timeout)
            fresh = fresh or current_version(conn) == 0
            ok = migrate(conn)
        except sqlite3.DatabaseError as e:
            code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
            unreadable = code == CANTOPEN and path.exists() and not os.access(path, os.R_OK)
            if code not in (CORRUPT, NOTADB) and not unreadable:
                raise
            # Not a database (any more): the index is a cache, so set it aside and rebuild.
            damage = damage or ("could not be read" if unreadable else f"was damaged ({e})")
            _set_aside(path)
            conn = connect(path, timeout)
            ok = migrate(conn)
            fresh = True
        if not ok:
            drop_all(conn)
            migrate(conn)
            fresh = True
        index = cls(conn, store)
        index.damage = damage
        return index, fresh

    @classmethod
    def _open_readonly(cls, path: Path, timeout: float, store: Path | None) -> tuple[Index, bool]:
        """Index.open on a store that cannot be written (see there)."""
        damage = _damage(path)
        if damage is None and path.exists():
            for query in ("mode=ro", "immutable=1"):  # (immutable: no -wal, -shm to be made)
                conn, why = _connect_readonly(path, query, timeout)
                if conn is not None:
                    return cls(conn, store, readonly=True), False
                damage = damage or why
        conn = connect(":memory:", timeout)
        migrate(conn)
        index = cls(conn, store, readonly=True)
        index.damage = damage
        return index, True

    def close(self) -> None:
        """Close the connection (the groups share it)."""
        self.conn.close()

    def clear(self) -> None:
        """Empty every derived table (reindex), inside the caller's transaction, which
        refills them; the stat cache stays."""
        empty_all(self.conn)


def _set_aside(path: Path) -> None:
    """Move a damaged index (and its -wal, -shm) to `<name>.damaged`: a cache, rebuilt."""
    import shutil

    for suffix in ("", "-wal", "-shm"):
        damaged = path.with_name(path.name + suffix)
        if os.path.lexists(damaged):
            target = path.with_name(f"{path.name}{suffix}.damaged")
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target, ignore_errors=True)
            os.replace(damaged, target)
