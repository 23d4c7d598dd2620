"""Restore: write a run's kept files (its code, inputs, outputs, artefacts) back to disk.

Into the project at their recorded paths by default, or under another folder with
`to`. A file already there with the same bytes is left alone; one with other bytes is
not overwritten unless `force` (the user's current work is never clobbered by default).
Every write is atomic (temp file, rename), with the recorded mode.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from vestige.errors import StoreError, UsageError
from vestige.records import Record, safe_recorded, safe_relative

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo

ROLES = ("code", "inputs", "outputs", "artefacts")


class Candidate(Record):
    """A file of the run that could be restored."""

    role: str
    path: str  # as recorded: relative to the project root, or absolute (outside it)
    hash: str | None
    size: int
    kept: bool
    mode: int | None = None


class Restored(Record):
    """What happened to one file: written, same (already there), exists (other bytes,
    not overwritten), not-kept (only its hash was recorded), or would-write (dry run)."""

    role: str
    path: str
    dest: str
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "dest": self.dest, "status": self.status}


def candidates(repo: Repo, run: Run) -> list[Candidate]:
    """Every file of the run: its code snapshot, imported modules, inputs, outputs, artefacts."""
    out: list[Candidate] = []
    code = run.code or {}
    if code.get("tree"):
        from vestige.store.tree import read_tree

        for e in read_tree(repo.store.objects, code["tree"]):
            out.append(Candidate("code", e.path, e.hash, e.size, e.kept, e.mode))
    for m in code.get("modules") or []:
        out.append(Candidate("code", m["path"], m.get("hash"), int(m.get("size") or 0),
                             bool(m.get("kept"))))  # fmt: skip
    for role, files in (("inputs", run.inputs), ("outputs", run.outputs)):
        for f in files:
            out.append(Candidate(role, f.path, f.hash, f.size, f.kept, f.mode))
    for a in run.artefacts:
        for f in a.get("files") or []:
            kept = bool(f.get("kept", True)) and f.get("hash") is not None
            out.append(Candidate("artefacts", str(f["path"]), f.get("hash"),
                                 int(f.get("size") or 0), kept))  # fmt: skip
    return out


def select(
    items: list[Candidate], patterns: list[str], roles: set[str], root: Path, cwd: Path,
    repo: Repo | None = None, run: Run | None = None,
) -> list[Candidate]:  # fmt: skip
    """The candidates named by `patterns` (paths, folders or globs, relative to the current
    directory or the root, or the unique end of a path: `views.py` for `src/views.py`, as
    `debt` takes units) within `roles`; every pattern must match something the run had
    (UsageError, one line, otherwise). A path named in several roles is restored once: as
    the run left it (output, else input, else code). With `repo` and `run`, a code file
    that is another run's output (an old snapshot took it in: docs/format.md) is not the
    run's to restore, and the error names the run that wrote it."""
    pool = [c for c in items if c.role in roles]
    if not patterns:
        return pool
    name = f"run #{run.seq}" if run is not None else "the run"
    show = f"vestige show {run.seq}" if run is not None else "vestige show"
    chosen: dict[tuple[str, str], Candidate] = {}
    for pattern in patterns:
        forms = _forms(pattern, root, cwd)
        hits = [c for c in pool if any(_matches(c.path, f) for f in forms)]
        if not hits:
            hits = _by_tail(pool, pattern, name)
        made = _made_elsewhere(repo, run, hits) if repo is not None and run is not None else {}
        if made:
            hits = [c for c in hits if (c.path, c.hash) not in made]
        if not hits and made:
            (path, _digest), maker = next(iter(made.items()))
            where = f"`vestige restore {maker} {path}`" if maker else "`vestige which` tells"
            raise UsageError(f"{name} did not write {path}: the copy in its code snapshot "
                             f"is another run's output ({where})")  # fmt: skip
        if not hits:
            if roles == set(ROLES):
                what = "it did not write, read or keep one, and its code has none"
            else:
                what = f"in its {', '.join(sorted(roles))}"
            raise UsageError(f"{name} has no file matching {pattern!r}: {what}; `{show}` "
                             "lists its files")  # fmt: skip
        for c in hits:
            chosen[(c.role, c.path)] = c
    return _once_per_place(list(chosen.values()))


#: Which of a path's roles is restored when several are chosen: what the run left there.
_LAST = {"outputs": 0, "inputs": 1, "code": 2}


def _once_per_place(chosen: list[Candidate]) -> list[Candidate]:
    """One candidate per place on disk: a file the run read or wrote that was in its code
    snapshot too is restored as it left it (two versions to one place would leave the first)."""
    best: dict[str, Candidate] = {}
    out = []
    for c in chosen:
        if c.role == "artefacts":
            out.append(c)
        elif c.path not in best or _LAST[c.role] < _LAST[best[c.path].role]:
            best[c.path] = c
    return out + list(best.values())


