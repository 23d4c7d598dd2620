"""Records: what the store holds, frozen, with canonical to_dict/from_dict.

The run manifest is the one truth about a run (docs/format.md, "Run manifest"); the
index only mirrors it. Field names are the user's words: inputs, outputs, params.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# -- Record: what dataclasses gives, in 50 lines -------------------------------------------
#
# Importing dataclasses costs ~8 ms on the CI machine (it imports inspect), and records are
# built on every run's path (fastpath.py). Frozen by default; a subclass with
# `_frozen = False` may be changed after creation. A mutable default is `Factory(list)`.


class Factory:
    """A default made anew for each record (like dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Record:
    """Fields are the class's public annotations, in order; defaults are class values."""

    _fields: tuple[str, ...] = ()
    _field_set: frozenset[str] = frozenset()
    _defaults: dict[str, Any] = {}  # noqa: RUF012 - per class, set by __init_subclass__
    _frozen = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[str] = []
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063 (no inspect)
                if name.startswith("_"):
                    continue
                if name not in fields:
                    fields.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields, cls._defaults = tuple(fields), defaults
        cls._field_set = frozenset(fields)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        fields = cls._fields
        if args:
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__} takes {len(fields)} fields, got {len(args)}")
            values = dict(zip(fields, args, strict=False))
            for name, value in kwargs.items():
                if name in values:
                    raise TypeError(f"{cls.__name__}: unexpected or repeated field {name!r}")
                values[name] = value
        else:
            values = kwargs  # (a new dict at each call)
        if not cls._field_set.issuperset(values):  # (a set test in C: reindex builds 80,000)
            name = next(n for n in values if n not in cls._field_set)
            raise TypeError(f"{cls.__name__}: unexpected or repeated field {name!r}")
        if len(values) < len(fields):
            for name in fields:
                if name not in values:
                    if name not in cls._defaults:
                        raise TypeError(f"{cls.__name__}: missing field {name!r}")
                    default = cls._defaults[name]
                    values[name] = default.make() if isinstance(default, Factory) else default
        object.__setattr__(self, "__dict__", values)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self).__name__, *map(_hashable, self.__dict__.values())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed."""
        return type(self)(**{**self.__dict__, **changes})


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, set):
        return frozenset(value)
    return value


MANIFEST_FORMAT = 1
STATUSES = ("running", "ok", "failed", "interrupted")


def safe_relative(path: object) -> bool:
    """Whether `path` is a relative POSIX path that stays inside any folder it is joined to:
    a non-empty string, no NUL, no empty, `.` or `..` component. Every writer of recorded
    paths (restore, export, rerun) and fsck ask this one question (docs/format.md, M3):
    a manifest is only data, and one crafted or tampered must not climb out."""
    if not isinstance(path, str) or not path or "\0" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def safe_recorded(path: object) -> bool:
    """Whether `path` is safe as an input, output or module path: safe_relative (a file in
    the project), or absolute (a file outside it) and safe_relative after its leading `/`,
    so that it stays inside a folder too (`restore --to DIR` puts it under DIR/outside/)."""
    if isinstance(path, str) and path.startswith("/"):
        return safe_relative(path.lstrip("/"))
    return safe_relative(path)


class FileRecord(Record):
    """A file a run read or wrote: where, which bytes, whether the store kept them.

    `confirmed` is False for an output seen only by the folder scan (no process of the
    run was seen writing it: a program nothing traced, or a concurrent process); it is
    also `ambiguous` when another run was going in the same tree at the time, so the file
    may be that run's (neither run's processes were seen writing it).
    """

    path: str
    hash: str | None
    size: int
    kept: bool
    mode: int | None = None
    confirmed: bool = True
    note: str | None = None
    figure: str | None = None  # for a savefig target: which figure it was
    ambiguous: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "hash": self.hash,
            "size": self.size,
            "kept": self.kept,
        }
        if self.mode is not None:
            d["mode"] = self.mode
        if not self.confirmed:
            d["confirmed"] = False
        if self.note:
            d["note"] = self.note
        if self.figure:
            d["figure"] = self.figure
        if self.ambiguous:
            d["ambiguous"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRecord:
        return cls(
            path=d["path"],
            hash=d.get("hash"),
            size=int(d.get("size") or 0),
            kept=bool(d.get("kept")),
            mode=d.get("mode"),
            confirmed=bool(d.get("confirmed", True)),
            note=d.get("note"),
            figure=d.get("figure"),
            ambiguous=bool(d.get("ambiguous", False)),
        )


class Run(Record):
    """Everything recorded about one run; a running run has only the start fields."""

    id: str
    seq: int
    status: str
    command: list[str]
    cwd: str
    root: str
    started: float
    host: str = ""
    pid: int | None = None
    ended: float | None = None
    duration: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    code: dict[str, Any] = Factory(dict)
    params: dict[str, Any] = Factory(dict)
    inputs: tuple[FileRecord, ...] = ()
    outputs: tuple[FileRecord, ...] = ()
    stdout: dict[str, Any] | None = None
    stderr: dict[str, Any] | None = None
    env: str | None = None
    resources: dict[str, Any] = Factory(dict)
    warnings: tuple[str, ...] = ()
    parent: str | None = None
    rerun_of: str | None = None
    #: named artefacts (`vestige.keep`, figures kept at exit): name, kind, files, t, pid
    artefacts: tuple[dict[str, Any], ...] = ()
    #: the sealed metrics object and a summary per key (count, last, min, max...)
    metrics: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    notes: tuple[dict[str, Any], ...] = ()  # {"t": time, "text": ...}
    #: a sweep's parent: its spec and, per combination, values, child run, status
    sweep: dict[str, Any] | None = None
    #: a notebook or IPython session: path, the cells object, counts, kernel, snapshots
    notebook: dict[str, Any] | None = None
    #: a run of another tool adopted by `vestige adopt`: tool, source, id, name,
    #: experiment, user, extra, fingerprint, at (docs/format.md); None for vestige's own
    adopted: dict[str, Any] | None = None
    vestige_version: str = ""
    manifest: str | None = None  # the hash of the sealed manifest (not part of it)

    @property
    def command_line(self) -> str:
        """The command as one shell-quoted line."""
        import shlex  # (not at the top: records are on `vestige run`'s start path)

        return shlex.join(self.command)

    def to_dict(self) -> dict[str, Any]:
        """The manifest record (without `manifest`, which is its own hash)."""
        return {
            "type": "run",
            "format": MANIFEST_FORMAT,
            "id": self.id,
            "seq": self.seq,
            "status": self.status,
            "command": list(self.command),
            "cwd": self.cwd,
            "root": self.root,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "code": self.code,
            "params": self.params,
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [f.to_dict() for f in self.outputs],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "env": self.env,
            "resources": self.resources,
            "warnings": list(self.warnings),
            "parent": self.parent,
            "rerun_of": self.rerun_of,
            "artefacts": list(self.artefacts),
            "metrics": self.metrics,
            "tags": list(self.tags),
            "notes": list(self.notes),
            "sweep": self.sweep,
            "notebook": self.notebook,
            "adopted": self.adopted,
            "vestige_version": self.vestige_version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], manifest: str | None = None) -> Run:
        return cls(
            id=d["id"],
            seq=int(d["seq"]),
            status=d["status"],
            command=list(d["command"]),
            cwd=d.get("cwd", ""),
            root=d.get("root", ""),
            started=float(d["started"]),
            host=d.get("host", ""),
            pid=d.get("pid"),
            ended=d.get("ended"),
            duration=d.get("duration"),
            exit_code=d.get("exit_code"),
            signal=d.get("signal"),
            code=d.get("code") or {},
            params=d.get("params") or {},
            inputs=tuple(FileRecord.from_dict(f) for f in d.get("inputs", [])),
            outputs=tuple(FileRecord.from_dict(f) for f in d.get("outputs", [])),
            stdout=d.get("stdout"),
            stderr=d.get("stderr"),
            env=d.get("env"),
            resources=d.get("resources") or {},
            warnings=tuple(d.get("warnings", [])),
            parent=d.get("parent"),
            rerun_of=d.get("rerun_of"),
            artefacts=tuple(d.get("artefacts") or ()),
            metrics=d.get("metrics"),
            tags=tuple(d.get("tags") or ()),
            notes=tuple(d.get("notes") or ()),
            sweep=d.get("sweep"),
            notebook=d.get("notebook"),
            adopted=d.get("adopted"),
            vestige_version=d.get("vestige_version", ""),
            manifest=manifest,
        )
