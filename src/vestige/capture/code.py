"""The code snapshot: the project's files (git's view when there is git) and git's state.

With git, the snapshot is tracked plus untracked-not-ignored files, uncommitted edits
included (what `git status` would show you). Without git, it is the tree minus the
default ignores. Files are stored through the stat cache, so an unchanged project costs
a stat per file and no new object.

Files that runs made are not code: an untracked file (any file, without git) whose path
and bytes are those an earlier run wrote there (`results/a.csv`) is left out, unless it is
a module an import can load (a run may generate code that a later run imports, and imports
are not recorded as inputs). Edited by hand, its bytes no longer match: code again.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.capture.gitprobe import GitProbe
from vestige.capture.redact import is_secret_file
from vestige.capture.scan import Scanner, is_ignored, is_regular
from vestige.records import Factory, Record
from vestige.store.objects import ObjectStore
from vestige.store.stat import Stat
from vestige.store.statcache import StatCache
from vestige.store.tree import TreeEntry, write_tree

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any

    #: which of these (path, hash) pairs an earlier run wrote (index/files.py, written_at)
    Made = Callable[[Collection[tuple[str, str]]], set[tuple[str, str]]]


class Snapshot(Record):
    """The result of snapshotting the code: a tree object and what git says."""

    _frozen = False

    tree: str
    files: int
    size: int
    git: dict[str, Any] | None
    warnings: list[str] = Factory(list)
    hashes: dict[str, str] = Factory(dict)  # relpath -> hash, for the seal
    #: every file came with a stat the git probe's key covers: the snapshot is a function of
    #: that key (what a sweep's next child may reuse, recording/background.py)
    exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"tree": self.tree, "files": self.files, "size": self.size, "git": self.git}


#: A project without git whose snapshot holds more files than this is told how to bound it.
LARGE_PLAIN_TREE = 20_000
#: Files an import can load: code even when a run wrote them (generated modules, builds).
IMPORTABLE = (".py", ".pyw", ".so", ".pyd")


def snapshot(
    root: Path,
    objects: ObjectStore,
    cache: StatCache,
    max_size: int,
    probe: GitProbe | None = None,
    since_ns: int | None = None,
    ignore: tuple[str, ...] = (),
    made: Made | None = None,
) -> Snapshot:
    """Hash and keep the project's code files; return the snapshot.

    It is taken while the command runs: an untracked file the run made (ctime at or after
    `since_ns`) is its output, not its code; a tracked file the run changed already is
    kept with its new bytes and a warning (its old ones only if the stat cache had them).
    `made` says which untracked files hold what an earlier run wrote there: left out.
    """

    answer = (probe or GitProbe(str(root))).result()
    warnings: list[str] = []
    if answer is not None:  # git's view, less what scan.ignore leaves out
        listing, untracked, git = answer
        paths = [p for p in listing if not is_ignored(p, ignore)] if ignore else listing
        stats = dict(probe.stats) if probe is not None else {}
        new = set(untracked)
    else:  # no git: the tree, less the default ignores (every file, every run)
        git = None
        stats = Scanner(root, ignore).scan()
        paths = sorted(stats)
        new = set(paths)
        if len(paths) > LARGE_PLAIN_TREE:
            warnings.append(
                f"the code snapshot holds all {len(paths):,} files of this folder, which is "
                "not a git repository; `git init` with a .gitignore, or scan.ignore in "
                ".vestige/config.toml, keeps data out of it"
            )
    base = str(root).rstrip("/") + "/"
    entries: list[TreeEntry] = []
    hashes: dict[str, str] = {}
    asked: list[tuple[str, str]] = []  # untracked files that an earlier run may have made
    total = 0
    exact = True
    for rel in paths:
        full = base + rel
        st = stats.get(rel)
        exact = exact and st is not None
        if st is None:
            try:
                st = Stat.of(os.stat(full, follow_symlinks=False))
            except OSError:
                continue  # deleted from disk but still in git's index
        if not is_regular(st.mode):
            continue
        if since_ns is not None and st.ctime_ns >= since_ns:
            if rel in new:
                continue  # made by the run itself after it started: an output, not code
            warnings.append(f"{rel} changed while the run started; snapshot has the new bytes")
        digest = cache.get(full, st)
        keep = st.size <= max_size and not is_secret_file(rel)
        if digest is None or (keep and not objects.exists(digest)):
            # not seen before, or changed: hash it now (pathlib only on this slow path)
            try:
                if keep:
                    digest, _ = objects.put_file(Path(full), None)
                else:
                    from vestige.store.hashing import hash_file

                    digest = hash_file(full, st.size)
            except OSError as e:
                if not keep or e.errno not in (28, 122, 27):  # ENOSPC, EDQUOT, EFBIG
                    warnings.append(f"{rel}: could not read ({e.strerror})")
                    continue
                try:  # no room in the store: its hash at least
                    from vestige.store.hashing import hash_file

                    digest, keep = hash_file(full, st.size), False
                except OSError:
                    warnings.append(f"{rel}: could not read ({e.strerror})")
                    continue
                warnings.append(f"{rel}: not kept in the code snapshot: no room in the store"
                                f" ({e.strerror})")  # fmt: skip
            cache.put(full, st, digest)
        hashes[rel] = digest
        entries.append(TreeEntry(rel, st.mode & 0o777 | 0o100000, st.size, digest, keep))
        total += st.size
        if made is not None and rel in new and not rel.endswith(IMPORTABLE):
            asked.append((rel, digest))
    outputs = made(asked) if made is not None and asked else None
    if outputs:  # what earlier runs wrote (one query for all) is not code
        gone = [e for e in entries if (e.path, e.hash) in outputs]
        entries = [e for e in entries if (e.path, e.hash) not in outputs]
        total -= sum(e.size for e in gone)
        for e in gone:
            del hashes[e.path]
    tree = write_tree(objects, entries)
    return Snapshot(tree, len(entries), total, git, warnings, hashes, exact)
