"""Numbers for runs that arrive from a remote (`vestige pull`), and an index in memory
over another store's runs (`vestige remote ls --where`).

A pulled run is numbered here on arrival: `reserve` gives a block of numbers above every
number this index and this store ever gave (the same rule as a new run's, index/record.py)
and moves `meta.seq_given` past them in one write transaction, before the runs' refs are
written: a number is given for good even if the pull dies before their index rows land.
"""

from __future__ import annotations

from vestige.index.db import Index, connect
from vestige.index.record import unindexed_seq
from vestige.index.schema import migrate


def reserve(index: Index, count: int) -> int:
    """The first of `count` consecutive numbers no run of this store has or will have."""
    conn = index.conn
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()
        row = conn.execute("SELECT value FROM meta WHERE key = 'seq_given'").fetchone()
        try:
            given = int(row[0]) if row is not None else 0
        except (TypeError, ValueError):
            given = 0
        if index.store is not None:
            folders = ("refs/runs", "live") if row is None else ("live",)
            given = max(given, unindexed_seq(conn, index.store, folders=folders))
        first = max(int(top), given) + 1
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('seq_given', ?)",
            (str(first + count - 1),),
        )
    return first


def in_memory() -> Index:
    """An empty index in memory (another store's runs, to query with --where)."""
    conn = connect(":memory:")
    migrate(conn)
    return Index(conn)
