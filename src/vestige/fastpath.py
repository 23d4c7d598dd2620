"""Helpers for the `vestige run` start-up path, which imports only builtin modules.

Measured on the 2-core CI machine: `import json` costs ~9 ms (it pulls in `re`),
`pathlib` ~12 ms, `subprocess` ~16 ms, `threading` ~4.5 ms, against ~11 ms for the
whole interpreter start. So the path from `vestige run` to the command's start uses
`os`, `_json`, `_thread` and `_signal` only; the rest is imported in a background
thread while the command runs.
"""

from __future__ import annotations

import os
import sys
import time
from _json import encode_basestring_ascii as _encode_str
from _json import make_encoder as _make_encoder
from _thread import get_ident

_T0 = time.perf_counter()
_TIMING = bool(os.environ.get("VESTIGE_TIMING"))


def timing(label: str) -> None:
    """With VESTIGE_TIMING=1, print how far into vestige's life a step happened."""
    if _TIMING:
        sys.stderr.write(f"vestige: {1000 * (time.perf_counter() - _T0):7.1f} ms  {label}\n")


def _unknown(obj: object) -> object:
    raise TypeError(type(obj).__name__)


#: `_json`'s C encoder, strict: no NaN or infinity, no unknown types (compact, in order).
_C_ENCODE = _make_encoder(None, _unknown, _encode_str, None, ":", ",", False, False, False)


def dumps(obj: object) -> str:
    """JSON for plain data (dict, list, str, int, float, bool, None), without `json`:
    `_json`'s C encoder (~4x faster), or where it refuses (NaN, odd types) `_dumps`."""
    try:
        return "".join(_C_ENCODE(obj, 0))
    except (TypeError, ValueError, RecursionError):
        return _dumps(obj)


def _dumps(obj: object) -> str:
    """dumps in Python: NaN and infinity are null, other types their str()."""
    if isinstance(obj, str):
        return _encode_str(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj) if obj == obj and obj not in (float("inf"), float("-inf")) else "null"
    if isinstance(obj, dict):
        return "{" + ",".join(f"{_encode_str(str(k))}:{_dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(_dumps(v) for v in obj) + "]"
    return _encode_str(str(obj))


def write_file(path: str, data: str | bytes) -> None:
    """Replace a small file atomically (temp + rename); plain os calls, no io objects. The
    temp name is the writer's (process and thread): two writers of one path never share it."""
    tmp = f"{path}.{os.getpid()}-{get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # (a full disk: no half-written temp file left behind)
            os.unlink(tmp)
        except OSError:
            pass
        raise


def which(program: str) -> str | None:
    """The path `program` would run from, like shutil.which (without importing shutil)."""
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_ONCE: dict[str, str | None] = {}  # this process's own start time and the boot id


def proc_start(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), to tell a reused pid apart."""
    own = pid == os.getpid()
    if own and "start" in _ONCE and _ONCE.get("pid") == str(pid):
        return _ONCE["start"]
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        start: str | None = data.rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        start = None
    if own:  # a sweep launches many children: read our own once (per pid: fork)
        _ONCE["pid"], _ONCE["start"] = str(pid), start
    return start


def boot_id() -> str | None:
    """The kernel's boot id (with proc_start, tells a runner alive from a reused pid)."""
    if "boot" not in _ONCE:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _ONCE["boot"] = f.read().strip()
        except OSError:
            return None
    return _ONCE["boot"]


def hostname() -> str:
    return os.uname().nodename


def block_signals() -> None:
    """Run in vestige's own threads: process signals (Ctrl-C, SIGTERM...) then go to the
    program's main thread, as if the thread did not exist. Python runs handlers in the main
    thread only, but the kernel may deliver a signal to any thread that does not block it,
    leaving a main thread blocked in a read uninterrupted (a worker that never dies)."""
    try:
        import _signal

        names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGCHLD", "SIGWINCH")  # fmt: skip
        sigs = {getattr(_signal, n) for n in names if hasattr(_signal, n)}
        _signal.pthread_sigmask(_signal.SIG_BLOCK, sigs)
    except (ImportError, AttributeError, OSError, ValueError):
        pass


def warn(message: str) -> None:
    """The one way vestige talks during a user's run: a line on stderr, never an exception."""
    try:
        sys.stderr.write(f"vestige: warning: {message}\n")
        sys.stderr.flush()
    except Exception:
        pass
