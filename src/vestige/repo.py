"""Repo: a store opened for use, with its config and its index; what every verb takes.

It resolves run references and reads runs, their files, logs, metrics and environment,
keeping the store (the truth) and the index (a cache) consistent where both change.
Opening one rebuilds a lost or damaged index, and opens a store it cannot write (a
read-only mount, an archive) read-only (`readonly`); sealing the runs a killed vestige
left behind is the run path's job (`vestige.recording.recover.recover`), done by the
shells as they open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from vestige.config import Config, load_config
from vestige.errors import (
    AmbiguousRun,
    CorruptObject,
    FileNotInRun,
    NotKept,
    PathMissing,
    RunNotFound,
    StoreLocked,
)
from vestige.index.db import Index
from vestige.records import FileRecord, Record, Run
from vestige.store.local import Store

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

    from vestige.errors import Freed
    from vestige.store.metrics import Series


class Maker(Record):
    """A run that wrote (or read) a file's exact bytes, as `which` reports it."""

    run_id: str
    seq: int
    path: str
    started: float
    command: str
    status: str
    confirmed: bool
    kept: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Maker:
        """From an index row of `files.makers_of` / `files.readers_of`."""
        keys = row.keys()
        return cls(
            run_id=row["id"],
            seq=row["seq"],
            path=row["file_path"],
            started=row["started"],
            command=row["command"],
            status=row["status"],
            confirmed=bool(row["confirmed"]) if "confirmed" in keys else True,
            kept=bool(row["kept"]) if "kept" in keys else True,
        )


def one_per_run(makers: list[Maker]) -> list[Maker]:
    """Each run once, at its first place in `makers` (a run that wrote the bytes and kept or
    displayed them too is one run, shown by the file it wrote: makers_of's order)."""
    seen: set[str] = set()
    out = []
    for m in makers:
        if m.run_id not in seen:
            seen.add(m.run_id)
            out.append(m)
    return out


