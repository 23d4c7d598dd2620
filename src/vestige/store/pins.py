"""Pins: runs whose kept files `vestige gc` never frees (`vestige pin`, `vestige unpin`).

A pin is a ref, `refs/pins/<run-id>`, holding one line of canonical JSON
`{"run": <id>, "t": <epoch seconds>}`; unpinning removes it. Changes happen under an
exclusive flock on the `refs/pins/` directory itself (as annotations do), and gc holds a
shared flock on it while it works, so a run pinned during a gc waits for it to finish
rather than lose files. The index's `pins` table is a copy that `reindex` rebuilds.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vestige.store.named import read_named
from vestige.store.objects import canonical_json
from vestige.store.refs import Refs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.store.local import Store


class Pins:
    """The pin refs of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refs = Refs(store.path, "pins")
        self.dir = self.refs.dir

    def locked(self, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the pins lock: exclusive to change pins, shared while gc reads them."""
        return self.refs.locked(shared)

    def all(self) -> dict[str, float]:
        """{run id: when it was pinned} for every pin in the store."""
        out: dict[str, float] = {}
        if not self.dir.is_dir():
            return out
        for entry in os.scandir(self.dir):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            record = read_pin(Path(entry.path))
            out[entry.name] = float(record.get("t") or 0.0) if record else 0.0
        return out

    def set(self, run_id: str, now: float) -> bool:
        """Pin a run (call under `locked()`); False when it already was."""
        if (self.dir / run_id).exists():
            return False
        line = canonical_json({"run": run_id, "t": now}).decode() + "\n"
        from vestige.store.layout import write_atomic

        write_atomic(str(self.store.path), str(self.dir / run_id), line.encode())
        return True

    def clear(self, run_id: str) -> bool:
        """Unpin a run (call under `locked()`); False when it was not pinned."""
        try:
            os.unlink(self.dir / run_id)
        except FileNotFoundError:
            return False
        from vestige.store.layout import fsync_dir

        fsync_dir(str(self.dir))
        return True


def read_pin(path: Path) -> dict[str, object] | None:
    """A pin ref's record, or None when it is not one (fsck says so)."""
    return read_named(path, "run", lambda data: isinstance(data.get("t"), int | float))
