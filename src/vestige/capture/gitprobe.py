"""Ask git for the snapshot's file list and state, started early and read late.

The two git commands run while vestige imports the rest of itself (they take ~8 ms
each on the CI machine), so they cost no wall time. Spawned with `os.posix_spawnp`:
this module imports only `os`. GIT_OPTIONAL_LOCKS=0 keeps `git status` from taking
the index lock, so a git command of the user's at the same moment never fails.

When nothing git looks at has changed since the last run (every file of its last answer,
every folder of the tree, git's index, HEAD and the ref it names), git's answers cannot
have changed either: they are reused from `.vestige/cache/git.json` and no git process
starts. A new file changes its folder, so the folders stand for the files git did not
list; the files of ignored folders are never looked at (a project's data costs nothing
here). Like the stat cache, an answer is saved only when everything it depends on is
older than RACY_NS, so a file rewritten within one timestamp tick is never mistaken for
unchanged.
"""

from __future__ import annotations

import os
import time

from vestige.fastpath import write_file
from vestige.store.stat import Stat

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.capture.dirs import Dirs

RACY_NS = 2_000_000_000
CACHE = ("cache", "git.json")
CACHE_VERSION = 2  # 2: tracked files apart, the key over the listed files and the folders
LS_FILES = ("ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard")
STATUS = ("status", "--porcelain=v2", "--branch", "-z", "--untracked-files=no")


#: (every file git would snapshot, the untracked ones among them, git's state)
Answer = tuple[list[str], list[str], dict[str, object]]


