"""fsck: check exactly the invariants of docs/format.md, and name what breaks them.

*must* invariants (data is lost or wrong if broken) make fsck fail; *should* invariants
(repairable: `vestige reindex`, or harmless leftovers) are reported as notes.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from vestige.records import MANIFEST_FORMAT, Record, safe_recorded, safe_relative
from vestige.store.elsewhere import elsewhere_dir, elsewhere_records
from vestige.store.hashing import hash_file, is_hash

if TYPE_CHECKING:
    from collections.abc import Callable

    from vestige.repo import Repo

SEALED = ("ok", "failed", "interrupted")


class Problem(Record):
    """One broken invariant: its id from docs/format.md, severity, and what is wrong."""

    invariant: str
    severity: str  # "must" | "should"
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


def fsck(repo: Repo) -> list[Problem]:
    """Every problem found; the caller fails on any `must`.

    Each object is read once (hashed, and a metrics object's header checked from the same
    bytes), each ref and manifest once, each code tree once however many runs share it:
    at 20,000 runs, per-run work beyond hashing is where the time went (issue 23)."""
    problems: list[Problem] = []
    store = repo.store
    refs_dir = str(store.refs.dir)
    refs: list[tuple[str, str]] = []  # (run id, ref text), read before the objects' walk
    for run_id in _ref_names(refs_dir):
        with open(f"{refs_dir}/{run_id}", encoding="utf-8") as f:
            refs.append((run_id, f.read()))
    wanted = {text.strip() for _, text in refs}
    present, metrics_why, stray, parsed = _walk_objects(repo, problems, wanted)
    problems += [Problem("O2", "should", f"stray file in objects/: {p}") for p in stray]
    manifests: dict[str, dict[str, Any]] = {}
    digests: dict[str, str | None] = {}  # run id -> its ref's manifest hash
    for run_id, text in refs:
        digest = text.strip()
        if not is_hash(digest) or text != digest + "\n":
            problems.append(Problem("R1", "must", f"ref {run_id} is malformed: {text[:80]!r}"))
            continue
        if digest not in present:
            problems.append(Problem("R1", "must", f"ref {run_id} names missing object {digest}"))
            continue
        manifest = parsed.get(digest, _NOT_JSON)
        if manifest is _NOT_JSON:
            problems.append(Problem("R2", "must", f"manifest of run {run_id} is not JSON"))
            continue
        problems += _check_manifest(run_id, manifest)
        if isinstance(manifest, dict):
            problems += _check_paths(run_id, manifest)
        manifests[run_id] = manifest
        digests[run_id] = digest
    from vestige.store.freed import freed_records
    from vestige.store.layout import TEMP_PREFIXES

    freed = freed_records(store)  # payloads gc freed on purpose (F1): absent, not lost
    elsewhere = elsewhere_records(store.path)  # payloads a remote holds (E1): absent too
    absent = {**freed, **elsewhere}
    trees: dict[str, Any] = {}  # a code tree's entries (or None), read once for all runs
    for run_id, manifest in manifests.items():
        problems += _check_references(repo, run_id, manifest, present, absent,
                                      metrics_why, trees)  # fmt: skip
    problems += _check_freed(repo, present, freed)
    problems += _check_elsewhere(repo, present, elsewhere)
    problems += _check_arrivals(repo, {r for r, _ in refs}, manifests)
    problems += _check_annotations(repo, present)
    problems += _check_published(repo, present)
    problems += _check_index(repo, digests)
    problems += _check_live(repo)
    tmp = store.path / "tmp"
    if tmp.is_dir():
        for name in sorted(os.listdir(tmp)):
            hint = ""
            if name.startswith(TEMP_PREFIXES):
                hint = " (vestige gc removes it when no write has touched it for an hour)"
            problems.append(Problem("X1", "should", f"leftover temporary file tmp/{name}{hint}"))
    return problems


def _ref_names(refs_dir: str) -> list[str]:
    """The run ids with a ref, in id order (as Refs iterates them)."""
    try:
        return sorted(n for n in os.listdir(refs_dir) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


_NOT_JSON = object()


def _walk_objects(
    repo: Repo, problems: list[Problem], wanted: set[str]
) -> tuple[set[str], dict[str, str | None], list[str], dict[str, Any]]:
    """One walk of objects/: (the objects present, {metrics object: why it is malformed,
    or None}, stray files, {manifest: its JSON or _NOT_JSON}). O1: each object is hashed,
    and a corrupt or unreadable one appended to `problems`; the objects the refs name
    (`wanted`) are parsed and an object starting with the metrics magic has its header
    checked from the bytes already read: no object is read twice."""
    from blake3 import blake3

    from vestige.store.hashing import MMAP_THRESHOLD
    from vestige.store.metrics import MAGIC

    present: set[str] = set()
    metrics_why: dict[str, str | None] = {}
    stray: list[str] = []
    parsed: dict[str, Any] = {}
    root = repo.store.objects.dir
    if not root.is_dir():
        return present, metrics_why, stray, parsed
    for fan in sorted(os.scandir(root), key=lambda e: e.name):
        if not fan.is_dir() or len(fan.name) != 2:
            stray.append(fan.name)
            continue
        for name in os.listdir(fan.path):
            digest = fan.name + name
            if not is_hash(digest):
                stray.append(f"{fan.name}/{name}")
                continue
            present.add(digest)
            path = f"{fan.path}/{name}"
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size >= MMAP_THRESHOLD:
                        head = f.read(len(MAGIC))
                        data = None
                        actual = hash_file(path)  # (multi-threaded over mmap)
                    else:
                        data = head = f.read()
                        actual = blake3(data).hexdigest()
            except OSError as e:
                problems.append(Problem("O1", "must", f"object {digest} unreadable: {e.strerror}"))
                continue
            if actual != digest:
                problems.append(
                    Problem("O1", "must", f"object {digest} is corrupt: its bytes hash to {actual}")
                )
            if head.startswith(MAGIC):
                metrics_why[digest] = _bad_metrics_object(repo, digest, data)
            elif digest in wanted:
                try:
                    parsed[digest] = json.loads(data if data is not None else _read(path))
                except (OSError, ValueError):
                    parsed[digest] = _NOT_JSON
    return present, metrics_why, stray, parsed


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _check_manifest(run_id: str, m: Any) -> list[Problem]:
    bad = []
    if not isinstance(m, dict) or m.get("type") != "run":
        return [Problem("R2", "must", f"manifest of run {run_id} is not a run record")]
    if not isinstance(m.get("format"), int) or m["format"] > MANIFEST_FORMAT:
        bad.append(f"unknown manifest format {m.get('format')!r}")
    if m.get("id") != run_id:
        bad.append(f"its id is {m.get('id')!r}")
    if m.get("status") not in SEALED:
        bad.append(f"status {m.get('status')!r} is not a sealed status")
    for key in ("seq", "command", "started", "inputs", "outputs"):
        if key not in m:
            bad.append(f"field {key!r} is missing")
    return [Problem("R2", "must", f"manifest of run {run_id}: {b}") for b in bad]


def _check_paths(run_id: str, m: dict[str, Any]) -> list[Problem]:
    """M3: every path the manifest records for a file stays inside the folder a restore,
    export or rerun writes it under (records.safe_recorded; artefact files: safe_relative).
    Code tree entries are checked with the tree, in _check_references."""
    out: list[Problem] = []
    files: list[tuple[str, Any, bool]] = []
    for role in ("inputs", "outputs"):
        files += [(role[:-1], f.get("path"), False) for f in _dicts(m.get(role))]
    code = m.get("code") if isinstance(m.get("code"), dict) else {}
    files += [("module", f.get("path"), False) for f in _dicts(code.get("modules"))]
    for a in _dicts(m.get("artefacts")):
        files += [("artefact file", f.get("path"), True) for f in _dicts(a.get("files"))]
    for what, path, relative in files:
        if not (safe_relative(path) if relative else safe_recorded(path)):
            why = "it would not stay inside the folder it is restored into"
            out.append(
                Problem("M3", "must", f"run {run_id}: {what} path {path!r} is unsafe: {why}")
            )
    return out


def _dicts(items: Any) -> list[dict[str, Any]]:
    """The dicts of a manifest list (a crafted manifest may hold anything)."""
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _check_references(
    repo: Repo, run_id: str, m: dict[str, Any], present: set[str],
    freed: dict[str, Any] | None = None, metrics_why: dict[str, str | None] | None = None,
    trees: dict[str, Any] | None = None,
) -> list[Problem]:  # fmt: skip
    """M1 and T1: every object a manifest (or its tree) names as kept exists and is valid;
    an input, output or artefact file that gc freed (a freed record) is absent on purpose.
    `metrics_why` holds the metrics objects already checked (by _walk_objects: a present
    object missing from it is not one), `trees` the code trees already read."""
    out: list[Problem] = []
    freed = freed or {}
    trees = {} if trees is None else trees

    def need(digest: Any, what: str) -> bool:
        if digest and digest not in present:
            out.append(Problem("M1", "must", f"run {run_id}: {what} names missing object {digest}"))
            return False
        return bool(digest)

    for stream in ("stdout", "stderr"):
        if m.get(stream):
            need(m[stream].get("hash"), stream)
    need(m.get("env"), "environment")
    for role in ("inputs", "outputs"):
        for f in m.get(role, []):
            if f.get("kept") and f.get("hash") not in freed:
                need(f.get("hash"), f"{role[:-1]} {f.get('path')}")
    for a in m.get("artefacts") or []:
        for f in a.get("files") or []:
            digest = f.get("hash")
            if digest and f.get("kept", True) and digest not in present and digest not in freed:
                out.append(Problem("M2", "must", f"run {run_id}: artefact file {f.get('path')} "
                                   f"names missing object {f['hash']}"))  # fmt: skip
    metrics = (m.get("metrics") or {}).get("object")
    if metrics:
        if metrics not in present:
            out.append(
                Problem("M2", "must", f"run {run_id}: metrics names missing object {metrics}")
            )
        else:
            if metrics_why is None:
                why = _bad_metrics_object(repo, metrics)
            else:
                why = metrics_why.get(metrics, "not a metrics object (no metrics header)")
            if why:
                out.append(Problem("M2", "must", f"run {run_id}: metrics object {metrics}: {why}"))
    cells = (m.get("notebook") or {}).get("cells")
    if cells:  # N1: a notebook run's cells object exists and is one
        if cells not in present:
            out.append(Problem("N1", "must", f"run {run_id}: notebook names missing cells "
                               f"object {cells}"))  # fmt: skip
        else:
            try:
                data = repo.store.objects.read_json(cells)
                ok = isinstance(data, dict) and data.get("type") == "cells"
            except (OSError, ValueError):
                ok = False
            if not ok:
                out.append(Problem("N1", "must", f"run {run_id}: object {cells} is not a "
                                   "cells object"))  # fmt: skip
    code = m.get("code") or {}
    for mod in code.get("modules", []):
        if mod.get("kept"):
            need(mod.get("hash"), f"module {mod.get('path')}")
    tree = code.get("tree")
    if tree and need(tree, "code tree"):
        if tree not in trees:  # (shared by many runs: read and checked once)
            trees[tree] = _tree_problems(repo, tree, present)
        out += [Problem(code_, "must", f"run {run_id}: {text}") for code_, text in trees[tree]]
    return out


def _tree_problems(repo: Repo, tree: str, present: set[str]) -> list[tuple[str, str]]:
    """(invariant, message) of what is wrong with a code tree (T1, M3), for each run."""
    entries = _tree_entries(repo, tree)
    if entries is None:
        return [("T1", f"code tree {tree} is not a tree")]
    out = []
    for entry in entries:
        if not safe_relative(entry[0]):
            out.append(("M3", f"code tree {tree} records the unsafe path {entry[0]!r}"))
        if entry[4] and entry[3] not in present:
            out.append(("T1", f"code file {entry[0]} names missing object {entry[3]}"))
    return out


def _tree_entries(repo: Repo, tree: str) -> list[Any] | None:
    """A code tree's entries, or None when the object is not a tree."""
    try:
        record = json.loads(repo.store.objects.path(tree).read_bytes())
        return record["entries"] if record.get("type") == "tree" else None
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def _bad_metrics_object(repo: Repo, digest: str, data: bytes | None = None) -> str | None:
    """Why a metrics object is malformed (magic, header, length), or None; from `data`
    when its bytes were read already."""
    import io

    from vestige.store.metrics import MAGIC, MetricsObject

    try:
        if data is not None:
            obj = MetricsObject(io.BytesIO(data))
            size = len(data)
        else:
            path = repo.store.objects.path(digest)
            with open(path, "rb") as f:
                obj = MetricsObject(f)
            size = os.path.getsize(path)
        expected = obj.start + 24 * sum(n for _pos, n in obj.offsets.values())
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"not a metrics object ({e or MAGIC!r})"
    if size != expected:
        return f"{size} bytes, its header says {expected}"
    return None


