"""The project's directories, and which of them a run changed, without a stat per file.

Creating, removing or renaming an entry changes its directory's ctime, and writing a
file changes the file's; both come from the filesystem's clock. So the files a run
created, renamed or replaced are in the directories whose ctime is at or after the run
started (`since_ns`, read off the filesystem itself: vestige/recording/runner.py), and
among their entries they are those whose ctime is too. The scan is then a stat per
directory plus a listing of the directories the run changed: a project of 500,000 files
in a few folders costs what one of 500 does. A file rewritten in place in a folder the
run otherwise left alone is not seen here: the processes that wrote it are (the audit
hook, the tracer), which is the primary source; this is the safety net.

The directories are kept between runs in `.vestige/cache/dirs-<key>` (marshal: a cache,
rebuilt by one walk when absent or unreadable), each with its stat and subdirectories: a
directory whose stat did not change still has the same subdirectories, so only changed
ones are listed again. The default ignores and `scan.ignore` apply (capture/scan.py).
"""

from __future__ import annotations

import os
import time

from vestige.capture.scan import (
    IGNORED_DIRS,
    IGNORED_FILES,
    IGNORED_SUFFIXES,
    is_regular,
    matches,
)
from vestige.store.stat import Stat

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterator

#: Bump when the cache's layout changes (an old one is then ignored, not misread).
CACHE_VERSION = 2
#: A walk listing this many entries, or taking this long, is worth one line naming the
#: largest folders and `scan.ignore` (once per store and tree).
SLOW_ENTRIES = 100_000
SLOW_SECONDS = 1.0
_VENV_MARKERS = ("pyvenv.cfg", "conda-meta")


class Dir:
    """One directory: its stat when last looked at, its subdirectories then (None for a
    folder skipped as a virtual environment; symbolic links to folders included), its
    symbolic links to files, and how many entries it had."""

    __slots__ = ("ctime_ns", "entries", "ino", "links", "mtime_ns", "subdirs")

    def __init__(
        self, ino: int, mtime_ns: int, ctime_ns: int, subdirs: tuple[str, ...] | None,
        entries: int, links: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.ino, self.mtime_ns, self.ctime_ns = ino, mtime_ns, ctime_ns
        self.subdirs = subdirs
        self.entries = entries
        self.links = links

    def same(self, st: os.stat_result) -> bool:
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) == (
            self.ino, self.mtime_ns, self.ctime_ns,
        )  # fmt: skip

    def to_tuple(self) -> tuple[int, int, int, tuple[str, ...] | None, int, tuple[str, ...]]:
        return (self.ino, self.mtime_ns, self.ctime_ns, self.subdirs, self.entries, self.links)


