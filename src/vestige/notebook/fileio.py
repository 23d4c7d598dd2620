"""The files a notebook cell reads, writes and removes, seen through an audit hook.

The kernel extension (vestige/notebook/kernel.py) hands each audited `open`, `os.rename`
and `os.remove` to a `FileTracker`, which keeps it for the running cell when the cell's
code caused it: tracebacks, bytecode caches, installed libraries and vestige's own files
are not the cell's; the source of a project module the cell imports is one of its reads
(`extract` keeps the `%%writefile helper.py` cell for `from helper import g`).
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
_CODE_READERS = ("linecache", "tokenize", "inspect", "traceback", "stack_data", "IPython",
                 "pkgutil", "runpy")  # fmt: skip
#: The import system: what it reads for the cell's code is a module the cell imports.
_IMPORTERS = ("importlib", "_frozen_importlib", "zipimport")
#: `_by_cell`'s answer for a module the cell's code imported: a read of its source.
IMPORT = "import"
#: vestige's own package: its lazy imports while a cell runs are not the cell's reads.
_OWN_CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


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
            by_cell = self._by_cell(ident, p.endswith(_CODE_SUFFIXES), write)
            if not by_cell:
                return
            if by_cell == IMPORT:  # a module of the project, imported by the cell's code
                p = _source_of(p)
                if p in cell.reads or p.startswith(_OWN_CODE) or self._ignored(p):
                    return
            if write:
                cell.writes.add(p)
            elif not os.path.isdir(p):
                cell.reads.add(p)
        elif event == "os.rename":
            dst = _absolute(args[1]) if len(args) > 1 else None
            if dst is not None and not self._ignored(dst) and self._by_cell(ident, False, True):
                cell.writes.add(dst)
        elif event == "os.remove":
            p = _absolute(args[0]) if args else None
            if p is not None and not self._ignored(p) and self._by_cell(ident, False, True):
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

    def _by_cell(self, ident: int, code: bool, write: bool) -> bool | str:
        """Whether the cell's code caused this event: on the main thread, a frame of the
        user namespace is on the stack. Code files read for the cell by the import system
        are IMPORT (the cell reads a module of the project); read by a traceback or shown
        (IPython, inspect), or written as a bytecode cache, they are not the cell's. A `.py`
        the cell writes (`%%writefile helper.py`) is an ordinary write. Other threads count
        (a loader thread started by the cell), unless they import or show code."""
        user_ns = self.shell.user_ns
        f = sys._getframe(2)
        importing = False
        while f is not None:
            g = f.f_globals
            if g is user_ns:
                return IMPORT if importing else True
            if code:
                module = str(g.get("__name__") or "")
                if f.f_code.co_filename.startswith("<frozen") or module.startswith(_IMPORTERS):
                    if write:
                        return False  # the bytecode cache of a module being imported
                    importing = True
                elif not write and module.startswith(_CODE_READERS):
                    return False
            f = f.f_back
        return ident != self.main_thread and not importing


def _source_of(path: str) -> str:
    """The source of a module the import system read: `__pycache__/m.<tag>.pyc` is m.py."""
    folder, name = os.path.split(path)
    if name.endswith(".pyc") and os.path.basename(folder) == "__pycache__":
        source = os.path.join(os.path.dirname(folder), name.split(".", 1)[0] + ".py")
        if os.path.exists(source):
            return source
    return path


def _absolute(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    return os.path.normpath(os.path.join(os.getcwd(), p)) if p else None
