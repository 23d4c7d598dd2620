"""The runs of the index and what hangs off them (params, tags, metrics summaries):
resolving references, listing, and the whole-table reads of gc, du and fsck. Writing a
run's rows is vestige/index/record.py's."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from vestige.index.query import chunks, row_cursor

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


class Runs:
    """Queries of the `runs` table and the rows a run owns (params, tags, metrics)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- resolving ------------------------------------------------------------------------

    def row(self, run_id: str) -> sqlite3.Row | None:
        """The run's row (the runs table's columns), or None."""
        cur = row_cursor(self.conn)
        return cur.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def id_by_seq(self, seq: int) -> str | None:
        """The id of run #seq, or None."""
        row = self.conn.execute("SELECT id FROM runs WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def ids_by_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Up to `limit` ids starting with `prefix`, in id order."""
        rows = self.conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [r[0] for r in rows]

    def nth_latest(self, n: int) -> str | None:
        """The id of the n-th newest run (1 = the newest)."""
        row = self.conn.execute(
            "SELECT id FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?", (n - 1,)
        ).fetchone()
        return row[0] if row else None

    def seq_of(self, run_id: str) -> int | None:
        """The run's sequence number, or None."""
        row = self.conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else None

    # -- listing --------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Every run's id, in sequence order."""
        return [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY seq")]

    def rows(
        self,
        where: tuple[str, Sequence[object]] | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[sqlite3.Row]:
        """Runs newest first, filtered; rows have the runs table's columns."""
        sql = "SELECT r.* FROM runs r"
        clauses: list[str] = []
        args: list[object] = []
        if where is not None:
            clauses.append(f"({where[0]})")
            args.extend(where[1])
        if status is not None:
            clauses.append("r.status = ?")
            args.append(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY r.seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        cur = row_cursor(self.conn)
        return cur.execute(sql, args).fetchall()

    def count_rows(
        self, where: tuple[str, Sequence[object]] | None = None, status: str | None = None
    ) -> int:
        """How many runs rows() would list without a limit (`ls`: "50 of 20,368 shown")."""
        sql, args = "SELECT count(*) FROM runs r", []
        clauses: list[str] = []
        if where is not None:
            clauses.append(f"({where[0]})")
            args.extend(where[1])
        if status is not None:
            clauses.append("r.status = ?")
            args.append(status)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return int(self.conn.execute(sql, args).fetchone()[0])

    def ids_by_name(self, name: str, limit: int = 10) -> list[tuple[str, int]]:
        """(id, seq) of up to `limit` runs named `name` (`vestige name`), newest first."""
        return self.conn.execute(
            "SELECT r.id, r.seq FROM names nm JOIN runs r ON r.id = nm.run_id"
            " WHERE nm.name = ? ORDER BY r.seq DESC LIMIT ?",
            (name, limit),
        ).fetchall()

    def names_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """{run id: name} for those of the given runs that have one."""
        out: dict[str, str] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(
                f"SELECT run_id, name FROM names WHERE run_id IN ({marks})", chunk))  # fmt: skip
        return out

    def params_of(self, run_ids: Sequence[str], keys: Sequence[str] | None = None
                  ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """{run id: {param: value}} for the given runs (each of them a key); only `keys`
        when given (the UI's chosen columns)."""
        out: dict[str, dict[str, Any]] = {i: {} for i in run_ids}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, key, value_json FROM params WHERE run_id IN ({marks})"
            args: list[Any] = list(chunk)
            if keys is not None:
                sql += f" AND key IN ({','.join('?' * len(keys))})"
                args += list(keys)
            rows = self.conn.execute(sql, args).fetchall()
            for (run_id, key, _), value in zip(rows, _decode_all([r[2] for r in rows]),
                                               strict=True):  # fmt: skip
                out[run_id][key] = value
        return out

    def tags_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """{run id: tags} for the given runs."""
        out: dict[str, list[str]] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for rid, tag in self.conn.execute(
                f"SELECT run_id, tag FROM tags WHERE run_id IN ({marks}) ORDER BY rowid", chunk
            ):
                out.setdefault(rid, []).append(tag)
        return out

    def metrics_of(self, run_ids: Sequence[str], keys: Sequence[str] | None = None
                   ) -> dict[str, dict[str, float | None]]:  # fmt: skip
        """{run id: {key: last value}} (NaN is stored as NULL)."""
        out: dict[str, dict[str, float | None]] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT run_id, key, last FROM metrics WHERE run_id IN ({marks})"
            args: list[Any] = list(chunk)
            if keys is not None:
                sql += f" AND key IN ({','.join('?' * len(keys))})"
                args += list(keys)
            for rid, key, last in self.conn.execute(sql, args):
                out.setdefault(rid, {})[key] = last
        return out

    def metric_stats_of(
        self, run_ids: Sequence[str]
    ) -> dict[str, dict[str, tuple[float | None, float | None, float | None, int | None]]]:
        """{run id: {key: (last, min, max, count)}}: the summaries `vestige.runs()` shows."""
        out: dict[str, dict[str, tuple[Any, Any, Any, Any]]] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for rid, key, *stats in self.conn.execute(
                f"SELECT run_id, key, last, min, max, count FROM metrics WHERE run_id IN ({marks})",
                chunk,
            ):
                out.setdefault(rid, {})[key] = tuple(stats)
        return out

    def children(self, parent: str) -> list[tuple[str, str, int | None, str, float | None]]:
        """(id, status, exit code, argv JSON, ended) of a sweep's children, in seq order."""
        return self.conn.execute(
            "SELECT id, status, exit_code, argv, ended FROM runs WHERE parent = ? ORDER BY seq",
            (parent,),
        ).fetchall()

    def overlapping(self, root: str, start: float, end: float, exclude: str) -> list[str]:
        """The ids of the sealed runs in the tree `root`, but `exclude` and sweeps' parents
        (they run nothing themselves), that were going at some moment between `start` and
        `end` (seconds)."""
        rows = self.conn.execute(
            "SELECT id FROM runs r WHERE root = ? AND ended >= ? AND started <= ? AND id != ?"
            " AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.parent = r.id)",
            (root, start, end, exclude),
        ).fetchall()
        return [r[0] for r in rows]

    def ok_commands(self, cwd: str) -> list[tuple[str, str]]:
        """(id, argv JSON) of the `ok` runs started in `cwd` (relative to the root), newest
        first: what `sweep --skip-done` compares a combination's command with."""
        return self.conn.execute(
            "SELECT id, argv FROM runs WHERE status = 'ok' AND cwd = ? ORDER BY started DESC",
            (cwd,),
        ).fetchall()

    # -- pages (the UI's runs table) ----------------------------------------------------------

    def page(
        self,
        where: tuple[str, Sequence[object]] | None = None,
        search: str | None = None,
        sort: str = "seq",
        key: str | None = None,
        desc: bool = True,
        after: Sequence[Any] | None = None,
        limit: int = 50,
        top_level: bool = False,
    ) -> tuple[list[sqlite3.Row], list[Any] | None]:
        """One page of runs and the keyset cursor of the next (None on the last page).

        `sort` is a column of SORT_COLUMNS, or "metric"/"param" with `key` (its last value;
        numbers before text, runs without it last, whatever the direction); ties go by the
        order the rows were indexed. `after` is the cursor a previous page returned
        ([part, value, tie]): the page goes on from that row without reading the rows
        before it (as OFFSET would). `where` is compile_where's output; `search` matches the
        command, a tag or a note as a substring; `top_level` leaves out the runs another run
        started (a sweep's children). Rows have the runs table's columns and `sort_value`."""
        # (`+`: not through runs_parent, which SQLite would pick over the sorted column's
        # index, then sort every top-level run: 106 ms sorted by duration at 100,000 runs;
        # most runs are top-level, so that index never narrows a page)
        filters, fargs = _filters(where, search, top_level, parent="+r.parent")
        first = int(after[0]) if after is not None else 0
        way, past = ("DESC", "<") if desc else ("ASC", ">")
        found: list[tuple[int, sqlite3.Row]] = []
        sparse = False  # a walk was cut short: the filter is selective, gather the next parts
        for number, part in enumerate(_phases(sort, key)):
            if number < first:
                continue
            walk, gather, cond, args, value, tie = part
            clauses, args = [cond, *filters], [*args, *fargs]
            if after is not None and number == first:
                if value is None:
                    clauses.append(f"{tie} {past} ?")
                    args.append(after[2])
                else:  # (a bounded range first: an OR alone is not looked up in the index)
                    clauses.append(f"{value} {past}= ? AND ({value} {past} ? OR {tie} {past} ?)")
                    args += [after[1], after[1], after[2]]
            test, want = " AND ".join(clauses), limit + 1 - len(found)
            # (without a --where filter there is nothing to gather through: a search has no
            # index, so both would read every run; the walk alone, then)
            rows, gathered = self._walk_or_gather(
                None if sparse else _select(walk, test, value, tie, way, ""),
                _select(gather, test, value, tie, way, "+") if where is not None else None,
                [*args, want],
            )
            sparse = sparse or gathered
            found += [(number, row) for row in rows]
            if len(found) > limit:
                break
        if len(found) <= limit:
            return [row for _n, row in found], None
        number, last = found[limit - 1]
        return [row for _n, row in found[:limit]], [number, last["sort_value"], last["sort_tie"]]

    def _walk_or_gather(self, walk: str | None, gather: str | None, args: list[Any]
                        ) -> tuple[list[sqlite3.Row], bool]:  # fmt: skip
        """(rows, whether they were gathered): the rows of `walk` (an index in the page's
        order, stopping at its end: fast when many runs match), or of `gather` (the runs
        matching the filter first, then sorted: fast when few do) once the walk has used
        WALK_S of CPU, or at once without a walk. Both give the same rows in the same
        order. Without statistics SQLite cannot tell which: `params.i = 1234` sorted by a
        metric walked 100,000 runs in 430 ms, gathered in 0.1 ms. CPU time, not the clock:
        on a busy machine a walk that is only kept waiting would be cut short, and its
        gather cost 2-4x more (params.model = 'vit': 17 ms of CPU walked, 53 gathered)."""
        cur = row_cursor(self.conn)
        if gather is None or walk is None:
            return cur.execute(walk or gather or "", args).fetchall(), walk is None
        deadline = time.thread_time() + WALK_S
        self.conn.set_progress_handler(lambda: time.thread_time() > deadline, WALK_TICK)
        try:
            return cur.execute(walk, args).fetchall(), False
        except sqlite3.OperationalError as e:
            if "interrupt" not in str(e):
                raise
        finally:
            self.conn.set_progress_handler(None, 0)
        return cur.execute(gather, args).fetchall(), True

    def count(
        self,
        where: tuple[str, Sequence[object]] | None = None,
        search: str | None = None,
        top_level: bool = False,
    ) -> int:
        """How many runs page() would list over all its pages."""
        clauses, args = _filters(where, search, top_level)
        sql = "SELECT COUNT(*) FROM runs r" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return int(self.conn.execute(sql, args).fetchone()[0])

    def children_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        """{run id: number of runs it started} for those of the given runs that have any."""
        out: dict[str, int] = {}
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for parent, n in self.conn.execute(
                f"SELECT parent, COUNT(*) FROM runs WHERE parent IN ({marks}) GROUP BY parent",
                chunk,
            ):
                out[parent] = int(n)
        return out

    def children_of(self, parent: str) -> list[sqlite3.Row]:
        """The rows of the runs `parent` started (a sweep's children), in seq order."""
        cur = row_cursor(self.conn)
        return cur.execute("SELECT * FROM runs WHERE parent = ? ORDER BY seq", (parent,)).fetchall()

    def keys_of(self, run_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """(metric keys, param keys) that the given runs have, sorted: the columns a page of
        runs can show."""
        metrics: set[str] = set()
        params: set[str] = set()
        for chunk in chunks(list(run_ids)):
            marks = ",".join("?" * len(chunk))
            for table, keys in (("metrics", metrics), ("params", params)):
                sql = f"SELECT DISTINCT key FROM {table} WHERE run_id IN ({marks})"
                keys.update(r[0] for r in self.conn.execute(sql, chunk))
        return sorted(metrics), sorted(params)

    # -- upkeep (gc, du, fsck) --------------------------------------------------------------

    def seqs(self) -> dict[str, int]:
        """{run id: sequence number} of every run."""
        return {r: s for r, s in self.conn.execute("SELECT id, seq FROM runs")}

    def manifests(self) -> dict[str, str | None]:
        """{run id: manifest hash (None while running)} of every run."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT id, manifest FROM runs")}

    def manifests_and_statuses(self) -> dict[str, tuple[str | None, str]]:
        """{run id: (manifest hash, status)} of every run: what fsck checks the refs with."""
        rows = self.conn.execute("SELECT id, manifest, status FROM runs").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def overview(self) -> dict[str, tuple[int, str, float, str | None, str]]:
        """{run id: (seq, status, started, manifest, argv JSON)} of every run (gc, du)."""
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in self.conn.execute(
            "SELECT id, seq, status, started, manifest, argv FROM runs")}  # fmt: skip

    def tagged(self) -> set[str]:
        """The runs with at least one tag row."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT run_id FROM tags")}

    def unindexed(self) -> int:
        """Sealed runs without blobs rows (indexed before migration 0004): reindex them."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM runs r WHERE r.manifest IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM blobs b WHERE b.run_id = r.id AND b.kind = 'manifest')"
        ).fetchone()[0])  # fmt: skip

    def usage(self) -> tuple[int, int, dict[str, int], set[str], list[str]]:
        """What `du` without --by needs, summed by SQLite rather than row by row in Python
        (at 20,000 runs: ~0.1 s instead of ~1.5 s): (runs, logical bytes of the kept files
        rows and of the blobs rows with a size, {hash: times named} of blobs rows without
        a size, every hash named by those rows, the code trees named). The rows are those
        of files.hashed_rows (kept) and files.blob_rows."""
        conn = self.conn
        (runs,) = conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        (logical,) = conn.execute(
            "SELECT COALESCE((SELECT SUM(COALESCE(size, 0)) FROM files WHERE hash IS NOT NULL"
            " AND role != 'code' AND kept), 0)"
            " + COALESCE((SELECT SUM(size) FROM blobs WHERE size IS NOT NULL), 0)"
        ).fetchone()
        unsized = dict(conn.execute(
            "SELECT hash, COUNT(*) FROM blobs WHERE size IS NULL AND hash IS NOT NULL"
            " GROUP BY hash"
        ))  # fmt: skip
        named = {h for (h,) in conn.execute(
            "SELECT hash FROM files WHERE hash IS NOT NULL AND role != 'code' AND kept"
            " UNION ALL SELECT hash FROM blobs WHERE hash IS NOT NULL"
        )}  # fmt: skip
        trees = [h for (h,) in conn.execute(
            "SELECT DISTINCT hash FROM blobs WHERE kind = 'code' AND hash IS NOT NULL"
        )]  # fmt: skip
        return int(runs), int(logical), unsized, named, trees


def _decode_all(texts: list[str]) -> list[Any]:
    """json.loads of each text, as one array parsed at once: a json.loads call per value
    cost ~0.1 ms a run in `compare` and `vestige.runs()` (issue 23); the C parser does
    3,000 runs' params in a few ms. A text that is not one JSON value on its own (it
    would shift the array) makes it decode them one by one, raising as before."""
    try:
        values = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(texts):
        values = [json.loads(t) for t in texts]
    return values


#: The run columns page() sorts by: name -> (SQL column, whether it may be NULL).
SORT_COLUMNS: dict[str, tuple[str, bool]] = {
    "seq": ("r.seq", False),
    "started": ("r.started", False),
    "ended": ("r.ended", True),
    "duration": ("r.duration", True),
    "status": ("r.status", False),
    "exit_code": ("r.exit_code", True),
    "command": ("r.command", False),
}
#: The CPU seconds page() spends walking an index in its order before it gathers the
#: matching runs instead (a walk of all 100,000 runs with a filter: ~27 ms of CPU).
WALK_S = 0.035
#: SQLite instructions between two looks at the CPU clock during a walk.
WALK_TICK = 10_000
# The runs newest first through the index of UNIQUE(seq) (schema 0001, its second unique
# constraint). Without statistics SQLite, given an `r.id IN (...)` filter, looks up every
# matching run by id and sorts them all (78 ms for params.model = 'vit' over 100,000 runs)
# where a walk in seq order stops at the page's end (18 ms).
_BY_SEQ = "runs r INDEXED BY sqlite_autoindex_runs_2"

if TYPE_CHECKING:  # (FROM walked, FROM gathered, condition, args, value, tie-breaker)
    Phase = tuple[str, str, str, list[Any], str | None, str]


def _phases(sort: str, key: str | None) -> list[Phase]:
    """The parts of a sort order, in order: (FROM to walk, FROM to gather, condition, its
    args, the value sorted on or None, the tie-breaker). Runs lacking the value come last,
    in seq order. A joined table's ties go by its rowid: its (key, value) index holds it,
    so a value many runs share (lr = 0.1) needs no sort."""
    if sort in ("metric", "param"):
        if not key:
            raise ValueError(f"sorting by a {sort} needs its key")
        table = "metrics" if sort == "metric" else "params"
        walk = f"{table} s CROSS JOIN runs r ON r.id = s.run_id"  # (CROSS: s is walked)
        gather = f"runs r CROSS JOIN {table} s ON s.run_id = r.id"  # r, through the filter
        if sort == "metric":
            has = "s.last IS NOT NULL"
            parts = [(walk, gather, f"s.key = ? AND {has}", [key], "s.last", "s.rowid")]
        else:
            has = "(s.value_num IS NOT NULL OR s.value_text IS NOT NULL)"
            parts = [(walk, gather, "s.key = ? AND s.value_num IS NOT NULL", [key],
                      "s.value_num", "s.rowid"),
                     (walk, gather, "s.key = ? AND s.value_num IS NULL AND s.value_text IS NOT"
                      " NULL", [key], "s.value_text", "s.rowid")]  # fmt: skip
        lacking = (
            f"NOT EXISTS (SELECT 1 FROM {table} s WHERE s.run_id = r.id AND s.key = ? AND {has})"
        )
        return [*parts, (_BY_SEQ, "runs r", lacking, [key], None, "r.seq")]
    if sort not in SORT_COLUMNS:
        raise ValueError(f"cannot sort runs by {sort!r}")
    column, nullable = SORT_COLUMNS[sort]
    if sort == "seq":
        return [(_BY_SEQ, "runs r", "1", [], None, "r.seq")]
    parts: list[Phase] = [("runs r", "runs r", f"{column} IS NOT NULL" if nullable else "1", [],
                           column, "r.rowid")]  # fmt: skip
    if nullable:
        parts.append((_BY_SEQ, "runs r", f"{column} IS NULL", [], None, "r.seq"))
    return parts


def _select(source: str, test: str, value: str | None, tie: str, way: str, plus: str) -> str:
    """One part's SELECT; `plus` "+" keeps SQLite from ordering through an index."""
    columns = f"r.*, {value or 'NULL'} AS sort_value, {tie} AS sort_tie"
    order = ", ".join(f"{plus}{e} {way}" for e in (value, tie) if e is not None)
    if source == "runs r" and value is not None:
        # narrow (value, rowid) pairs sorted, then the page's rows read: a sort of whole
        # rows by an unindexed column took ~3x longer (131 -> 51 ms, 100,000 runs)
        return (f"SELECT {columns} FROM runs r WHERE r.seq IN (SELECT r.seq FROM runs r"
                f" WHERE {test} ORDER BY {order} LIMIT ?) ORDER BY {order}")  # fmt: skip
    return f"SELECT {columns} FROM {source} WHERE {test} ORDER BY {order} LIMIT ?"


def _filters(
    where: tuple[str, Sequence[object]] | None,
    search: str | None,
    top_level: bool,
    parent: str = "r.parent",
) -> tuple[list[str], list[Any]]:
    """The conditions (and their args) of page() and count(); `parent` is how the
    top-level test names the column."""
    clauses: list[str] = []
    args: list[Any] = []
    if where is not None:
        clauses.append(f"({where[0]})")
        args.extend(where[1])
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        tagged = "SELECT t.run_id FROM tags t WHERE t.tag LIKE ? ESCAPE '\\'"
        noted = "SELECT n.run_id FROM notes n WHERE n.text LIKE ? ESCAPE '\\'"
        clauses.append(f"(r.command LIKE ? ESCAPE '\\' OR r.id IN ({tagged}) OR r.id IN ({noted}))")
        args += [like, like, like]
    if top_level:
        clauses.append(f"{parent} IS NULL")
    return clauses, args
