"""The lineage page (`/lineage?run=REF` or `/lineage?file=PATH[&hash=H]`): the runs and
files upstream and downstream of a run or a file's bytes (history/graph.py), stale ones
marked as `vestige stale` judges them, drawn as SVG laid out here, on the server.

The layout is layered, left to right: each node's layer is the longest path to it from a
source (edges go from what was made first to what was made of it), then each layer is
ordered by the barycentre of its neighbours in the layers beside it, a few sweeps down
and up, which untangles most crossings. static/lineage.js adds zoom and pan.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vestige.errors import UsageError, VestigeError
from vestige.history.graph import Graph, around_file, around_run, mark_stale
from vestige.records import safe_recorded
from vestige.repo import Repo
from vestige.ui.state import Ui

#: A node's box, and the gaps between layers (x) and between nodes of a layer (y).
NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 210, 38, 90, 16, 20
#: Characters of a label drawn in a box (the whole label is its tooltip).
LABEL_CHARS = 30
#: Barycentre sweeps (each one down and one up).
SWEEPS = 4
HASH = re.compile(r"[0-9a-f]{64}")


def layers(keys: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the longest path to it from a node with no predecessor. An edge
    that would close a cycle (a run that wrote the bytes it read) is left out."""
    succ: dict[str, list[str]] = {k: [] for k in keys}
    for a, b in edges:
        succ[a].append(b)
    done: set[str] = set()
    post: list[str] = []
    for start in keys:  # iterative depth-first search: its post-order reversed is topological
        if start in done:
            continue
        done.add(start)
        stack = [(start, iter(succ[start]))]
        while stack:
            node, it = stack[-1]
            nxt = next((s for s in it if s not in done), None)
            if nxt is None:
                stack.pop()
                post.append(node)
            else:
                done.add(nxt)
                stack.append((nxt, iter(succ[nxt])))
    order = post[::-1]
    rank = {k: i for i, k in enumerate(order)}
    layer = dict.fromkeys(keys, 0)
    for k in order:
        for s in succ[k]:
            if rank[s] > rank[k]:
                layer[s] = max(layer[s], layer[k] + 1)
    return layer


