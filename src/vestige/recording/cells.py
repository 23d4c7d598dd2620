"""A run's cell history, sealed and read back: the journals of vestige/store/cells.py
merged into one `cells` object, secrets scrubbed, paths made root-relative and the
machine's own files dropped; `vestige cells` and `extract` read it sealed or live."""

from __future__ import annotations

from pathlib import Path

from vestige.capture.paths import is_environment_path
from vestige.errors import UsageError
from vestige.store.cells import load, read_journals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo
    from vestige.store.objects import ObjectStore


# -- sealing ---------------------------------------------------------------------------------


def seal_cells(
    live: Path, root: Path, objects: ObjectStore, scrub: Callable[[str], str]
) -> dict[str, Any] | None:
    """Store the run's cells object; return the manifest's `notebook` field (None when
    the run recorded no cells and ran no notebook)."""
    data = read_journals(live)
    if data is None:
        return None
    facts = data.pop("_notebook")
    for c in data["cells"]:
        _finish_cell(c, root, scrub)
    digest = objects.put_json(data)
    cells = data["cells"]
    path = facts.get("path") or facts.get("notebook")
    kernel = dict(data["kernels"][0]) if data["kernels"] else None
    if kernel is not None and facts.get("kernel_name"):
        kernel["kernel"] = kernel.get("kernel") or facts["kernel_name"]
    return {
        "path": _relative(str(path), root) if path else None,
        "cells": digest,
        "count": len(cells),
        "errors": sum(1 for c in cells if c["status"] == "error"),
        "kernel": kernel,
        "source": facts.get("source"),
        "saved": facts.get("saved"),
        "executed": facts.get("executed"),
        "params": facts.get("params"),
        "injected": facts.get("injected"),
        "failed_cell": facts.get("failed_cell"),
        "failed_step": facts.get("failed_step"),
    }


def _finish_cell(c: dict[str, Any], root: Path, scrub: Callable[[str], str]) -> None:
    """Secrets scrubbed from the texts; paths made root-relative, the machine's own
    files (fonts, caches, configs) dropped as they are from the run's inputs."""
    for key in ("source", "stdout", "stderr"):
        c[key] = scrub(c[key])
    err = c.get("error")
    if isinstance(err, dict):
        c["error"] = {k: scrub(v) if isinstance(v, str) else v for k, v in err.items()}
    for o in c["outputs"]:
        if isinstance(o.get("text"), str):
            o["text"] = scrub(o["text"])
    for key in ("reads", "writes", "removed"):
        seen: dict[str, None] = {}
        for p in c[key]:
            if not is_environment_path(p):
                seen.setdefault(_relative(p, root), None)
        c[key] = list(seen)


def _relative(path: str, root: Path) -> str:
    full = Path(path)
    if full == root or root in full.parents:
        return full.relative_to(root).as_posix()
    return path


# -- reading a run's cells ---------------------------------------------------------------------


def load_live(live: Path, root: Path) -> dict[str, Any] | None:
    """The cells recorded so far by a run still going (paths made root-relative)."""
    data = read_journals(live)
    if data is None:
        return None
    data.pop("_notebook", None)
    for c in data["cells"]:
        _finish_cell(c, root, lambda s: s)
    return data


def of_run(repo: Repo, run: Run) -> dict[str, Any]:
    """The cells object of a run, sealed or still running; a usage error without cells."""
    if run.status == "running":
        data = load_live(repo.store.live / run.id, Path(run.root))
    else:
        data = load(repo.store.objects, run.notebook)
    if not (data or {}).get("cells"):
        raise UsageError(no_cells(run))
    assert data is not None
    return data


def no_cells(run: Run) -> str:
    """Why a run has no cells, and what would give it some: not the way it was just run
    (`vestige run x.ipynb` of a notebook without code, a session with no cell after
    `%load_ext vestige`, a script)."""
    nb = run.notebook or {}
    headless = any(a == "vestige.notebook.execute" or a.endswith(".ipynb") for a in run.command[:3])
    if headless:
        path = nb.get("path") or next((a for a in run.command if a.endswith(".ipynb")), "it")
        if run.status == "failed" and not nb.get("count"):
            return (f"run #{run.seq} recorded no cells: it failed before running a cell of "
                    f"{path} (`vestige log {run.seq} --stderr` says why)")  # fmt: skip
        return (f"run #{run.seq} recorded no cells: {path} has no code cell with code in it "
                "(markdown and empty cells are not run); add one, or give a notebook that has "
                "some")  # fmt: skip
    if nb:
        return (f"run #{run.seq} recorded no cells: no cell ran in that session after "
                "`%load_ext vestige` (cells run before it are not recorded)")  # fmt: skip
    return (f"run #{run.seq} recorded no notebook cells: it is not a notebook run (record "
            "one with `%load_ext vestige` or `vestige run x.ipynb`)")  # fmt: skip
