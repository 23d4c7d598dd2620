"""What changes after a run is sealed travels with push and pull: its tags, notes and name
(annotations, store/annotations.py) and its pin (store/pins.py), merged as sets so that
neither side loses anything (issue 17).

- Pins: a pin one side has for a run both hold is copied to the other (unpinning does
  not travel: a set union).
- Annotations: the merged record's tags are the union of both sides' tags (`added` is the
  union; `removed` keeps only what both removed), its notes the union of both (by time
  and text, in time order), its name the receiving side's if it has one, else the
  sender's. A record that adds nothing is not written, so pulling twice changes nothing;
  one the receiver lacks is copied as it is (the same object, the same hash).

Two pushers racing on one run's annotations ref of a bucket can overwrite each other's
merge (no lock server); the loser's tags are still in its own store, and its next push
merges them again.
"""

from __future__ import annotations

from vestige.records import Record
from vestige.store.hashing import is_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from vestige.remote.sides import Side

KEYS = ("added", "removed", "notes", "name")


class Merged(Record):
    """The runs whose annotations or pins a merge wrote at the receiving side."""

    _frozen = False

    annotated: list[str]
    pinned: dict[str, float]
    #: marks both sides hold alike after the merge, as known.py's tokens
    agreed: list[str] = ()  # type: ignore[assignment]


def merge_marks(
    src: Side, dst: Side, run_ids: Iterable[str] | None = None, held: set[str] | None = None
) -> Merged:
    """Bring `src`'s pins and annotations of the runs `dst` holds (or of `run_ids`) into
    `dst`, merged with its own: objects first, then refs (write order). `held`: the runs
    `dst` holds, when a transfer just listed them (not listed again)."""
    held = dst.ref_names("runs") if held is None else held
    runs = held if run_ids is None else held & set(run_ids)
    done = Merged(annotated=[], pinned={}, agreed=[])
    _pins(src, dst, runs, done)
    if getattr(dst, "local", False):  # (as `vestige tag` does: concurrent taggers all land)
        from vestige.store.refs import Refs

        with Refs(dst.path, "annotations").locked():  # type: ignore[union-attr]
            _annotations(src, dst, runs, done)
    else:
        _annotations(src, dst, runs, done)
    return done


def _pins(src: Side, dst: Side, runs: set[str], done: Merged) -> None:
    import json

    theirs = src.ref_names("pins") & runs
    new = theirs - dst.ref_names("pins")
    done.agreed.extend(f"pin {r}" for r in sorted(theirs - new))
    copied: dict[str, bytes] = {}
    for run_id, data in src.read_refs("pins", sorted(new)).items():
        try:
            record = json.loads(data)
        except ValueError:
            continue  # (a damaged pin is fsck's to name, not ours to spread)
        if isinstance(record, dict) and record.get("run") == run_id:
            copied[run_id] = data
            done.pinned[run_id] = float(record.get("t") or 0)
    dst.write_refs("pins", copied)
    done.agreed.extend(f"pin {r}" for r in sorted(copied))


def _annotations(src: Side, dst: Side, runs: set[str], done: Merged) -> None:
    from vestige.remote.transfer import read_records

    names = sorted(src.ref_names("annotations") & runs)
    if not names:
        return
    theirs = heads(src.read_refs("annotations", names))
    ours = heads(dst.read_refs("annotations", list(theirs)))
    differ = {r: d for r, d in theirs.items() if ours.get(r) != d}
    done.agreed.extend(f"ann {r} {d}" for r, d in sorted(theirs.items()) if r not in differ)
    if not differ:
        return
    records = read_records(src, set(differ.values()))
    mine = read_records(dst, {ours[r] for r in differ if r in ours})
    copy = sorted({d for r, d in differ.items() if r not in ours})
    if copy:
        dst.receive(src, copy, 16, None)
    refs: dict[str, bytes] = {}
    for run_id, digest in differ.items():
        if run_id not in ours:
            refs[run_id] = (digest + "\n").encode()
            continue
        merged = merge(mine[ours[run_id]], records[digest])
        if merged is None:
            continue
        merged["run"], merged["prev"] = run_id, ours[run_id]
        refs[run_id] = (dst.put_record(merged) + "\n").encode()
    dst.write_refs("annotations", refs)
    done.annotated = sorted(refs)
    done.agreed.extend(f"ann {r} {d}" for r, d in sorted(differ.items()) if r not in ours)


def heads(raw: dict[str, bytes]) -> dict[str, str]:
    """{run id: annotations record hash} of annotations refs' bytes; malformed ones left out."""
    out: dict[str, str] = {}
    for run_id, data in raw.items():
        text = data.decode("ascii", "replace").strip()
        if is_hash(text):
            out[run_id] = text
    return out


def merge(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any] | None:
    """The annotations record that holds both (tags and notes as sets; our name first), or
    None when `ours` holds everything `theirs` has already."""
    added = _list(ours.get("added")) + [t for t in _list(theirs.get("added"))
                                        if t not in _list(ours.get("added"))]  # fmt: skip
    removed = [t for t in _list(ours.get("removed"))
               if t in _list(theirs.get("removed")) and t not in added]  # fmt: skip
    seen = {_note_key(n) for n in _list(ours.get("notes"))}
    notes = _list(ours.get("notes")) + [n for n in _list(theirs.get("notes"))
                                        if _note_key(n) not in seen]  # fmt: skip
    notes.sort(key=lambda n: float(n.get("t") or 0) if isinstance(n, dict) else 0.0)
    name = ours.get("name") or theirs.get("name")
    record: dict[str, Any] = {"type": "annotations", "added": added, "removed": removed,
                              "notes": notes}  # fmt: skip
    if name:
        record["name"] = name
    now = {k: record.get(k) for k in KEYS}
    before = {k: ours.get(k) or ([] if k != "name" else None) for k in KEYS}
    before["notes"] = sorted(before["notes"], key=lambda n: float(n.get("t") or 0)
                             if isinstance(n, dict) else 0.0)  # fmt: skip
    return None if now == before else record


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _note_key(note: Any) -> tuple[Any, ...]:
    return (note.get("t"), note.get("text")) if isinstance(note, dict) else (None, repr(note))