class Repo:
    """A store, its config and its index."""

    def __init__(self, store: Store, config: Config, index: Index) -> None:
        self.store = store
        self.config = config
        self.index = index
        #: the store cannot be written: nothing may be (commands that must write refuse)
        self.readonly = index.readonly

    @classmethod
    def open(cls, cwd: Path | None = None, create: bool = False, notice: bool = False) -> Repo:
        """Open (or create) the store for `cwd`; rebuild its index if it was lost."""
        store, created = Store.open(cwd, create=create)
        if created and notice:
            import sys

            print(f"vestige: created a store at {store.path}", file=sys.stderr)
        return cls._open(store)

    @classmethod
    def open_at(cls, store: str, root: str) -> Repo:
        """Open a store already found (and checked) by store.layout.open_store."""
        return cls._open(Store.at(store, root))

    @classmethod
    def _open(cls, store: Store) -> Repo:
        """Open the index (read-only if the store cannot be written); rebuild it from the
        store if it was lost or damaged, saying so on stderr when it was damaged."""
        config = load_config(store.path, store.root)
        try:
            index, fresh = Index.open(store.index_path, timeout=config.index_timeout,
                                      store=store.path, readonly=not writable(store))  # fmt: skip
        except sqlite3.OperationalError as e:
            raise StoreLocked(f"cannot open the index {store.index_path}: {e}") from None
        repo = cls(store, config, index)
        if fresh and any(True for _ in store.refs):
            skipped: list[tuple[str, str]] = []
            count = repo.reindex(skipped)
            if index.damage is not None:
                _say_rebuilt(repo, count, skipped)
        return repo

    def close(self) -> None:
        self.index.close()

    # -- runs -----------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """A run id from `42`, `#42`, `@last`, `-1`, `-2`, a name (`vestige name`) that
        one run has, or an id prefix."""
        text = ref.strip()
        if text in ("@last", "last", "@latest"):
            found = self.index.runs.nth_latest(1)
            if found is None:
                raise RunNotFound("there are no runs yet; record one with `vestige run`")
            return found
        if text.startswith("-") and text[1:].isdigit() and int(text[1:]) > 0:
            found = self.index.runs.nth_latest(int(text[1:]))
            if found is None:
                raise RunNotFound(f"there is no run {text}: the store has fewer runs")
            return found
        number = text[1:] if text.startswith("#") else text
        if number.isdigit() and len(number) < 10:
            found = self.index.runs.id_by_seq(int(number))
            if found is None:
                raise RunNotFound(f"no run #{number}; see `vestige ls`")
            return found
        named = self.index.runs.ids_by_name(text)
        if len(named) == 1:
            return str(named[0][0])
        if named:
            shown = ", ".join(f"#{seq}" for _id, seq in named[:5])
            raise AmbiguousRun(f"{ref!r} names several runs ({shown}); use a number")
        prefix = text.upper()
        if len(prefix) >= 4:
            matches = self.index.runs.ids_by_prefix(prefix)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(m[:10] for m in matches[:5])
                raise AmbiguousRun(f"{ref!r} matches several runs ({shown}); give more characters")
        raise RunNotFound(
            f"no run matches {ref!r}; use a number (42), @last, -1, a name or an id prefix"
        )

    def run(self, ref: str) -> Run:
        """The run a reference names: its sealed manifest, or its start record while running."""
        run_id = self.resolve(ref)
        digest = self.store.refs.get(run_id)
        if digest is not None:
            run = Run.from_dict(self.store.objects.read_json(digest), manifest=digest)
            from vestige.store.arrivals import local_seq

            run = local_seq(self.store, [run])[0]  # a pulled run: its number here
        else:
            row = self.index.runs.row(run_id)
            if row is None:
                raise RunNotFound(f"run {run_id} is gone from the index; run `vestige reindex`")
            run = _run_from_row(row)
        from vestige.store.annotations import Annotations

        return Annotations(self.store).apply(run)

    def runs(
        self, where: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Run summaries, newest first, as `ls --json` prints them."""
        compiled = None
        if where:
            from vestige.index.where import compile_where

            compiled = compile_where(where)
        rows = self.index.runs.rows(compiled, status=status, limit=limit)
        ids = [r["id"] for r in rows]
        params = self.index.runs.params_of(ids)
        tags = self.index.runs.tags_of(ids)
        metrics = self.index.runs.metrics_of(ids)
        names = self.index.runs.names_of(ids)  # `vestige name`
        out = []
        for row in rows:
            record = summary(
                row, params.get(row["id"], {}), tags.get(row["id"], []), metrics.get(row["id"], {})
            )
            record["name"] = names.get(row["id"])
            out.append(record)
        return out

    # -- metrics, tags, notes -------------------------------------------------------------

    def metrics(self, run: Run) -> dict[str, Series]:
        """Every metric series of a run: from its sealed object, or its live journals."""
        from vestige.store import metrics

        if run.status == "running":
            return metrics.read_journals(self.store.live_dir(run.id))
        record = run.metrics or {}
        digest = record.get("object")
        if not digest:
            return {}
        self.store.objects.verify(digest)
        with self.store.objects.open(digest) as f:
            return metrics.MetricsObject(f).all()

    def annotate(
        self, ref: str, add: Sequence[str] = (), remove: Sequence[str] = (),
        note: str | None = None,
    ) -> Run:  # fmt: skip
        """Add/remove tags or add a note to a run (sealed or running); the run as it is now."""
        from vestige.store.annotations import Annotations

        run_id = self.resolve(ref)
        if note is not None or add or remove:  # typed in the shell: redacted like vestige.note's
            from vestige.capture.redact import Redactor

            redactor = Redactor(self.store.secret_key())
            redactor.redact_env(os.environ)  # learns this user's secret values
            note = redactor.scrub_text(note) if note is not None else None
            add, remove = [redactor.scrub_text(t) for t in add], [
                redactor.scrub_text(t) for t in remove]  # fmt: skip
        Annotations(self.store).update(run_id, add=add, remove=remove, note=note)
        run = self.run(run_id)
        self.index.record.tags(run_id, run.tags)
        if note is not None:
            self.index.record.notes(run_id, run.notes)  # `--where 'note contains ...'`
        return run

    def name(self, ref: str, name: str | None) -> tuple[str, str | None]:
        """Name a run (a reference as good as its number while one run has it), or, with
        None, take its name away: (run id, the name it had)."""
        from vestige.store.annotations import Annotations, check_name

        run_id = self.resolve(ref)
        if name is not None:
            from vestige.capture.redact import Redactor

            redactor = Redactor(self.store.secret_key())  # typed in the shell, like a tag
            redactor.redact_env(os.environ)
            name = check_name(redactor.scrub_text(check_name(name)))
        annotations = Annotations(self.store)
        before = annotations.get(run_id)["name"]
        annotations.update(run_id, name=name, clear_name=name is None)
        self.index.record.name(run_id, name)
        return run_id, before

    def run_name(self, run_id: str) -> str | None:
        """The run's name (`vestige name`), from its annotations: the store's truth."""
        from vestige.store.annotations import Annotations

        return Annotations(self.store).get(run_id)["name"]

    # -- files ----------------------------------------------------------------------------

    def find_file(self, run: Run, path: str) -> tuple[str, FileRecord | None, str]:
        """(role, record, hash) of `path` in a run: an output, an input, or a code file."""
        candidates = path_forms(path, Path(run.root), Path(run.root) / run.cwd)
        for role, files in (("output", run.outputs), ("input", run.inputs)):
            for f in files:
                if f.path in candidates:
                    if f.hash is None:
                        raise NotKept(f"{path}: run #{run.seq} saw it but could not hash it")
                    return role, f, f.hash
        found = _artefact_file(run, path)
        if found is not None:
            return "artefact", found, found.hash or ""
        tree = (run.code or {}).get("tree")
        if tree:
            from vestige.store.tree import read_tree

            for entry in read_tree(self.store.objects, tree):
                if entry.path in candidates:
                    rec = FileRecord(entry.path, entry.hash, entry.size, entry.kept)
                    return "code", rec, entry.hash
        for m in (run.code or {}).get("modules", []):
            if m["path"] in candidates:
                return "code", FileRecord(m["path"], m["hash"], m["size"], m["kept"]), m["hash"]
        raise FileNotInRun(
            f"run #{run.seq} neither read, wrote nor snapshotted {path!r}; "
            f"see `vestige show {run.seq}`"
        )

    def open_file(self, ref: str, path: str) -> Iterator[bytes]:
        """The kept bytes of a file of a run, in chunks."""
        run = self.run(ref)
        _role, record, digest = self.find_file(run, path)
        if record is not None and not record.kept:
            why = record.note or "it was over the size limit"
            raise NotKept(f"{path}: run #{run.seq} recorded its hash but kept no copy ({why})")
        if not self.store.objects.available(digest):
            freed = self.freed_error(path, digest)  # gc freed it: say how to re-make it
            if freed is not None:
                raise freed
            raise NotKept(f"{path}: the object {digest[:12]} of run #{run.seq} is missing from "
                          "the store; run `vestige fsck`")  # fmt: skip
        self.store.objects.verify(digest)  # before the first byte: never hand out bad bytes
        with self.store.objects.open(digest) as f:
            while chunk := f.read(1 << 20):
                yield chunk

    def output_log(self, ref: str, stream: str = "stdout") -> bytes:
        run = self.run(ref)
        info = run.stdout if stream == "stdout" else run.stderr
        if run.status == "running":
            live = self.store.live_dir(run.id) / stream
            with contextlib.suppress(FileNotFoundError):
                return live.read_bytes()
        if not info:
            return b""
        return self.store.objects.read_bytes(info["hash"], verify=True)

    def which(self, path: Path) -> tuple[str, list[Maker], list[Maker]]:
        """(hash, runs that wrote these bytes, runs that read them) for a file on disk."""
        if not path.is_file():
            raise PathMissing(f"no such file: {path}")
        from vestige.store.hashing import hash_file

        digest = hash_file(path)
        makers = [Maker.from_row(r) for r in self.index.files.makers_of(digest)]
        readers = [Maker.from_row(r) for r in self.index.files.readers_of(digest)]
        return digest, dedupe(makers), dedupe(readers)

    def producer(
        self, digest: str, before: float | None = None, copies: bool = False,
        path: str | None = None,
    ) -> sqlite3.Row | None:  # fmt: skip
        """The run that made these bytes: the latest maker started before `before`
        (confirmed writers preferred over scan-only ones), or None. A run that read the same
        bytes too only copied them (`cp a b`): it is not where they came from, unless
        `copies`, or unless it wrote them at `path` (it put that file there)."""
        rows = [r for r in self.index.files.makers_of(digest)
                if before is None or r["started"] < before]  # fmt: skip
        here = [r for r in rows if r["file_path"] == path] if path is not None else []
        if here:
            rows = here
        elif not copies and rows:
            copiers = {r["id"] for r in self.index.files.readers_of(digest)}
            rows = [r for r in rows if r["id"] not in copiers]
        if not rows:
            return None
        # a rerun reproduces bytes an earlier run made: that run is where they came from
        rows = [r for r in rows if not r["rerun_of"]] or rows
        confirmed = [r for r in rows if r["confirmed"]]
        return max(confirmed or rows, key=lambda r: (r["started"], r["seq"]))

    def environment(self, run: Run) -> dict[str, Any] | None:
        if not run.env:
            return None
        try:
            env = self.store.objects.read_json(run.env)
        except CorruptObject:
            return None
        return env if isinstance(env, dict) else None

    # -- freed bytes (vestige gc) ---------------------------------------------------------

    def freed_error(self, path: str, digest: str) -> Freed | None:
        """The error naming how to get freed bytes back, or None when they were not freed."""
        import time

        from vestige.errors import Freed
        from vestige.store.freed import freed_record

        record = freed_record(self.store, digest)
        if record is None:
            return None
        seq = self.index.runs.seq_of(record["run"])
        day = time.strftime("%Y-%m-%d", time.localtime(record["t"]))
        ref = str(seq) if seq else record["run"]
        return Freed(f"{path}: freed by gc on {day}; re-make it with `vestige rerun {ref}` "
                     f"(it makes {record['path']})")  # fmt: skip

    def unfree(self, digests: list[str]) -> list[str]:
        """Drop the freed records of objects that are back in the store (a rerun re-made
        them), in the store then in the index; return their hashes."""
        from vestige.store.freed import freed_dir, freed_record

        objects = self.store.objects
        back = [d for d in digests if freed_record(self.store, d) and objects.exists(d)]
        for digest in back:
            (freed_dir(self.store) / digest).unlink(missing_ok=True)
        if back:
            self.index.marks.set_freed(drop=back)
        return back

    # -- the index ------------------------------------------------------------------------

    def reindex(self, skipped: list[tuple[str, str]] | None = None) -> int:
        """Rebuild the index from the store alone; the number of runs indexed. The sealed
        runs left out (ref or manifest unreadable) go to `skipped` as (run id, why)."""
        from vestige.index.rebuild import rebuild

        return rebuild(self.store, self.index, skipped)


