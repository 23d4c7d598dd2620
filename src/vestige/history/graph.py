"""The lineage graph around a run or a file: the runs and files upstream (what it was made
from) and downstream (what was made from it), with the stale ones marked.

The edges are lineage.py's, computed by content: an input links to the run that made its
bytes (`Repo.producer`, the latest maker that started before the reader). Downstream is
the same rule read the other way: a run that read an output's bytes is its consumer only
when that output's run is the producer it would be given. A file is a node per content
(its BLAKE3): a copy under another name is the same node, its other names kept. The walk
stops at MAX_NODES nodes and says so (`cut`). Nothing is written.
"""

from __future__ import annotations

from vestige.records import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

    from vestige.repo import Repo

#: The walk stops once the graph holds this many nodes (a page draws them all).
MAX_NODES = 240
#: Of the runs that read one file's bytes, at most this many are followed.
MAX_READERS = 24


class Node(Record):
    """A run (`kind` "run": id, seq, status, command) or a file (`kind` "file": path,
    hash) of the graph; `stale` and its `reasons` as `vestige stale` judges them."""

    _frozen = False

    key: str
    kind: str
    label: str
    run_id: str | None = None
    seq: int | None = None
    status: str | None = None
    started: float | None = None
    path: str | None = None
    hash: str | None = None
    aliases: list[str] = Factory(list)  # a file's other names for the same bytes
    stale: bool = False
    reasons: list[str] = Factory(list)
    more: int = 0  # readers not followed (MAX_READERS)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Graph(Record):
    """Nodes by key, edges (from, to) in the order found, the node it is centred on."""

    _frozen = False

    centre: str
    nodes: dict[str, Node] = Factory(dict)
    edges: list[tuple[str, str]] = Factory(list)
    cut: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "centre": self.centre,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [list(e) for e in self.edges],
            "cut": self.cut,
        }


class _Walk:
    """One graph being built: adds nodes (up to MAX_NODES) and edges once each."""

    def __init__(self, repo: Repo, centre: str) -> None:
        self.repo = repo
        self.graph = Graph(centre)
        self._edges: set[tuple[str, str]] = set()

    def full(self) -> bool:
        """Whether the graph holds MAX_NODES nodes (then it is marked `cut`)."""
        if len(self.graph.nodes) >= MAX_NODES:
            self.graph.cut = True
            return True
        return False

    def run(self, row: sqlite3.Row) -> str:
        """The node of a run (an index row of `runs`), added once."""
        key = "r:" + row["id"]
        if key not in self.graph.nodes:
            self.graph.nodes[key] = Node(
                key, "run", f"#{row['seq']} {row['command']}", run_id=row["id"], seq=row["seq"],
                status=row["status"], started=row["started"],
            )  # fmt: skip
        return key

    def file(self, path: str, digest: str | None) -> str:
        """The node of a file's bytes (by path when not hashed); another name is an alias."""
        key = "f:" + (digest or "path:" + path)
        node = self.graph.nodes.get(key)
        if node is None:
            self.graph.nodes[key] = Node(key, "file", path, path=path, hash=digest)
        elif path != node.path and path not in node.aliases:
            node.aliases.append(path)
        return key

    def edge(self, a: str, b: str) -> None:
        """An edge from node `a` to node `b`, once."""
        if a != b and (a, b) not in self._edges:
            self._edges.add((a, b))
            self.graph.edges.append((a, b))

    def upstream(self, run_id: str, started: float) -> None:
        """The run's inputs, their producers, their inputs..., breadth first."""
        todo, seen = [(run_id, started)], {run_id}
        while todo:
            rid, when = todo.pop(0)
            for path, digest in self.repo.index.files.inputs_of(rid):
                if self.full():
                    return
                f = self.file(path, digest)
                self.edge(f, "r:" + rid)
                row = self.repo.producer(digest, before=when, path=path) if digest else None
                if row is not None:
                    self.edge(self.run(row), f)
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        todo.append((row["id"], row["started"]))

    def downstream(self, run_id: str | None, files: list[tuple[str, str]]) -> None:
        """Files (of the run `run_id`, or one file when None), the runs that consumed them,
        those runs' outputs, and so on, breadth first."""
        todo: list[tuple[str | None, list[tuple[str, str]]]] = [(run_id, files)]
        seen = {run_id}
        while todo:
            rid, outs = todo.pop(0)
            for path, digest in outs:
                if self.full():
                    return
                f = self.file(path, digest)
                if rid is not None:
                    self.edge("r:" + rid, f)
                readers = self._consumers(rid, digest)
                self.graph.nodes[f].more += max(0, len(readers) - MAX_READERS)
                for row in readers[:MAX_READERS]:
                    if self.full():
                        return
                    self.edge(f, self.run(row))
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        todo.append((row["id"], self.repo.index.files.outputs_of(row["id"])))

    def _consumers(self, maker: str | None, digest: str) -> list[sqlite3.Row]:
        """The runs that read these bytes as made by `maker` (each once); with no maker,
        every run that read them."""
        out, seen = [], set()
        for row in self.repo.index.files.readers_of(digest):
            if row["id"] in seen or row["id"] == maker:
                continue
            if maker is not None:
                made = self.repo.producer(digest, before=row["started"], path=row["file_path"])
                if made is None or made["id"] != maker:
                    continue
            seen.add(row["id"])
            out.append(row)
        return out


def around_run(repo: Repo, ref: str) -> Graph:
    """The graph of the run `ref` names (anything `vestige show` takes)."""
    run_id = repo.resolve(ref)
    row = repo.index.runs.row(run_id)
    if row is None:
        from vestige.errors import RunNotFound

        raise RunNotFound(f"run {run_id} is gone from the index; run `vestige reindex`")
    walk = _Walk(repo, "r:" + run_id)
    walk.run(row)
    walk.upstream(run_id, row["started"])
    walk.downstream(run_id, repo.index.files.outputs_of(run_id))
    return walk.graph


def around_file(repo: Repo, path: str, digest: str) -> Graph:
    """The graph of a file's bytes: the run that made them (as `vestige lineage` finds
    it) and what it came from; every run that read them and what came of it."""
    walk = _Walk(repo, "f:" + digest)
    key = walk.file(path, digest)
    row = repo.producer(digest, path=path)
    if row is not None:
        walk.edge(walk.run(row), key)
        walk.upstream(row["id"], row["started"])
    walk.downstream(None, [(path, digest)])
    return walk.graph


def mark_stale(repo: Repo, graph: Graph) -> None:
    """Mark the runs `vestige stale` lists, with its reasons, and the files they made."""
    from vestige.history.lineage import stale

    found = {s.id: s for s in stale(repo)}
    for node in graph.nodes.values():
        if node.kind == "run" and node.run_id in found:
            node.stale, node.reasons = True, list(found[node.run_id].reasons)
    for a, b in graph.edges:
        if graph.nodes[a].stale and graph.nodes[b].kind == "file":
            graph.nodes[b].stale = True
            graph.nodes[b].reasons = [f"made by run {graph.nodes[a].label.split(' ')[0]}, "
                                      "which is stale"]  # fmt: skip
