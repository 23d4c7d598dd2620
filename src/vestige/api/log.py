"""`vestige.log`: metric points appended to an in-process buffer, journaled in the background.

The hot path is one function call that appends four doubles per point (key id, step, wall
time, value) to one `array('d')`, as one record packed by a precompiled `Struct`; nothing
else is encoded per point. A background thread writes the buffer to the run's journal at
least every second; a call that finds 65,536 points buffered writes them itself. Journal,
per process (docs/format.md, "Metric journals"):

    live/<run-id>/metrics/<pid>.keys   one JSON line of header, then one JSON string per key
    live/<run-id>/metrics/<pid>.bin    records of 4 little-endian float64: key id, step, time, value

Keys are written before the points that use them, both files only ever appended with
O_APPEND, so a process killed at any instant leaves a readable prefix: at most the last
second of points is lost. A forked child (multiprocessing) starts its own journal and
forgets the parent's unflushed points, which the parent still writes.

Thread safety: `array.frombytes` of one packed record runs without releasing the GIL, so a
point is never torn; the flusher copies and deletes the buffer's first n items, leaving
points appended meanwhile in place. New keys take a lock.

Speed (benchmarks/metric_logging.py; docs/benchmarks.md, "Metric logging", 2026-12-05):
per call the hot path pays Python's call with **kwargs, one `time.time()`, one dict
lookup per key, one `Struct.pack` and one `array.frombytes` per point, and a length
check. Measured on the 2-core machine, `log(step=i, loss=x)` in a loop, ns per call:
`extend((kid, s, t, v))` of a tuple cost ~250 (array's generic path converts each item
twice, through `PyArg_Parse`), `frombytes(pack(...))` ~100; `for k, v in
metrics.items()` ~50 more than `for k in metrics: metrics[k]`; the step in a second dict
(`_steps.get(k)`, `_steps[k] = s`) ~40 more than in the key's own record; `_keys.get(k)`
a call, `_keys[k]` in a try none. The flush's extra `tobytes()` copy was ~15 ns a point
(a fresh 2 MiB buffer, page faults). From ~800 to ~500 ns a point, flush included.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from _struct import Struct  # struct.py only re-exports it (and costs an import)
from _struct import error as _StructError
from array import array

from vestige.api import session
from vestige.fastpath import block_signals

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

#: Doubles per point: key id, step, wall time, value.
RECORD = 4
#: A log call that finds this many points buffered writes them itself.
FLUSH_POINTS = 65536
#: The background thread writes the buffer at least this often (seconds).
FLUSH_INTERVAL = 1.0
JOURNAL_VERSION = 1

_buf = array("d")
#: One point into the buffer: `_add(_pack(key id, step, time, value))`. Native doubles, as
#: `array('d')` holds them (flush() writes them little-endian).
_add = _buf.frombytes
_pack = Struct("@4d").pack
#: key -> [key id, last step]: one lookup gives both. reset_for_run and a fork drop the
#: records, never empty one: a thread still holding a dropped record writes into it harmlessly.
_keys: dict[str, list[Any]] = {}
_names: list[str] = []
#: A forked child's automatic steps, by key, until it registers that key again (the child
#: continues from its parent's counts at the fork; docs/api.md).
_carried: dict[str, float] = {}
_time = time.time
_LIMIT = FLUSH_POINTS * RECORD
_register_lock = _thread.allocate_lock()
_flush_lock = _thread.allocate_lock()


class _State:
    """Where this process journals, and what it has written there."""

    live: str | None = None  # the run's live directory; None until the first point
    pid = 0
    keys_fd = -1
    bin_fd = -1
    names_written = 0
    flusher = False
    flushing = 0  # the thread inside flush(), 0 when none
    pending_signal = 0  # SIGTERM that arrived while this thread was flushing
    at_exit = False
    failed = False
    points = 0  # written by this process (for tests and the benchmark)


def log(values: dict[str, Any] | None = None, /, step: Any = None, **metrics: Any) -> None:
    """Record metric points: `vestige.log(step=i, loss=x, acc=y)` or `log({"loss": x})`.

    Values are numbers (int, float, bool, numpy scalars, one-element tensors; NaN and inf
    are kept). `step` defaults to one more than the key's previous step (0 first).

    The hot path (see the module docstring for what each part costs): a float or int
    value of a known key calls only `time.time`, `Struct.pack`, `array.frombytes` and
    `len`; any other value goes through `_number`, a new key through `_register`.
    """
    if values is not None:
        metrics = _merge(values, metrics)
    if step is not None and type(step) is not int:
        step = _step_number(step)
    t = _time()
    for k in metrics:  # ~50 ns faster than .items() with its (k, v) tuples
        v = metrics[k]
        try:
            key = _keys[k]  # free in 3.11 when it does not raise; .get() is a call
        except KeyError:
            key = _register(k)
        if type(v) is not float:
            v = float(v) if type(v) is int else _number(k, v)  # int: ~100 ns less than _number
        s = key[1] + 1 if step is None else step
        try:
            _add(_pack(key[0], s, t, v))
        except _StructError:
            float(s)  # an int step beyond float range: OverflowError, and no record
            raise
        key[1] = s
    if len(_buf) >= _LIMIT:
        flush()


def flush(timeout: float = -1) -> None:
    """Write every buffered point of this process to the run's journal (blocking; with a
    timeout, give up when another flush holds the lock that long: a signal handler must
    not wait for the flush it interrupted)."""
    if _State.failed:
        del _buf[:]  # not recording (VESTIGE_DISABLE, or a failed journal): drop, do not grow
        return
    if _State.live is None:
        return
    if not _flush_lock.acquire(timeout=timeout):
        return
    _State.flushing = _thread.get_ident()
    try:
        _flush_locked()
    finally:
        _State.flushing = 0
        _flush_lock.release()
    if _State.pending_signal:
        _die_of(_State.pending_signal)


def _flush_locked() -> None:
    if _State.pid != os.getpid():
        return  # a forked child before its first point: nothing of its own
    n = len(_buf)
    nk = len(_names)
    try:
        if nk > _State.names_written:
            lines = "".join(_json_str(k) + "\n" for k in _names[_State.names_written : nk])
            _write_all(_State.keys_fd, lines.encode("utf-8", "surrogatepass"))
            _State.names_written = nk
        if n:
            chunk = _buf[:n]  # the one copy: the write releases the GIL, _buf must not be exported
            if sys.byteorder != "little":
                chunk.byteswap()
            _write_all(_State.bin_fd, chunk)  # not .tobytes(): a 2 MiB copy, ~15 ns a point
            del _buf[:n]
            _State.points += n // RECORD
    except OSError as e:
        _fail(f"metrics could not be written ({e.strerror or e})")


def _merge(values: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise TypeError(
            f"vestige.log: the positional argument must be a dict of metrics, "
            f"got {type(values).__name__}; or pass them as keywords: log(loss=0.5)"
        )
    merged = dict(values)
    merged.update(metrics)
    if "step" in values:
        raise TypeError("vestige.log: give the step as the keyword step=, not in the dict")
    return merged


def _step_number(step: Any) -> float:
    v = _as_number(step)
    if v is None or v != v:
        raise TypeError(
            f"vestige.log: step must be a number (int or float), got {type(step).__name__}"
        )
    return v


def _number(key: str, v: Any) -> float:
    out = _as_number(v)
    if out is None:
        raise TypeError(
            f"vestige.log: metric {key!r} must be a number (int, float, bool, numpy scalar "
            f"or one-element tensor), got {type(v).__name__}"
        )
    return out


def _as_number(v: Any) -> float | None:
    """A float for numbers and number-like scalars; None for anything else (str, None...)."""
    if isinstance(v, (float, int)):  # bool is an int; numpy.float64 is a float
        return float(v)
    if isinstance(v, (str, bytes, bytearray)) or v is None:
        return None
    item = getattr(v, "item", None)  # numpy scalars and 0-d arrays, torch tensors
    if item is not None:
        size = getattr(v, "size", 1)
        if callable(size):  # torch: .size() is a shape; .numel() the count
            numel = getattr(v, "numel", None)
            size = numel() if callable(numel) else 1
        if size != 1:
            return None
        try:
            v = item()
        except Exception:
            return None
        if isinstance(v, (float, int)):
            return float(v)
        return None
    conv = getattr(type(v), "__float__", None)
    if conv is not None:  # Decimal, Fraction
        try:
            return float(v)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _register(key: Any) -> list[Any]:
    """A key's record in this process, [key id, last step] (new keys are journaled before
    their first point)."""
    if type(key) is not str:
        raise TypeError(f"vestige.log: metric names must be str, got {type(key).__name__}")
    with _register_lock:
        record = _keys.get(key)
        if record is not None:
            return record
        if _State.live is None or _State.pid != os.getpid():
            _open_journal()
        record = [len(_names), _carried.pop(key, -1)]
        _names.append(key)
        _keys[key] = record  # last: another thread may use the record from here on
        return record


def _open_journal() -> None:
    """Find (or start) the run and open this process's journal files."""
    live = session.live_dir()  # attaches to, or starts, the run; None when disabled
    _State.pid = os.getpid()
    _State.names_written = 0
    if live is None:
        _State.failed = True
        _State.live = ""
        return
    d = os.path.join(live, "metrics")
    try:
        os.makedirs(d, exist_ok=True)
        base = os.path.join(d, str(_State.pid))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        _State.keys_fd = os.open(base + ".keys", flags, 0o644)
        _State.bin_fd = os.open(base + ".bin", flags, 0o644)
        header = {"journal": JOURNAL_VERSION, "pid": _State.pid, "record": RECORD}
        _write_all(_State.keys_fd, (_json_obj(header) + "\n").encode())
    except OSError as e:
        _State.live = live
        _fail(f"metrics journal could not be opened ({e.strerror or e})")
        return
    _State.live = live
    _State.failed = False
    if not _State.at_exit:
        import atexit

        _State.at_exit = True
        atexit.register(flush)  # registered after an in-process run's seal: runs before it
    if not _State.flusher:
        _State.flusher = True
        _thread.start_new_thread(_flusher, ())
    _flush_on_terminate()


