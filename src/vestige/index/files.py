"""The files and blobs rows of the index: which runs made, read, ran or kept which bytes
(`which`, lineage, `affected`, diff, gc), and the caches keyed by an object's hash (its
size for du, its perceptual hash for `which --similar`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence

from vestige.index.query import chunks, row_cursor
from vestige.store.objects import escape_surrogates

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

#: The files rows that tie a run to a code unit (see debt.py): a project file the run
#: imported (role 'code', the entry script included) or a project notebook it read.
UNIT_ROWS = (
    "(f.role = 'code' OR (f.role = 'input' AND f.path LIKE '%.ipynb' AND f.path NOT LIKE '/%'))"
)


def _escaped(paths: Iterable[str]) -> list[str]:
    """Paths as the index holds them: a non-UTF-8 name in its escaped form (index/record.py)."""
    return [escape_surrogates(p) for p in paths]


class Files:
    """Queries over the `files` rows (a run's inputs, outputs, artefacts, code and modules,
    by path and hash), the `blobs` rows, and the per-object caches."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- who made or read these bytes ------------------------------------------------------

    def makers_of(self, digest: str) -> list[sqlite3.Row]:
        """Runs that wrote these bytes: confirmed writers first, then by start time; within
        a run, the file it wrote before an artefact it kept or displayed (a notebook cell's
        `cell-7/output-1.png` is a copy of the figure the cell saved)."""
        cur = row_cursor(self.conn)
        return cur.execute(
            "SELECT r.*, f.path AS file_path, f.confirmed AS confirmed, f.kept AS kept"
            " FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE f.hash = ? AND f.role IN ('output', 'artefact')"
            " ORDER BY f.confirmed DESC, r.started, r.seq, f.role = 'artefact'",
            (digest,),
        ).fetchall()

    def readers_of(self, digest: str) -> list[sqlite3.Row]:
        """Runs that read these bytes, oldest first."""
        cur = row_cursor(self.conn)
        return cur.execute(
            "SELECT r.*, f.path AS file_path FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE f.hash = ? AND f.role IN ('input', 'module') ORDER BY r.started, r.seq",
            (digest,),
        ).fetchall()

    def was_made(self, digest: str) -> bool:
        """Whether some recorded run wrote (or kept) these bytes."""
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE hash = ? AND role IN ('output', 'artefact') LIMIT 1",
            (digest,),
        ).fetchone()
        return row is not None

    def written_at(self, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (root-relative path, hash) pairs some recorded run wrote: that
        path, with those bytes, as an output. One query whatever the number of pairs (the
        paths go in as one JSON array, looked up one by one in the files_code index: ~1 us
        each): the code snapshot asks it on every run's path."""
        if not pairs:
            return set()
        import json

        wanted = set(pairs)
        paths = list(dict.fromkeys(p for p, _h in pairs))
        try:
            "\n".join(paths).encode("utf-8")
            named = None  # (the usual case: no name to escape)
        except UnicodeEncodeError:
            named = {escape_surrogates(p): p for p in paths}
            paths = list(named)
        rows = self.conn.execute(
            "SELECT f.path, f.hash FROM json_each(?) j CROSS JOIN files f"  # CROSS: this order
            " WHERE f.role = 'output' AND f.path = j.value",
            (json.dumps(paths),),
        ).fetchall()
        if named is not None:
            rows = [(named[p], h) for p, h in rows]
        return {pair for pair in rows if pair in wanted}

    def made_by(self, run_ids: Sequence[str]) -> list[str]:
        """The hashes these runs wrote or kept."""
        out: set[str] = set()
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            out.update(h for (h,) in self.conn.execute(
                "SELECT DISTINCT hash FROM files WHERE role IN ('output', 'artefact')"
                f" AND hash IS NOT NULL AND run_id IN ({marks})", chunk))  # fmt: skip
        return sorted(out)

    # -- one run's files --------------------------------------------------------------------

    def inputs_of(self, run_id: str) -> list[tuple[str, str | None]]:
        """(path, hash) of the files a run read, in path order."""
        return [
            (row[0], row[1])
            for row in self.conn.execute(
                "SELECT path, hash FROM files WHERE run_id = ? AND role = 'input' ORDER BY path",
                (run_id,),
            )
        ]

    def outputs_of(self, run_id: str) -> list[tuple[str, str]]:
        """(path, hash) of the hashed files a run wrote or kept, in path order."""
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT path, hash FROM files WHERE run_id = ? AND role IN ('output', 'artefact')"
                " AND hash IS NOT NULL ORDER BY path",
                (run_id,),
            )
        ]

    def was_read(self, run_id: str, path: str, digest: str) -> bool:
        """Whether the run read this very file with these bytes."""
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE run_id = ? AND role = 'input' AND path = ? AND hash = ?",
            (run_id, escape_surrogates(path), digest),
        ).fetchone()
        return row is not None

    def unit_paths_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """{run id: the code units it used}."""
        out: dict[str, list[str]] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for rid, path in self.conn.execute(
                f"SELECT f.run_id, f.path FROM files f WHERE f.run_id IN ({marks})"
                f" AND {UNIT_ROWS} ORDER BY f.path",
                chunk,
            ):
                out.setdefault(rid, []).append(path)
        return out

    def children_outputs(self, parent: str) -> list[tuple[str | None, str]]:
        """(run root, path) of the confirmed outputs of the runs whose parent is `parent`
        (the children of a sweep)."""
        return self.conn.execute(
            "SELECT r.root, f.path FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE r.parent = ? AND f.role = 'output' AND f.confirmed = 1",
            (parent,),
        ).fetchall()

    def written_between(
        self, root: str, start: float, end: float, exclude: str
    ) -> list[tuple[str, str, str | None]]:
        """(run id, run root, path) of the confirmed outputs of the runs in the tree
        `root` that were running at some moment between `start` and `end` (seconds),
        but `exclude`: what runs overlapping one were seen writing."""
        return self.conn.execute(
            "SELECT r.id, r.root, f.path FROM files f JOIN runs r ON r.id = f.run_id"
            " WHERE r.root = ? AND r.ended >= ? AND r.started <= ? AND r.id != ?"
            " AND f.role = 'output' AND f.confirmed = 1",
            (root, start, end, exclude),
        ).fetchall()

    # -- by path or hash (`affected`, `which --path`, `which --similar`) --------------------

    def hashes_in_run(self, run_id: str, roles: Sequence[str], paths: Collection[str]
                      ) -> set[str]:  # fmt: skip
        """The hashes a run recorded, in these roles, for a file at one of these paths."""
        marks = ",".join("?" * len(roles))
        pmarks = ",".join("?" * len(paths))
        rows = self.conn.execute(
            f"SELECT DISTINCT hash FROM files WHERE run_id = ? AND role IN ({marks})"
            f" AND path IN ({pmarks}) AND hash IS NOT NULL",
            (run_id, *roles, *_escaped(paths)),
        ).fetchall()
        return {r[0] for r in rows}

    def hashes_by_prefix(self, roles: Sequence[str], paths: Collection[str], prefix: str
                         ) -> set[str]:  # fmt: skip
        """The hashes starting with `prefix` that any run recorded, in these roles, for a
        file at one of these paths."""
        marks = ",".join("?" * len(roles))
        pmarks = ",".join("?" * len(paths))
        rows = self.conn.execute(
            f"SELECT DISTINCT hash FROM files WHERE role IN ({marks}) AND path IN ({pmarks})"
            " AND hash LIKE ?",
            (*roles, *_escaped(paths), prefix + "%"),
        ).fetchall()
        return {r[0] for r in rows}

    def runs_with(self, roles: Sequence[str], hashes: Collection[str],
                  paths: Collection[str] | None = None) -> list[tuple[str, str]]:  # fmt: skip
        """(run id, path) of the files rows in these roles with one of these hashes (and,
        when given, at one of these paths), by the run's start time."""
        marks = ",".join("?" * len(roles))
        hmarks = ",".join("?" * len(hashes))
        sql = (f"SELECT f.run_id, f.path FROM files f JOIN runs r ON r.id = f.run_id"
               f" WHERE f.role IN ({marks}) AND f.hash IN ({hmarks})")  # fmt: skip
        args: list[Any] = [*roles, *hashes]
        if paths:
            sql += f" AND f.path IN ({','.join('?' * len(paths))})"
            args += _escaped(paths)
        return [(r[0], r[1]) for r in self.conn.execute(sql + " ORDER BY r.started", args)]

    def history_of(self, paths: Sequence[str]) -> list[tuple[Any, ...]]:
        """(run id, seq, started, argv JSON, status, role, path, hash, size) of every files
        row at these paths, oldest run first."""
        marks = ",".join("?" * len(paths))
        return self.conn.execute(
            "SELECT r.id, r.seq, r.started, r.argv, r.status, f.role, f.path, f.hash, f.size"
            f" FROM files f JOIN runs r ON r.id = f.run_id WHERE f.path IN ({marks})"
            " ORDER BY r.started, r.seq, f.role",
            _escaped(paths),
        ).fetchall()

    def kept_named(self, roles: Sequence[str], suffixes: Sequence[str]) -> dict[str, str]:
        """{hash: path} of the kept files in these roles whose name ends (in lower case)
        with one of `suffixes`."""
        likes = " OR ".join("lower(path) LIKE ?" for _ in suffixes)
        marks = ",".join("?" * len(roles))
        rows = self.conn.execute(
            f"SELECT hash, path FROM files WHERE kept = 1 AND hash IS NOT NULL"
            f" AND role IN ({marks}) AND ({likes})",
            (*roles, *(f"%{ext}" for ext in suffixes)),
        ).fetchall()
        return {digest: name for digest, name in rows}

    # -- every row (gc, du) -------------------------------------------------------------------

    def hashed_rows(self) -> list[tuple[str, str, str, str, int, int]]:
        """(run id, role, path, hash, size or 0, kept) of every hashed files row but the
        code ones (a code file's bytes are in the run's snapshot tree)."""
        return self.conn.execute(
            "SELECT run_id, role, path, hash, COALESCE(size, 0), kept FROM files"
            " WHERE hash IS NOT NULL AND role != 'code'"
        ).fetchall()

    def blob_rows(self) -> list[tuple[str, str, str, int | None]]:
        """(run id, kind, hash, size) of every blobs row: the objects a run names besides
        its files (manifest, code tree, logs, metrics, env, notebook cells)."""
        return self.conn.execute("SELECT run_id, kind, hash, size FROM blobs").fetchall()

    # -- caches keyed by an object's hash (an entry never goes stale) ----------------------

    def sizes(self) -> dict[str, int]:
        """{hash: size} of the objects in the `objsize` cache."""
        return dict(self.conn.execute("SELECT hash, size FROM objsize"))

    def put_sizes(self, rows: Iterable[tuple[str, int]]) -> None:
        """Cache (hash, size) rows of objects."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT OR REPLACE INTO objsize (hash, size) VALUES (?, ?)", list(rows)
            )

    def phashes(self, algo: str) -> list[tuple[str, str | None]]:
        """(hash, perceptual hash or None when it failed) of the images hashed by `algo`."""
        return self.conn.execute("SELECT hash, phash FROM phash WHERE algo = ?", (algo,)).fetchall()

    def put_phashes(self, rows: Iterable[tuple[str, str | None, str, str | None]]) -> None:
        """Cache (hash, perceptual hash, algo, error) rows of images."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT OR REPLACE INTO phash (hash, phash, algo, error) VALUES (?, ?, ?, ?)",
                list(rows),
            )