def _check_annotations(repo: Repo, present: set[str]) -> list[Problem]:
    """A1: every annotation ref names an existing annotations object of its run."""
    return _check_object_refs(
        repo, present, "annotations", "A1", "annotation",
        lambda name, r: r.get("type") == "annotations" and r.get("run") == name,
    )  # fmt: skip


def _check_published(repo: Repo, present: set[str]) -> list[Problem]:
    """P1: every published ref names an existing published object of its hash."""
    return _check_object_refs(
        repo, present, "published", "P1", "published",
        lambda name, r: r.get("type") == "published" and r.get("hash") == name
        and isinstance(r.get("events"), list),
        name_is_hash=True,
    )  # fmt: skip


def _check_object_refs(
    repo: Repo, present: set[str], kind: str, code: str, what: str,
    valid: Callable[[str, dict[str, Any]], bool], name_is_hash: bool = False,
) -> list[Problem]:  # fmt: skip
    """refs/<kind>/<name> each hold one hash line naming an existing JSON object that
    `valid` accepts for that name (annotations, published copies)."""
    from vestige.store.refs import Refs

    out: list[Problem] = []
    refs = Refs(repo.store.path, kind)
    for name in refs:
        text = refs.raw(name)
        digest = text.strip()
        if (name_is_hash and not is_hash(name)) or not is_hash(digest) or text != digest + "\n":
            out.append(Problem(code, "must", f"{what} ref {name} is malformed"))
            continue
        if digest not in present:
            out.append(Problem(code, "must", f"{what} ref {name} names missing object {digest}"))
            continue
        try:
            record = json.loads(repo.store.objects.path(digest).read_bytes())
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or not valid(name, record):
            out.append(Problem(code, "must", f"{what} ref {name}: {digest} is not its "
                               f"{kind} object"))  # fmt: skip
    return out


