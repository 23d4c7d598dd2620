"""The files a notebook cell reads, writes and removes, seen through an audit hook.

The kernel extension (vestige/notebook/kernel.py) hands each audited `open`, `os.rename`
and `os.remove` to a `FileTracker`, which keeps it for the running cell when the cell's
code caused it: imports, tracebacks and vestige's own files are not the cell's.
"""

from __future__ import annotations

import _thread
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.notebook.cell import Cell
    from vestige.notebook.sessionlog import SessionLog

IO_EVENTS = frozenset(("open", "os.rename", "os.remove"))
_WMASK = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
#: Reads of these by these modules are code being loaded or shown, not data.
_CODE_SUFFIXES = (".py", ".pyc", ".pyw", ".pyi", ".so", ".pth")
_CODE_READERS = ("importlib", "zipimport", "linecache", "tokenize", "inspect", "traceback",
                 "stack_data", "IPython", "pkgutil", "runpy")  # fmt: skip


class FileTracker:
    """Notes into the running cell the files its code reads, writes and removes."""

    def __init__(self, shell: Any, log: SessionLog, current: Callable[[], Cell | None]) -> None:
        self.shell = shell
        self.log = log  # its `busy` and `store_prefix`: vestige's own files
        self.current = current  # the running cell, or None
        self.pid = os.getpid()
        self.main_thread = _thread.get_ident()

    def file_event(self, event: str, args: tuple[Any, ...]) -> None:
        """One audited file operation; kept for the running cell when it is the cell's."""
        cell = self.current()
        if cell is None or self.log.busy or os.getpid() != self.pid:
            return
        ident = _thread.get_ident()
        shim = sys.modules.get("_vestige_shim")
        if shim is not None and ident in getattr(shim, "_IGNORED_THREADS", ()):
            return
        if event == "open":
            path, mode = args[0], args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else 0
            if mode is None:
                write = bool(flags & _WMASK) if isinstance(flags, int) else False
            else:
                write = any(c in str(mode) for c in "wax+")
            p = _absolute(path)
            if p is None or (p in (cell.writes if write else cell.reads)) or self._ignored(p):
                return
            code = p.endswith(_CODE_SUFFIXES)
            if not self._by_cell(ident, code):
                return
            if write:
                cell.writes.add(p)
            elif not os.path.isdir(p):
                cell.reads.add(p)
        elif event == "os.rename":
            dst = _absolute(args[1]) if len(args) > 1 else None
            if dst is not None and not self._ignored(dst) and self._by_cell(ident, False):
                cell.writes.add(dst)
        elif event == "os.remove":
            p = _absolute(args[0]) if args else None
            if p is not None and not self._ignored(p) and self._by_cell(ident, False):
                cell.removed.add(p)
                cell.writes.discard(p)

    def _ignored(self, p: str) -> bool:
        store_prefix = self.log.store_prefix
        if store_prefix and p.startswith(store_prefix):
            return True
        if p.startswith(("/dev/", "/proc/", "/sys/")):
            return True
        shim = sys.modules.get("_vestige_shim")
        ignored = getattr(shim, "_ignored", None) if shim is not None else None
        if ignored is not None:
            return bool(ignored(p))
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
        if any(p.startswith(x.rstrip(os.sep) + os.sep) for x in prefixes if x and x != os.sep):
            return True
        return "/site-packages/" in p or "/dist-packages/" in p

    def _by_cell(self, ident: int, code: bool) -> bool:
        """Whether the cell's code caused this event: on the main thread, a frame of the
        user namespace is on the stack; code files must not be read by the import system
        or a traceback. Other threads count (a loader thread started by the cell)."""
        user_ns = self.shell.user_ns
        f = sys._getframe(2)
        found = ident != self.main_thread
        while f is not None:
            g = f.f_globals
            if g is user_ns:
                found = True
                if not code:
                    return True
            elif code:
                module = str(g.get("__name__") or "")
                if f.f_code.co_filename.startswith("<frozen") or module.startswith(_CODE_READERS):
                    return False
            f = f.f_back
        return found


def _absolute(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    return os.path.normpath(os.path.join(os.getcwd(), p)) if p else None
