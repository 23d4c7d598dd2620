"""Rebuild the index from the store alone: sealed manifests through their refs, the start
records of runs still live, and the store's other refs (annotations, published, freed,
pins). `reindex` gives the same `ls --json` as before. A run whose ref or manifest
cannot be read is left out and named (`skipped`): `vestige reindex` says so and fails."""

from __future__ import annotations

from vestige.errors import CorruptObject
from vestige.records import Run
from vestige.store.annotations import Annotations
from vestige.store.arrivals import local_seq
from vestige.store.freed import freed_records
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
    runs: list[Run] = []
    for run_id in store.refs:
        run, why = _sealed(store, run_id)
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
    with index.conn:
        index.conn.execute("BEGIN IMMEDIATE")
        index.clear()
        index.record.runs(runs, within=True)
        index.record.names(names, within=True)
        index.marks.add_published(published, within=True)
        index.marks.set_freed(add=freed, replace_all=True, within=True)
        index.marks.set_pins(pins, replace_all=True, within=True)
    return len(runs)


def _sealed(store: Store, run_id: str) -> tuple[Run | None, str]:
    """A sealed run read through its ref, or (None, why it cannot be)."""
    try:
        digest = store.refs.get(run_id)
    except OSError as e:
        return None, f"its ref could not be read ({e.strerror})"
    if digest is None:
        return None, "its ref holds no manifest hash"
    try:
        manifest = store.objects.read_json(digest)
    except CorruptObject as e:
        return None, f"its manifest: {e}"
    except OSError as e:
        return None, f"its manifest {digest[:12]} could not be read ({e.strerror})"
    try:
        return Run.from_dict(manifest, manifest=digest), ""
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return None, f"its manifest {digest[:12]} is not a run's ({type(e).__name__}: {e})"
