"""Objects that arrive from elsewhere (a pull, a push into a file:// remote): bytes a
caller put into a temp file under the store's `tmp/` become an object only if they hash
to the name they came under, so a corrupt or truncated download never lands (issue 17).
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.errors import CorruptObject
from vestige.store.hashing import hash_file
from vestige.store.layout import fsync_dir, make_temp
from vestige.store.objects import ObjectStore, copy_into


def temp_file(objects: ObjectStore) -> Path:
    """A new, empty temp file under the store's tmp/ (named like every object write's, so
    one a killed process leaves is cleaned up the same way: docs/format.md, X1)."""
    objects.tmp.mkdir(parents=True, exist_ok=True)
    fd, name = make_temp(objects.tmp, "obj-")
    os.close(fd)
    return Path(name)


def adopt(objects: ObjectStore, tmp: Path, digest: str, origin: str, sync: bool = True) -> None:
    """Install the temp file `tmp` (same filesystem) as object `digest` after checking that
    its bytes hash to that name; else remove it and raise CorruptObject naming the object
    and `origin` (where it came from). Synced, read-only, renamed: as every object write.
    `sync=False` leaves durability to the caller's barrier (layout.sync_filesystem)."""
    try:
        actual = hash_file(tmp)
        if actual != digest:
            raise CorruptObject(
                f"object {digest} from {origin} is corrupt (its bytes hash to "
                f"{actual[:12]}); refused, nothing of it was kept"
            )
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, 0o444)
        final = objects.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # (a concurrent arrival of the same bytes is harmless)
        if sync:
            fsync_dir(str(final.parent))
    finally:
        tmp.unlink(missing_ok=True)


def copy_in(objects: ObjectStore, source: Path, digest: str, origin: str) -> int:
    """Copy the file `source` (another store's object) in as object `digest`, verified;
    return its size."""
    with open(source, "rb") as src:  # (opened first: a source that is gone leaves no temp)
        tmp = temp_file(objects)
        try:
            with open(tmp, "wb") as dst:
                copy_into(src, dst)
            size = tmp.stat().st_size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    adopt(objects, tmp, digest, origin)
    return size
