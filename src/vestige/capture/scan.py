"""The before/after scan of the project tree: which files a run created or changed.

Only stats are taken here (cheap); hashing goes through the stat cache. Directories
that are never the user's outputs are skipped: VCS and tool caches, and any virtual
environment (a directory holding `pyvenv.cfg` or `conda-meta`). This module is on the
`vestige run` start-up path: it imports only `os` (see vestige/fastpath.py).
"""

from __future__ import annotations

import os

from vestige.store.stat import Stat

IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".vestige", ".venv", "__pycache__", "node_modules",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox",
        ".ipynb_checkpoints", ".eggs",
    }
)  # fmt: skip
IGNORED_FILES = frozenset({".DS_Store"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp")
_S_IFMT = 0o170000
_S_IFREG = 0o100000


def is_regular(mode: int) -> bool:
    return mode & _S_IFMT == _S_IFREG


def is_ignored(rel: str, patterns: tuple[str, ...]) -> bool:
    """True if a `scan.ignore` glob matches the path, a folder it is in, or one of their
    names (what the scan would have skipped on its way down to it)."""
    if not patterns:
        return False
    from fnmatch import fnmatch

    parts = rel.split("/")
    for i, name in enumerate(parts):
        prefix = "/".join(parts[: i + 1])
        if any(fnmatch(prefix, p) or fnmatch(name, p) for p in patterns):
            return True
    return False


def tree_ignored(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether the scan skips this file: a default-ignored folder or file name on its way,
    or a `scan.ignore` glob (virtual environments are the folder scan's to tell)."""
    parts = rel.split("/")
    for part in parts[:-1]:
        if part in IGNORED_DIRS or part.endswith(".egg-info"):
            return True
    name = parts[-1]
    if name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES):
        return True
    return is_ignored(rel, patterns)


def matches(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a `scan.ignore` glob matches the path or its name (its parent folders were
    already checked on the way down)."""
    from fnmatch import fnmatch

    return any(fnmatch(rel, p) or fnmatch(name, p) for p in patterns)


class Scanner:
    """Walks a tree with the default ignores plus the user's `scan.ignore` globs: every
    file with its stat (the code snapshot of a project without git)."""

    def __init__(self, root: str | os.PathLike[str], ignore: tuple[str, ...] = ()) -> None:
        self.root = os.fspath(root)
        self.patterns = tuple(ignore)

    def ignored(self, rel: str, name: str) -> bool:
        """Whether to skip `rel` (its parent folders were already checked on the way)."""
        return matches(rel, name, self.patterns)

    def scan(self) -> dict[str, Stat]:
        """Every regular file under the root (POSIX relative path -> stat)."""
        out: dict[str, Stat] = {}
        stack = [(self.root, "")]
        patterns = self.patterns
        while stack:
            path, rel = stack.pop()
            try:
                with os.scandir(path) as it:
                    entries = list(it)
            except OSError:
                continue
            if rel and any(e.name in ("pyvenv.cfg", "conda-meta") for e in entries):
                continue  # a virtual environment: installed packages, not the user's files
            for entry in entries:
                name = entry.name
                child = f"{rel}/{name}" if rel else name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name in IGNORED_DIRS or name.endswith(".egg-info"):
                            continue
                        if patterns and self.ignored(child, name):
                            continue
                        stack.append((entry.path, child))
                        continue
                    if name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES):
                        continue
                    if patterns and self.ignored(child, name):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_mode & _S_IFMT == _S_IFREG:
                    out[child] = Stat.of(st)
        return out


def changed(before: dict[str, Stat], after: dict[str, Stat]) -> tuple[list[str], list[str]]:
    """(created or modified paths, deleted paths) between two scans."""
    modified = [p for p, st in after.items() if (b := before.get(p)) is None or b.key() != st.key()]
    deleted = [p for p in before if p not in after]
    return sorted(modified), sorted(deleted)
