"""Records: what the store holds, frozen, with canonical to_dict/from_dict.

The run manifest is the one truth about a run (docs/format.md, "Run manifest"); the
index only mirrors it. Field names are the user's words: inputs, outputs, params.
"""

from __future__ import annotations

import shlex

from vestige._record import Factory, Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


MANIFEST_FORMAT = 1
STATUSES = ("running", "ok", "failed", "interrupted")


class FileRecord(Record):
    """A file a run read or wrote: where, which bytes, whether the store kept them.

    `confirmed` is False for an output seen only by the before/after scan of the tree
    (not opened for writing by an instrumented Python process): another program of the
    run wrote it, or a concurrent process did.
    """

    path: str
    hash: str | None
    size: int
    kept: bool
    mode: int | None = None
    confirmed: bool = True
    note: str | None = None
    figure: str | None = None  # for a savefig target: which figure it was

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
    vestige_version: str = ""
    manifest: str | None = None  # the hash of the sealed manifest (not part of it)

    @property
    def command_line(self) -> str:
        """The command as one shell-quoted line."""
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
            vestige_version=d.get("vestige_version", ""),
            manifest=manifest,
        )
