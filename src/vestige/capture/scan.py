"""The before/after scan of the project tree: which files a run created or changed.

Only stats are taken here (cheap); hashing goes through the stat cache. Directories
that are never the user's outputs are skipped: VCS and tool caches, and any virtual
environment (a directory holding `pyvenv.cfg` or `conda-meta`).
"""

from __future__ import annotations

import fnmatch
import os
import stat as stat_mod
from collections.abc import Iterable
from pathlib import Path

from vestige.store.statcache import Stat

IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".vestige", ".venv", "__pycache__", "node_modules",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox",
        ".ipynb_checkpoints", ".eggs", ".cache",
    }
)  # fmt: skip
IGNORED_FILES = frozenset({".DS_Store"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp")


class Scanner:
    """Walks a tree with the default ignores plus the user's `scan.ignore` globs."""

    def __init__(self, root: Path, ignore: Iterable[str] = ()) -> None:
        self.root = root
        self.patterns = tuple(ignore)

    def ignored(self, rel: str, name: str) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in self.patterns)

    def scan(self) -> dict[str, Stat]:
        """Every regular file under the root (POSIX relative path -> stat)."""
        out: dict[str, Stat] = {}
        stack = [(str(self.root), "")]
        while stack:
            path, rel = stack.pop()
            try:
                entries = list(os.scandir(path))
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
                        if self.patterns and self.ignored(child, name):
                            continue
                        stack.append((entry.path, child))
                        continue
                    if name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES):
                        continue
                    if self.patterns and self.ignored(child, name):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    out[child] = Stat.of(st)
        return out


def changed(before: dict[str, Stat], after: dict[str, Stat]) -> tuple[list[str], list[str]]:
    """(created or modified paths, deleted paths) between two scans."""
    modified = [p for p, st in after.items() if (b := before.get(p)) is None or b.key() != st.key()]
    deleted = [p for p in before if p not in after]
    return sorted(modified), sorted(deleted)
