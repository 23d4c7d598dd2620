"""The index over one store: SQLite in WAL mode, written only from sealed manifests.

Readers never trust it further than the store: a row names a manifest by hash, and the
store is the truth (docs/format.md, invariant I1). Concurrent runs share it through
SQLite's locking with a busy timeout.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from vestige.index.schema import drop_all, migrate
from vestige.records import Run

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

BUSY_TIMEOUT_S = 30.0

#: The files rows that tie a run to a code unit (see the debt block of Index).
_UNIT_ROWS = (
    "(f.role = 'code' OR (f.role = 'input' AND f.path LIKE '%.ipynb' AND f.path NOT LIKE '/%'))"
)


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


def _param_columns(value: Any) -> tuple[str, str | None, float | None]:
    """(value_json, value_text, value_num) for a param value, for --where comparisons."""
    as_json = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return as_json, "true" if value else "false", 1.0 if value else 0.0
    if isinstance(value, int | float):
        num = float(value)
        return as_json, as_json, num if math.isfinite(num) else None
    if isinstance(value, str):
        try:
            num = float(value)
            return as_json, value, num if math.isfinite(num) else None
        except ValueError:
            return as_json, value, None
    if value is None:
        return as_json, None, None
    return as_json, as_json, None


class Index:
    """Queries and updates over index.sqlite."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

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
        self.conn.close()

    # -- writes -------------------------------------------------------------------------

    def begin_run(self, run: Run) -> int:
        """Insert a running run and give it the next sequence number, atomically."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            (seq,) = self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()
            self._insert_run_row(run, seq)
        return int(seq)

    def _insert_run_row(self, run: Run, seq: int) -> None:
        git = (run.code or {}).get("git") or {}
        self.conn.execute(
            "INSERT OR REPLACE INTO runs (id, seq, status, exit_code, command, argv, cwd, root,"
            " started, ended, duration, manifest, git_commit, host, pid, parent, rerun_of)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                seq,
                run.status,
                run.exit_code,
                run.command_line,
                json.dumps(run.command),
                run.cwd,
                run.root,
                run.started,
                run.ended,
                run.duration,
                run.manifest,
                git.get("commit"),
                run.host,
                run.pid,
                run.parent,
                run.rerun_of,
            ),
        )

    def record_run(self, run: Run) -> None:
        """Write (or overwrite) every row of a run from its manifest."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self._record(run)

    def record_many(self, runs: Iterable[Run]) -> None:
        """Bulk form of record_run, one transaction (used by reindex)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for run in runs:
                self._record(run)

    def _record(self, run: Run) -> None:
        for table in ("params", "files", "metrics", "tags"):
            self.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
        self._insert_run_row(run, run.seq)
        self.conn.executemany(
            "INSERT INTO params (run_id, key, value_json, value_text, value_num)"
            " VALUES (?, ?, ?, ?, ?)",
            [(run.id, k, *_param_columns(v)) for k, v in run.params.items()],
        )
        rows: list[tuple[Any, ...]] = []
        for role, files in (("input", run.inputs), ("output", run.outputs)):
            for f in files:
                rows.append((run.id, role, f.path, f.hash, f.size, int(f.kept), int(f.confirmed)))
        for m in (run.code or {}).get("modules", []):
            rows.append((run.id, "module", m["path"], m.get("hash"), m.get("size"), 1, 1))
        for path, digest in ((run.code or {}).get("imported_hashes") or {}).items():
            rows.append((run.id, "code", path, digest, None, 1, 1))
        for a in run.artefacts:
            for f in a.get("files") or ():
                kept = int(f.get("kept", True) and f.get("hash") is not None)
                rows.append((run.id, "artefact", f["path"], f.get("hash"), f.get("size"), kept, 1))
        self.conn.executemany(
            "INSERT INTO files (run_id, role, path, hash, size, kept, confirmed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.set_tags(run.id, run.tags, replace=False)
        keys = (run.metrics or {}).get("keys") or {}
        self.conn.executemany(
            "INSERT INTO metrics (run_id, key, last, min, max, count) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    run.id,
                    k,
                    _real(m.get("last")),
                    _real(m.get("min")),
                    _real(m.get("max")),
                    m.get("count"),
                )
                for k, m in keys.items()
                if isinstance(m, dict)
            ],
        )
        self._record_blobs(run)

    def set_tags(self, run_id: str, tags: Iterable[str], replace: bool = True) -> None:
        """The run's tag rows (inside the caller's transaction when replace=False)."""
        if replace:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("DELETE FROM tags WHERE run_id = ?", (run_id,))
                self.set_tags(run_id, tags, replace=False)
            return
        self.conn.executemany(
            "INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)",
            [(run_id, t) for t in tags],
        )

    def tags_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """{run id: tags} for the given runs."""
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(run_ids), 500):
            marks = ",".join("?" * len(chunk))
            for rid, tag in self.conn.execute(
                f"SELECT run_id, tag FROM tags WHERE run_id IN ({marks}) ORDER BY rowid", chunk
            ):
                out.setdefault(rid, []).append(tag)
        return out

    def metrics_of(self, run_ids: Sequence[str], keys: Sequence[str] | None = None
                   ) -> dict[str, dict[str, float | None]]:  # fmt: skip
        """{run id: {key: last value}} (NaN is stored as NULL)."""
        out: dict[str, dict[str, float | None]] = {}
        for chunk in _chunks(list(run_ids), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, key, last FROM metrics WHERE run_id IN ({marks})"
            args: list[Any] = list(chunk)
            if keys is not None:
                sql += f" AND key IN ({','.join('?' * len(keys))})"
                args += list(keys)
            for rid, key, last in self.conn.execute(sql, args):
                out.setdefault(rid, {})[key] = last
        return out

    def clear(self) -> None:
        """Empty every derived table (reindex); the stat cache stays."""
        drop_all(self.conn)
        migrate(self.conn)

    # -- reads --------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY seq")]

    def list_runs(
        self,
        where: tuple[str, Sequence[object]] | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[sqlite3.Row]:
        """Runs newest first, filtered; rows have the runs table's columns."""
        sql = "SELECT r.* FROM runs r"
        clauses: list[str] = []
        args: list[object] = []
        if where is not None:
            clauses.append(f"({where[0]})")
            args.extend(where[1])
        if status is not None:
            clauses.append("r.status = ?")
            args.append(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY r.seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    def run_row(self, run_id: str) -> sqlite3.Row | None:
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def id_by_seq(self, seq: int) -> str | None:
        row = self.conn.execute("SELECT id FROM runs WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def ids_by_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        rows = self.conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [r[0] for r in rows]

    def nth_latest(self, n: int) -> str | None:
        """The id of the n-th newest run (1 = the newest)."""
        row = self.conn.execute(
            "SELECT id FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?", (n - 1,)
        ).fetchone()
        return row[0] if row else None

    def params_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {i: {} for i in run_ids}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = list(run_ids[chunk_start : chunk_start + 500])
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in self.conn.execute(
                f"SELECT run_id, key, value_json FROM params WHERE run_id IN ({marks})", chunk
            ):
                out[run_id][key] = json.loads(value)
        return out

    def makers_of(self, digest: str) -> list[sqlite3.Row]:
        """Runs that wrote these bytes: confirmed writers first, then by start time."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(
            "SELECT r.*, f.path AS file_path, f.confirmed AS confirmed, f.kept AS kept"
            " FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE f.hash = ? AND f.role IN ('output', 'artefact')"
            " ORDER BY r.started, r.seq",
            (digest,),
        ).fetchall()

    def readers_of(self, digest: str) -> list[sqlite3.Row]:
        """Runs that read these bytes, oldest first."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(
            "SELECT r.*, f.path AS file_path FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE f.hash = ? AND f.role IN ('input', 'module') ORDER BY r.started, r.seq",
            (digest,),
        ).fetchall()

    # -- the debt ledger (history/debt.py) and published copies (upkeep/publish.py) ------------
    # A code unit is a project file the run imported (files role 'code', the entry script
    # included) or a project notebook it read; every query takes `now` (a simulated clock
    # hides later runs) and groups by the unit's path over the files_code index.

    def debt_units(self, since: float, now: float, recent: float) -> list[tuple[Any, ...]]:
        """Per unit with a run in [since, now]: (path, runs, versions, seconds, runs since
        `recent`, first and last start up to now)."""
        return self.conn.execute(
            f"SELECT f.path, SUM(r.started >= :since),"
            " COUNT(DISTINCT CASE WHEN r.started >= :since THEN f.hash END),"
            " SUM(CASE WHEN r.started >= :since THEN COALESCE(r.duration, 0) ELSE 0 END),"
            " SUM(r.started >= :recent), MIN(r.started), MAX(r.started)"
            f" FROM files f JOIN runs r ON r.id = f.run_id WHERE {_UNIT_ROWS}"
            " AND r.started <= :now GROUP BY f.path HAVING SUM(r.started >= :since) > 0",
            {"since": since, "now": now, "recent": recent},
        ).fetchall()

    def debt_latest(self, now: float) -> dict[str, tuple[str | None, int, str]]:
        """{unit: (hash, seq, run id)} of each unit's latest run up to now."""
        rows = self.conn.execute(
            "SELECT f.path, f.hash, r.seq, r.id, MAX(r.started)"  # SQLite: the max row's
            f" FROM files f JOIN runs r ON r.id = f.run_id WHERE {_UNIT_ROWS}"
            " AND r.started <= :now GROUP BY f.path",
            {"now": now},
        ).fetchall()
        return {row[0]: (row[1], int(row[2]), row[3]) for row in rows}

    _MADE = (
        "WITH made AS (SELECT f.path AS unit, o.hash AS hash, MIN(r.started) AS t"
        " FROM files f JOIN runs r ON r.id = f.run_id"
        " JOIN files o ON o.run_id = f.run_id AND o.role IN ('output', 'artefact')"
        f" WHERE {_UNIT_ROWS} AND r.started <= :now AND o.hash IS NOT NULL"
        " GROUP BY f.path, o.hash) "
    )

    def debt_consumers(self, since: float, now: float) -> dict[str, int]:
        """{unit: runs in [since, now] that read bytes a run of the unit made earlier and
        do not use the unit themselves}."""
        rows = self.conn.execute(
            self._MADE + "SELECT m.unit, COUNT(DISTINCT i.run_id) FROM made m"
            " JOIN files i ON i.hash = m.hash AND i.role = 'input'"
            " JOIN runs c ON c.id = i.run_id AND c.started > m.t"
            " AND c.started >= :since AND c.started <= :now"
            " WHERE NOT EXISTS (SELECT 1 FROM files s WHERE s.run_id = i.run_id"
            " AND s.role IN ('code', 'input') AND s.path = m.unit) GROUP BY m.unit",
            {"since": since, "now": now},
        ).fetchall()
        return {unit: int(n) for unit, n in rows}

    def debt_published(self, now: float) -> dict[str, int]:
        """{unit: distinct places outside the run's files that bytes its runs made went to
        (`vestige publish`, or `vestige which` of a copy outside the project)}."""
        rows = self.conn.execute(  # from the (few) published rows back to their makers
            "SELECT f.path, COUNT(DISTINCT p.dest) FROM published p"  # CROSS JOIN: this order
            " CROSS JOIN files o ON o.hash = p.hash AND o.role IN ('output', 'artefact')"
            " CROSS JOIN runs r ON r.id = o.run_id AND r.started <= :now"
            f" CROSS JOIN files f ON f.run_id = o.run_id AND {_UNIT_ROWS}"
            " WHERE p.t <= :now GROUP BY f.path",
            {"now": now},
        ).fetchall()
        return {unit: int(n) for unit, n in rows}

    def debt_entries(self, since: float, now: float) -> list[tuple[str, str]]:
        """(argv JSON, cwd) of the runs in [since, now]: which units were entry scripts."""
        return self.conn.execute(
            "SELECT argv, cwd FROM runs WHERE started >= ? AND started <= ?", (since, now)
        ).fetchall()

    def debt_unit_runs(self, unit: str, now: float) -> list[sqlite3.Row]:
        """The runs of one unit up to now, oldest first, with the unit's hash in each."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(
            "SELECT r.*, f.hash AS unit_hash FROM files f JOIN runs r ON r.id = f.run_id"
            f" WHERE {_UNIT_ROWS} AND f.path = :unit AND r.started <= :now"
            " ORDER BY r.started, r.seq",
            {"unit": unit, "now": now},
        ).fetchall()

    def debt_consumer_runs(self, unit: str, now: float) -> list[sqlite3.Row]:
        """The consumers of one unit (see debt_consumers), with the file each one read."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(
            self._MADE.replace("GROUP BY f.path,", "AND f.path = :unit GROUP BY f.path,")
            + "SELECT DISTINCT c.*, i.path AS file_path, i.hash AS file_hash FROM made m"
            " JOIN files i ON i.hash = m.hash AND i.role = 'input'"
            " JOIN runs c ON c.id = i.run_id AND c.started > m.t AND c.started <= :now"
            " WHERE NOT EXISTS (SELECT 1 FROM files s WHERE s.run_id = i.run_id"
            " AND s.role IN ('code', 'input') AND s.path = m.unit) ORDER BY c.started, c.seq",
            {"unit": unit, "now": now},
        ).fetchall()

    def unit_paths_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """{run id: the code units it used}."""
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(run_ids), 500):
            marks = ",".join("?" * len(chunk))
            for rid, path in self.conn.execute(
                f"SELECT f.run_id, f.path FROM files f WHERE f.run_id IN ({marks})"
                f" AND {_UNIT_ROWS} ORDER BY f.path",
                chunk,
            ):
                out.setdefault(rid, []).append(path)
        return out

    def made_by(self, run_ids: Sequence[str]) -> list[str]:
        """The hashes these runs wrote or kept."""
        out: set[str] = set()
        for chunk in _chunks(list(run_ids), 500):
            marks = ",".join("?" * len(chunk))
            out.update(h for (h,) in self.conn.execute(
                "SELECT DISTINCT hash FROM files WHERE role IN ('output', 'artefact')"
                f" AND hash IS NOT NULL AND run_id IN ({marks})", chunk))  # fmt: skip
        return sorted(out)

    def shingles_get(
        self, digests: Sequence[str], algo: str
    ) -> dict[str, tuple[bytes | None, str | None]]:
        """{hash: (shingle bytes, error)} cached for these code versions under `algo`."""
        out: dict[str, tuple[bytes | None, str | None]] = {}
        for chunk in _chunks(list(digests), 500):
            marks = ",".join("?" * len(chunk))
            for digest, data, error in self.conn.execute(
                f"SELECT hash, shingles, error FROM debt_shingles WHERE algo = ?"
                f" AND hash IN ({marks})",
                [algo, *chunk],
            ):
                out[digest] = (data, error)
        return out

    def shingles_put(self, rows: Iterable[tuple[str, str, int, bytes | None, str | None]]) -> None:
        """Cache (hash, algo, tokens, shingle bytes, error) rows."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT OR REPLACE INTO debt_shingles (hash, algo, tokens, shingles, error)"
                " VALUES (?, ?, ?, ?, ?)",
                list(rows),
            )

    def add_published(self, rows: Iterable[dict[str, Any]]) -> None:
        """Index publish events (`vestige publish`, sightings by `which`)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO published (hash, dest, t, how, run_id, source, size)"
                " VALUES (:hash, :dest, :t, :how, :run, :source, :size)",
                [{"run": None, "source": None, "size": None, **r} for r in rows],
            )

    def published_of(self, digests: Sequence[str]) -> list[sqlite3.Row]:
        """Publish events of these bytes, oldest first."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        out: list[sqlite3.Row] = []
        for chunk in _chunks(list(digests), 500):
            marks = ",".join("?" * len(chunk))
            out += cur.execute(
                f"SELECT * FROM published WHERE hash IN ({marks}) ORDER BY t", chunk
            ).fetchall()
        return sorted(out, key=lambda r: r["t"])

    # -- gc, du, pins (upkeep/gc.py, store/pins.py) --------------------------------------------
    # `blobs` rows: the objects a run names besides its files rows (kinds manifest, code:
    # the tree with the snapshot's size, log, metrics, env, notebook: the cells object);
    # `pins` and `freed` mirror
    # refs/pins and refs/freed.

    def _record_blobs(self, run: Run) -> None:
        """The run's blobs rows (inside _record's transaction)."""
        self.conn.execute("DELETE FROM blobs WHERE run_id = ?", (run.id,))
        code = run.code or {}
        rows: list[tuple[Any, ...]] = [
            (run.id, "manifest", run.manifest, None),
            (run.id, "code", code.get("tree"), code.get("size")),
            (run.id, "log", (run.stdout or {}).get("hash"), (run.stdout or {}).get("size")),
            (run.id, "log", (run.stderr or {}).get("hash"), (run.stderr or {}).get("size")),
            (run.id, "metrics", (run.metrics or {}).get("object"), None),
            (run.id, "env", run.env, None),
            (run.id, "notebook", (run.notebook or {}).get("cells"), None),
        ]
        self.conn.executemany(
            "INSERT INTO blobs (run_id, kind, hash, size) VALUES (?, ?, ?, ?)",
            [r for r in rows if r[2]],
        )

    def seq_of(self, run_id: str) -> int | None:
        row = self.conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else None

    def set_pins(self, pins: dict[str, float | None], replace_all: bool = False) -> None:
        """Pin rows: a time pins a run, None unpins it; `replace_all` drops the others."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if replace_all:
                self.conn.execute("DELETE FROM pins")
            for run_id, t in pins.items():
                self.conn.execute("DELETE FROM pins WHERE run_id = ?", (run_id,))
                if t is not None:
                    self.conn.execute("INSERT INTO pins (run_id, t) VALUES (?, ?)", (run_id, t))

    def pinned_of(self, run_ids: Sequence[str]) -> set[str]:
        """The pinned runs among these."""
        out: set[str] = set()
        for chunk in _chunks(list(run_ids), 500):
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.conn.execute(
                f"SELECT run_id FROM pins WHERE run_id IN ({marks})", chunk))  # fmt: skip
        return out

    def set_freed(
        self, add: Iterable[dict[str, Any]] = (), drop: Iterable[str] = (),
        replace_all: bool = False,
    ) -> None:  # fmt: skip
        """Freed rows from freed records (gc.FREED_FIELDS), and rows dropped by hash."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if replace_all:
                self.conn.execute("DELETE FROM freed")
            self.conn.executemany("DELETE FROM freed WHERE hash = ?", [(h,) for h in drop])
            self.conn.executemany(
                "INSERT OR REPLACE INTO freed (hash, size, run_id, path, role, t)"
                " VALUES (:hash, :size, :run, :path, :role, :t)",
                list(add),
            )

    def freed_hashes(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT hash FROM freed")}

    def unindexed_runs(self) -> int:
        """Sealed runs without blobs rows (indexed before migration 0004): reindex them."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM runs r WHERE r.manifest IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM blobs b WHERE b.run_id = r.id AND b.kind = 'manifest')"
        ).fetchone()[0])  # fmt: skip


def _real(x: Any) -> float | None:
    """A summary number for SQLite: NaN (or its JSON string) is NULL, infinities stay."""
    if isinstance(x, str):
        x = float(x)
    if x is None or x != x:
        return None
    return float(x)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
