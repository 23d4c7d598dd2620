"""Tags and notes added to a run from the shell (`vestige tag`, `vestige note`).

A sealed manifest never changes, so what is added later lives beside it: an annotations
object `{"type": "annotations", "run", "added", "removed", "notes", "prev"}` named by
`refs/annotations/<run-id>`, replaced atomically on each change (`prev` keeps the history).
A run's tags are its manifest's (from `vestige.tag`) plus `added` minus `removed`; its
notes are the manifest's then these. Works for a running run too: the manifest's tags
join when it is sealed. `reindex` applies them the same way.
"""

from __future__ import annotations

import time

from vestige.records import Run
from vestige.store.refs import Refs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from vestige.store.local import Store


class Annotations:
    """The annotation refs of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refs = Refs(store.path, "annotations")

    def get(self, run_id: str) -> dict[str, Any]:
        """The current annotations of a run ({} lists when it has none)."""
        digest = self.refs.get(run_id)
        if digest is None or not self.store.objects.exists(digest):
            return {"added": [], "removed": [], "notes": [], "prev": None}
        data = self.store.objects.read_json(digest)
        return {
            "added": list(data.get("added") or []),
            "removed": list(data.get("removed") or []),
            "notes": list(data.get("notes") or []),
            "prev": digest,
        }

    def update(
        self,
        run_id: str,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        note: str | None = None,
    ) -> dict[str, Any]:
        """Add/remove tags or append a note (redacted by the caller), under a lock
        (concurrent calls all land)."""
        with self.refs.locked():
            current = self.get(run_id)
            added, removed = current["added"], current["removed"]
            for t in add:
                if t in removed:
                    removed.remove(t)
                if t not in added:
                    added.append(t)
            for t in remove:
                if t in added:
                    added.remove(t)
                if t not in removed:
                    removed.append(t)
            notes = current["notes"]
            if note is not None:
                notes.append({"t": time.time(), "text": note})
            record = {
                "type": "annotations",
                "run": run_id,
                "added": added,
                "removed": removed,
                "notes": notes,
                "prev": current["prev"],
            }
            self.refs.set(run_id, self.store.objects.put_json(record))
            return record

    def apply(self, run: Run) -> Run:
        """The run with its effective tags and notes (for reading and indexing only)."""
        ann = self.get(run.id)
        if ann["prev"] is None:  # no annotations (or their object is gone: fsck says so)
            return run
        tags = [t for t in run.tags if t not in ann["removed"]]
        tags += [t for t in ann["added"] if t not in tags]
        return run.replace(tags=tuple(tags), notes=tuple(run.notes) + tuple(ann["notes"]))
