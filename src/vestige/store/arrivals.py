"""Arrivals: the local number of a run pulled from a remote (`vestige pull`).

A pulled run keeps its id and its manifest (byte for byte, so both stores name it by
the same hash), and with it the `seq` its first store gave it; here it is given another,
local one on arrival, above every number this store gave (issue 17). The manifest cannot
hold it (it is immutable and shared), so `refs/arrivals/<run-id>` holds one line of
canonical JSON `{"run": <id>, "seq": <local seq>, "remote": <name>, "t": <epoch>,
"host": <where it was made>, "user": <who made it>}` (host and user: since issue 17's ls),
written before the run's own ref. Never pushed: another store numbers the run itself.
`reindex` and `Repo.run` read it, so a pulled run has one number everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.store.layout import make_temp, sync_filesystem
from vestige.store.named import read_named, records_in
from vestige.store.objects import canonical_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from vestige.records import Run
    from vestige.store.local import Store

ARRIVALS = ("refs", "arrivals")


def arrivals_dir(store: Store) -> Path:
    return store.path.joinpath(*ARRIVALS)


def read_arrival(path: Path) -> dict[str, Any] | None:
    """An arrival record, or None when the file is not one."""
    return read_named(path, "run", _valid)


def _valid(data: dict[str, Any]) -> bool:
    return isinstance(data.get("seq"), int) and not isinstance(data.get("seq"), bool)


def arrival(store: Store, run_id: str) -> dict[str, Any] | None:
    """The arrival record of one run, or None (a run made here)."""
    if "/" in run_id or run_id.startswith("."):
        return None
    return read_arrival(arrivals_dir(store) / run_id)


def arrivals(store: Store) -> dict[str, dict[str, Any]]:
    """{run id: record} of every pulled run."""
    return records_in(arrivals_dir(store), read_arrival, lambda _name: True)


def record_arrivals(
    store: Store, seqs: dict[str, int], remote: str, now: float,
    origins: dict[str, dict[str, str]] | None = None,
) -> None:  # fmt: skip
    """Write the arrival records of runs (before their run refs: write order): each
    atomically (temp, rename), then one durability barrier for them all (one fsync pair
    per record cost 1.5 s for 200 runs on the shared 2-core VM). `origins`: where each
    run was made ({"host", "user"}), kept in its record for `vestige ls`."""
    folder = arrivals_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = store.path / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for run_id, seq in seqs.items():
        record = {**(origins or {}).get(run_id, {}), "run": run_id, "seq": seq,
                  "remote": remote, "t": now}  # fmt: skip
        line = canonical_json(record) + b"\n"
        fd, name = make_temp(tmp, "w-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(line)
            os.replace(name, folder / run_id)
        finally:
            Path(name).unlink(missing_ok=True)
    sync_filesystem(str(store.path))


def local_seq(store: Store, runs: Iterable[Run]) -> list[Run]:
    """`runs` with the local number of each pulled one in place of its manifest's."""
    known = arrivals(store)
    return [r.replace(seq=known[r.id]["seq"]) if r.id in known else r for r in runs]
