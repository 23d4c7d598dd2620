"""The in-code API: param, tag, note, keep, start/finish, and the run they belong to.

Under `vestige run` (VESTIGE_LIVE and VESTIGE_RUN_ID in the environment) every call
attaches to that run and journals to `live/<run-id>/api/<pid>.jsonl`; the runner seals
it. In a plain `python script.py` or IPython, the first call starts a run of this process
(`vestige.recording.inprocess`), sealed at interpreter exit or by `finish()`.

Nothing here raises into the user's program for vestige's own failures (a full disk, a
read-only store): those become one warning and the call does nothing. Mistakes in the
call itself (a metric that is not a number, an object `keep` cannot store) are the
user's to see, as TypeError or ValueError naming the culprit.
"""

from __future__ import annotations

from vestige.api import session
from vestige.api.session import event, live_dir, run_id
from vestige.fastpath import warn

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["check_tag", "finish", "flush", "keep", "note", "param", "params", "run",
           "run_id", "start", "tag"]  # fmt: skip


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
    event("param", values=_flatten(values))


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
    event("tag", tags=list(tags))


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
    event("note", text=text)


# -- keep ------------------------------------------------------------------------------------


def keep(obj: Any, name: str | None = None, *, allow_pickle: bool = False) -> dict[str, Any] | None:
    """Keep an object or a path as a named artefact of this run; return its record.

    Figures become PNG + SVG, DataFrames parquet (CSV without pyarrow), arrays .npy,
    JSON-able values .json, bytes and str as they are, a path (file or folder) its bytes.
    Anything else is refused unless `allow_pickle=True`.
    """
    from vestige.api import keeping

    item = keeping.prepare(obj, name, allow_pickle=allow_pickle)  # user errors raise here
    live = live_dir()
    if live is None:
        return None
    try:
        record = keeping.store(item, live)
    except OSError as e:
        warn(f"vestige.keep({item.name!r}) could not store it ({e.strerror or e})")
        return None
    event("keep", **record)
    return record


def keep_staged(data: bytes, name: str) -> dict[str, Any] | None:
    """Keep bytes vestige made itself (the executed notebook) as an artefact of this run:
    staged in the live directory, stored by the seal through the run's whole redaction
    pass (a secret learnt from any channel of the run is scrubbed from it, and no copy
    scrubbed with less is ever stored). Returns its record, without a hash yet."""
    from vestige.api import keeping

    live = live_dir(start=False)
    if live is None:
        return None
    try:
        record = keeping.stage(data, keeping.check_name(name), live)
    except OSError as e:
        warn(f"vestige could not keep {name!r} ({e.strerror or e})")
        return None
    event("keep", **record)
    return record


# -- run control -----------------------------------------------------------------------------


def flush() -> None:
    """Write buffered metric points to the run's journal now (blocking)."""
    from vestige.api import log  # (registers the metrics journal with the session)

    log.flush()


def start() -> str | None:
    """Start recording now (a plain script or notebook); return the run id.

    Under `vestige run`, or when a run is already going, this only returns its id.
    """
    session.retry()
    return run_id()


def finish(status: str | None = None) -> None:
    """Seal the run this process started (in-process runs only; under `vestige run` the
    runner seals when the command exits, so this only flushes). `status` is ok, failed or
    interrupted; by default it is learnt from how the process is exiting."""
    if status not in (None, "ok", "failed", "interrupted"):
        raise ValueError(
            f"vestige.finish: status must be ok, failed or interrupted, not {status!r}"
        )
    session.finish(status)


class run:  # a class used as `with vestige.run(): ...`, named like a function
    """`with vestige.run(): ...`: a run around a block (failed if the block raises)."""

    def __init__(self) -> None:
        self.id: str | None = None

    def __enter__(self) -> run:
        if session.inprocess_run() is not None:
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