def _by_tail(pool: list[Candidate], pattern: str, name: str) -> list[Candidate]:
    """The candidates at the one path that ends with `pattern` (whole components); none
    when no path does; a UsageError naming them when several do."""
    tail = pattern.strip("/").removeprefix("./")
    if not tail:
        return []
    paths = sorted({c.path for c in pool if c.path == tail or c.path.endswith("/" + tail)})
    if len(paths) > 1:
        shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
        raise UsageError(f"{pattern!r} matches several files of {name} ({shown}); "
                         "give more of the path")  # fmt: skip
    return [c for c in pool if paths and c.path == paths[0]]


def _made_elsewhere(repo: Repo, run: Run, hits: list[Candidate]) -> dict[tuple[str, str], int]:
    """{(path, hash): the number of the run that made it (0 if unknown)} of the code files
    among `hits` that an earlier run wrote and this run did not write or read (one query)."""
    from vestige.capture.code import IMPORTABLE

    own = {f.path for f in (*run.inputs, *run.outputs)}
    code = [(c.path, c.hash) for c in hits if c.role == "code" and c.hash
            and not c.path.startswith("/") and c.path not in own
            and not c.path.endswith(IMPORTABLE)]  # fmt: skip
    made = repo.index.files.written_at(code) if code else set()
    out = {}
    for path, digest in made:
        row = repo.producer(digest, before=run.started, path=path)
        out[(path, digest)] = int(row["seq"]) if row is not None else 0
    return out


def _forms(pattern: str, root: Path, cwd: Path) -> list[str]:
    from vestige.repo import path_forms

    return [f.rstrip("/") for f in path_forms(pattern, root, cwd) if f.rstrip("/")]


def _matches(path: str, form: str) -> bool:
    return (
        path == form or path.startswith(form.rstrip("/") + "/") or fnmatch.fnmatchcase(path, form)
    )


def restore(
    repo: Repo,
    run: Run,
    chosen: list[Candidate],
    to: Path | None,
    force: bool = False,
    dry_run: bool = False,
) -> list[Restored]:
    """Write the chosen files; return what happened to each."""
    from vestige.store.hashing import hash_if_file

    root = repo.store.root
    refuse_unsafe(run, chosen, str(to) if to is not None else f"the project {root}")
    for c in chosen:  # bytes gc freed: say which run re-makes them, before writing anything
        if c.kept and c.hash and not repo.store.objects.available(c.hash):
            freed = repo.freed_error(c.path, c.hash)
            if freed is not None:
                raise freed
    results: list[Restored] = []
    for c in sorted(chosen, key=lambda c: (ROLES.index(c.role), c.path)):
        dest = _destination(c, root, to, run.seq)
        if not c.kept or c.hash is None or not repo.store.objects.available(c.hash):
            results.append(Restored(c.role, c.path, str(dest), "not-kept"))
            continue
        if dest.is_file():
            if hash_if_file(dest) == c.hash:
                results.append(Restored(c.role, c.path, str(dest), "same"))
                continue
            if not force:
                results.append(Restored(c.role, c.path, str(dest), "exists"))
                continue
        if dry_run:
            results.append(Restored(c.role, c.path, str(dest), "would-write"))
            continue
        repo.store.objects.copy_to(c.hash, dest, c.mode)
        results.append(Restored(c.role, c.path, str(dest), "written"))
    return results


def refuse_unsafe(run: Run, items: Iterable[Candidate], where: str) -> None:
    """Raise StoreError, before anything is written, when a file's recorded path would not
    stay inside the folder it is written under (`where`, for the message): a crafted or
    tampered manifest (docs/format.md, M3). Absolute paths (files outside the project)
    pass when they too would stay inside a folder; artefact files are names, relative."""
    for c in items:
        if not (safe_relative(c.path) if c.role == "artefacts" else safe_recorded(c.path)):
            raise unsafe_path(run, c.role, c.path, where)


def unsafe_path(run: Run, role: str, path: object, where: str) -> StoreError:
    """The one-line error of a writer that met an unsafe recorded path (restore, export,
    rerun): which run, which path, and that nothing was written."""
    what = _WHAT.get(role, role)
    return StoreError(f"run #{run.seq} ({run.id}) records the {what} path {path!r}, which "
                      f"would not stay inside {where}: nothing was written (a tampered "
                      "store? see `vestige fsck`)")  # fmt: skip


_WHAT = {"code": "code file", "inputs": "input", "outputs": "output", "artefacts": "artefact file",
         "cwd": "working directory"}  # fmt: skip


def _destination(c: Candidate, root: Path, to: Path | None, seq: int) -> Path:
    base = to if to is not None else root
    if c.role == "artefacts":
        return base / (f"artefacts-{seq}" if to is None else "artefacts") / c.path
    if c.path.startswith("/"):
        if to is None:
            return Path(c.path)  # outside the project: back where it was
        return to / "outside" / c.path.lstrip("/")
    return base / c.path
