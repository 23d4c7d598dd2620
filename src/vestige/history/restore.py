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
    items: list[Candidate], patterns: list[str], roles: set[str], root: Path, cwd: Path
) -> list[Candidate]:
    """The candidates named by `patterns` (paths, folders or globs, relative to the current
    directory or the root) within `roles`; every pattern must match something."""
    pool = [c for c in items if c.role in roles]
    if not patterns:
        return pool
    chosen: dict[tuple[str, str], Candidate] = {}
    for pattern in patterns:
        forms = _forms(pattern, root, cwd)
        hits = [c for c in pool if any(_matches(c.path, f) for f in forms)]
        if not hits:
            kinds = ", ".join(sorted(roles))
            raise UsageError(f"run has no file matching {pattern!r} in {kinds}; see `vestige show`")
        for c in hits:
            chosen[(c.role, c.path)] = c
    return list(chosen.values())


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
        if c.kept and c.hash and not repo.store.objects.exists(c.hash):
            freed = repo.freed_error(c.path, c.hash)
            if freed is not None:
                raise freed
    results: list[Restored] = []
    for c in sorted(chosen, key=lambda c: (ROLES.index(c.role), c.path)):
        dest = _destination(c, root, to, run.seq)
        if not c.kept or c.hash is None or not repo.store.objects.exists(c.hash):
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
