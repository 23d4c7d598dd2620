"""How two runs differ: command, params, code, environment, files and metrics.

`diff_runs(repo, a, b)` returns JSON-able data only (`vestige diff --json` prints it as
is; docs/cli.md documents its keys). A change of one value is written `{"a": x, "b": y}`;
a change of a mapping (params, packages, environment variables) as `added`, `removed`
(name -> value) and `changed` (name -> {"a", "b"}). Files are matched by path; a file of
both runs with other bytes is compared by content (filediff.compare_bytes) when the
store kept both copies and they are not too large, else by size and hash.
"""

from __future__ import annotations

import json

from vestige.errors import CorruptObject, UsageError
from vestige.history.filediff import (
    FileDiff,
    compare_bytes,
    compare_hashes,
    unified_diff,
)
from vestige.units import size as format_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo
    from vestige.store.objects import ObjectStore

#: The sections of a diff, in the order they are shown.
SECTIONS = ("command", "params", "code", "env", "inputs", "outputs", "metrics", "artefacts")
#: Files over this size (either side) are compared by size and hash only.
COMPARE_MAX_SIZE = 64 * 1024 * 1024
#: Code files over this size (either side) get no unified diff.
CODE_DIFF_MAX_SIZE = 1024 * 1024


def diff_runs(
    repo: Repo,
    a: Run,
    b: Run,
    *,
    code_diffs: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    max_size: int = COMPARE_MAX_SIZE,
) -> dict[str, Any]:
    """Every difference between run `a` and run `b` (JSON-able; keys in docs/cli.md).

    `code_diffs=False` lists changed code files without reading them. rtol/atol are the
    tolerance of numeric file comparisons; None takes the config's `compare.rtol` /
    `compare.atol`.
    """
    rtol = float(repo.config.compare_rtol if rtol is None else rtol)
    atol = float(repo.config.compare_atol if atol is None else atol)
    objects = repo.store.objects
    compare = _Comparer(objects, (rtol, atol), max_size)
    out: dict[str, Any] = {
        "a": _identity(a),
        "b": _identity(b),
        "command": {"a": list(a.command), "b": list(b.command)},
        "params": mapping_diff(a.params, b.params),
        "code": _code(objects, a, b, code_diffs, _made_by_runs(repo)),
        "env": _env(repo.environment(a), repo.environment(b)),
        "inputs": compare.files(_records(a.inputs), _records(b.inputs)),
        "outputs": compare.files(_records(a.outputs), _records(b.outputs)),
        "metrics": _metrics(a.metrics, b.metrics),
        "artefacts": compare.files(_artefact_files(a), _artefact_files(b)),
    }
    sections = SECTIONS
    if a.sweep is not None and b.sweep is not None:
        out["children"] = _children(repo, a, b, (rtol, atol))
        sections = (*SECTIONS, "children")
    out["differ"] = [s for s in sections if _section_differs(s, out[s])]
    return out


#: A sweep child's files are compared by content up to this size, by hash beyond it (a
#: diff of two sweeps compares every pair of children).
CHILD_COMPARE_MAX_SIZE = 4 * 1024 * 1024


