"""The in-code API: param, tag, note, keep, start/finish, and the run they belong to.

Under `vestige run` (VESTIGE_LIVE and VESTIGE_RUN_ID in the environment) every call
attaches to that run and journals to `live/<run-id>/api/<pid>.jsonl`; the runner seals
it. In a plain `python script.py` or IPython, the first call starts a run of this process
(`vestige.inprocess`), sealed at interpreter exit or by `finish()`.

Nothing here raises into the user's program for vestige's own failures (a full disk, a
read-only store): those become one warning and the call does nothing. Mistakes in the
call itself (a metric that is not a number, an object `keep` cannot store) are the
user's to see, as TypeError or ValueError naming the culprit.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

    from vestige.inprocess import InProcessRun


class _Session:
    """The run this process records into."""

    live: str | None = None
    run_id: str | None = None
    pid = 0
    inprocess: InProcessRun | None = None
    api_fd = -1
    disabled = False
    warned = False


_lock = _thread.allocate_lock()


def _after_fork_child() -> None:
    global _lock
    _lock = _thread.allocate_lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_child)


def _warn(message: str) -> None:
    try:
        sys.stderr.write(f"vestige: warning: {message}\n")
        sys.stderr.flush()
    except Exception:
        pass


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
            from vestige.inprocess import InProcessRun

            run = InProcessRun.begin()
        except Exception as e:  # never break the user's program
            from vestige.runner import _describe

            _warn(f"not recording ({_describe(e)})")
            s.disabled = True
            return None
        s.inprocess = run
        s.live, s.run_id = run.live, run.run_id
    if "IPython" in sys.modules:  # a notebook or IPython session: its cells too
        from vestige.notebook.kernel import record_session

        record_session()
    return s.live


def run_id() -> str | None:
    """The id of the run this process records into (starting one if needed)."""
    live_dir()
    return _Session.run_id


def _event(kind: str, /, **fields: Any) -> bool:
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
            default=_jsonable,
        )
        data = (line + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(s.api_fd, view) :]
        return True
    except OSError as e:
        if not s.warned:
            s.warned = True
            _warn(f"could not record vestige.{kind} ({e.strerror or e})")
        return False


def _jsonable(value: Any) -> Any:
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


# -- params, tags, notes -------------------------------------------------------------------


def param(**values: Any) -> None:
    """Record parameters of this run: `vestige.param(lr=0.1, model="vit")`."""
    params(values)


def params(values: Any) -> None:
    """Record a mapping (or an argparse Namespace) of parameters: `vestige.params(vars(args))`."""
    if not isinstance(values, dict):
        ns = getattr(values, "__dict__", None)
        if not isinstance(ns, dict):
            raise TypeError(
                f"vestige.params: expected a dict or a Namespace, got {type(values).__name__}"
            )
        values = ns
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise TypeError(f"vestige.params: parameter names must be str, got {bad[0]!r}")
    _event("param", values=_flatten(values))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted names (`{"opt": {"lr": 1}}` -> `opt.lr`), as --where uses."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def tag(*tags: str) -> None:
    """Tag this run: `vestige.tag("baseline")`; `vestige ls --where 'tag = baseline'` finds it."""
    for t in tags:
        check_tag(t)
    _event("tag", tags=list(tags))


def check_tag(t: Any) -> None:
    """A tag is a non-empty str without whitespace or commas (so it can be typed and listed)."""
    if not isinstance(t, str):
        raise TypeError(f"vestige.tag: tags are str, got {type(t).__name__}")
    if not t or any(c.isspace() for c in t) or "," in t:
        raise ValueError(f"vestige.tag: {t!r} is not a tag; use a word without spaces or commas")


def note(text: str) -> None:
    """Attach a free-text note to this run."""
    if not isinstance(text, str):
        raise TypeError(f"vestige.note: a note is str, got {type(text).__name__}")
    _event("note", text=text)


# -- keep ------------------------------------------------------------------------------------


def keep(obj: Any, name: str | None = None, *, allow_pickle: bool = False) -> dict[str, Any] | None:
    """Keep an object or a path as a named artefact of this run; return its record.

    Figures become PNG + SVG, DataFrames parquet (CSV without pyarrow), arrays .npy,
    JSON-able values .json, bytes and str as they are, a path (file or folder) its bytes.
    Anything else is refused unless `allow_pickle=True`.
    """
    from vestige import keeping

    item = keeping.prepare(obj, name, allow_pickle=allow_pickle)  # user errors raise here
    live = live_dir()
    if live is None:
        return None
    try:
        record = keeping.store(item, live)
    except OSError as e:
        _warn(f"vestige.keep({item.name!r}) could not store it ({e.strerror or e})")
        return None
    _event("keep", **record)
    return record


# -- run control -----------------------------------------------------------------------------


def flush() -> None:
    """Write buffered metric points to the run's journal now (blocking)."""
    from vestige import _log

    _log.flush()


def start() -> str | None:
    """Start recording now (a plain script or notebook); return the run id.

    Under `vestige run`, or when a run is already going, this only returns its id.
    """
    return run_id()


def finish(status: str | None = None) -> None:
    """Seal the run this process started (in-process runs only; under `vestige run` the
    runner seals when the command exits, so this only flushes). `status` is ok, failed or
    interrupted; by default it is learnt from how the process is exiting."""
    if status not in (None, "ok", "failed", "interrupted"):
        raise ValueError(
            f"vestige.finish: status must be ok, failed or interrupted, not {status!r}"
        )
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
    from vestige import _log

    _log.reset_for_run()
    run.end(status)


class run:  # a class used as `with vestige.run(): ...`, named like a function
    """`with vestige.run(): ...`: a run around a block (failed if the block raises)."""

    def __init__(self) -> None:
        self.id: str | None = None

    def __enter__(self) -> run:
        if _Session.inprocess is not None and _Session.pid == os.getpid():
            finish()  # a run started implicitly before: close it, the block gets its own
        self.id = start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            finish("ok")
        elif issubclass(exc_type, KeyboardInterrupt):
            finish("interrupted")
        else:
            finish("failed")
