"""transfer(src, dst, runs): copy sealed runs from one store to another, either way.

Push and pull are this one function (issue 17). Each side is listed once (its run refs;
then, if anything is to be sent, its objects: prefix listings, never a request per
object); only what `dst` lacks is sent, in the store's write order: every object a run
names (small ones first), then freed records, then the manifests, then the refs, so a
transfer interrupted at any instant leaves both sides valid (a manifest never lands
before its objects, a ref never before its manifest) and running it again finishes the
job. Every object is verified on the way (`receive`): nothing corrupt lands.
"""

from __future__ import annotations

import json

from vestige.errors import CorruptObject, UsageError
from vestige.records import Record
from vestige.store.hashing import is_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from vestige.remote.sides import Side

#: One batch of objects: at most this many, or this many bytes (progress moves per batch).
BATCH_OBJECTS = 256
BATCH_BYTES = 64 * 1024 * 1024
#: Requests in flight at once (fsspec's batch_size).
JOBS = 16


class Transferred(Record):
    """What a transfer did: the runs whose refs it wrote, the objects and bytes it sent,
    the runs it left out and why (a conflict, an object missing at the source), and the
    runs whose tags, notes, names or pins push/pull merged into the receiving side."""

    _frozen = False

    runs: list[str]
    manifests: dict[str, str]
    objects: int = 0
    bytes: int = 0
    left_out: list[tuple[str, str]]
    marked: list[str] = ()  # type: ignore[assignment]
    #: the runs `dst` holds now, when the transfer listed them (merge_marks reuses it)
    held: set[str] | None = None
    #: False when a push knew from its record that the remote had everything (known.py)
    asked: bool = True


class Progress:
    """What a transfer reports as it goes; the CLI's bar subclasses it (quiet by default)."""

    def start(self, objects: int, size: int) -> None:
        """The totals, once known."""

    def advance(self, objects: int, size: int) -> None:
        """Some objects (and bytes) landed."""


def transfer(
    src: Side,
    dst: Side,
    run_ids: Iterable[str] | None = None,
    recheck: bool = False,
    before_refs: Callable[[list[str], dict[str, dict[str, Any]]], None] | None = None,
    progress: Progress | None = None,
    jobs: int = JOBS,
    leave: tuple[int, Callable[[dict[str, int]], None]] | None = None,
) -> Transferred:
    """Copy runs from `src` to `dst`: `run_ids` (default: every run `src` has that `dst`
    lacks). A run `dst` already has is skipped unless `recheck` (then the objects it
    misses are sent). `before_refs(ids, manifests)` runs just before the refs are written
    (pull numbers the runs there). `leave` = (size, note): payloads (kept inputs, outputs,
    artefact files) larger than size stay at `src`, and note({hash: size}) is called
    before any ref is written (`pull --metadata-only` records them). Returns what was
    done."""
    progress = progress or Progress()
    have = dst.ref_names("runs")
    available = src.ref_names("runs")
    wanted = sorted(available - have) if run_ids is None else list(dict.fromkeys(run_ids))
    missing = [r for r in wanted if r not in available]
    if missing:
        raise UsageError(f"{src.label} has no run {missing[0]}; see `vestige remote ls`")
    todo = [r for r in wanted if recheck or r not in have]
    done = Transferred(runs=[], manifests={}, left_out=[], held=have)
    if not todo:
        return done
    refs = _hashes(src.read_refs("runs", todo), done)
    if recheck:
        theirs = _hashes(dst.read_refs("runs", [r for r in refs if r in have]), done)
        for run_id, digest in theirs.items():
            if refs.get(run_id) != digest:
                done.left_out.append((run_id, f"{dst.label} holds another manifest for it"))
                refs.pop(run_id, None)
    raw: dict[str, bytes] = {}  # records read already: not fetched a second time
    manifests = read_records(src, set(refs.values()), raw)
    needs = {r: _named(manifests[d]) for r, d in refs.items()}
    trees = read_records(src, {t for n in needs.values() for t in n if n[t] == "tree"}, raw)
    for named in needs.values():
        for tree in [t for t, kind in named.items() if kind == "tree"]:
            named.update(dict.fromkeys(_tree_entries(trees[tree]), "file"))
    wanted_objects = {d for n in needs.values() for d in n}
    sizes = src.sizes(wanted_objects | set(refs.values()))
    freed = _freed(src, wanted_objects - sizes.keys())
    held: set[str] | None = None  # objects the source itself left on a remote
    for run_id, named in needs.items():
        absent = [d for d in named if d not in sizes and d not in freed]
        if absent:
            held = src.ref_names("elsewhere") if held is None else held
            done.left_out.append((run_id, _why_absent(src, absent[0], held)))
            refs.pop(run_id)
    dst.create()
    there = dst.object_names()
    send = sorted({d for r in refs for d in needs[r] if d in sizes} - there, key=sizes.__getitem__)
    if leave is not None:
        kinds = {d: k for r in refs for d, k in needs[r].items()}
        left = {d: sizes[d] for d in send if sizes[d] > leave[0] and kinds.get(d) == "payload"}
        send = [d for d in send if d not in left]
        leave[1](left)
    heads = sorted({refs[r] for r in refs} - there)
    progress.start(len(send) + len(heads), sum(sizes[d] for d in send + heads))
    for batch in _batches(send, sizes):
        dst.receive(src, batch, jobs, raw)
        _count(done, progress, batch, sizes)
    records = {d: r for d, r in src.read_refs("freed", freed).items() if d not in there}
    dst.write_refs("freed", {d: r for d, r in records.items() if any(d in needs[x] for x in refs)})
    for batch in _batches(heads, sizes):
        dst.receive(src, batch, jobs, raw)
        _count(done, progress, batch, sizes)
    ids = sorted(r for r in refs if r not in have)
    if before_refs is not None and ids:
        before_refs(ids, {r: manifests[refs[r]] for r in ids})
    dst.write_refs("runs", {r: (refs[r] + "\n").encode() for r in ids})
    done.held = have | set(ids)
    done.runs = ids
    done.manifests = {r: refs[r] for r in ids}
    return done


