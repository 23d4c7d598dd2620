"""Freed records: `refs/freed/<hash>`, written by `vestige gc` before it removes an object.

Each names the run and path that re-make the bytes, and when they were freed, so that
fsck tells freed from lost and `cat`, `restore` and `rerun` say how to get them back
(docs/format.md, "Freed objects"). Only gc writes them; a rerun that re-made the bytes
removes its record.
"""

from __future__ import annotations

from pathlib import Path

from vestige.store.hashing import is_hash
from vestige.store.named import read_named, records_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.local import Store

FREED = ("refs", "freed")


def freed_dir(store: Store) -> Path:
    return store.path.joinpath(*FREED)


def read_freed(path: Path) -> dict[str, Any] | None:
    """A freed record, or None when the file is not one (fsck says so)."""
    return read_named(path, "hash", _valid)


def _valid(data: dict[str, Any]) -> bool:
    return (data.get("by") == "gc" and isinstance(data.get("size"), int)
            and isinstance(data.get("t"), int | float) and isinstance(data.get("run"), str)
            and isinstance(data.get("path"), str))  # fmt: skip


def freed_records(store: Store) -> dict[str, dict[str, Any]]:
    """{hash: record} of every freed object."""
    return records_in(freed_dir(store), read_freed, is_hash)


def freed_record(store: Store, digest: str) -> dict[str, Any] | None:
    return read_freed(freed_dir(store) / digest) if is_hash(digest) else None
