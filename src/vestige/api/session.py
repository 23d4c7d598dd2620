"""The run this process records into, for every in-code API call: `vestige run`'s (named
by VESTIGE_LIVE and VESTIGE_RUN_ID), or one of this process started on the first call
(vestige/recording/inprocess.py); and the API journal, `live/<run-id>/api/<pid>.jsonl`.

`import vestige` runs in users' scripts: this module imports builtin modules only, and a
failure of vestige's own becomes one warning, never an exception in the user's program.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from vestige.fastpath import warn

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.recording.inprocess import InProcessRun


class _Session:
    """The run this process records into."""

    live: str | None = None
    run_id: str | None = None
    pid = 0
    inprocess: InProcessRun | None = None
    api_fd = -1
    disabled = False
    failed = False  # disabled because a run could not start: an explicit start tries again
    warned = False


_lock = _thread.allocate_lock()


def _after_fork_child() -> None:
    global _lock
    _lock = _thread.allocate_lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_child)


def live_dir(start: bool = True) -> str | None:
    """The live directory of this process's run: attach to `vestige run`'s, else start one.

    None when recording is off (VESTIGE_DISABLE=1) or could not start (after a warning).
    """
    s = _Session
    if s.pid == os.getpid() and (s.live is not None or s.disabled):
        return s.live
    with _lock:
        if s.pid == os.getpid() and (s.live is not None or s.disabled):
            return s.live
        if s.pid != os.getpid():  # first call, or a forked child: its own api journal
            s.api_fd = -1
        s.pid = os.getpid()
        if os.environ.get("VESTIGE_DISABLE", "") not in ("", "0"):
            s.disabled = True
            return None
        live, run_id = os.environ.get("VESTIGE_LIVE"), os.environ.get("VESTIGE_RUN_ID")
        if live and run_id and os.path.isdir(live):
            s.live, s.run_id = live, run_id
            return live
        if not start:
            return None
        try:
            from vestige.recording.inprocess import InProcessRun

            run = InProcessRun.begin(on_exit=finish)
        except Exception as e:  # never break the user's program
            try:
                from vestige.recording.inprocess import why

                reason = why(e)  # (out of fds: says so, whatever the error blamed)
            except Exception:
                reason = f"{type(e).__name__}: {e}"
            warn(f"not recording ({reason})")
            s.disabled = s.failed = True
            return None
        s.inprocess = run
        s.failed = False
        s.live, s.run_id = run.live, run.run_id
    if "IPython" in sys.modules:  # a notebook or IPython session: its cells too
        _record_cells()
    return s.live


def _record_cells() -> None:
    """A run just started in this process: in an IPython session, load the extension
    (`%load_ext vestige`, vestige/notebook/kernel.py) so that its cells are recorded too."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        manager = getattr(shell, "extension_manager", None)
        if manager is not None and hasattr(shell, "events"):
            manager.load_extension("vestige")  # as %load_ext: %unload_ext then works
    except Exception as e:  # the run goes on without its cells
        warn(f"notebook cells are not recorded ({type(e).__name__}: {e})")


def retry() -> None:
    """An explicit start (`vestige.start()`, `with vestige.run()`): if the last run could not
    start (out of file descriptors, a full disk), try again rather than stay off."""
    s = _Session
    if s.failed and s.pid == os.getpid():
        s.failed = s.disabled = False


def run_id() -> str | None:
    """The id of the run this process records into (starting one if needed)."""
    live_dir()
    return _Session.run_id


def event(kind: str, /, **fields: Any) -> bool:
    """Append one event to this process's API journal; False when not recording."""
    live = live_dir()
    if live is None:
        return False
    import json

    s = _Session
    try:
        if s.api_fd < 0:
            d = os.path.join(live, "api")
            os.makedirs(d, exist_ok=True)
            s.api_fd = os.open(
                os.path.join(d, f"{os.getpid()}.jsonl"),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
        line = json.dumps(
            {"e": kind, "pid": os.getpid(), "t": time.time(), **fields},
            ensure_ascii=True,
            separators=(",", ":"),
            default=jsonable,
        )
        data = (line + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(s.api_fd, view) :]
        return True
    except OSError as e:
        if not s.warned:
            s.warned = True
            warn(f"could not record vestige.{kind} ({e.strerror or e})")
        return False


def jsonable(value: Any) -> Any:
    """Params: numbers and strings as they are, numpy scalars as numbers, else the repr."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            out = item()
            if isinstance(out, (int, float, str, bool)):
                return out
        except Exception:
            pass
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    text = repr(value)
    return text if len(text) <= 1000 else text[:1000] + "..."


# -- the end of a run --------------------------------------------------------------------------

#: What holds buffered data of the run (the metrics journal, vestige/api/log.py, registers
#: itself when it opens): (flush it now, forget it when the run ends).
_buffers: list[tuple[Callable[[], None], Callable[[], None]]] = []


def register_buffer(flush: Callable[[], None], forget: Callable[[], None]) -> None:
    """Have `flush` called by `vestige.flush()` and before the run ends, and `forget` once
    it ended (the next data starts afresh, in the next run)."""
    if (flush, forget) not in _buffers:
        _buffers.append((flush, forget))


def flush() -> None:
    """Write buffered data to the run's journals now (blocking)."""
    for write, _forget in _buffers:
        write()


def inprocess_run() -> InProcessRun | None:
    """The run this very process started, if it is going on."""
    s = _Session
    return s.inprocess if s.pid == os.getpid() else None


def finish(status: str | None = None) -> None:
    """Flush; then seal the run this process started, if it did (under `vestige run` the
    runner seals when the command exits). `status` None: learnt from how it exits."""
    flush()
    s = _Session
    run = s.inprocess
    if run is None or s.pid != os.getpid():
        return
    with _lock:
        s.inprocess = None
        s.live = s.run_id = None
        if s.api_fd >= 0:
            try:
                os.close(s.api_fd)
            except OSError:
                pass
            s.api_fd = -1
    for _write, forget in _buffers:
        forget()
    run.end(status)
