"""The code snapshot: the project's files (git's view when there is git) and git's state.

With git, the snapshot is tracked plus untracked-not-ignored files, uncommitted edits
included (what `git status` would show you). Without git, it is the tree minus the
default ignores. Files are stored through the stat cache, so an unchanged project costs
a stat per file and no new object.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vestige.store.objects import ObjectStore
from vestige.store.statcache import Stat, StatCache
from vestige.store.tree import TreeEntry, write_tree


@dataclass
class Snapshot:
    """The result of snapshotting the code: a tree object and what git says."""

    tree: str
    files: int
    size: int
    git: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # relpath -> hash, for the seal

    def to_dict(self) -> dict[str, Any]:
        return {"tree": self.tree, "files": self.files, "size": self.size, "git": self.git}


def _git(root: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["git", "-C", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
    )


def git_listing(root: Path) -> tuple[list[str] | None, dict[str, Any] | None]:
    """(files git would snapshot, git state) or (None, None) outside a git work tree.

    Both git commands run at once; GIT_OPTIONAL_LOCKS=0 keeps `git status` from taking
    the index lock, so a user's own git command at the same time never fails.
    """
    if not (root / ".git").exists():
        return None, None
    try:
        ls = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        status = _git(root, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=no")
        ls_out, _ = ls.communicate(timeout=60)
        st_out, _ = status.communicate(timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if ls.returncode != 0:
        return None, None
    files = sorted({p for p in ls_out.decode("utf-8", "surrogateescape").split("\0") if p})
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for record in st_out.decode("utf-8", "surrogateescape").split("\0"):
        if record.startswith("# branch.oid "):
            oid = record.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif record and record[0] in "12u":
            dirty = True
    return files, {"commit": commit, "branch": branch, "dirty": dirty}


def snapshot(
    root: Path,
    objects: ObjectStore,
    cache: StatCache,
    before: dict[str, Stat],
    max_size: int,
) -> Snapshot:
    """Hash and keep the project's code files; return the snapshot.

    `before` is the scan taken just before the command started: a file whose stat
    differs now was changed by the run itself, and its pre-run bytes are only known if
    the stat cache had them.
    """
    listing, git = git_listing(root)
    paths = listing if listing is not None else sorted(before)
    entries: list[TreeEntry] = []
    warnings: list[str] = []
    hashes: dict[str, str] = {}
    total = 0
    for rel in paths:
        full = root / rel
        pre = before.get(rel)
        try:
            st = Stat.of(os.stat(full, follow_symlinks=False))
        except OSError:
            continue  # deleted from disk but still in git's index
        if not _is_regular(st.mode):
            continue
        digest = cache.get(str(full), st)
        if pre is not None and pre.key() != st.key():
            digest = cache.get(str(full), pre)
            if digest is None:
                warnings.append(f"{rel} changed while the run started; snapshot has the new bytes")
        kept = st.size <= max_size
        try:
            if kept:
                digest, _ = objects.put_file(full, digest)
            elif digest is None:
                from vestige.store.hashing import hash_file

                digest = hash_file(full, st.size)
        except OSError as e:
            warnings.append(f"{rel}: could not read ({e.strerror})")
            continue
        cache.put(str(full), st, digest)
        hashes[rel] = digest
        entries.append(TreeEntry(rel, st.mode & 0o777 | 0o100000, st.size, digest, kept))
        total += st.size
    tree = write_tree(objects, entries)
    return Snapshot(tree, len(entries), total, git, warnings, hashes)


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