def _check_elsewhere(repo: Repo, present: set[str], held: dict[str, Any]) -> list[Problem]:
    """E1: every file in refs/elsewhere/ is a remote-only record named by its hash, of a
    remote the store still has; E2: its object is absent (else the next pull drops it)."""
    out: list[Problem] = []
    folder = elsewhere_dir(repo.store.path)
    if not folder.is_dir():
        return out
    for name in sorted(os.listdir(folder)):
        if name not in held:
            out.append(Problem("E1", "must", f"remote-only record {name} is malformed"))
        elif held[name]["remote"] not in repo.config.remotes:
            out.append(Problem("E1", "must", f"remote-only record {name}: the store has no "
                               f"remote {held[name]['remote']} any more; add it again (vestige "
                               "remote add) to read that file"))  # fmt: skip
        elif name in present:
            out.append(Problem("E2", "should", f"remote-only record {name}: the object is here "
                               "(the next `vestige pull` drops the record)"))  # fmt: skip
    return out


def _check_freed(repo: Repo, present: set[str], freed: dict[str, Any]) -> list[Problem]:
    """F1: every file in refs/freed/ is a freed record named by its hash; F2: its object is
    absent (a record left by a crashed gc, or of bytes re-made since: the next gc drops it);
    G1: every pin names a run of the store."""
    from vestige.store.freed import freed_dir
    from vestige.store.pins import Pins, read_pin

    out: list[Problem] = []
    folder = freed_dir(repo.store)
    if folder.is_dir():
        for name in sorted(os.listdir(folder)):
            if name not in freed:
                out.append(Problem("F1", "must", f"freed record {name} is malformed"))
            elif name in present:
                out.append(Problem("F2", "should", f"freed record {name}: the object is back "
                                   "(the next `vestige gc` drops the record)"))  # fmt: skip
    pins = Pins(repo.store)
    if pins.dir.is_dir():
        known = set(repo.store.refs) | set(repo.index.runs.ids())
        for name in sorted(os.listdir(pins.dir)):
            if read_pin(pins.dir / name) is None or name not in known:
                out.append(Problem("G1", "should", f"pin {name} is malformed or names no run"))
    return out


