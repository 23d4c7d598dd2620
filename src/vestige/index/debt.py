"""The debt ledger's queries (history/debt.py) and its cache of code shingles.

A code unit is a project file the run imported (files role 'code', the entry script
included) or a project notebook it read; every query takes `now` (a simulated clock
hides later runs) and groups by the unit's path over the files_code index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from vestige.index.files import UNIT_ROWS
from vestige.index.query import chunks, row_cursor

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

#: (unit, hash, first time) of the bytes runs of each unit made, up to :now.
_MADE = (
    "WITH made AS (SELECT f.path AS unit, o.hash AS hash, MIN(r.started) AS t"
    " FROM files f JOIN runs r ON r.id = f.run_id"
    " JOIN files o ON o.run_id = f.run_id AND o.role IN ('output', 'artefact')"
    f" WHERE {UNIT_ROWS} AND r.started <= :now AND o.hash IS NOT NULL"
    " GROUP BY f.path, o.hash) "
)


class Debt:
    """Per code unit: its runs, versions, time, consumers and published bytes, as the debt
    ledger weighs them; and the shingles cache its similarity check reads."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def units(self, since: float, now: float, recent: float) -> list[tuple[Any, ...]]:
        """Per unit with a run in [since, now]: (path, runs, versions, seconds, runs since
        `recent`, first and last start up to now)."""
        return self.conn.execute(
            f"SELECT f.path, SUM(r.started >= :since),"
            " COUNT(DISTINCT CASE WHEN r.started >= :since THEN f.hash END),"
            " SUM(CASE WHEN r.started >= :since THEN COALESCE(r.duration, 0) ELSE 0 END),"
            " SUM(r.started >= :recent), MIN(r.started), MAX(r.started)"
            f" FROM files f JOIN runs r ON r.id = f.run_id WHERE {UNIT_ROWS}"
            " AND r.started <= :now GROUP BY f.path HAVING SUM(r.started >= :since) > 0",
            {"since": since, "now": now, "recent": recent},
        ).fetchall()

    def latest(self, now: float) -> dict[str, tuple[str | None, int, str]]:
        """{unit: (hash, seq, run id)} of each unit's latest run up to now (not a rerun: it
        ran an earlier version again)."""
        rows = self.conn.execute(
            "SELECT f.path, f.hash, r.seq, r.id, MAX(r.started)"  # SQLite: the max row's
            f" FROM files f JOIN runs r ON r.id = f.run_id WHERE {UNIT_ROWS}"
            " AND r.started <= :now AND r.rerun_of IS NULL GROUP BY f.path",
            {"now": now},
        ).fetchall()
        return {row[0]: (row[1], int(row[2]), row[3]) for row in rows}

    def consumers(self, since: float, now: float) -> dict[str, int]:
        """{unit: runs in [since, now] that read bytes a run of the unit made earlier and
        do not use the unit themselves}."""
        rows = self.conn.execute(
            _MADE + "SELECT m.unit, COUNT(DISTINCT i.run_id) FROM made m"
            " JOIN files i ON i.hash = m.hash AND i.role = 'input'"
            " JOIN runs c ON c.id = i.run_id AND c.started > m.t"
            " AND c.started >= :since AND c.started <= :now"
            " WHERE NOT EXISTS (SELECT 1 FROM files s WHERE s.run_id = i.run_id"
            " AND s.role IN ('code', 'input') AND s.path = m.unit) GROUP BY m.unit",
            {"since": since, "now": now},
        ).fetchall()
        return {unit: int(n) for unit, n in rows}

    def published(self, now: float, settled: float) -> dict[str, int]:
        """{unit: distinct places outside the run's files that bytes its runs made went to
        (`vestige publish`; a copy `vestige which` found outside the project counts once it
        was seen at or before `settled`: reading a copy is not publishing it)}."""
        rows = self.conn.execute(  # from the (few) published rows back to their makers
            "SELECT f.path, COUNT(DISTINCT p.dest) FROM published p"  # CROSS JOIN: this order
            " CROSS JOIN files o ON o.hash = p.hash AND o.role IN ('output', 'artefact')"
            " CROSS JOIN runs r ON r.id = o.run_id AND r.started <= :now"
            f" CROSS JOIN files f ON f.run_id = o.run_id AND {UNIT_ROWS}"
            " WHERE p.t <= :now AND (p.how != 'which' OR p.t <= :settled) GROUP BY f.path",
            {"now": now, "settled": settled},
        ).fetchall()
        return {unit: int(n) for unit, n in rows}

    def entries(self, since: float, now: float) -> list[tuple[str, str]]:
        """(argv JSON, cwd) of the runs in [since, now]: which units were entry scripts."""
        return self.conn.execute(
            "SELECT argv, cwd FROM runs WHERE started >= ? AND started <= ?", (since, now)
        ).fetchall()

    def unit_runs(self, unit: str, now: float) -> list[sqlite3.Row]:
        """The runs of one unit up to now, oldest first, with the unit's hash in each."""
        cur = row_cursor(self.conn)
        return cur.execute(
            "SELECT r.*, f.hash AS unit_hash FROM files f JOIN runs r ON r.id = f.run_id"
            f" WHERE {UNIT_ROWS} AND f.path = :unit AND r.started <= :now"
            " ORDER BY r.started, r.seq",
            {"unit": unit, "now": now},
        ).fetchall()

    def consumer_runs(self, unit: str, now: float) -> list[sqlite3.Row]:
        """The consumers of one unit (see consumers), with the file each one read."""
        cur = row_cursor(self.conn)
        return cur.execute(
            _MADE.replace("GROUP BY f.path,", "AND f.path = :unit GROUP BY f.path,")
            + "SELECT DISTINCT c.*, i.path AS file_path, i.hash AS file_hash FROM made m"
            " JOIN files i ON i.hash = m.hash AND i.role = 'input'"
            " JOIN runs c ON c.id = i.run_id AND c.started > m.t AND c.started <= :now"
            " WHERE NOT EXISTS (SELECT 1 FROM files s WHERE s.run_id = i.run_id"
            " AND s.role IN ('code', 'input') AND s.path = m.unit) ORDER BY c.started, c.seq",
            {"unit": unit, "now": now},
        ).fetchall()

    # -- the shingles cache: keyed by a code version's hash, so never stale ----------------

    def shingles(
        self, digests: Sequence[str], algo: str
    ) -> dict[str, tuple[bytes | None, str | None]]:
        """{hash: (shingle bytes, error)} cached for these code versions under `algo`."""
        out: dict[str, tuple[bytes | None, str | None]] = {}
        for chunk in chunks(list(digests)):
            marks = ",".join("?" * len(chunk))
            for digest, data, error in self.conn.execute(
                f"SELECT hash, shingles, error FROM debt_shingles WHERE algo = ?"
                f" AND hash IN ({marks})",
                [algo, *chunk],
            ):
                out[digest] = (data, error)
        return out

    def put_shingles(self, rows: Iterable[tuple[str, str, int, bytes | None, str | None]]
                     ) -> None:  # fmt: skip
        """Cache (hash, algo, tokens, shingle bytes, error) rows."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT OR REPLACE INTO debt_shingles (hash, algo, tokens, shingles, error)"
                " VALUES (?, ?, ?, ?, ?)",
                list(rows),
            )
