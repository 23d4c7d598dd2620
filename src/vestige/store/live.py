"""A running run's live directory: what it has captured so far, readable after a crash.

`live/<run-id>/` holds run.json (who, what, when: `since_ns` is when the run started by
the filesystem's clock), stdout and stderr as they were printed, events/ (the
shim's journals), code.json once the code snapshot is stored, staged/ (files vestige
made, stored when the run is sealed) and result.json once the command exited.
Everything needed to seal the run is here, so a run whose vestige was killed can be
sealed later as `interrupted` (docs/format.md, "Live runs").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vestige.fastpath import boot_id as _boot_id
from vestige.fastpath import hostname, write_file
from vestige.fastpath import proc_start as _proc_start

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

#: The folder of a live directory where vestige stages files it makes itself (the executed
#: notebook) for the seal to store through the run's redaction pass (recording/seal.py).
STAGED = "staged"


def write_json(path: Path, obj: Any) -> None:
    """Write a small JSON file atomically (temp + rename; fsync is not needed for these)."""
    write_file(str(path), json.dumps(obj))


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class LiveRun:
    """Accessors for one live directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name

    @property
    def info(self) -> dict[str, Any]:
        return read_json(self.path / "run.json") or {}

    def update_info(self, **changes: Any) -> None:
        write_json(self.path / "run.json", {**self.info, **changes})

    def write_info(self, info: dict[str, Any]) -> None:
        """Replace run.json with `info` whole (its writer holds all of it: no read first)."""
        write_json(self.path / "run.json", info)

    def save_result(self, result: dict[str, Any]) -> None:
        write_json(self.path / "result.json", result)

    @property
    def result(self) -> dict[str, Any] | None:
        return read_json(self.path / "result.json")

    def save_code(self, code: dict[str, Any]) -> None:
        write_json(self.path / "code.json", code)

    @property
    def code(self) -> dict[str, Any] | None:
        """code.json, or the `code` of run.json (a sweep's child writes one file)."""
        code = read_json(self.path / "code.json")
        return code if code is not None else self.info.get("code")

    def has_code(self) -> bool:
        """Whether the code snapshot is stored (until then its objects are named nowhere)."""
        return (self.path / "code.json").exists() or "code" in self.info

    def runner_alive(self, info: dict[str, Any] | None = None) -> bool | None:
        """True/False when it can be told (same host and boot), None when it cannot.
        `info`: run.json as the caller read it (read again, that of a run sealed meanwhile
        is gone, and the runner would look dead)."""
        if info is None:
            info = self.info
        if not info:
            return False  # run.json never written: the runner died at once
        if info.get("host") != hostname():
            return None
        if info.get("boot_id") and info.get("boot_id") != _boot_id():
            return False
        pid = info.get("runner_pid")
        if not isinstance(pid, int):
            return False
        start = _proc_start(pid)
        if start is not None:
            return start == info.get("runner_start")
        return pid_alive(pid)

    def claim(self) -> bool:
        """Take the right to seal this run after a crash (one process wins)."""
        lock = self.path / "sealing"
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text() or "0")
                os.kill(holder, 0)
                return False
            except (ValueError, ProcessLookupError, OSError):
                lock.unlink(missing_ok=True)
                return self.claim()
        except FileNotFoundError:
            return False  # the folder is gone: its run was sealed meanwhile
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True

    def remove(self) -> None:
        """Delete the directory once sealed: a plain walk of its two levels (shutil.rmtree's
        fd-based walk costs ~0.5 ms, a tenth of a sweep child's whole overhead)."""
        try:
            _remove_tree(str(self.path))
        except OSError:
            import shutil  # (not at the top: ~1 ms on the start path, for a rare fallback)

            shutil.rmtree(self.path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of that pid exists (another user's counts: it cannot be asked)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(path: str) -> None:
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path)
            else:
                os.unlink(entry.path)
    os.rmdir(path)
