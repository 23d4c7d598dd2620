"""Writing the index: a run's rows (runs, params, files, metrics, tags, notes, blobs)
from its manifest (with its annotations applied), in one transaction; its name (an
annotation only, kept across seals and rebuilt by reindex); or its `running` row, which
gives it its sequence number: above every number the index or the store (a sealed run's
manifest, a live run's run.json) already gives a run, so a number is never given twice,
even by an index that lost runs."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from vestige.errors import CorruptObject
from vestige.records import Run
from vestige.store.objects import escape_surrogates

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


_json_str = json.encoder.encode_basestring  # json.dumps(a str, ensure_ascii=False)


def _param_columns(value: Any) -> tuple[str, str | None, float | None]:
    """(value_json, value_text, value_num) for a param value, for --where comparisons."""
    kind = type(value)
    if kind is str:  # (what json.dumps gives, without its per-call set-up: reindex, 80,000)
        as_json = escape_surrogates(_json_str(value))
    elif kind is int:
        as_json = int.__repr__(value)
    elif kind is float and math.isfinite(value):
        as_json = float.__repr__(value)
    else:
        as_json = escape_surrogates(json.dumps(value, sort_keys=True, ensure_ascii=False))
    if isinstance(value, bool):
        return as_json, "true" if value else "false", 1.0 if value else 0.0
    if isinstance(value, int | float):
        num = float(value)
        return as_json, as_json, num if math.isfinite(num) else None
    if isinstance(value, str):
        try:
            num = float(value)
            return as_json, value, num if math.isfinite(num) else None
        except ValueError:
            return as_json, escape_surrogates(value), None
    if value is None:
        return as_json, None, None
    return as_json, as_json, None


def _real(x: Any) -> float | None:
    """A summary number for SQLite: NaN (or its JSON string) is NULL, infinities stay."""
    if isinstance(x, str):
        x = float(x)
    if x is None or x != x:
        return None
    return float(x)


_INSERT = {
    "runs": "INSERT OR REPLACE INTO runs (id, seq, status, exit_code, command, argv, cwd, root,"
    " started, ended, duration, manifest, git_commit, host, pid, parent, rerun_of, adopted)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "params": "INSERT INTO params (run_id, key, value_json, value_text, value_num)"
    " VALUES (?, ?, ?, ?, ?)",
    "files": "INSERT INTO files (run_id, role, path, hash, size, kept, confirmed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "tags": "INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)",
    "notes": "INSERT INTO notes (run_id, t, text) VALUES (?, ?, ?)",
    "metrics": "INSERT INTO metrics (run_id, key, last, min, max, count) VALUES (?, ?, ?, ?, ?, ?)",
    "blobs": "INSERT INTO blobs (run_id, kind, hash, size) VALUES (?, ?, ?, ?)",
}


def _run_row(run: Run, seq: int) -> tuple[Any, ...]:
    """The run's row of the runs table."""
    git = (run.code or {}).get("git") or {}
    return (run.id, seq, run.status, run.exit_code, escape_surrogates(run.command_line),
            json.dumps(run.command), escape_surrogates(run.cwd), escape_surrogates(run.root),
            run.started, run.ended, run.duration, run.manifest, git.get("commit"), run.host,
            run.pid, run.parent, run.rerun_of, _adopted(run))  # fmt: skip


