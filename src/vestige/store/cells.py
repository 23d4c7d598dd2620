"""The cell history of a notebook or IPython session: its live journal, its sealed object.

Each process that records cells (the kernel, and `vestige run x.ipynb`'s executor)
appends JSON lines to `live/<run-id>/cells/<pid>.jsonl` (docs/format.md, "Cell
journals"): `kernel` when recording starts, `start` when a cell starts (so a cell the
kernel died in is still known), `cell` when it ended (self-contained: source, times,
status, streams, outputs, files), `end` when the session ends; the executor writes
`notebook` and `executed`. Each line is one `os.write` on an O_APPEND descriptor, so a
kernel killed at any instant leaves every finished cell readable.

Sealing (vestige/recording/cells.py) merges every journal into one `cells` object
(canonical JSON, in execution order) and a summary in the manifest's `notebook` field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.objects import ObjectStore

CELLS_FORMAT = 1
#: Text kept per cell: each of stdout and stderr, an output's text/plain, the source.
STREAM_MAX = 256 * 1024
OUTPUT_TEXT_MAX = 16 * 1024
SOURCE_MAX = 1024 * 1024
TRACEBACK_MAX = 64 * 1024


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with a note saying how much was dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not kept]"


class Journal:
    """This process's cell journal in one live directory (opened at first write)."""

    def __init__(self, live: str) -> None:
        self.live = live
        self.pid = os.getpid()
        self.fd = -1

    def append(self, kind: str, **fields: Any) -> None:
        """One line, written whole; raises OSError (callers turn it into one warning)."""
        if self.fd < 0 or self.pid != os.getpid():
            folder = os.path.join(self.live, "cells")
            os.makedirs(folder, exist_ok=True)
            self.pid = os.getpid()
            self.fd = os.open(
                os.path.join(folder, f"{self.pid}.jsonl"),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
        line = json.dumps({"e": kind, "pid": self.pid, **fields}, ensure_ascii=True,
                          separators=(",", ":"), default=repr)  # fmt: skip
        data = memoryview((line + "\n").encode())
        while data:
            data = data[os.write(self.fd, data) :]

    def close(self) -> None:
        if self.fd >= 0 and self.pid == os.getpid():
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1


# -- reading the journals back ---------------------------------------------------------------


def read_journals(live: Path) -> dict[str, Any] | None:
    """The cells object a live run would seal to (paths as recorded: absolute), plus the
    notebook facts under `_notebook`; None when no process recorded cells."""
    folder = Path(live) / "cells"
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl"))
    except OSError:
        return None
    kernels: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    for name in names:
        started: dict[int, dict[str, Any]] = {}
        for e in _lines(folder / name):
            kind = e.get("e")
            if kind == "kernel":
                kernels.append({k: e.get(k) for k in ("pid", "t", "python", "ipython",
                                                     "ipykernel", "kernel")})  # fmt: skip
                for key in ("notebook", "source"):
                    if e.get(key) and key not in facts:
                        facts[key] = e[key]
            elif kind == "start" and isinstance(e.get("i"), int):
                started[e["i"]] = e
            elif kind == "cell" and isinstance(e.get("i"), int):
                started.pop(e["i"], None)
                cells.append(_cell(e))
            elif kind == "end" and e.get("saved"):
                facts["saved"] = e["saved"]
            elif kind == "notebook":
                facts.update(path=e.get("path"), params=e.get("params"),
                             injected=e.get("injected"), kernel_name=e.get("kernel"))  # fmt: skip
            elif kind == "executed":
                facts["executed"] = e.get("artefact")
                facts["failed_cell"] = e.get("failed_cell")
                facts["failed_step"] = e.get("failed_step")
        for e in started.values():  # the kernel died (or is still) in these cells
            cells.append(_cell({**e, "status": "interrupted", "started": e.get("t"), "t": None}))
    if not cells and not kernels and not facts:
        return None
    cells.sort(key=lambda c: (_number(c.get("started")), c.get("pid") or 0, c.get("i") or 0))
    for step, c in enumerate(cells, 1):
        c.pop("i", None)
        c["step"] = step
    kernels.sort(key=lambda k: _number(k.get("t")))
    for k in kernels:
        k["started"] = k.pop("t")
    return {"type": "cells", "format": CELLS_FORMAT, "kernels": kernels, "cells": cells,
            "_notebook": facts}  # fmt: skip


def _cell(e: dict[str, Any]) -> dict[str, Any]:
    started, ended = e.get("started"), e.get("t")
    duration = None
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        duration = round(ended - started, 6)
    return {
        "i": e.get("i"),
        "count": e.get("count"),
        "id": e.get("id"),
        "pid": e.get("pid"),
        "started": started,
        "ended": ended,
        "duration": duration,
        "status": e.get("status") or "interrupted",
        "error": e.get("error"),
        "source": str(e.get("source") or ""),
        "stdout": str(e.get("stdout") or ""),
        "stderr": str(e.get("stderr") or ""),
        "outputs": [o for o in e.get("outputs") or () if isinstance(o, dict)],
        "reads": [str(p) for p in e.get("reads") or ()],
        "writes": [str(p) for p in e.get("writes") or ()],
        "removed": [str(p) for p in e.get("removed") or ()],
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    """The journal's JSON objects; a torn last line (a killed writer) is skipped."""
    out = []
    try:
        data = path.read_bytes()
    except OSError:
        return out
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else float("inf")


def load(objects: ObjectStore, notebook: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cells object a sealed manifest's `notebook` names (None without one)."""
    if not notebook or not notebook.get("cells"):
        return None
    data = objects.read_json(notebook["cells"])
    return data if isinstance(data, dict) and data.get("type") == "cells" else None
