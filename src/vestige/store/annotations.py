"""Tags, notes and a name added to a run from the shell (`vestige tag`, `vestige note`,
`vestige name`, `vestige run --name`).

A sealed manifest never changes, so what is added later lives beside it: an annotations
object `{"type": "annotations", "run", "added", "removed", "notes", "prev"}` (and `"name"`
once the run has one) named by `refs/annotations/<run-id>`, replaced atomically on each
change (`prev` keeps the history). A run's tags are its manifest's (from `vestige.tag`)
plus `added` minus `removed`; its notes are the manifest's then these; its name is only
here. Works for a running run too: the manifest's tags join when it is sealed. `reindex`
applies them the same way.
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


#: The longest name `vestige name` accepts (a name is typed, and shown in `ls`).
NAME_MAX = 100


def check_name(name: str) -> str:
    """`name` if it can name a run, else UsageError saying why. A name is a run reference
    (`vestige show baseline`), so it must not read as another kind of reference: a
    number (42, #42), a position (-1, @last) or an option."""
    from vestige.errors import UsageError

    text = name.strip()
    if not text:
        raise UsageError("the name is empty; give one, e.g. `vestige name 42 baseline`")
    if len(text) > NAME_MAX:
        raise UsageError(f"the name is {len(text)} characters long; at most {NAME_MAX}, please")
    if not text.isprintable():
        raise UsageError(f"the name {text!r} holds a control character; use printable text")
    if text[0] in "-@#" or text.isdigit() or text == "last":
        raise UsageError(f"the name {text!r} reads as a run number, position or option; "
                         "start it with a letter, e.g. baseline-2")  # fmt: skip
    return text


class Annotations:
    """The annotation refs of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refs = Refs(store.path, "annotations")

    def get(self, run_id: str) -> dict[str, Any]:
        """The current annotations of a run ({} lists when it has none)."""
        digest = self.refs.get(run_id)
        if digest is None or not self.store.objects.exists(digest):
            return {"added": [], "removed": [], "notes": [], "name": None, "prev": None}
        data = self.store.objects.read_json(digest)
        name = data.get("name")
        return {
            "added": list(data.get("added") or []),
            "removed": list(data.get("removed") or []),
            "notes": list(data.get("notes") or []),
            "name": name if isinstance(name, str) and name else None,
            "prev": digest,
        }

    def names(self) -> dict[str, str]:
        """{run id: name} of every named run (reindex): one listing of the refs, and a read
        of each run's annotations."""
        out: dict[str, str] = {}
        for run_id in self.refs:
            name = self.get(run_id)["name"]
            if name is not None:
                out[run_id] = name
        return out

    def update(
        self,
        run_id: str,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        note: str | None = None,
        name: str | None = None,
        clear_name: bool = False,
    ) -> dict[str, Any]:
        """Add/remove tags, append a note, set (`name`) or remove (`clear_name`) the run's
        name (all redacted and checked by the caller), under a lock (concurrent calls all
        land)."""
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
            # (written only when set: records of unnamed runs keep their bytes and hashes)
            new_name = None if clear_name else (name if name is not None else current["name"])
            if new_name is not None:
                record["name"] = new_name
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