def _rows(run: Run) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
    """Every row a run's manifest gives, table by table (the runs row first)."""
    rid = run.id
    yield "runs", [_run_row(run, run.seq)]
    yield "params", [(rid, escape_surrogates(k), *_param_columns(v)) for k, v in run.params.items()]
    files: list[tuple[Any, ...]] = []
    for role, recorded in (("input", run.inputs), ("output", run.outputs)):
        for f in recorded:
            files.append((rid, role, escape_surrogates(f.path), f.hash, f.size, int(f.kept),
                          int(f.confirmed)))  # fmt: skip
    code = run.code or {}
    for m in code.get("modules", []):
        files.append((rid, "module", escape_surrogates(m["path"]), m.get("hash"), m.get("size"),
                      1, 1))  # fmt: skip
    for path, digest in (code.get("imported_hashes") or {}).items():
        files.append((rid, "code", escape_surrogates(path), digest, None, 1, 1))
    for a in run.artefacts:
        for f in a.get("files") or ():
            kept = int(f.get("kept", True) and f.get("hash") is not None)
            files.append((rid, "artefact", escape_surrogates(f["path"]), f.get("hash"),
                          f.get("size"), kept, 1))  # fmt: skip
    yield "files", files
    yield "tags", [(rid, escape_surrogates(t)) for t in run.tags]
    yield "notes", _note_rows(rid, run.notes)
    keys = (run.metrics or {}).get("keys") or {}
    yield "metrics", [(rid, k, _real(m.get("last")), _real(m.get("min")), _real(m.get("max")),
                       m.get("count")) for k, m in keys.items() if isinstance(m, dict)]  # fmt: skip
    # blobs: the objects a run names besides its files rows (the manifest, the code tree
    # with the snapshot's size, logs, metrics, env, the notebook's cells), for gc and du.
    stdout, stderr = run.stdout or {}, run.stderr or {}
    blobs = [(rid, "manifest", run.manifest, None),
             (rid, "code", code.get("tree"), code.get("size")),
             (rid, "log", stdout.get("hash"), stdout.get("size")),
             (rid, "log", stderr.get("hash"), stderr.get("size")),
             (rid, "metrics", (run.metrics or {}).get("object"), None), (rid, "env", run.env, None),
             (rid, "notebook", (run.notebook or {}).get("cells"), None)]  # fmt: skip
    yield "blobs", [r for r in blobs if r[2]]


def _note_rows(run_id: str, notes: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows of the notes table, oldest first: what `--where 'note contains ...'` searches."""
    rows = []
    for n in notes:
        text = n.get("text") if isinstance(n, dict) else None
        if isinstance(text, str):
            t = n.get("t")
            when = float(t) if isinstance(t, int | float) and math.isfinite(t) else None
            rows.append((run_id, when, escape_surrogates(text)))
    return rows


class Recorder:
    """Writes runs into the index (`index.record.run(run)`); readers are the other groups."""

    def __init__(self, conn: sqlite3.Connection, store: Path | None = None) -> None:
        self.conn = conn
        self.store = store

    def begin(self, run: Run) -> int:
        """Insert a running run and give it the next sequence number, atomically: above the
        index's highest and above those of the store's runs the index does not hold."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # (a rebuild cannot empty the table meanwhile)
            (top,) = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()
            seq = max(int(top), self._given()) + 1
            self._insert_row(run, seq)
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('seq_given', ?)", (str(seq),)
            )
        return seq

    def _given(self) -> int:
        """The highest number given before, the index's rows aside: `meta.seq_given`, kept
        by every begin() and by reindex, and the live runs' (a reindex drops their rows).
        An index without it (new, set aside and rebuilt, of an older vestige) asks the
        store once: every sealed run's number; after that no begin() lists refs/runs,
        which would cost every run's start O(runs) (~10 ms at 20,000)."""
        if self.store is None:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'seq_given'").fetchone()
        try:
            given = int(row[0]) if row is not None else None
        except (TypeError, ValueError):
            given = None
        if given is None:
            return unindexed_seq(self.conn, self.store)
        return max(given, unindexed_seq(self.conn, self.store, folders=("live",)))

    def _insert_row(self, run: Run, seq: int) -> None:
        self.conn.execute(_INSERT["runs"], _run_row(run, seq))

    def run(self, run: Run) -> None:
        """Write (or overwrite) every row of a run from its manifest."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self._record(run)

    def runs(self, runs: Iterable[Run], within: bool = False, fresh: bool = False) -> None:
        """Bulk form of run(), one transaction (used by reindex and sealing); `within`:
        inside the caller's (reindex's). `fresh`: the tables hold none of these runs (a
        reindex has just emptied them), so no row is deleted first and each table is
        written by one statement per 1,000 runs: ~4x less CPU than run() per run."""
        if not within:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.runs(runs, within=True, fresh=fresh)
            return
        if not fresh:
            for run in runs:
                self._record(run)
            return
        batch: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _INSERT}
        for n, run in enumerate(runs, 1):
            for table, rows in _rows(run):
                batch[table].extend(rows)
            if n % 1000 == 0:
                self._write(batch)
        self._write(batch)

    def _write(self, batch: dict[str, list[tuple[Any, ...]]]) -> None:
        """Insert the rows gathered for each table, then empty the lists."""
        for table, rows in batch.items():
            if rows:
                self.conn.executemany(_INSERT[table], rows)
                rows.clear()

    def _record(self, run: Run) -> None:
        for table in ("params", "files", "metrics", "tags", "notes", "blobs"):
            self.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run.id,))
        for table, rows in _rows(run):
            self.conn.executemany(_INSERT[table], rows)

    def tags(self, run_id: str, tags: Iterable[str], replace: bool = True) -> None:
        """The run's tag rows (inside the caller's transaction when replace=False)."""
        if replace:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("DELETE FROM tags WHERE run_id = ?", (run_id,))
                self.tags(run_id, tags, replace=False)
            return
        self.conn.executemany(_INSERT["tags"], [(run_id, escape_surrogates(t)) for t in tags])

    def notes(self, run_id: str, notes: Iterable[dict[str, Any]], replace: bool = True) -> None:
        """The run's note rows, oldest first (inside the caller's transaction when
        replace=False): what `--where 'note contains ...'` searches."""
        if replace:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("DELETE FROM notes WHERE run_id = ?", (run_id,))
                self.notes(run_id, notes, replace=False)
            return
        self.conn.executemany(_INSERT["notes"], _note_rows(run_id, notes))

    def name(self, run_id: str, name: str | None) -> None:
        """Set (or, with None, remove) the run's name row."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM names WHERE run_id = ?", (run_id,))
            if name is not None:
                self.conn.execute(
                    "INSERT INTO names (run_id, name) VALUES (?, ?)",
                    (run_id, escape_surrogates(name)),
                )

    def names(self, names: dict[str, str], within: bool = False) -> None:
        """Replace every name row with `names` ({run id: name}): reindex, inside its
        transaction when `within`."""
        if not within:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.names(names, within=True)
            return
        self.conn.execute("DELETE FROM names")
        self.conn.executemany(
            "INSERT INTO names (run_id, name) VALUES (?, ?)",
            [(run_id, escape_surrogates(name)) for run_id, name in names.items()],
        )