def _flush_on_terminate() -> None:
    """In a multiprocessing worker, flush before dying of SIGTERM: `with Pool() as p:` ends
    with terminate(), which would otherwise lose each worker's last second of points. Only
    where SIGTERM has its default action, so the worker still dies of it."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    try:
        import signal

        if mp.parent_process() is None:
            return
        _wrap_exit()  # forked workers leave through os._exit, even if the parent never logged
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)  # ValueError outside the main thread
    except (ValueError, OSError, AttributeError):
        pass


def _on_sigterm(signum: int, _frame: Any) -> None:
    if _State.flushing == _thread.get_ident():
        _State.pending_signal = signum  # interrupted our own flush: die when it is done
        return
    try:
        flush(timeout=1.0)
    finally:
        _die_of(signum)


def _die_of(signum: int) -> None:
    """Die of the signal, as the process would have without vestige's handler."""
    import signal

    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _flusher() -> None:
    block_signals()
    while not _State.failed:
        time.sleep(FLUSH_INTERVAL)
        if _buf:
            flush()


def _fail(message: str) -> None:
    """Stop journaling in this process after one warning; the user's program goes on."""
    _State.failed = True
    del _buf[:]
    try:
        sys.stderr.write(f"vestige: warning: {message}; later points are not recorded\n")
    except Exception:
        pass


