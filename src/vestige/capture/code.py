"""The code snapshot: the project's files (git's view when there is git) and git's state.

With git, the snapshot is tracked plus untracked-not-ignored files, uncommitted edits
included (what `git status` would show you). Without git, it is the tree minus the
default ignores. Files are stored through the stat cache, so an unchanged project costs
a stat per file and no new object.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.capture.gitprobe import GitProbe
from vestige.capture.redact import is_secret_file
from vestige.capture.scan import is_ignored, is_regular
from vestige.records import Factory, Record
from vestige.store.objects import ObjectStore
from vestige.store.stat import Stat
from vestige.store.statcache import StatCache
from vestige.store.tree import TreeEntry, write_tree

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


class Snapshot(Record):
    """The result of snapshotting the code: a tree object and what git says."""

    _frozen = False

    tree: str
    files: int
    size: int
    git: dict[str, Any] | None
    warnings: list[str] = Factory(list)
    hashes: dict[str, str] = Factory(dict)  # relpath -> hash, for the seal
    #: every file came with a stat from `before`: the snapshot is a function of that scan
    #: and git's answers (what a sweep's next child may reuse, runner.Launch._snapshot)
    exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"tree": self.tree, "files": self.files, "size": self.size, "git": self.git}


def snapshot(
    root: Path,
    objects: ObjectStore,
    cache: StatCache,
    before: dict[str, Stat],
    max_size: int,
    probe: GitProbe | None = None,
    started: float | None = None,
    ignore: tuple[str, ...] = (),
) -> Snapshot:
    """Hash and keep the project's code files; return the snapshot.

    `before` is the scan taken just before the command started: a file whose stat
    differs now was changed by the run itself, and its pre-run bytes are only known if
    the stat cache had them.
    """

    listing, git = (probe or GitProbe(str(root))).result()
    if listing is not None:  # git's view, less what scan.ignore leaves out
        paths = [p for p in listing if not is_ignored(p, ignore)] if ignore else listing
    else:
        paths = sorted(before)
    base = str(root).rstrip("/") + "/"
    entries: list[TreeEntry] = []
    warnings: list[str] = []
    hashes: dict[str, str] = {}
    total = 0
    exact = True
    for rel in paths:
        full = base + rel
        st = before.get(rel)
        exact = exact and st is not None
        digest = cache.get(full, st) if st is not None else None
        keep = st is not None and st.size <= max_size and not is_secret_file(rel)
        if digest is None or (keep and not objects.exists(digest)):
            # not seen before, or changed: hash it now (pathlib only on this slow path)
            try:
                now = Stat.of(os.stat(full, follow_symlinks=False))
            except OSError:
                continue  # deleted from disk but still in git's index
            if not is_regular(now.mode):
                continue
            if st is None and started is not None and now.ctime_ns >= int(started * 1e9):
                continue  # made by the run itself after it started: an output, not code
            if st is not None and st.key() != now.key():
                warnings.append(f"{rel} changed while the run started; snapshot has the new bytes")
            st = now
            keep = st.size <= max_size and not is_secret_file(rel)
            try:
                if keep:
                    digest, _ = objects.put_file(Path(full), None)
                else:
                    from vestige.store.hashing import hash_file

                    digest = hash_file(full, st.size)
            except OSError as e:
                warnings.append(f"{rel}: could not read ({e.strerror})")
                continue
            cache.put(full, st, digest)
        hashes[rel] = digest
        entries.append(TreeEntry(rel, st.mode & 0o777 | 0o100000, st.size, digest, keep))
        total += st.size
    tree = write_tree(objects, entries)
    return Snapshot(tree, len(entries), total, git, warnings, hashes, exact)