def _adopted(run: Run) -> str | None:
    """The tool a run was adopted from (`vestige adopt`), None for a run vestige recorded."""
    adopted = run.adopted
    tool = adopted.get("tool") if isinstance(adopted, dict) else None
    return tool if isinstance(tool, str) and tool else None


def unindexed_seq(
    conn: sqlite3.Connection, store: Path, folders: tuple[str, ...] = ("refs/runs", "live")
) -> int:
    """The highest sequence number of a run the store holds and the index does not (a ref
    whose manifest says it, a live directory whose run.json does), 0 if none: an index
    rebuilt, replaced or rebuilding must not make begin() give a number again. One listing
    of each folder and one read of the indexed ids among them (inside begin()'s write
    transaction); a manifest is read only for a run the index lacks."""
    names: set[str] = set()
    for folder in folders:
        try:
            names.update(n for n in os.listdir(store / folder) if not n.startswith("."))
        except OSError:
            pass
    if not names:
        return 0
    if len(names) > 500:
        known = {row[0] for row in conn.execute("SELECT id FROM runs")}
    else:
        marks = ",".join("?" * len(names))
        known = {r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({marks})", [*names])}
    top = 0
    for run_id in names - known:
        top = max(top, _stored_seq(store, run_id))
    return top


def _stored_seq(store: Path, run_id: str) -> int:
    """The sequence number the store gives a run (its live run.json, else its sealed
    manifest), 0 when neither says (not numbered yet, or unreadable)."""
    from vestige.store.objects import ObjectStore
    from vestige.store.refs import Refs

    try:
        with open(store / "live" / run_id / "run.json", "rb") as f:
            seq = json.loads(f.read()).get("seq")
        if isinstance(seq, int):
            return seq
    except (OSError, ValueError, AttributeError):
        pass
    digest = Refs(store).get(run_id)
    if digest is None:
        return 0
    try:
        seq = ObjectStore(store).read_json(digest).get("seq")
    except (CorruptObject, OSError, ValueError, AttributeError):  # reindex names it
        return 0
    return seq if isinstance(seq, int) else 0
