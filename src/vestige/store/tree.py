"""Tree objects: a directory snapshot as one sorted list, itself stored as an object.

An entry is `[path, mode, size, hash, kept]`: a POSIX path relative to the snapshot's
root, the file mode, its size, the BLAKE3 of its bytes, and 1 when the store holds
those bytes (0 when the file was over the size limit and only hashed). Equal snapshots
give equal tree objects, so an unchanged project costs no new object.
"""

from __future__ import annotations

from collections.abc import Iterable

from vestige.errors import CorruptObject
from vestige.records import Record
from vestige.store.objects import ObjectStore


class TreeEntry(Record):
    """One file of a snapshot."""

    path: str
    mode: int
    size: int
    hash: str
    kept: bool = True

    def to_list(self) -> list[object]:
        return [self.path, self.mode, self.size, self.hash, 1 if self.kept else 0]

    @classmethod
    def from_list(cls, item: list[object]) -> TreeEntry:
        path, mode, size, digest, kept = item
        return cls(str(path), int(mode), int(size), str(digest), bool(kept))  # type: ignore[call-overload]


def write_tree(objects: ObjectStore, entries: Iterable[TreeEntry]) -> str:
    """Store a snapshot; return the tree object's hash."""
    ordered = sorted(entries, key=lambda e: e.path)
    return objects.put_json({"type": "tree", "entries": [e.to_list() for e in ordered]})


def read_tree(objects: ObjectStore, digest: str) -> list[TreeEntry]:
    """The entries of a stored snapshot, in path order."""
    record = objects.read_json(digest)
    if not isinstance(record, dict) or record.get("type") != "tree":
        raise CorruptObject(f"object {digest[:12]} is not a tree")
    return [TreeEntry.from_list(item) for item in record["entries"]]
