"""Stat: the fields of a file's stat that tell whether it changed (the stat cache's key).

On `vestige run`'s start path (the before-scan builds one per file): imports only `os`.
"""

from __future__ import annotations

import os


class Stat:
    """The fields of os.stat that tell whether a file changed, plus its mode."""

    __slots__ = ("ctime_ns", "dev", "inode", "mode", "mtime_ns", "size")

    def __init__(
        self, dev: int, inode: int, size: int, mtime_ns: int, ctime_ns: int, mode: int
    ) -> None:
        self.dev, self.inode, self.size = dev, inode, size
        self.mtime_ns, self.ctime_ns, self.mode = mtime_ns, ctime_ns, mode

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    def key(self) -> tuple[int, int, int, int, int]:
        return (self.dev, self.inode, self.size, self.mtime_ns, self.ctime_ns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stat) and self.key() == other.key() and self.mode == other.mode

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"Stat(size={self.size}, mtime_ns={self.mtime_ns}, inode={self.inode})"
