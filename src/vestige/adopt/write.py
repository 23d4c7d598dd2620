"""Writing adopted runs: each ForeignRun a reader found becomes a sealed vestige run, in
the store's write order (objects, manifests, refs, index rows; docs/format.md).

A foreign run's vestige id is a function of the tool and its foreign id (a ULID whose time
is the run's start and whose other 80 bits come from the hash of the two), so adopting the
same run twice, from two copies of one `mlruns/` or in two stores later merged by `pull`,
names one run. A run already adopted whose record has not changed adds nothing; one that
changed (a run still going when it was first adopted) gets a new manifest under the same id
and number.
"""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vestige._version import __version__
from vestige.adopt.foreign import ForeignFile, ForeignRun
from vestige.adopt.gitcode import snapshot_commit, snapshot_files
from vestige.capture.redact import Redactor
from vestige.ids import ulid
from vestige.index.arrivals import reserve
from vestige.records import FileRecord, Record, Run
from vestige.repo import Repo
from vestige.store.annotations import Annotations
from vestige.store.hashing import hash_bytes
from vestige.store.layout import sync_filesystem
from vestige.store.metrics import Series, encode, summary_json
from vestige.store.objects import canonical_json

if TYPE_CHECKING:
    from collections.abc import Callable

#: runs written per batch: one durability barrier and one index transaction each
BATCH = 200


class Adopted(Record):
    """What happened to one foreign run: `action` is new, updated or unchanged."""

    tool: str
    foreign_id: str
    id: str
    seq: int | None
    action: str
    files: int
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}


def run_id_for(run: ForeignRun) -> str:
    """The vestige id of a foreign run: the same for the same tool and foreign id."""
    seed = bytes.fromhex(hash_bytes(f"{run.tool}\0{run.foreign_id}".encode()))[:10]
    return ulid(max(0, int(run.started * 1000)), seed)


def fingerprint(run: ForeignRun) -> str:
    """A hash of everything a reader said about a run, its files by name, size and mtime
    (not by content: comparing an unchanged run costs no read of its files)."""
    left = ("files", "code", "source")  # (the source as named: `multirun/` or `.` alike)
    record = {name: getattr(run, name) for name in run._fields if name not in left}
    record["files"] = [(f.name, *_stamp(f.source)) for f in run.files]
    code = dict(run.code)
    code["files"] = [(f.name, *_stamp(f.source)) for f in code.get("files") or ()]
    record["code"] = code
    record["stdout"] = _stamp(run.stdout) if run.stdout else None
    return hash_bytes(canonical_json(record))


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def keeps(adopted: Run, run: ForeignRun, mark: str | None = None) -> bool:
    """Whether the run adopted before stands against this record of it: the same record
    (fingerprint); one that holds less in any way (fewer files or metric points, an
    earlier end: an older copy of the same store, a copy that lost its artifacts); or one
    that holds no more (a fresh checkout of the same files: new mtimes only). Only a record
    that holds more and nothing less (a run that went on) replaces it."""
    if (adopted.adopted or {}).get("fingerprint") == (mark or fingerprint(run)):
        return True
    counts = (len(run.files), sum(len(series) for series in run.metrics.values()),
              run.ended or 0.0)  # fmt: skip
    had = (len(adopted.outputs), (adopted.metrics or {}).get("points") or 0,
           adopted.ended or 0.0)  # fmt: skip
    less = any(now < before for now, before in zip(counts, had, strict=True))
    more = any(now > before for now, before in zip(counts, had, strict=True))
    return less or not more


def plan(runs: list[ForeignRun], existing: Callable[[str], Run | None]) -> list[Adopted]:
    """What adopting `runs` would do, given how to find a run already in the store (`lambda
    run_id: None` where there is no store yet), writing nothing (`--dry-run`)."""
    out = []
    for run in runs:
        run_id = run_id_for(run)
        before = existing(run_id)
        if before is None:
            action, seq = "new", None
        else:
            action, seq = ("unchanged" if keeps(before, run) else "updated"), before.seq
        size = sum(max(0, _stamp(f.source)[0]) for f in run.files)
        out.append(Adopted(run.tool, run.foreign_id, run_id, seq, action, len(run.files), size))
    return out


