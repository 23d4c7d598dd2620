"""SQLite's REGEXP for the index: `value REGEXP pattern` is Python's re.search.

SQLite has the operator but no function behind it; index/db.py registers `regexp` on every
connection it opens, so `--where 'command matches "..."'` (index/where.py) works wherever
the index is queried. A module of its own: the index is opened on `vestige run`'s path,
which must not import the --where parser.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    import sqlite3

#: Compiled patterns: a query calls regexp() once per row with the same pattern.
_COMPILED: dict[str, re.Pattern[str]] = {}
_KEEP = 64  # patterns kept (a long-lived UI server sees many queries)


def regexp(pattern: str | None, value: object) -> bool | None:
    """Whether `pattern` is found in `value` (re.search); NULL (never a match) when either
    is NULL. Each pattern is compiled once and kept."""
    if value is None or pattern is None:
        return None
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        if len(_COMPILED) >= _KEEP:
            _COMPILED.clear()
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled.search(value if isinstance(value, str) else str(value)) is not None


def register(conn: sqlite3.Connection) -> None:
    """Make REGEXP work on this connection (deterministic: SQLite may reuse a result)."""
    conn.create_function("regexp", 2, regexp, deterministic=True)