class Dirs:
    """The directories of one tree (relative POSIX paths, "" for the root)."""

    def __init__(self, root: str, ignore: tuple[str, ...] = (), cache: str | None = None) -> None:
        self.root = root.rstrip("/") or "/"
        self.patterns = tuple(ignore)
        self.cache = cache  # the file this state is loaded from and saved to
        self.dirs: dict[str, Dir] = {}
        self.listed = 0  # entries listed by the last refresh (what it cost)
        self.seconds = 0.0
        self.loaded = False

    # -- the cache ------------------------------------------------------------------------

    @classmethod
    def load(cls, store: str, root: str, ignore: tuple[str, ...] = ()) -> Dirs:
        """The tree's directories as the last run left them (empty: the first walk)."""
        import marshal

        key = _cache_key(root, ignore)
        dirs = cls(root, ignore, os.path.join(store, "cache", f"dirs-{key}"))
        try:
            with open(dirs.cache, "rb") as f:  # type: ignore[arg-type]
                data = marshal.loads(f.read())
            if data[0] == CACHE_VERSION and data[1] == dirs.root and data[2] == dirs.patterns:
                dirs.dirs = {rel: Dir(*t) for rel, t in data[3].items()}
                dirs.loaded = True
        except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError):
            pass
        return dirs

    def save(self) -> None:
        """Keep the state for the next run (atomically; a failure only costs a walk)."""
        if self.cache is None:
            return
        import marshal

        from vestige.fastpath import write_file

        state = {rel: d.to_tuple() for rel, d in self.dirs.items()}
        try:
            os.makedirs(os.path.dirname(self.cache), exist_ok=True)
            write_file(self.cache, marshal.dumps((CACHE_VERSION, self.root,
                                                       self.patterns, state)))  # fmt: skip
        except (OSError, ValueError):
            pass

    # -- looking -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Stat every known directory; list again those whose stat changed (new, removed
        or renamed entries) and any new one, recursively. Forgets directories gone."""
        started = time.monotonic()
        self.listed = 0
        seen: dict[str, Dir] = {}
        real: set[tuple[int, int]] = set()  # (dev, ino) of each folder: links make cycles
        stack = [""]
        while stack:
            rel = stack.pop()
            path = self._path(rel)
            try:
                st = os.stat(path)  # (through a link: the folder it names)
            except OSError:
                continue
            if (st.st_mode & 0o170000) != 0o040000 or (st.st_dev, st.st_ino) in real:
                continue
            real.add((st.st_dev, st.st_ino))
            known = self.dirs.get(rel)
            if known is None or not known.same(st):
                known = self._list(rel, path, st)
            seen[rel] = known
            for name in known.subdirs or ():
                stack.append(f"{rel}/{name}" if rel else name)
        self.dirs = seen
        self.seconds = time.monotonic() - started

    def _list(self, rel: str, path: str, st: os.stat_result) -> Dir:
        """List a directory: its subdirectories to walk into (the ignores applied)."""
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            return Dir(st.st_ino, st.st_mtime_ns, st.st_ctime_ns, (), 0)
        self.listed += len(entries)
        if rel and any(e.name in _VENV_MARKERS for e in entries):
            # a virtual environment: installed packages, not the user's files
            return Dir(st.st_ino, st.st_mtime_ns, st.st_ctime_ns, None, len(entries))
        subdirs = []
        links = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    kind = subdirs
                elif not entry.is_symlink():
                    continue
                elif entry.is_file():  # a write through it changes the file it names
                    kind = links
                elif entry.is_dir() and self._may_follow(entry.path):
                    kind = subdirs
                else:
                    continue
            except OSError:
                continue
            if name in IGNORED_DIRS or name.endswith(".egg-info"):
                continue
            child = f"{rel}/{name}" if rel else name
            if self.patterns and matches(child, name, self.patterns):
                continue
            kind.append(name)
        return Dir(st.st_ino, st.st_mtime_ns, st.st_ctime_ns, tuple(sorted(subdirs)),
                   len(entries), tuple(sorted(links)))  # fmt: skip

    def _may_follow(self, link: str) -> bool:
        """Whether to look into the folder a symbolic link names (`data -> /scratch/x`:
        outputs land there): not when it is the tree or holds it (`home -> ~`)."""
        target = os.path.realpath(link)
        root = os.path.realpath(self.root)
        return not (root == target or root.startswith(target.rstrip("/") + "/"))

    def changed_files(self, since_ns: int, until_ns: int | None = None) -> dict[str, Stat]:
        """The regular files (relative path -> stat) created, renamed or replaced at or
        after `since_ns` (and, given `until_ns`, not after it): those of the directories
        changed since, whose ctime is in that window too. Call `refresh` first."""
        out: dict[str, Stat] = {}
        for rel, d in self.dirs.items():
            for name in d.links:  # a file written through a link: its target changed
                child = f"{rel}/{name}" if rel else name
                try:
                    st = os.stat(self._path(child))
                except OSError:
                    continue
                if st.st_ctime_ns >= since_ns and (until_ns is None or st.st_ctime_ns <= until_ns):
                    out[child] = Stat.of(st)
            if d.ctime_ns < since_ns or d.subdirs is None:
                continue
            for child, st in self._files(rel):
                if st.ctime_ns >= since_ns and (until_ns is None or st.ctime_ns <= until_ns):
                    out[child] = st
        return out

    def _files(self, rel: str) -> Iterator[tuple[str, Stat]]:
        patterns = self.patterns
        try:
            with os.scandir(self._path(rel)) as it:
                entries = list(it)
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES):
                continue
            child = f"{rel}/{name}" if rel else name
            if patterns and matches(child, name, patterns):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if is_regular(st.st_mode):
                yield child, Stat.of(st)

    def is_skipped(self, rel: str) -> bool:
        """Whether this folder is one the scan does not enter (a virtual environment)."""
        d = self.dirs.get(rel)
        return d is not None and d.subdirs is None

    def largest(self, n: int = 3) -> list[tuple[str, int]]:
        """The `n` folders with the most entries (relative path, entries)."""
        ranked = sorted(self.dirs.items(), key=lambda kv: -kv[1].entries)
        return [(rel or ".", d.entries) for rel, d in ranked[:n]]

    def slow(self) -> bool:
        """Whether the last refresh listed enough to be worth a line to the user
        (VESTIGE_SCAN_NOTE_ENTRIES sets the count, for tests)."""
        try:
            entries = int(os.environ.get("VESTIGE_SCAN_NOTE_ENTRIES") or SLOW_ENTRIES)
        except ValueError:
            entries = SLOW_ENTRIES
        return self.listed >= entries or self.seconds >= SLOW_SECONDS

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root


def _cache_key(root: str, ignore: tuple[str, ...]) -> str:
    """A short name for (tree, ignores): several trees may share a store (VESTIGE_DIR)."""
    from zlib import crc32

    text = "\0".join((root, *ignore)).encode("utf-8", "surrogateescape")
    return f"{crc32(text):08x}"
