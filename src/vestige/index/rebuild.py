"""Rebuild the index from the store alone: sealed manifests through their refs, the start
records of runs still live, and the store's other refs (annotations, published, freed,
pins). `reindex` gives the same `ls --json` as before."""

from __future__ import annotations

import contextlib

from vestige.errors import CorruptObject
from vestige.records import Run
from vestige.store.annotations import Annotations
from vestige.store.freed import freed_records
from vestige.store.live import LiveRun
from vestige.store.pins import Pins
from vestige.store.published import index_rows

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.index.db import Index
    from vestige.store.local import Store


def rebuild(store: Store, index: Index) -> int:
    """Drop and refill every derived table; return the number of runs indexed."""
    runs: list[Run] = []
    for run_id in store.refs:
        digest = store.refs.get(run_id)
        if digest is None:
            continue
        with contextlib.suppress(CorruptObject, KeyError, TypeError, ValueError):
            runs.append(Run.from_dict(store.objects.read_json(digest), manifest=digest))
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
    runs = [annotations.apply(r) for r in runs]
    runs.sort(key=lambda r: (r.seq, r.id))
    index.clear()
    index.record.runs(runs)
    index.marks.add_published(index_rows(store))  # refs/published: what left the project
    index.marks.set_freed(add=freed_records(store).values(), replace_all=True)  # refs/freed (gc)
    index.marks.set_pins(dict(Pins(store).all()), replace_all=True)  # refs/pins (vestige pin)
    return len(runs)