def order(layer: dict[str, int], edges: list[tuple[str, str]]) -> list[list[str]]:
    """The nodes of each layer, top to bottom, by barycentre sweeps."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for k, n in layer.items():
        rows[n].append(k)
    pred: dict[str, list[str]] = {k: [] for k in layer}
    succ: dict[str, list[str]] = {k: [] for k in layer}
    for a, b in edges:
        pred[b].append(a)
        succ[a].append(b)

    def place() -> dict[str, float]:
        return {k: (i + 0.5) / len(row) for row in rows for i, k in enumerate(row)}

    def sweep(indices: range, near: dict[str, list[str]]) -> None:
        for n in indices:
            where = place()
            keyed = []
            for i, k in enumerate(rows[n]):
                others = [where[o] for o in near[k] if layer[o] != n]
                keyed.append((sum(others) / len(others) if others else where[k], i, k))
            rows[n] = [k for _b, _i, k in sorted(keyed)]

    for _ in range(SWEEPS):
        sweep(range(1, len(rows)), pred)
        sweep(range(len(rows) - 2, -1, -1), succ)
    return rows


def layout(graph: Graph) -> dict[str, Any]:
    """Boxes and edge paths in SVG user units: {width, height, nodes, edges}."""
    keys = list(graph.nodes)
    layer = layers(keys, graph.edges)
    rows = order(layer, graph.edges)
    tallest = max((len(r) for r in rows), default=1)
    height = 2 * MARGIN + tallest * NODE_H + (tallest - 1) * GAP_Y
    width = 2 * MARGIN + len(rows) * NODE_W + max(len(rows) - 1, 0) * GAP_X
    at: dict[str, tuple[float, float]] = {}
    for n, row in enumerate(rows):
        used = len(row) * NODE_H + (len(row) - 1) * GAP_Y
        top = (height - used) / 2
        for i, k in enumerate(row):
            at[k] = (MARGIN + n * (NODE_W + GAP_X), top + i * (NODE_H + GAP_Y))
    nodes = []
    for k in keys:
        node = graph.nodes[k]
        x, y = at[k]
        label = (
            node.label if len(node.label) <= LABEL_CHARS else node.label[: LABEL_CHARS - 1] + "…"
        )
        tip = [node.label]
        if node.aliases:
            tip.append("also as " + ", ".join(node.aliases))
        if node.hash:
            tip.append(f"blake3 {node.hash[:12]}")
        if node.status:
            tip.append(f"status {node.status}")
        tip += [f"stale: {r}" for r in node.reasons]
        if node.more:
            tip.append(f"read by {node.more} more runs, not drawn")
        nodes.append({"key": k, "kind": node.kind, "x": x, "y": y, "label": label,
                      "tip": "\n".join(tip), "url": _href(node), "stale": node.stale,
                      "centre": k == graph.centre, "status": node.status})  # fmt: skip
    paths = []
    for a, b in graph.edges:
        (xa, ya), (xb, yb) = at[a], at[b]
        x1, y1, x2, y2 = xa + NODE_W, ya + NODE_H / 2, xb, yb + NODE_H / 2
        bend = max(40.0, abs(x2 - x1) / 2)
        paths.append({"d": f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} "
                           f"{x2:g},{y2:g}", "stale": graph.nodes[a].stale})  # fmt: skip
    return {"width": width, "height": height, "nodes": nodes, "edges": paths,
            "node_w": NODE_W, "node_h": NODE_H}  # fmt: skip


def _href(node: Any) -> str:
    """Where a node leads: a run to its page, a file to its own lineage (by its bytes)."""
    if node.kind == "run":
        return f"/run/{node.run_id}"
    query = {"file": node.path} | ({"hash": node.hash} if node.hash else {})
    return "/lineage?" + urlencode(query)


def file_hash(repo: Repo, path: str, given: str | None) -> str:
    """The bytes a `file=` names: `hash=` when given; else the file now in the project
    (never outside it: the real path must stay under the root); else the bytes the latest
    run recorded at that path. UsageError says what was wrong."""
    if not safe_recorded(path):
        raise UsageError(f"file={path!r} is not a file's path: give it relative to the "
                         "project root, like out/fig.png")  # fmt: skip
    if given is not None:
        if not HASH.fullmatch(given):
            raise UsageError(f"hash={given!r} is not a BLAKE3 hash (64 hex digits)")
        return given
    if not path.startswith("/"):
        from vestige.store.hashing import hash_if_file

        root = os.path.realpath(repo.store.root)
        real = os.path.realpath(os.path.join(root, path))
        if real.startswith(root + os.sep):
            digest = hash_if_file(real)
            if digest is not None:
                return digest
    recorded = [r[7] for r in repo.index.files.history_of([path]) if r[7]]
    if not recorded:
        raise UsageError(f"no file {path} in the project, and no run recorded one there")
    return str(recorded[-1])


def lineage_page(request: Request) -> Response:
    """GET /lineage?run=REF or ?file=PATH[&hash=H]."""
    ui: Ui = request.app.state.ui
    q = request.query_params
    ref, path = q.get("run"), q.get("file")
    if ref is None and path is None:
        return ui.render(request, "lineage.html", graph=None, title="a run or a file")
    if (ref is None) == (path is None) or not (ref or path or "").strip():
        return ui.render(request, "error.html", status=400, message="give one of ?run=REF "
                         "(a run number or id) or ?file=PATH (a file of the project)")  # fmt: skip
    repo = ui.repo()
    try:
        if ref is not None:
            graph = around_run(repo, ref)
            title = f"run {graph.nodes[graph.centre].label.split(' ')[0]}"
        else:
            assert path is not None
            graph = around_file(repo, path, file_hash(repo, path, q.get("hash")))
            title = path
    except UsageError as e:
        return ui.render(request, "error.html", status=400, message=str(e))
    except VestigeError as e:
        return ui.render(request, "error.html", status=404, message=str(e))
    judged = None
    try:
        mark_stale(repo, graph)
    except (VestigeError, OSError) as e:  # the graph is worth showing without the marks
        judged = f"staleness not judged: {e}"
    stale = sorted(
        (n for n in graph.nodes.values() if n.stale and n.kind == "run"), key=lambda n: n.seq or 0
    )
    return ui.render(request, "lineage.html", title=title, graph=graph,
                     drawing=layout(graph), stale=stale, judged=judged)  # fmt: skip


routes = [Route("/lineage", lineage_page)]
