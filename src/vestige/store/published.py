"""Published refs: `refs/published/<hash>`, what left the project and where it went.

`vestige publish` copies bytes some run made out of the project, and `vestige which` of a
copy found outside it records a sighting; each is an event in a published object
`{"type": "published", "hash", "events", "prev"}` that the hash's ref names, rewritten
atomically under a flock on `refs/published/` as annotations are. The index's
`published` table is a copy that `reindex` rebuilds from here (docs/format.md).
"""

from __future__ import annotations

import contextlib

from vestige.errors import VestigeError
from vestige.store.refs import Refs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.local import Store

KIND = "published"


class PublishedRefs:
    """The published refs of one store: one per hash, naming its events' object."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refs = Refs(store.path, KIND)

    def events(self, digest: str) -> list[dict[str, Any]]:
        """Every event recorded for these bytes, oldest first."""
        return list(self._current(digest)[0].get("events") or [])

    def _current(self, digest: str) -> tuple[dict[str, Any], str | None]:
        ref = self.refs.get(digest)
        if ref is None or not self.store.objects.exists(ref):
            return {}, None
        record = self.store.objects.read_json(ref)
        return (record if isinstance(record, dict) else {}), ref

    def add(self, digest: str, event: dict[str, Any]) -> bool:
        """Append an event unless one with the same `dest` and `how` is there; under the
        directory's flock, so concurrent publishes all land. True when it was added."""
        with self.refs.locked():
            record, prev = self._current(digest)
            events = list(record.get("events") or [])
            if any(e.get("dest") == event["dest"] and e.get("how") == event["how"]
                   for e in events):  # fmt: skip
                return False
            events.append(event)
            new = {"type": KIND, "hash": digest, "events": events, "prev": prev}
            self.refs.set(digest, self.store.objects.put_json(new))  # objects, then the ref
            return True

    def all_events(self) -> list[dict[str, Any]]:
        """Every event of every hash (for reindex), each with its `hash`."""
        out: list[dict[str, Any]] = []
        for digest in self.refs:
            with contextlib.suppress(VestigeError, ValueError):
                out += [{**e, "hash": digest} for e in self.events(digest) if _valid(e)]
        return out


def _valid(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("dest"), str)
        and isinstance(event.get("t"), int | float)
        and event.get("how") in ("publish", "which")
    )


def index_rows(store: Store) -> list[dict[str, Any]]:
    """The `published` rows of the whole store, from the refs (reindex)."""
    return [
        {"hash": e["hash"], "dest": e["dest"], "t": float(e["t"]), "how": e["how"],
         "run": e.get("run"), "source": e.get("source"), "size": e.get("size")}
        for e in PublishedRefs(store).all_events()
    ]  # fmt: skip


# -- vestige publish -----------------------------------------------------------------------
