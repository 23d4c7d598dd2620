"""The runs of the index and what hangs off them (params, tags, metrics summaries):
resolving references, listing, and the whole-table reads of gc, du and fsck. Writing a
run's rows is vestige/index/record.py's."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from vestige.index.query import chunks, row_cursor

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


class Runs:
    """Queries of the `runs` table and the rows a run owns (params, tags, metrics)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- resolving ------------------------------------------------------------------------

    def row(self, run_id: str) -> sqlite3.Row | None:
        """The run's row (the runs table's columns), or None."""
        cur = row_cursor(self.conn)
        return cur.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def id_by_seq(self, seq: int) -> str | None:
        """The id of run #seq, or None."""
        row = self.conn.execute("SELECT id FROM runs WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def ids_by_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Up to `limit` ids starting with `prefix`, in id order."""
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

    def seq_of(self, run_id: str) -> int | None:
        """The run's sequence number, or None."""
        row = self.conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else None

    # -- listing --------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Every run's id, in sequence order."""
        return [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY seq")]

    def rows(
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
        cur = row_cursor(self.conn)
        return cur.execute(sql, args).fetchall()

    def params_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{run id: {param: value}} for the given runs (each of them a key)."""
        out: dict[str, dict[str, Any]] = {i: {} for i in run_ids}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in self.conn.execute(
                f"SELECT run_id, key, value_json FROM params WHERE run_id IN ({marks})", chunk
            ):
                out[run_id][key] = json.loads(value)
        return out

    def tags_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """{run id: tags} for the given runs."""
        out: dict[str, list[str]] = {}
        for chunk in chunks(list(run_ids)):
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
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, key, last FROM metrics WHERE run_id IN ({marks})"
            args: list[Any] = list(chunk)
            if keys is not None:
                sql += f" AND key IN ({','.join('?' * len(keys))})"
                args += list(keys)
            for rid, key, last in self.conn.execute(sql, args):
                out.setdefault(rid, {})[key] = last
        return out

    def children(self, parent: str) -> list[tuple[str, str, int | None, str, float | None]]:
        """(id, status, exit code, argv JSON, ended) of a sweep's children, in seq order."""
        return self.conn.execute(
            "SELECT id, status, exit_code, argv, ended FROM runs WHERE parent = ? ORDER BY seq",
            (parent,),
        ).fetchall()

    def overlapping(self, root: str, start: float, end: float, exclude: str) -> list[str]:
        """The ids of the sealed runs in the tree `root`, but `exclude` and sweeps' parents
        (they run nothing themselves), that were going at some moment between `start` and
        `end` (seconds)."""
        rows = self.conn.execute(
            "SELECT id FROM runs r WHERE root = ? AND ended >= ? AND started <= ? AND id != ?"
            " AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.parent = r.id)",
            (root, start, end, exclude),
        ).fetchall()
        return [r[0] for r in rows]

    def ok_commands(self, cwd: str) -> list[tuple[str, str]]:
        """(id, argv JSON) of the `ok` runs started in `cwd` (relative to the root), newest
        first: what `sweep --skip-done` compares a combination's command with."""
        return self.conn.execute(
            "SELECT id, argv FROM runs WHERE status = 'ok' AND cwd = ? ORDER BY started DESC",
            (cwd,),
        ).fetchall()

    # -- upkeep (gc, du, fsck) --------------------------------------------------------------

    def seqs(self) -> dict[str, int]:
        """{run id: sequence number} of every run."""
        return {r: s for r, s in self.conn.execute("SELECT id, seq FROM runs")}

    def manifests(self) -> dict[str, str | None]:
        """{run id: manifest hash (None while running)} of every run."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT id, manifest FROM runs")}

    def manifests_and_statuses(self) -> dict[str, tuple[str | None, str]]:
        """{run id: (manifest hash, status)} of every run: what fsck checks the refs with."""
        rows = self.conn.execute("SELECT id, manifest, status FROM runs").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def overview(self) -> dict[str, tuple[int, str, float, str | None, str]]:
        """{run id: (seq, status, started, manifest, argv JSON)} of every run (gc, du)."""
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in self.conn.execute(
            "SELECT id, seq, status, started, manifest, argv FROM runs")}  # fmt: skip

    def tagged(self) -> set[str]:
        """The runs with at least one tag row."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT run_id FROM tags")}

    def unindexed(self) -> int:
        """Sealed runs without blobs rows (indexed before migration 0004): reindex them."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM runs r WHERE r.manifest IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM blobs b WHERE b.run_id = r.id AND b.kind = 'manifest')"
        ).fetchone()[0])  # fmt: skip
