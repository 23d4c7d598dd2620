"""Rebuild the index from the store alone: sealed manifests through their refs, the start
records of runs still live, and the store's other refs (annotations, published, freed,
pins). `reindex` gives the same `ls --json` as before. A run whose ref or manifest
cannot be read is left out and named (`skipped`): `vestige reindex` says so and fails."""

from __future__ import annotations

import gc
import json

from vestige.records import Run
from vestige.store.annotations import Annotations
from vestige.store.arrivals import local_seq
from vestige.store.freed import freed_records
from vestige.store.hashing import is_hash
from vestige.store.live import LiveRun
from vestige.store.pins import Pins
from vestige.store.published import index_rows

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.index.db import Index
    from vestige.store.local import Store


def rebuild(store: Store, index: Index, skipped: list[tuple[str, str]] | None = None) -> int:
    """Empty and refill every derived table; return the number of runs indexed. Each sealed
    run left out (its ref or manifest unreadable) is appended to `skipped` as (run id,
    why)."""
    # Python's cyclic collector off meanwhile: every run read stays alive until the rows
    # are written, and the collector's passes over that growing heap were ~40% of reading
    # 20,000 manifests (issue 23). Nothing made here forms cycles worth collecting early.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rebuild(store, index, skipped)
    finally:
        if collecting:
            gc.enable()


def _rebuild(store: Store, index: Index, skipped: list[tuple[str, str]] | None) -> int:
    runs: list[Run] = []
    refs_dir, objects_dir = str(store.refs.dir), str(store.objects.dir)
    for run_id in store.refs:
        run, why = _sealed(refs_dir, objects_dir, run_id)
        if run is not None:
            runs.append(run)
        elif skipped is not None:
            skipped.append((run_id, why))
    sealed = {r.id for r in runs}
    if store.live.is_dir():
        for path in sorted(store.live.iterdir()):
            info = LiveRun(path).info
            if path.name in sealed or not info.get("seq"):
                continue
            runs.append(
                Run(
                    id=path.name,
                    seq=int(info["seq"]),
                    status="running",
                    command=list(info.get("command", [])),
                    cwd=str(info.get("cwd", "")),
                    root=str(info.get("root", "")),
                    started=float(info.get("started", 0.0)),
                    host=str(info.get("host", "")),
                    pid=info.get("child_pid"),
                    parent=info.get("parent"),
                )
            )
    annotations = Annotations(store)
    runs = [annotations.apply(r) for r in local_seq(store, runs)]  # (pulled: local numbers)
    runs.sort(key=lambda r: (r.seq, r.id))
    indexed = {r.id for r in runs}
    names = {i: n for i, n in annotations.names().items() if i in indexed}  # `vestige name`
    published = index_rows(store)  # refs/published: what left the project
    freed = list(freed_records(store).values())  # refs/freed (gc)
    pins = dict(Pins(store).all())  # refs/pins (vestige pin)
    # Emptied and refilled in one transaction: a reindex killed at any instant leaves the
    # index as it was or as rebuilt, never emptied (every run gone from ls and show).
    # A 64 MiB page cache meanwhile: the files table's indexes (by hash, by path) are
    # filled in random order and outgrow the default 2 MB at a few thousand runs (at
    # 20,000 runs: ~15% less CPU, a quarter less time on a loaded machine).
    (cache_size,) = index.conn.execute("PRAGMA cache_size").fetchone()
    index.conn.execute("PRAGMA cache_size = -65536")
    try:
        with index.conn:
            index.conn.execute("BEGIN IMMEDIATE")
            _clear_keeping_sizes(index)
            rebuilt = _drop_indexes(index, ("runs", "params", "files", "metrics", "tags", "notes",
                                            "blobs"))  # fmt: skip
            index.record.runs(runs, within=True, fresh=True)
            for sql in rebuilt:  # (one sort each: ~2x faster than growing them row by row)
                index.conn.execute(sql)
            index.record.names(names, within=True)
            index.marks.add_published(published, within=True)
            index.marks.set_freed(add=freed, replace_all=True, within=True)
            index.marks.set_pins(pins, replace_all=True, within=True)
    finally:
        index.conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
    return len(runs)


def _clear_keeping_sizes(index: Index) -> None:
    """Index.clear, but the `objsize` cache stays (with the stat and phash caches): an
    object's size never changes, and a du after a reindex would otherwise stat every
    object again and write 100,000 rows (~1 s at 20,000 runs). Rows of objects gc removed
    since are harmless: du takes sizes only for the names it finds in objects/."""
    conn = index.conn
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT IN ('statcache', 'phash', 'meta', 'objsize') AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        conn.execute(f'DELETE FROM "{name}"')


def _drop_indexes(index: Index, tables: tuple[str, ...]) -> list[str]:
    """Drop the plain (not UNIQUE) indexes of these emptied tables; the statements that make
    them again, once the rows are in. Unique ones stay: INSERT OR IGNORE/REPLACE needs them."""
    marks = ",".join("?" * len(tables))
    rows = index.conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({marks})"
        " AND sql IS NOT NULL", tables,
    ).fetchall()  # fmt: skip
    made = []
    for name, sql in rows:
        if "UNIQUE" in sql.upper():
            continue
        index.conn.execute(f'DROP INDEX "{name}"')
        made.append(sql)
    return made


def _sealed(refs_dir: str, objects_dir: str, run_id: str) -> tuple[Run | None, str]:
    """A sealed run read through its ref, or (None, why it cannot be). Plain `open` of
    string paths and one BLAKE3 of the bytes read (what Refs.get and read_json do,
    without pathlib's parsing: ~40 us a run at 20,000 runs)."""
    from blake3 import blake3

    try:
        with open(f"{refs_dir}/{run_id}", "rb") as f:
            digest = f.read().decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return None, "its ref holds no manifest hash"
    except OSError as e:
        return None, f"its ref could not be read ({e.strerror})"
    if not is_hash(digest):
        return None, "its ref holds no manifest hash"
    try:
        with open(f"{objects_dir}/{digest[:2]}/{digest[2:]}", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        why = f"object {digest[:12]} is missing from the store; run `vestige fsck`"
        return None, f"its manifest: {why}"
    except OSError as e:
        return None, f"its manifest {digest[:12]} could not be read ({e.strerror})"
    if blake3(data).hexdigest() != digest:
        why = f"object {digest[:12]} does not match its hash; run `vestige fsck`"
        return None, f"its manifest: {why}"
    try:
        manifest = json.loads(data)
    except ValueError:
        return None, f"its manifest: object {digest[:12]} is not valid JSON"
    try:
        return Run.from_dict(manifest, manifest=digest), ""
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return None, f"its manifest {digest[:12]} is not a run's ({type(e).__name__}: {e})"