def writable(store: Store) -> bool:
    """Whether this process may write the store: not on a read-only mount nor someone
    else's archive (its folder; and its index file, when that can be read: one that
    cannot is set aside and rebuilt)."""
    if not os.access(store.path, os.W_OK):
        return False
    index = store.index_path
    return not os.access(index, os.R_OK) or os.access(index, os.W_OK)


def _say_rebuilt(repo: Repo, count: int, skipped: list[tuple[str, str]]) -> None:
    """One line on stderr: the index file was damaged and was rebuilt from the store."""
    import sys

    where = ("the store is read-only: indexed in memory for this command" if repo.readonly
             else "rebuilt it from the store")  # fmt: skip
    line = (f"vestige: the index {repo.store.index_path} {repo.index.damage}; {where} "
            f"({count} run{'s' if count != 1 else ''})")  # fmt: skip
    if skipped:
        line += (f"; {len(skipped)} run{'s' if len(skipped) != 1 else ''} left out, "
                 "unreadable (see `vestige reindex`)")  # fmt: skip
    print(line, file=sys.stderr)


def _artefact_file(run: Run, path: str) -> FileRecord | None:
    """A kept artefact's file by its file name (`loss-curve.png`), or by the artefact's
    name when that names one file; the latest artefact of that name wins."""
    want = path.strip("/")
    for a in reversed(run.artefacts):
        files = a.get("files") or []
        for f in files:
            if f.get("path") == want:
                return _artefact_record(run, f)
        if a.get("name") == want and files:
            if len(files) > 1:
                names = ", ".join(str(f.get("path")) for f in files)
                raise FileNotInRun(f"artefact {want!r} of run #{run.seq} has several files: "
                                   f"{names}; name one")  # fmt: skip
            return _artefact_record(run, files[0])
    return None


