"""`vestige which --all-stores`: the runs that made a file's bytes in every store on the
user's list (store/known.py), for a file found outside any project (a paper's folder).

The file is hashed once; each store is opened read-only in spirit (nothing is sealed or
recovered in another project) and asked for the makers and readers of that hash. A store
that cannot be read (a newer format, permissions, a locked or damaged index) is skipped
and named, never fatal: the others still answer.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from vestige.errors import PathMissing, VestigeError
from vestige.records import Record
from vestige.repo import Maker, Repo, dedupe
from vestige.store import layout
from vestige.store.known import known_stores

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StoreHits(Record):
    """One store's answer: its project folder, the runs that made and read the bytes."""

    store: str
    project: str
    made_by: list[Maker]
    read_by: list[Maker]

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "project": self.project,
            "made_by": [m.to_dict() for m in self.made_by],
            "read_by": [m.to_dict() for m in self.read_by],
        }


class Everywhere(Record):
    """What every store said: the hash, the stores with makers or readers, those skipped."""

    path: str
    hash: str
    searched: list[str]
    found: list[StoreHits]
    skipped: list[tuple[str, str]]  # (store, why)


def project_of(store: str) -> str:
    """The project folder of a store: the folder holding `.vestige` (a store elsewhere,
    set by VESTIGE_DIR, is named by its own folder)."""
    if os.path.basename(store) == layout.STORE_NAME:
        return os.path.dirname(store)
    return store


def which_everywhere(path: Path, first: str | None = None) -> Everywhere:
    """The makers and readers of `path`'s bytes in `first` (the store here, if any) and in
    every store on the user's list, each store once."""
    if not path.is_file():
        raise PathMissing(f"no such file: {path}")
    from vestige.store.hashing import hash_file

    digest = hash_file(path)
    stores = ([first] if first else []) + [s for s in known_stores() if s != first]
    found: list[StoreHits] = []
    skipped: list[tuple[str, str]] = []
    for store in stores:
        try:
            hits = _ask(store, digest)
        except (VestigeError, OSError, sqlite3.Error) as e:
            skipped.append((store, str(e).splitlines()[0] if str(e) else type(e).__name__))
            continue
        if hits.made_by or hits.read_by:
            found.append(hits)
    found.sort(key=lambda h: not h.made_by)  # (stable: the store here first, then the list)
    return Everywhere(path=str(path), hash=digest, searched=stores, found=found,
                      skipped=skipped)  # fmt: skip


def _ask(store: str, digest: str) -> StoreHits:
    """One store's makers and readers of `digest` (opened, asked, closed)."""
    layout.check_format(store)
    project = project_of(store)
    repo = Repo.open_at(store, project)
    try:
        makers = [Maker.from_row(r) for r in repo.index.files.makers_of(digest)]
        readers = [Maker.from_row(r) for r in repo.index.files.readers_of(digest)]
    finally:
        repo.close()
    return StoreHits(store=store, project=project, made_by=dedupe(makers),
                     read_by=dedupe(readers))  # fmt: skip
