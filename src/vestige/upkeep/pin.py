"""`vestige pin` / `vestige unpin`: runs whose kept files gc never frees.

The pins are refs of the store (vestige/store/pins.py), changed under their lock; the
index's `pins` table follows.
"""

from __future__ import annotations

from vestige.store.pins import Pins

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.repo import Repo


def pin(repo: Repo, refs: list[str], now: float, on: bool = True) -> list[tuple[int, str, bool]]:
    """Pin (or unpin) runs; (seq, id, changed) for each. Every reference is resolved first,
    so a bad one changes nothing."""
    ids = [repo.resolve(r) for r in refs]
    pins = Pins(repo.store)
    out: list[tuple[int, str, bool]] = []
    with pins.locked():
        for run_id in dict.fromkeys(ids):
            changed = pins.set(run_id, now) if on else pins.clear(run_id)
            out.append((repo.index.runs.seq_of(run_id) or 0, run_id, changed))
        current = pins.all()
    repo.index.marks.set_pins({run_id: current.get(run_id) for _s, run_id, _c in out})
    return out