def _artefact_record(run: Run, f: dict[str, Any]) -> FileRecord:
    if f.get("hash") is None:
        raise NotKept(f"{f.get('path')}: run #{run.seq} kept no copy ({f.get('note') or '?'})")
    kept = bool(f.get("kept", True))
    return FileRecord(str(f["path"]), f["hash"], int(f.get("size") or 0), kept, note=f.get("note"))


def dedupe(makers: list[Maker]) -> list[Maker]:
    """Each (run, path) once, in order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for m in makers:
        if (m.run_id, m.path) not in seen:
            seen.add((m.run_id, m.path))
            out.append(m)
    return out


def path_forms(path: str, root: Path, cwd: Path) -> set[str]:
    """The ways a user may name a run's file: relative to the cwd, the root, or absolute."""
    forms = {path, path.lstrip("./") if path.startswith("./") else path}
    here = Path.cwd()
    for base in (here, cwd, root):
        full = (base / path).resolve() if not os.path.isabs(path) else Path(path)
        forms.add(str(full))
        with contextlib.suppress(ValueError):
            forms.add(full.relative_to(root).as_posix())
    return forms


def summary(
    row: sqlite3.Row,
    params: dict[str, Any],
    tags: list[str] | None = None,
    metrics: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The stable `ls --json` record of a run (docs/cli.md)."""
    import json

    from vestige.store.metrics import to_json_number

    return {
        "id": row["id"],
        "seq": row["seq"],
        "status": row["status"],
        "command": json.loads(row["argv"]),
        "cwd": row["cwd"],
        "started": row["started"],
        "ended": row["ended"],
        "duration": row["duration"],
        "exit_code": row["exit_code"],
        "git_commit": row["git_commit"],
        "params": params,
        "metrics": {k: to_json_number(v) for k, v in (metrics or {}).items()},
        "tags": tags or [],
        "manifest": row["manifest"],
        "parent": row["parent"],
        "adopted": row["adopted"],
    }


def _run_from_row(row: sqlite3.Row) -> Run:
    import json

    return Run(
        id=row["id"],
        seq=row["seq"],
        status=row["status"],
        command=json.loads(row["argv"]),
        cwd=row["cwd"] or "",
        root=row["root"] or "",
        started=row["started"],
        host=row["host"] or "",
        pid=row["pid"],
        ended=row["ended"],
        duration=row["duration"],
        exit_code=row["exit_code"],
        parent=row["parent"],
    )
