"""Helpers the index's query groups share (runs.py, files.py, debt.py, marks.py): long id
lists cut into chunks for `IN (...)`, and cursors that give named rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

#: Values bound in one `IN (...)`: well under SQLite's limit on variables in a statement.
CHUNK = 500


def chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    """`items` in consecutive slices of at most `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def row_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor whose rows are sqlite3.Row (by column name), the connection left as is."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur
