"""Runs that ran at the same time in the same tree: what their processes were seen
writing. Concurrent runs share one tree, so the folder scan of one finds the files of
the others; a file another run's process wrote is that run's, not a scan-only output of
this one, and a file no process of either reported may be either's: `ambiguous`.

Other runs are looked for where they leave a record: the live directories of runs still
going (their shim journals and trace logs) and, in the index, the runs sealed meanwhile
and their confirmed outputs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vestige.capture.events import read_events
from vestige.store.live import LiveRun

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from vestige.index.db import Index
    from vestige.store.local import Store


class Others:
    """The runs that overlapped one run, and the absolute paths they were seen writing."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.writes: set[str] = set()


def overlapping(
    store: Store, index: Index | None, run_id: str, root: str, start: float, end: float
) -> Others:
    """The runs in tree `root` other than `run_id` that were going at some moment between
    `start` and `end` (epoch seconds), and what their processes were seen writing."""
    out = Others()
    try:
        entries = list(os.scandir(store.live))
    except OSError:
        entries = []
    for entry in entries:
        if entry.name == run_id or not entry.is_dir():
            continue
        live = LiveRun(Path(entry.path))
        info = live.info
        if info.get("root") != root or info.get("sweep"):
            continue  # (a sweep's parent runs nothing itself: its children are runs)
        started = info.get("started")
        if isinstance(started, int | float) and started > end:
            continue  # began after this run ended
        out.ids.add(live.id)
        with contextlib.suppress(Exception):
            out.writes |= read_events(live.path).writes
            trace = info.get("trace")
            if isinstance(trace, str):
                from vestige.capture.trace import read

                cwd = os.path.join(root, str(info.get("cwd") or "."))
                out.writes |= set(read(trace, cwd, skip=(str(store.path),)).writes)
    if index is not None:
        with contextlib.suppress(Exception):
            out.ids.update(index.runs.overlapping(root, start, end, run_id))
            for other, other_root, path in index.files.written_between(root, start, end, run_id):
                out.ids.add(other)
                out.writes.add(path if path.startswith("/") else os.path.join(other_root, path))
    return out