def _check_index(repo: Repo, refs: dict[str, str | None]) -> list[Problem]:
    """I1: the index agrees with the refs (repair: `vestige reindex`)."""
    out: list[Problem] = []
    indexed = repo.index.runs.manifests_and_statuses()
    for run_id, digest in refs.items():
        got = indexed.get(run_id)
        if got is None or got[0] != digest:
            out.append(
                Problem("I1", "should", f"index is stale for run {run_id}; run `vestige reindex`")
            )
    for run_id, (digest, status) in indexed.items():
        if digest and run_id not in refs:
            out.append(
                Problem(
                    "I1", "should", f"index lists run {run_id} with no ref; run `vestige reindex`"
                )
            )
        if not digest and status != "running":
            out.append(Problem("I1", "should", f"index row of run {run_id} has no manifest"))
    return out


def _check_live(repo: Repo) -> list[Problem]:
    """L1: every live directory belongs to a run still going on."""
    from vestige.store.live import LiveRun

    out: list[Problem] = []
    if not repo.store.live.is_dir():
        return out
    for path in sorted(repo.store.live.iterdir()):
        if LiveRun(path).runner_alive() is False:
            out.append(Problem("L1", "should", f"live run {path.name} has no running vestige"))
    return out


def _check_arrivals(repo: Repo, ref_ids: set[str], manifests: dict[str, Any]) -> list[Problem]:
    """RM2: every file in refs/arrivals/ is an arrival record of a run the store holds (a
    pull that died before the run's ref leaves one: pulling again uses it); RM3: the local
    numbers of pulled runs are each given once, and to no run made here (issue 17)."""
    from vestige.store.arrivals import arrivals_dir, read_arrival

    out: list[Problem] = []
    folder = arrivals_dir(repo.store)
    if not folder.is_dir():
        return out
    given: dict[int, str] = {}
    records: dict[str, dict[str, Any]] = {}
    for name in sorted(os.listdir(folder)):
        record = read_arrival(folder / name)
        if record is None:
            out.append(Problem("RM2", "should", f"arrival record {name} is malformed"))
        elif name not in ref_ids:
            out.append(Problem("RM2", "should", f"arrival record {name} names no run of the "
                               "store (a pull that died: pulling again finishes it)"))  # fmt: skip
        else:
            records[name] = record
    for run_id, m in manifests.items():  # (runs made here keep their manifest's number)
        if run_id not in records and isinstance(m, dict) and isinstance(m.get("seq"), int):
            given[m["seq"]] = run_id
    for run_id, record in sorted(records.items(), key=lambda kv: kv[1]["seq"]):
        other = given.get(record["seq"])
        if other is not None:
            out.append(Problem("RM3", "must", f"pulled run {run_id} has the number "
                               f"#{record['seq']} of run {other} too"))  # fmt: skip
        given.setdefault(record["seq"], run_id)
    return out
