"""Ask git for the snapshot's file list and state, started early and read late.

The two git commands run while vestige imports the rest of itself (they take ~8 ms
each on the CI machine), so they cost no wall time. Spawned with `os.posix_spawnp`:
this module imports only `os`. GIT_OPTIONAL_LOCKS=0 keeps `git status` from taking
the index lock, so a git command of the user's at the same moment never fails.
"""

from __future__ import annotations

import os

LS_FILES = ("ls-files", "-z", "--cached", "--others", "--exclude-standard")
STATUS = ("status", "--porcelain=v2", "--branch", "-z", "--untracked-files=no")


class GitProbe:
    """Two git processes writing into pipes; `result()` collects them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.procs: list[tuple[int, int]] = []
        if not os.path.exists(os.path.join(root, ".git")):
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

    def result(self) -> tuple[list[str] | None, dict[str, object] | None]:
        """(files git would snapshot, git state), or (None, None) outside a git work tree."""
        if len(self.procs) != 2:
            for pid, fd in self.procs:
                self._collect(pid, fd)
            return None, None
        ls_out = self._collect(*self.procs[0])
        st_out = self._collect(*self.procs[1]) or b""
        if ls_out is None:
            return None, None
        files = sorted({p for p in ls_out.decode("utf-8", "surrogateescape").split("\0") if p})
        return files, parse_status(st_out.decode("utf-8", "surrogateescape"))


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
