"""Lineage: which run made the bytes another run read, and what is stale now.

An edge joins two runs when an input of the later one has the hash of an output (or a
kept artefact) of an earlier one: by content, so renames and copies keep the link. Of
several runs that made the same bytes, the latest that started before the reader is the
producer (for a file on disk: the latest of all). Everything here reads the index and
the manifests; nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.records import Factory, Record, Run
from vestige.store.hashing import hash_if_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

    from vestige.repo import Repo

#: How deep `lineage` walks before it stops (a chain longer than this is cut, and says so).
MAX_DEPTH = 100


class RunNode(Record):
    """A run in a lineage tree, with the files it read."""

    _frozen = False

    id: str
    seq: int
    command: list[str]
    started: float
    status: str
    inputs: list[FileNode] = Factory(list)
    seen: bool = False  # already expanded higher up the tree (not repeated)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "command": self.command,
            "started": self.started,
            "status": self.status,
            "seen": self.seen,
            "inputs": [f.to_dict() for f in self.inputs],
        }


class FileNode(Record):
    """A file between runs: the run that made its bytes, or None for a source."""

    _frozen = False

    path: str
    hash: str | None
    made_by: RunNode | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "hash": self.hash,
            "made_by": self.made_by.to_dict() if self.made_by else None,
            "note": self.note,
        }


def inputs_of(repo: Repo, run_id: str) -> list[tuple[str, str | None]]:
    """(path, hash) of the files a run read, in path order."""
    return repo.index.files.inputs_of(run_id)


def tree(repo: Repo, path: str, digest: str) -> FileNode:
    """The ancestry of a file's bytes: its producing run, that run's inputs, and so on."""
    expanded: set[str] = set()

    def file_node(p: str, h: str | None, before: float | None, depth: int) -> FileNode:
        if h is None:
            return FileNode(p, None, None, "not hashed")
        row = repo.producer(h, before, path=p)
        if row is None:
            return FileNode(p, h, None, None)
        if depth >= MAX_DEPTH:
            return FileNode(p, h, None, f"cut at depth {MAX_DEPTH}")
        node = RunNode(
            id=row["id"], seq=row["seq"], command=_argv(row), started=row["started"],
            status=row["status"],
        )  # fmt: skip
        if row["id"] in expanded:
            node.seen = True
        else:
            expanded.add(row["id"])
            started = row["started"]
            node.inputs = [
                file_node(p2, h2, started, depth + 1) for p2, h2 in inputs_of(repo, row["id"])
            ]
        return FileNode(p, h, node, None)

    return file_node(path, digest, None, 0)


def _argv(row: sqlite3.Row) -> list[str]:
    import json

    return list(json.loads(row["argv"]))


# -- stale --------------------------------------------------------------------------------


class StaleRun(Record):
    """A run whose outputs on disk no longer follow from the project as it is now."""

    _frozen = False

    id: str
    seq: int
    command: list[str]
    cwd: str
    started: float
    outputs: list[str] = Factory(list)  # its outputs present in the tree with its bytes
    reasons: list[str] = Factory(list)
    upstream: list[str] = Factory(list)  # ids of the stale runs that made its inputs

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "command": self.command,
            "cwd": self.cwd,
            "started": self.started,
            "outputs": self.outputs,
            "reasons": self.reasons,
            "upstream": self.upstream,
        }


def current_hashes(repo: Repo) -> dict[str, str]:
    """{path relative to the root: hash} of the tree as it is now (through the stat cache)."""
    from vestige.capture.scan import Scanner
    from vestige.store.hashing import hash_file
    from vestige.store.statcache import StatCache

    root = repo.store.root
    cache = StatCache(repo.index.conn)
    cache.preload(str(root))
    out: dict[str, str] = {}
    for rel, st in Scanner(root, repo.config.scan_ignore).scan().items():
        full = str(root / rel)
        digest = cache.get(full, st)
        if digest is None:
            try:
                digest = hash_file(Path(full), st.size)
            except OSError:
                continue
            cache.put(full, st, digest)
        out[rel] = digest
    cache.flush()
    return out


def stale(repo: Repo) -> list[StaleRun]:
    """The runs that made files now in the tree and whose code or inputs have changed since
    (or whose inputs came from such a run), producers before consumers."""
    now = current_hashes(repo)
    # the run behind each file's current bytes
    made: dict[str, list[str]] = {}
    for rel, digest in now.items():
        row = repo.producer(digest, path=rel)
        if row is not None and not _was_read(repo, row["id"], rel, digest):
            made.setdefault(row["id"], []).append(rel)
    runs: dict[str, Run] = {}
    todo = list(made)
    while todo:  # also the producers of their inputs, however far back
        run_id = todo.pop()
        if run_id in runs:
            continue
        try:
            run = repo.run(run_id)
        except Exception:
            continue
        if run.status == "running":
            continue
        runs[run_id] = run
        for f in run.inputs:
            if f.hash:
                row = repo.producer(f.hash, run.started, path=f.path)
                if row is not None and row["id"] not in runs:
                    todo.append(row["id"])
    verdict: dict[str, StaleRun] = {}
    out: list[StaleRun] = []
    for run in sorted(runs.values(), key=lambda r: (r.started, r.seq)):
        reasons = changes_since(repo, run, now)
        upstream: list[str] = []
        for f in run.inputs:
            if not f.hash:
                continue
            row = repo.producer(f.hash, run.started, path=f.path)
            if row is not None and row["id"] in verdict:
                reasons.append(f"input {f.path} was made by run #{row['seq']}, which is stale")
                if row["id"] not in upstream:
                    upstream.append(row["id"])
        if not reasons:
            continue
        item = StaleRun(
            id=run.id, seq=run.seq, command=list(run.command), cwd=run.cwd,
            started=run.started, outputs=sorted(made.get(run.id, [])), reasons=reasons,
            upstream=upstream,
        )  # fmt: skip
        verdict[run.id] = item
        out.append(item)
    return out


def _was_read(repo: Repo, run_id: str, path: str, digest: str) -> bool:
    """The run read this very file with these bytes (a copy it made of its own input)."""
    return repo.index.files.was_read(run_id, path, digest)


def changes_since(repo: Repo, run: Run, now: dict[str, str]) -> list[str]:
    """What changed since the run, given the tree's hashes now: its project code and the
    files it read (empty: the run would do the same again). Also --skip-done's test."""
    reasons: list[str] = []
    code = run.code or {}
    snapshot = code.get("imported_hashes")
    if snapshot is None:  # a manifest sealed before imported_hashes: read its tree
        snapshot = _code_hashes(repo, code.get("tree"))
    for rel in code.get("imported") or []:
        was = snapshot.get(rel)
        if rel not in now:
            reasons.append(f"code {rel} was deleted")
        elif was is not None and now[rel] != was:
            reasons.append(f"code {rel} changed")
    for m in code.get("modules") or []:  # project code imported from outside the tree
        current = hash_if_file(m["path"])
        if current is None:
            reasons.append(f"code {m['path']} was deleted")
        elif current != m.get("hash"):
            reasons.append(f"code {m['path']} changed")
    for f in run.inputs:
        current = hash_if_file(f.path) if f.path.startswith("/") else now.get(f.path)
        if current is None:
            reasons.append(f"input {f.path} was deleted")
        elif f.hash is not None and current != f.hash:
            reasons.append(f"input {f.path} changed")
    return reasons


def _code_hashes(repo: Repo, tree_hash: str | None) -> dict[str, str]:
    if not tree_hash:
        return {}
    from vestige.store.tree import read_tree

    try:
        return {e.path: e.hash for e in read_tree(repo.store.objects, tree_hash)}
    except Exception:
        return {}


def refresh_command(item: StaleRun, root: Path) -> str:
    """The shell line that would re-make a stale run's outputs (recorded again)."""
    import shlex

    where = root / item.cwd if item.cwd not in ("", ".") else root
    here = Path(os.getcwd())
    prefix = "" if where == here else f"cd {shlex.quote(str(where))} && "
    argv = item.command
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("python") and argv[1].endswith(".py"):
        argv = argv[1:]  # `vestige run x.py` runs it with the current Python, as recorded
    return prefix + "vestige run " + shlex.join(argv)