class Writer:
    """Adopts foreign runs into one store."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.store = repo.store
        self.objects = repo.store.objects
        self.root = Path(repo.store.root)
        self.max_code = repo.config.keep_code_max_size
        self.redactor = Redactor(repo.store.secret_key())
        self._commits: dict[str, dict[str, Any] | None] = {}  # commit -> code record
        self._said: dict[str, list[str]] = {}  # commit -> what taking its snapshot said

    def plan(self, runs: list[ForeignRun]) -> list[Adopted]:
        """What adopting `runs` would do, writing nothing (`--dry-run`)."""
        return plan(runs, self._existing)

    def adopt(self, runs: list[ForeignRun], on_run: Any = None) -> list[Adopted]:
        """Adopt `runs` (in batches of BATCH); `on_run(Adopted)` is told of each as it is
        decided, for a progress display."""
        out: list[Adopted] = []
        for start in range(0, len(runs), BATCH):
            out += self._batch(runs[start : start + BATCH], on_run)
        return out

    # -- one batch ---------------------------------------------------------------------

    def _batch(self, runs: list[ForeignRun], on_run: Any) -> list[Adopted]:
        todo: list[tuple[ForeignRun, str, Run | None, str]] = []
        done: list[Adopted] = []
        for run in runs:
            run_id = run_id_for(run)
            existing = self._existing(run_id)
            mark = fingerprint(run)
            if existing is not None and keeps(existing, run, mark):
                done.append(Adopted(run.tool, run.foreign_id, run_id, existing.seq, "unchanged",
                                    len(run.files), 0))  # fmt: skip
                if on_run is not None:
                    on_run(done[-1])
                continue
            todo.append((run, run_id, existing, mark))
        fresh = sum(1 for _r, _i, existing, _m in todo if existing is None)
        seq = reserve(self.repo.index, fresh) if fresh else 0
        built: list[Run] = []
        for run, run_id, existing, mark in todo:
            if existing is not None:
                number = existing.seq
            else:
                number, seq = seq, seq + 1
            record, size = self._build(run, run_id, number, mark)
            built.append(record)
            action = "new" if existing is None else "updated"
            done.append(Adopted(run.tool, run.foreign_id, run_id, number, action,
                                len(run.files), size))  # fmt: skip
            if on_run is not None:
                on_run(done[-1])
        if built:
            self._commit(built)
        return done

    def _existing(self, run_id: str) -> Run | None:
        digest = self.store.refs.get(run_id)
        if digest is None:
            return None
        try:
            return Run.from_dict(self.objects.read_json(digest), manifest=digest)
        except Exception:  # an unreadable manifest: adopt again over it
            return None

    def _build(self, run: ForeignRun, run_id: str, seq: int, mark: str) -> tuple[Run, int]:
        """The run's record, its files, logs, metrics and code stored (not yet named)."""
        outputs = []
        size = 0
        for f in run.files:
            path = Path(f.source)
            digest, n = self.objects.put_file(path)
            st = path.stat()
            outputs.append(FileRecord(path=self._output_path(f), hash=digest, size=n, kept=True,
                                      mode=st.st_mode & 0o7777))  # fmt: skip
            size += n
        stdout = None
        if run.stdout:
            data = self.redactor.scrub_bytes(Path(run.stdout).read_bytes())
            stdout = {"hash": self.objects.put_bytes(data, sync=False), "size": len(data),
                      "lines": data.count(b"\n")}  # fmt: skip
        adopted = {
            "tool": run.tool,
            "source": run.source,
            "id": run.foreign_id,
            "name": run.name,
            "experiment": run.experiment,
            "user": run.user,
            "extra": run.extra,
            "fingerprint": mark,
            "at": round(time.time(), 3),
        }
        ended = run.ended
        said = run.extra.get("warnings")  # (what a reader could not read of the run)
        warnings = [str(w) for w in said] if isinstance(said, list) else []
        code = self._code(run, warnings)
        record = Run(
            id=run_id,
            seq=seq,
            status=run.status,
            command=list(run.command),
            cwd=self._relative(run.cwd),
            root=str(self.root),
            started=run.started,
            host=run.host,
            ended=ended,
            duration=None if ended is None else round(max(0.0, ended - run.started), 6),
            exit_code=run.exit_code,
            code=code,
            warnings=tuple(warnings),
            params=dict(run.params),
            outputs=tuple(outputs),
            stdout=stdout,
            metrics=self._metrics(run),
            tags=tuple(dict.fromkeys(run.tags)),
            notes=tuple({"t": run.started, "text": text} for text in run.notes),
            adopted=adopted,
            vestige_version=__version__,
        )
        return Run.from_dict(self.redactor.scrub_manifest(record.to_dict())), size

    def _output_path(self, f: ForeignFile) -> str:
        """An output's path as manifests keep it: relative to the project root when the
        file lives in the project, else the name the reader gave (an artifact path)."""
        source = Path(os.path.abspath(f.source))
        return str(source.relative_to(self.root)) if source.is_relative_to(self.root) else f.name

    def _relative(self, cwd: str) -> str:
        """A working folder as manifests keep it: relative to the project root (`.` for
        the root itself or unknown), absolute when outside the project."""
        if not cwd:
            return "."
        try:
            return os.path.relpath(cwd, self.root) if Path(cwd).is_relative_to(self.root) else cwd
        except ValueError:
            return cwd

    def _code(self, run: ForeignRun, warnings: list[str]) -> dict[str, Any]:
        """The code record: a snapshot from git at the run's commit when this project's git
        has it, else of the code files the tool saved, else only what the tool named."""
        commit = str(run.code.get("commit") or "")
        code: dict[str, Any] | None = None
        if commit:
            if commit not in self._commits:
                said: list[str] = []
                self._commits[commit] = snapshot_commit(self.root, commit, self.objects,
                                                        self.max_code, said)  # fmt: skip
                self._said[commit] = said
            code = self._commits[commit]
            warnings += self._said[commit]
        saved = run.code.get("files") or ()
        if code is None and saved:
            code = snapshot_files([(f.name, f.source) for f in saved], self.objects,
                                  self.max_code)  # fmt: skip
        code = dict(code or {})
        if commit and not code.get("git"):
            code["git"] = {"commit": commit, "branch": None, "dirty": None}
        program = run.code.get("program")
        if program:
            code["program"] = program
        if run.code.get("repo"):
            code["repo"] = run.code["repo"]
        code.setdefault("modules", [])
        code["imported"] = [program] if program and code.get("tree") else []
        code["imported_hashes"] = self._hashes_of(code) if code["imported"] else {}
        return code

    def _hashes_of(self, code: dict[str, Any]) -> dict[str, str]:
        """{path: hash} of the imported files that the snapshot holds."""
        from vestige.store.tree import read_tree

        wanted = set(code["imported"])
        return {e.path: e.hash for e in read_tree(self.objects, code["tree"]) if e.path in wanted}

    def _metrics(self, run: ForeignRun) -> dict[str, Any] | None:
        """The metrics object and record of the run's full series (as sealing makes it)."""
        if not run.metrics:
            return None
        series = []
        for name in sorted(run.metrics):
            points = sorted(run.metrics[name], key=lambda p: (p[0], p[1]))
            series.append(Series(self.redactor.scrub_text(name),
                                 array("d", (float(p[0]) for p in points)),
                                 array("d", (float(p[1]) for p in points)),
                                 array("d", (float(p[2]) for p in points))))  # fmt: skip
        digest = self.objects.put_bytes(encode(series), sync=False)
        return {
            "object": digest,
            "points": sum(len(s) for s in series),
            "keys": {s.name: summary_json(s) for s in series},
        }

    def _commit(self, built: list[Run]) -> None:
        """Manifests, one barrier, refs, one barrier, the index rows in one transaction."""
        digests = [self.objects.put_json(run.to_dict(), sync=False) for run in built]
        sync_filesystem(str(self.store.path))
        for run, digest in zip(built, digests, strict=True):
            self.store.refs.set(run.id, digest, sync=False)
        sync_filesystem(str(self.store.path))
        annotations = Annotations(self.store)
        sealed = [annotations.apply(Run.from_dict(run.to_dict(), manifest=digest))
                  for run, digest in zip(built, digests, strict=True)]  # fmt: skip
        self.repo.index.record.runs(sealed)
