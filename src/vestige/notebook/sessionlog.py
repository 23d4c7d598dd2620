"""Where a recorded kernel session goes: the live run's cell journal and its artefacts.

One `SessionLog` per recorder (vestige/notebook/kernel.py): it writes journal records, keeps
artefacts (images, notebook snapshots) without counting vestige's own file writes as the
cell's, and turns vestige's own failures into one warning, never an exception.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.cells import Journal


def warn(message: str) -> None:
    """Tell the user on the real stderr; never raises into the session."""
    try:
        sys.__stderr__.write(f"vestige: warning: {message}\n")  # type: ignore[union-attr]
        sys.__stderr__.flush()  # type: ignore[union-attr]
    except Exception:
        pass


class SessionLog:
    """The live run a kernel session records into: its cell journal and its artefacts."""

    def __init__(self) -> None:
        self.live: str | None = None
        self.journal: Journal | None = None
        self.busy = False  # vestige's own reads and writes: not the cell's
        self.warned = False
        self.store_prefix = ""

    def open(self, live: str) -> None:
        """Journal into this live directory (closing the previous run's journal)."""
        from vestige.store.cells import Journal

        if self.journal is not None:
            self.journal.close()
        self.live = live
        self.store_prefix = os.path.dirname(os.path.dirname(os.path.abspath(live))) + os.sep
        self.journal = Journal(live)

    def close(self) -> None:
        """Close the journal: nothing more is recorded until `open` again."""
        if self.journal is not None:
            self.journal.close()
        self.journal = None
        self.live = None

    def write(self, kind: str, **fields: Any) -> None:
        """Append one record to the cell journal (a failure is warned about, once)."""
        if self.journal is None:
            return
        try:
            self.journal.append(kind, **fields)
        except OSError as e:
            self.failed(e)

    def keep(self, item: Any) -> dict[str, Any]:
        """Store a prepared artefact into the live run (our own file writes are not the
        cell's: `busy`) and journal it as `vestige.keep` does."""
        from vestige.api import keeping
        from vestige.api.session import event

        assert self.live is not None
        self.busy = True
        try:
            record = keeping.store(item, self.live)
        finally:
            self.busy = False
        event("keep", **record)
        return record

    def snapshot(self, path: str | None, when: str) -> dict[str, Any] | None:
        """Keep the notebook file as an artefact `<name>.<when>.ipynb` (read through the
        capture hook, so it is also one of the run's inputs, or outputs)."""
        if path is None or self.live is None or not os.path.isfile(path):
            return None
        from vestige.api import keeping

        stem = os.path.basename(path)[: -len(".ipynb")] or "notebook"
        try:
            record = self.keep(keeping.prepare(path, f"{stem}.{when}.ipynb"))
        except (OSError, ValueError) as e:
            self.failed(e)
            return None
        files = record.get("files") or [{}]
        return {"artefact": record["name"], "path": path, "hash": files[0].get("hash"),
                "size": files[0].get("size")}  # fmt: skip

    def failed(self, e: BaseException) -> None:
        """vestige's own failure while recording: one warning for the whole session."""
        if not self.warned:
            self.warned = True
            warn(f"a cell could not be recorded ({type(e).__name__}: {e})")