def _write_all(fd: int, data: bytes | array) -> None:
    view = memoryview(data).cast("B")  # os.write counts bytes, an array's view items
    while view:
        view = view[os.write(fd, view) :]


def _json_str(s: str) -> str:
    from json import dumps

    return dumps(s, ensure_ascii=True)


def _json_obj(d: dict[str, Any]) -> str:
    from json import dumps

    return dumps(d, separators=(",", ":"))


def reset_for_run() -> None:
    """Forget the journal (a run ended in this process; the next point starts afresh)."""
    with _flush_lock, _register_lock:
        for fd in (_State.keys_fd, _State.bin_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        _State.keys_fd = _State.bin_fd = -1
        _State.live = None
        _State.failed = False
        _State.names_written = 0
        _State.points = 0
        _keys.clear()
        _names.clear()
        _carried.clear()
        del _buf[:]


session.register_buffer(flush, reset_for_run)  # vestige.flush(), and the end of a run


def _after_fork_child() -> None:
    """A forked child: the parent's buffered points are the parent's to write."""
    del _buf[:]
    _State.flusher = False
    _State.names_written = 0
    _State.keys_fd = _State.bin_fd = -1
    if _State.live:
        _State.live = None  # reopened for this pid at the next new key, or below
        _State.pid = 0
        for name, record in _keys.items():  # new key ids, the same automatic steps
            _carried[name] = record[1]
        _keys.clear()
        _names.clear()
    global _flush_lock, _register_lock
    _flush_lock = _thread.allocate_lock()
    _register_lock = _thread.allocate_lock()
    _wrap_exit()


_real_exit = os._exit


def _exit_flushing(*args: Any, **kwargs: Any) -> Any:
    try:
        flush(timeout=5.0)
    except BaseException:
        pass
    return _real_exit(*args, **kwargs)


def _wrap_exit() -> None:
    """Forked workers leave through os._exit (no atexit): flush first."""
    global _real_exit
    if os._exit is not _exit_flushing:
        _real_exit = os._exit
        os._exit = _exit_flushing


os.register_at_fork(after_in_child=_after_fork_child)