def manifests_of(side: Side, run_ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """{run id: (manifest hash, manifest)} of runs a side holds (refs read in one batch,
    manifests in another, each verified); runs whose ref is malformed are left out."""
    refs = _hashes(
        side.read_refs("runs", list(run_ids)), Transferred(runs=[], manifests={}, left_out=[])
    )
    records = read_records(side, set(refs.values()))
    return {r: (d, records[d]) for r, d in refs.items()}


def _hashes(raw: dict[str, bytes], done: Transferred) -> dict[str, str]:
    """{run id: manifest hash} from ref files; a malformed one is left out, named."""
    out: dict[str, str] = {}
    for run_id, data in raw.items():
        text = data.decode("ascii", "replace").strip()
        if is_hash(text):
            out[run_id] = text
        else:
            done.left_out.append((run_id, "its ref is malformed"))
    return out


def read_records(
    side: Side, digests: set[str], raw: dict[str, bytes] | None = None
) -> dict[str, dict[str, Any]]:
    """JSON records (manifests, trees) read from a side, verified, by hash; their bytes
    also go to `raw` when given."""
    out: dict[str, dict[str, Any]] = {}
    for digest, data in side.read_objects(sorted(digests)).items():
        if raw is not None:
            raw[digest] = data
        try:
            record = json.loads(data)
        except ValueError:
            raise CorruptObject(f"object {digest} of {side.label} is not JSON") from None
        if not isinstance(record, dict):
            raise CorruptObject(f"object {digest} of {side.label} is not a record")
        out[digest] = record
    return out


def _named(m: dict[str, Any]) -> dict[str, str]:
    """{hash: "tree", "payload" (a kept input, output or artefact file) or "file"} of
    every object a manifest names and expects kept (the objects of fsck's M1, M2, N1 and
    T1; a tree's entries are added by the caller)."""
    out: dict[str, str] = {}

    def add(digest: Any, kind: str = "file") -> None:
        if isinstance(digest, str) and is_hash(digest):
            out.setdefault(digest, kind)

    for stream in ("stdout", "stderr"):
        add((m.get(stream) or {}).get("hash"))
    add(m.get("env"))
    for role in ("inputs", "outputs"):
        for f in _dicts(m.get(role)):
            if f.get("kept"):
                add(f.get("hash"), "payload")
    for a in _dicts(m.get("artefacts")):
        for f in _dicts(a.get("files")):
            if f.get("kept", True):
                add(f.get("hash"), "payload")
    add((m.get("metrics") or {}).get("object"))
    add((m.get("notebook") or {}).get("cells"))
    code = m.get("code") or {}
    for mod in _dicts(code.get("modules")):
        if mod.get("kept"):
            add(mod.get("hash"))
    add(code.get("tree"), "tree")
    return out


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _tree_entries(tree: dict[str, Any]) -> list[str]:
    """The hashes of a tree's kept entries."""
    entries = tree.get("entries") if tree.get("type") == "tree" else None
    if not isinstance(entries, list):
        raise CorruptObject("a code tree of the transfer is not a tree")
    return [e[3] for e in entries if isinstance(e, list) and len(e) > 4 and e[4]]


def _why_absent(src: Side, digest: str, held: set[str]) -> str:
    """Why a run cannot go: its object is missing at the source, or still on the remote
    that the source pulled it from with --metadata-only (and how to bring it)."""
    if digest in held:
        try:
            there = json.loads(src.read_refs("elsewhere", [digest])[digest])["remote"]
        except (KeyError, TypeError, ValueError):
            there = None
        if isinstance(there, str) and there:
            return (f"object {digest[:12]} is still on remote {there} (pulled with "
                    f"--metadata-only): `vestige pull --all {there}` brings it")  # fmt: skip
    return f"object {digest} is missing from {src.label}"


def _freed(src: Side, absent: set[str]) -> set[str]:
    """The objects among `absent` that gc freed at the source (their records go along)."""
    if not absent:
        return set()
    return absent & src.ref_names("freed")


def _batches(digests: list[str], sizes: dict[str, int]) -> Iterable[list[str]]:
    batch: list[str] = []
    total = 0
    for digest in digests:
        batch.append(digest)
        total += sizes.get(digest, 0)
        if len(batch) >= BATCH_OBJECTS or total >= BATCH_BYTES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _count(done: Transferred, progress: Progress, batch: list[str], sizes: dict[str, int]) -> None:
    size = sum(sizes.get(d, 0) for d in batch)
    done.objects += len(batch)
    done.bytes += size
    progress.advance(len(batch), size)
