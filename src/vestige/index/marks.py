"""The store's marks on runs and objects, mirrored in the index: published copies
(refs/published: `vestige publish`, upkeep/publish.py), pins (refs/pins: `vestige pin`,
store/pins.py) and freed objects (refs/freed: upkeep/gc.py). The refs are the truth;
`reindex` refills these tables from them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from vestige.index.query import chunks, row_cursor

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


class Marks:
    """The `published`, `pins` and `freed` tables: where bytes went, which runs gc keeps,
    which objects gc freed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- published copies ---------------------------------------------------------------

    def add_published(self, rows: Iterable[dict[str, Any]], within: bool = False) -> None:
        """Index publish events (`vestige publish`, sightings by `which`); `within`: inside
        the caller's transaction (reindex)."""
        if not within:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.add_published(rows, within=True)
            return
        self.conn.executemany(
            "INSERT INTO published (hash, dest, t, how, run_id, source, size)"
            " VALUES (:hash, :dest, :t, :how, :run, :source, :size)",
            [{"run": None, "source": None, "size": None, **r} for r in rows],
        )

    def published_of(self, digests: Sequence[str]) -> list[sqlite3.Row]:
        """Publish events of these bytes, oldest first."""
        cur = row_cursor(self.conn)
        out: list[sqlite3.Row] = []
        for chunk in chunks(list(digests)):
            marks = ",".join("?" * len(chunk))
            out += cur.execute(
                f"SELECT * FROM published WHERE hash IN ({marks}) ORDER BY t", chunk
            ).fetchall()
        return sorted(out, key=lambda r: r["t"])

    # -- pins -----------------------------------------------------------------------------

    def set_pins(
        self, pins: dict[str, float | None], replace_all: bool = False, within: bool = False
    ) -> None:
        """Pin rows: a time pins a run, None unpins it; `replace_all` drops the others;
        `within`: inside the caller's transaction (reindex)."""
        if not within:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.set_pins(pins, replace_all, within=True)
            return
        if replace_all:
            self.conn.execute("DELETE FROM pins")
        for run_id, t in pins.items():
            self.conn.execute("DELETE FROM pins WHERE run_id = ?", (run_id,))
            if t is not None:
                self.conn.execute("INSERT INTO pins (run_id, t) VALUES (?, ?)", (run_id, t))

    def pinned_of(self, run_ids: Sequence[str]) -> set[str]:
        """The pinned runs among these."""
        out: set[str] = set()
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.conn.execute(
                f"SELECT run_id FROM pins WHERE run_id IN ({marks})", chunk))  # fmt: skip
        return out

    # -- freed objects --------------------------------------------------------------------

    def set_freed(
        self, add: Iterable[dict[str, Any]] = (), drop: Iterable[str] = (),
        replace_all: bool = False, within: bool = False,
    ) -> None:  # fmt: skip
        """Freed rows from freed records (gc.FREED_FIELDS), and rows dropped by hash;
        `within`: inside the caller's transaction (reindex)."""
        if not within:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.set_freed(add, drop, replace_all, within=True)
            return
        if replace_all:
            self.conn.execute("DELETE FROM freed")
        self.conn.executemany("DELETE FROM freed WHERE hash = ?", [(h,) for h in drop])
        self.conn.executemany(
            "INSERT OR REPLACE INTO freed (hash, size, run_id, path, role, t)"
            " VALUES (:hash, :size, :run, :path, :role, :t)",
            list(add),
        )

    def freed_hashes(self) -> set[str]:
        """The hashes of the objects gc freed."""
        return {r[0] for r in self.conn.execute("SELECT hash FROM freed")}
