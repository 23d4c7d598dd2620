"""Freed records: `refs/freed/<hash>`, written by `vestige gc` before it removes an object.

Each names the run and path that re-make the bytes, and when they were freed, so that
fsck tells freed from lost and `cat`, `restore` and `rerun` say how to get them back
(docs/format.md, "Freed objects"). Only gc writes them; a rerun that re-made the bytes
removes its record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vestige.store.hashing import is_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.local import Store

FREED = ("refs", "freed")


def freed_dir(store: Store) -> Path:
    return store.path.joinpath(*FREED)


def read_freed(path: Path) -> dict[str, Any] | None:
    """A freed record, or None when the file is not one (fsck says so)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("hash") == path.name and data.get("by") == "gc"
    ok = ok and isinstance(data.get("size"), int) and isinstance(data.get("t"), int | float)
    ok = ok and isinstance(data.get("run"), str) and isinstance(data.get("path"), str)
    return data if ok else None


def freed_records(store: Store) -> dict[str, dict[str, Any]]:
    """{hash: record} of every freed object."""
    out: dict[str, dict[str, Any]] = {}
    folder = freed_dir(store)
    if folder.is_dir():
        for entry in os.scandir(folder):
            if is_hash(entry.name):
                record = read_freed(Path(entry.path))
                if record is not None:
                    out[entry.name] = record
    return out


def freed_record(store: Store, digest: str) -> dict[str, Any] | None:
    return read_freed(freed_dir(store) / digest) if is_hash(digest) else None