def _children(repo: Repo, a: Run, b: Run, tolerance: tuple[float, float]) -> list[dict[str, Any]]:
    """Two sweeps, combination by combination (matched by their values, in A's order then
    B's new ones): each child's run and status on both sides, and for a pair of runs the
    sections in which B's child differs from A's, its changed metrics and files."""
    from vestige.errors import VestigeError

    def by_values(sweep: Run) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
        children = (sweep.sweep or {}).get("children") or []
        return {tuple(sorted((c.get("values") or {}).items())): c for c in children}

    side_a, side_b = by_values(a), by_values(b)
    runs: dict[str, Run | None] = {}
    axes = [
        e.partition("=")[0]
        for s in (a, b)
        for e in ((s.sweep or {}).get("spec") or {}).get("each") or ()
        if isinstance(e, str)
    ]
    rank = {name: i for i, name in enumerate(dict.fromkeys(axes))}  # (--each order)

    def run_of(child: dict[str, Any] | None) -> Run | None:
        run_id = (child or {}).get("run_id")
        if not isinstance(run_id, str):
            return None
        if run_id not in runs:
            try:
                runs[run_id] = repo.run(run_id)
            except VestigeError:  # gone (gc'd record, another store): compared by status
                runs[run_id] = None
        return runs[run_id]

    rows = []
    for key in dict.fromkeys([*side_a, *side_b]):
        ca, cb = side_a.get(key), side_b.get(key)
        ra, rb = run_of(ca), run_of(cb)
        values = dict(sorted(key, key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
        row: dict[str, Any] = {"values": values, "a": _child(ca, ra), "b": _child(cb, rb),
                               "differ": [], "metrics": {}, "outputs": []}  # fmt: skip
        if ca is None or cb is None:
            row["status"] = "added" if ca is None else "removed"
        else:
            same_run = ra is not None and rb is not None and ra.id == rb.id  # (--skip-done)
            if ra is not None and rb is not None and not same_run:
                d = diff_runs(repo, ra, rb, code_diffs=False, rtol=tolerance[0],
                              atol=tolerance[1], max_size=CHILD_COMPARE_MAX_SIZE)  # fmt: skip
                row["differ"] = d["differ"]
                row["metrics"] = {k: m for k, m in d["metrics"].items() if m["status"] != "same"}
                row["outputs"] = [f for f in d["outputs"] if f["status"] != "same"]
            ended = ("status", "exit_code")  # (one run on both sides: `ok` here, `skipped` there)
            same_end = same_run or [row["a"][k] for k in ended] == [row["b"][k] for k in ended]
            row["status"] = "same" if same_end and not row["differ"] else "changed"
        rows.append(row)
    return rows


def _child(child: dict[str, Any] | None, run: Run | None) -> dict[str, Any] | None:
    """A sweep child as a diff shows it: its run (if it got one) and how it ended."""
    if child is None:
        return None
    return {"id": child.get("run_id"), "seq": run.seq if run is not None else None,
            "status": child.get("status"), "exit_code": child.get("exit_code")}  # fmt: skip


def _identity(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "seq": run.seq,
        "status": run.status,
        "exit_code": run.exit_code,
        "cwd": run.cwd,
        "started": run.started,
        "duration": run.duration,
        "manifest": run.manifest,
    }


def _section_differs(name: str, section: Any) -> bool:
    if name == "command":
        return bool(section["a"] != section["b"])
    if name == "params":
        return _mapping_differs(section)
    if name == "code":
        return bool(section["files"])
    if name == "env":
        return any(
            _mapping_differs(v) if "added" in v else v["a"] != v["b"] for v in section.values()
        )
    if name == "metrics":
        return any(m["status"] != "same" for m in section.values())
    return any(f["status"] != "same" for f in section)


# -- values --------------------------------------------------------------------------------


def mapping_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """{"added": {k: v}, "removed": {k: v}, "changed": {k: {"a": va, "b": vb}}}."""
    return {
        "added": {k: v for k, v in b.items() if k not in a},
        "removed": {k: v for k, v in a.items() if k not in b},
        "changed": {k: {"a": v, "b": b[k]} for k, v in a.items() if k in b and not _same(v, b[k])},
    }


def _mapping_differs(d: dict[str, Any]) -> bool:
    return bool(d["added"] or d["removed"] or d["changed"])


def _same(x: Any, y: Any) -> bool:
    """Equal as recorded: 1, 1.0 and true are three values (Python says they are one)."""
    return json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True)


def _metrics(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Per key: the last value of each run and the change (b - a) when both are finite."""
    ka = (a or {}).get("keys") or {}
    kb = (b or {}).get("keys") or {}
    out = {}
    for key in sorted(set(ka) | set(kb)):
        va = ka[key].get("last") if key in ka else None
        vb = kb[key].get("last") if key in kb else None
        if key not in kb:
            status = "removed"
        elif key not in ka:
            status = "added"
        else:
            status = "same" if _same(va, vb) else "changed"
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (va, vb))
        delta = vb - va if numbers and key in ka and key in kb else None  # type: ignore[operator]
        out[key] = {"status": status, "a": va, "b": vb, "delta": delta}
    return out


# -- environment ---------------------------------------------------------------------------


def _env(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    a, b = a or {}, b or {}
    return {
        "python": {"a": _python(a), "b": _python(b)},
        "platform": {"a": _platform(a), "b": _platform(b)},
        "host": {"a": a.get("host"), "b": b.get("host")},
        "gpus": {"a": _gpus(a), "b": _gpus(b)},
        "distributions": mapping_diff(_dists(a), _dists(b)),
        "env_vars": mapping_diff(a.get("env_vars") or {}, b.get("env_vars") or {}),
    }


def _python(env: dict[str, Any]) -> str | None:
    py = env.get("python") or {}
    return py.get("version")


def _platform(env: dict[str, Any]) -> str | None:
    plat = env.get("platform") or {}
    words = [plat.get(k) for k in ("system", "release", "machine", "libc")]
    return " ".join(str(w) for w in words if w) or None


def _gpus(env: dict[str, Any]) -> list[str]:
    return [str(g.get("name", "GPU")) for g in env.get("gpus") or []]


def _dists(env: dict[str, Any]) -> dict[str, Any]:
    return {str(d[0]): d[1] for d in env.get("distributions") or [] if d}


# -- code ----------------------------------------------------------------------------------


def _made_by_runs(repo: Repo) -> Any:
    """A test: are these bytes an output (or artefact) of some recorded run?"""

    def made(digest: str | None) -> bool:
        if not digest:
            return False
        return repo.index.files.was_made(digest)

    return made


def _code(objects: ObjectStore, a: Run, b: Run, diffs: bool, made: Any = None) -> dict[str, Any]:
    """The code snapshots' changed files (the tree, plus modules imported from outside).

    The snapshot is git's view of the project, so it also holds the outputs earlier runs
    left in unignored folders: a changed file whose bytes (on each side that has it) a
    run made is data, not code: listed in `data_files`, without a diff."""
    fa, fb = _code_files(objects, a), _code_files(objects, b)
    changed = []
    data_files = []
    for path in sorted(set(fa) | set(fb)):
        ea, eb = fa.get(path), fb.get(path)
        if ea is not None and eb is not None and (ea[1], ea[3]) == (eb[1], eb[3]):
            continue  # same bytes, same mode
        if made is not None and all(made(e[1]) for e in (ea, eb) if e is not None):
            data_files.append(path)
            continue
        status = "added" if ea is None else "removed" if eb is None else "modified"
        entry: dict[str, Any] = {
            "path": path,
            "status": status,
            "sizes": [None if ea is None else ea[0], None if eb is None else eb[0]],
            "hashes": [None if ea is None else ea[1], None if eb is None else eb[1]],
            "diff": None,
            "note": None,
        }
        if ea is not None and eb is not None and ea[1] == eb[1]:  # the mode alone changed
            entry["diff"], entry["note"] = "", f"mode {ea[3]:o} -> {eb[3]:o}"
        elif diffs:
            entry["diff"], entry["note"] = _code_diff(objects, path, ea, eb, a.seq, b.seq)
        changed.append(entry)
    git_a, git_b = (a.code or {}).get("git"), (b.code or {}).get("git")
    return {
        "tree": [(a.code or {}).get("tree"), (b.code or {}).get("tree")],
        "git": {"a": git_a, "b": git_b},
        "files": changed,
        "data_files": data_files,
    }


def _code_files(objects: ObjectStore, run: Run) -> dict[str, tuple[int, str, bool, int]]:
    """path -> (size, hash, kept, mode) of the run's snapshot and outside modules."""
    from vestige.store.tree import read_tree

    code = run.code or {}
    files = {}
    if code.get("tree"):
        for e in read_tree(objects, code["tree"]):
            files[e.path] = (e.size, e.hash, e.kept, e.mode)
    for m in code.get("modules") or []:
        files[m["path"]] = (int(m.get("size") or 0), m.get("hash"), bool(m.get("kept")), 0)
    return files


def _code_diff(
    objects: ObjectStore, path: str, ea: tuple | None, eb: tuple | None, seq_a: int, seq_b: int
) -> tuple[str | None, str | None]:
    """(unified diff, None), or (None, why there is none: binary, not kept, too large)."""
    texts = []
    for e in (ea, eb):
        if e is None:
            texts.append("")
            continue
        size, digest, kept, _mode = e
        if not kept or not digest:
            return None, "not kept"
        if size > CODE_DIFF_MAX_SIZE:
            return None, f"too large to diff ({format_size(size)})"
        try:
            data = objects.read_bytes(digest, verify=True)
        except CorruptObject as err:
            return None, err.message
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            return None, "binary"
        if "\0" in texts[-1]:
            return None, "binary"
    labels = (f" (run #{seq_a})", f" (run #{seq_b})")
    return unified_diff(path, texts[0], texts[1], labels=labels), None


# -- files ---------------------------------------------------------------------------------


def _records(files: Any) -> dict[str, tuple[int, str | None, bool]]:
    return {f.path: (f.size, f.hash, bool(f.kept and f.hash)) for f in files}


def _artefact_files(run: Run) -> dict[str, tuple[int, str | None, bool]]:
    """An artefact file's name -> (size, hash, kept); the one kept last wins, as in cat."""
    out = {}
    for art in run.artefacts:
        for f in art.get("files") or []:
            digest = f.get("hash")
            kept = bool(digest) and bool(f.get("kept", True))
            out[str(f.get("path"))] = (int(f.get("size") or 0), digest, kept)
    return out


class _Comparer:
    """Files of two runs matched by path; changed ones compared by content if possible."""

    def __init__(self, objects: ObjectStore, tol: tuple[float, float], max_size: int) -> None:
        self.objects = objects
        self.rtol, self.atol = tol
        self.max_size = max_size

    def files(self, fa: dict[str, tuple], fb: dict[str, tuple]) -> list[dict[str, Any]]:
        out = []
        for path in sorted(set(fa) | set(fb)):
            ra, rb = fa.get(path), fb.get(path)
            if ra is None:
                status = "added"
            elif rb is None:
                status = "removed"
            else:
                same = ra[1] is not None and ra[1] == rb[1]
                status = "same" if same else "changed"
            out.append({
                "path": path,
                "status": status,
                "sizes": [None if ra is None else ra[0], None if rb is None else rb[0]],
                "hashes": [None if ra is None else ra[1], None if rb is None else rb[1]],
                "diff": None if status == "same" else self.compare(path, ra, rb).to_dict(),
            })  # fmt: skip
        return out

    def compare(self, path: str, ra: tuple | None, rb: tuple | None) -> FileDiff:
        if ra is None or rb is None:
            return compare_hashes(path, _size_hash(ra), _size_hash(rb))
        why = None
        if not (ra[2] and rb[2]):
            why = "the store kept no copy of " + ("either side" if not (ra[2] or rb[2])
                                                  else "one side")  # fmt: skip
        elif max(ra[0], rb[0]) > self.max_size:
            why = f"over {format_size(self.max_size)}: compared by hash"
        if why is None:
            try:
                data_a = self.objects.read_bytes(ra[1], verify=True)
                data_b = self.objects.read_bytes(rb[1], verify=True)
            except CorruptObject as err:
                why = err.message
            else:
                return compare_bytes(path, data_a, data_b, self.rtol, self.atol)
        return compare_hashes(path, _size_hash(ra), _size_hash(rb), note=why)


def _size_hash(r: tuple | None) -> tuple[int, str | None] | None:
    return None if r is None else (r[0], r[1])


# -- one section at a time (the UI's Compare page: each run against the first) ---------------


def code_changes(repo: Repo, a: Run, b: Run) -> dict[str, Any]:
    """The `code` section of `diff_runs(repo, a, b)` alone, its unified diffs included."""
    return _code(repo.store.objects, a, b, True, _made_by_runs(repo))


def kept_files(run: Run) -> dict[str, tuple[int, str | None, bool]]:
    """A run's outputs and artefact files: path -> (size, hash, kept); an output wins
    over an artefact file of the same path."""
    return {**_artefact_files(run), **_records(run.outputs)}


def compare_file(
    repo: Repo,
    path: str,
    a: tuple[int, str | None, bool] | None,
    b: tuple[int, str | None, bool] | None,
    max_size: int = COMPARE_MAX_SIZE,
) -> FileDiff:
    """One file of two runs ((size, hash, kept) each, as `kept_files` gives; None where
    a run lacks it) compared as `diff_runs` compares outputs, with the config's tolerance."""
    if a is not None and b is not None and a[1] is not None and a[1] == b[1]:
        return compare_hashes(path, (a[0], a[1]), (b[0], b[1]))  # (no bytes read)
    tol = (float(repo.config.compare_rtol), float(repo.config.compare_atol))
    return _Comparer(repo.store.objects, tol, max_size).compare(path, a, b)


# -- compare: params and metrics of several runs side by side -------------------------------


def compare_runs(repo: Repo, refs: Sequence[str] = (), where: str | None = None) -> dict[str, Any]:
    """Params and last metric values of several runs, a column per name, the columns
    whose values differ across the runs first. Runs are named by `refs` (in that order)
    or chosen by a --where expression (oldest first); at least two are needed.

    {"runs": [{"id", "seq", "status", "tags"}], "columns": [{"name", "kind" ("param" or
    "metric"), "key", "differs", "values", "present"}]}: `values` has one value per run,
    null when the run lacks it (`present` false) and for a metric whose last value is NaN
    (the index keeps no value for NaN).
    """
    if refs and where:
        raise UsageError("name runs or give --where, not both")
    if refs:
        ids = list(dict.fromkeys(repo.resolve(r) for r in refs))
        wanted = ", ".join(f'"{i}"' for i in ids)  # ULIDs: Crockford base32, nothing to escape
        found = {r["id"]: r for r in repo.runs(where=f"id in ({wanted})")}
        runs = [found[i] for i in ids if i in found]
        what = f"the arguments name {len(runs)} distinct run" + ("s" if len(runs) != 1 else "")
    elif where:
        runs = sorted(repo.runs(where=where), key=lambda r: r["seq"])
        what = f"--where matches {len(runs)} run" + ("s" if len(runs) != 1 else "")
    else:
        raise UsageError("name the runs to compare (vestige compare 40 41 42) or give --where")
    if len(runs) < 2:
        raise UsageError(f"compare needs at least 2 runs; {what}")
    params = list(dict.fromkeys(k for r in runs for k in r["params"]))
    metrics = sorted({k for r in runs for k in r["metrics"]})
    both = set(params) & set(metrics)
    columns = []
    for kind, keys, field in (("param", params, "params"), ("metric", metrics, "metrics")):
        for key in keys:
            cells = [r[field].get(key, _ABSENT) for r in runs]
            columns.append({
                "name": f"{field}.{key}" if key in both else key,
                "kind": kind,
                "key": key,
                "differs": len({_canonical(v) for v in cells}) > 1,
                "values": [None if v is _ABSENT else v for v in cells],
                "present": [v is not _ABSENT for v in cells],
            })  # fmt: skip
    columns.sort(key=lambda c: not c["differs"])  # stable: differing first, order kept
    return {
        "runs": [{k: r[k] for k in ("id", "seq", "status", "tags")} for r in runs],
        "columns": columns,
    }


_ABSENT = object()


def _canonical(v: Any) -> Any:
    """A hashable key equal for equal cells: a string, number, bool or null as itself with
    its type (1, 1.0 and true differ, as their JSON does; NaN equals NaN), other values
    as sorted JSON. json.dumps of every cell cost ~0.1 s at 3,000 runs (issue 23)."""
    if v is _ABSENT:
        return "\0absent"
    kind = type(v)
    if kind is float and v != v:
        return (float, "nan")
    if kind in (str, int, float, bool) or v is None:
        return (kind, v)
    return json.dumps(v, sort_keys=True)
