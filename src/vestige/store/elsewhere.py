"""Remote-only records: `refs/elsewhere/<hash>`, one per object that `vestige pull
--metadata-only` left on the remote (a large payload of a pulled run).

The object is absent on purpose: fsck does not call it lost, and reading it (`cat`,
`restore`, `diff`, `export`, the UI) fetches it from the remote the record names, then
removes the record (docs/format.md, "Objects held elsewhere"). Only pull writes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vestige.store import layout
from vestige.store.hashing import is_hash
from vestige.store.named import read_named, records_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ELSEWHERE = ("refs", "elsewhere")


def elsewhere_dir(store: Path) -> Path:
    return store.joinpath(*ELSEWHERE)


def read_elsewhere(path: Path) -> dict[str, Any] | None:
    """A remote-only record, or None when the file is not one (fsck says so)."""
    return read_named(path, "hash", _valid)


def _valid(data: dict[str, Any]) -> bool:
    remote, size, t = data.get("remote"), data.get("size"), data.get("t")
    return (
        isinstance(remote, str)
        and bool(remote)
        and isinstance(size, int)
        and isinstance(t, int | float)
    )


def elsewhere_records(store: Path) -> dict[str, dict[str, Any]]:
    """{hash: record} of every object a remote holds for this store."""
    return records_in(elsewhere_dir(store), read_elsewhere, is_hash)


def elsewhere_record(store: Path, digest: str) -> dict[str, Any] | None:
    return read_elsewhere(elsewhere_dir(store) / digest) if is_hash(digest) else None


def any_elsewhere(store: Path) -> bool:
    """Whether any object is held elsewhere (one listing: checked as a shell opens)."""
    try:
        with os.scandir(elsewhere_dir(store)) as entries:
            return any(is_hash(e.name) for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def record_elsewhere(store: Path, remote: str, sizes: dict[str, int], t: float) -> None:
    """Write a record for each object left on `remote` ({hash: size}), then one barrier:
    before the refs of the runs that name them (write order)."""
    if not sizes:
        return
    folder = elsewhere_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    for digest, size in sizes.items():
        record = {"hash": digest, "remote": remote, "size": int(size), "t": t}
        layout.write_atomic(str(store), str(folder / digest), json.dumps(record).encode())
    layout.fsync_dir(str(folder))


def drop_elsewhere(store: Path, digests: list[str]) -> None:
    """Remove the records of objects that are here now."""
    folder = elsewhere_dir(store)
    for digest in digests:
        (folder / digest).unlink(missing_ok=True)