class GitProbe:
    """Two git processes writing into pipes; `result()` collects them."""

    def __init__(
        self, root: str, store: str | None = None, memo: dict[str, Answer] | None = None,
        dirs: Dirs | None = None,
    ) -> None:  # fmt: skip
        """`memo`: answers this process already has, by key (a sweep's consecutive
        children ask the same question of the same tree); `dirs`: the tree's folders,
        refreshed (capture/dirs.py), which the key covers."""
        self.root = root
        self.memo = memo
        self.dirs = dirs
        self.procs: list[tuple[int, int]] = []
        self.cached: Answer | None = None
        self.key: str | None = None
        self.newest_ns = 0
        #: relative path -> stat of the files the key covers (the code snapshot reuses them)
        self.stats: dict[str, Stat] = {}
        self.cache_path = os.path.join(store, *CACHE) if store else None
        if not os.path.exists(os.path.join(root, ".git")):
            return
        if dirs is not None and self.cache_path is not None:
            last = self._load()
            if last is not None:
                self.key = self._key(last[0][0])
                if memo is not None and self.key in memo:
                    self.cached = memo[self.key]
                    return
                if self.key is not None and self.key == last[1]:
                    self.cached = last[0]
                    if memo is not None:
                        memo[self.key] = self.cached
                    return
        env = dict(os.environ)
        env["GIT_OPTIONAL_LOCKS"] = "0"
        env["LC_ALL"] = "C"
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for args in (LS_FILES, STATUS):
                r, w = os.pipe()
                try:
                    pid = os.posix_spawnp(
                        "git",
                        ["git", "-C", root, *args],
                        env,
                        file_actions=[
                            (os.POSIX_SPAWN_DUP2, null, 0),
                            (os.POSIX_SPAWN_DUP2, w, 1),
                            (os.POSIX_SPAWN_DUP2, null, 2),
                        ],
                    )
                except OSError:
                    os.close(r)
                    continue
                finally:
                    os.close(w)
                self.procs.append((pid, r))
        finally:
            os.close(null)

    def _collect(self, pid: int, fd: int) -> bytes | None:
        chunks = []
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except InterruptedError:
                continue
            if not data:
                break
            chunks.append(data)
        os.close(fd)
        _pid, status = os.waitpid(pid, 0)
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None

    def _key(self, files: list[str]) -> str | None:
        """A digest of everything git's answer listing `files` depends on (None: cannot
        tell, ask git): git's metadata, the stat of each listed file, each folder's."""
        git = os.path.join(self.root, ".git")
        if not os.path.isdir(git) or self.dirs is None:
            return None  # a worktree or submodule: .git is a file pointing elsewhere
        parts: list[str] = [f"v{CACHE_VERSION}"]
        newest = 0
        try:
            with open(os.path.join(git, "HEAD"), "rb") as f:
                head = f.read().decode("utf-8", "replace").strip()
            parts.append(head)
            watched = ["index", "packed-refs", "info/exclude"]
            if head.startswith("ref: "):
                watched.append(head[5:])
            for name in watched:
                try:
                    st = os.stat(os.path.join(git, name))
                except FileNotFoundError:
                    parts.append(f"{name}:-")
                    continue
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}")
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            return None
        base = self.root.rstrip("/") + "/"
        stats: dict[str, Stat] = {}
        for path in files:
            try:
                st = os.lstat(base + path)
            except OSError:
                parts.append(f"{path}\0-")
                continue
            stat = stats[path] = Stat.of(st)
            parts.append(f"{path}\0{stat.size}:{stat.mtime_ns}:{stat.ctime_ns}:{stat.inode}")
            newest = max(newest, stat.mtime_ns, stat.ctime_ns)
        for rel, d in sorted(self.dirs.dirs.items()):
            parts.append(f"{rel}/\0{d.ino}:{d.mtime_ns}:{d.ctime_ns}")
            newest = max(newest, d.mtime_ns, d.ctime_ns)
        self.stats = stats
        self.newest_ns = newest
        from blake3 import blake3

        return blake3("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

    def _load(self) -> tuple[Answer, str] | None:
        """The last answer saved, and the key it was saved under."""
        import json

        try:
            with open(self.cache_path or "", "rb") as f:
                data = json.loads(f.read())
            if data.get("version") == CACHE_VERSION:
                answer = (list(data["files"]), list(data["untracked"]), dict(data["git"]))
                return answer, str(data["key"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return None

    def settled(self) -> bool:
        """Whether nothing the key covers changed within RACY_NS: equal keys then mean equal
        files, so answers (and a code snapshot) may be reused under this key."""
        return self.key is not None and time.time_ns() - self.newest_ns >= RACY_NS

    def _save(self, answer: Answer) -> None:
        """Remember git's answers under the key of what they list, unless something they
        depend on changed too recently."""
        if self.cache_path is None or self.dirs is None:
            return
        files, untracked, state = answer
        self.key = self._key(files)
        if self.key is None or not self.settled():
            return
        if self.memo is not None:
            self.memo[self.key] = answer
        import json

        try:
            os.makedirs(os.path.dirname(self.cache_path), exist_ok=True)
            record = {"version": CACHE_VERSION, "key": self.key, "files": files,
                      "untracked": untracked, "git": state}  # fmt: skip
            write_file(self.cache_path, json.dumps(record))
        except OSError:
            pass

    def result(self) -> Answer | None:
        """(files git would snapshot, the untracked ones, git state), or None outside a git
        work tree."""
        if self.cached is not None:
            return self.cached
        if len(self.procs) != 2:
            for pid, fd in self.procs:
                self._collect(pid, fd)
            return None
        ls_out = self._collect(*self.procs[0])
        st_out = self._collect(*self.procs[1]) or b""
        if ls_out is None:
            return None
        files, untracked = parse_ls_files(ls_out.decode("utf-8", "surrogateescape"))
        state = parse_status(st_out.decode("utf-8", "surrogateescape"))
        self.cached = (files, untracked, state)
        self._save(self.cached)
        return self.cached


def parse_ls_files(text: str) -> tuple[list[str], list[str]]:
    """(every path, the untracked ones) of `git ls-files -z -t`, sorted."""
    files: set[str] = set()
    untracked: set[str] = set()
    for record in text.split("\0"):
        tag, _sep, path = record.partition(" ")
        if path:
            files.add(path)
            if tag == "?":
                untracked.add(path)
    return sorted(files), sorted(untracked)


def parse_status(text: str) -> dict[str, object]:
    """commit, branch and dirty from `git status --porcelain=v2 --branch -z`."""
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for record in text.split("\0"):
        if record.startswith("# branch.oid "):
            oid = record.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif record and record[0] in "12u":
            dirty = True
    return {"commit": commit, "branch": branch, "dirty": dirty}
