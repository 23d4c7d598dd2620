"""Export: one run as a self-contained folder to hand to someone without vestige.

DIR/README.md          what ran, when, on what machine, with which params, and how to run it again
DIR/project/           the code snapshot, with the kept inputs at their places: run it here
DIR/outputs/           the outputs as the run wrote them (to compare a rerun with)
DIR/artefacts/         the kept artefacts (vestige.keep, figures)
DIR/metrics.csv        every metric point: key, step, time, value
DIR/requirements.txt   the Python packages installed when it ran, pinned
DIR/inputs.json        every input: path, hash, size, and whether its bytes are included
DIR/run.json           the run's manifest; DIR/environment.json its environment record
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from vestige.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo


def command_for_readme(run: Run) -> list[str]:
    """The command as someone else would type it: `python x.py`, not this machine's path."""
    argv = list(run.command)
    if argv and os.path.basename(argv[0]).startswith("python") and "/" in argv[0]:
        argv[0] = "python"
    return argv


def export(repo: Repo, run: Run, to: Path) -> dict[str, Any]:
    """Write the folder; return a summary of what went where."""
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UsageError(f"--to {to}: exists and is not an empty folder; give a new one")
    if run.status == "running":
        raise UsageError(f"run #{run.seq} is still running; export it when it has ended")
    from vestige.history.restore import Candidate, candidates, refuse_unsafe

    items: list[Candidate] = candidates(repo, run)
    refuse_unsafe(run, items, str(to))  # before the folder is made: nothing written
    to.mkdir(parents=True, exist_ok=True)
    counts = {"code": 0, "inputs": 0, "outputs": 0, "artefacts": 0, "missing": 0}
    inputs: list[dict[str, Any]] = []
    for c in items:
        if c.role == "code":
            if c.path.startswith("/"):
                dest = to / "outside" / c.path.lstrip("/")
            else:
                dest = to / "project" / c.path
        elif c.role == "inputs":
            included = c.kept and c.hash is not None and repo.store.objects.exists(c.hash)
            where = (
                f"outside/{c.path.lstrip('/')}" if c.path.startswith("/") else f"project/{c.path}"
            )
            inputs.append({"path": c.path, "hash": c.hash, "size": c.size,
                           "included": where if included else None})  # fmt: skip
            dest = to / where
        elif c.role == "outputs":
            dest = to / "outputs" / c.path.lstrip("/")
            if not c.path.startswith("/"):  # the folders the program writes into
                (to / "project" / c.path).parent.mkdir(parents=True, exist_ok=True)
        else:
            dest = to / "artefacts" / c.path
        if _copy(repo, c.hash if c.kept else None, dest, c.mode):
            counts[c.role] += 1
        else:
            counts["missing"] += 1
    (to / "inputs.json").write_text(json.dumps(inputs, indent=2) + "\n")
    (to / "run.json").write_text(json.dumps(run.to_dict(), indent=2, sort_keys=True) + "\n")
    env = repo.environment(run)
    (to / "environment.json").write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    pins = _requirements(env)
    (to / "requirements.txt").write_text("".join(f"{p}\n" for p in pins))
    points = _metrics_csv(repo, run, to / "metrics.csv")
    (to / "README.md").write_text(_readme(run, env, inputs, counts, points, len(pins)))
    return {"dir": str(to), **counts, "metric_points": points, "requirements": len(pins)}


def _copy(repo: Repo, digest: str | None, dest: Path, mode: int | None) -> bool:
    if digest is None or not repo.store.objects.exists(digest):
        return False
    repo.store.objects.copy_to(digest, dest, mode)
    return True


def _requirements(env: dict[str, Any] | None) -> list[str]:
    """`name==version` for the distributions installed when the run ran (vestige left out:
    the export runs without it)."""
    out = []
    for item in (env or {}).get("distributions") or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            name, version = item
            if str(name).lower() != "vestige":
                out.append(f"{name}=={version}")
    return sorted(out, key=str.lower)


def _metrics_csv(repo: Repo, run: Run, path: Path) -> int:
    import csv

    series = repo.metrics(run)
    if not series:
        return 0
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "step", "time", "value"])
        for key in sorted(series):
            s = series[key]
            for step, t, v in zip(s.steps, s.times, s.values, strict=True):
                w.writerow([key, int(step) if step == int(step) else step, repr(t), repr(v)])
                n += 1
    return n


def _readme(
    run: Run,
    env: dict[str, Any] | None,
    inputs: list[dict[str, Any]],
    counts: dict[str, int],
    points: int,
    pins: int,
) -> str:
    env = env or {}
    py = env.get("python") or {}
    plat = env.get("platform") or {}
    argv = command_for_readme(run)
    cwd = "project" if run.cwd in ("", ".") else f"project/{run.cwd}"
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(run.started))
    missing = [i for i in inputs if not i["included"]]
    lines = [
        f"# Run #{run.seq}: `{shlex.join(argv)}`",
        "",
        f"Recorded by vestige {run.vestige_version or ''} on {started}, on host "
        f"`{run.host}`: status **{run.status}**, exit code {run.exit_code}, "
        f"{run.duration or 0:.1f} s.",
        "",
        f"- Python {py.get('version', '?')} ({py.get('implementation', '?')}), "
        f"{plat.get('system', '')} {plat.get('machine', '')}".rstrip(),
        f"- run id `{run.id}`",
    ]
    git = (run.code or {}).get("git") or {}
    if git.get("commit"):
        dirty = ", with uncommitted changes (included here)" if git.get("dirty") else ""
        lines.append(f"- git commit `{git['commit']}` on `{git.get('branch')}`{dirty}")
    if run.params:
        lines += ["", "## Parameters", ""]
        lines += [f"- `{k}` = `{json.dumps(v)}`" for k, v in run.params.items()]
    lines += [
        "",
        "## Run it again",
        "",
        "```sh",
        "python -m venv .venv && . .venv/bin/activate",
        "pip install -r requirements.txt   # the packages as installed when it ran",
        f"cd {shlex.quote(cwd)}",
        shlex.join(argv),
        "```",
        "",
        "Then compare what it wrote with `outputs/` (the files the original run wrote, by "
        "their path in the project).",
        "",
        "## What is here",
        "",
        f"- `project/`: the code as it ran ({counts['code']} files), with the "
        f"{counts['inputs']} input files it read at their places",
        f"- `outputs/`: {counts['outputs']} files the run wrote",
        f"- `artefacts/`: {counts['artefacts']} kept artefacts",
        f"- `metrics.csv`: {points} metric points (key, step, time, value)",
        f"- `requirements.txt`: {pins} pinned packages; `environment.json`: the machine",
        "- `inputs.json`: every input with its hash; `run.json`: the full record",
    ]
    if missing:
        lines += ["", "## Inputs not included", "",
                  "Only their hashes were recorded (too large, or credentials); put them back "
                  "at these paths before running:", ""]  # fmt: skip
        lines += [f"- `{i['path']}` ({i['size']} bytes, blake3 `{i['hash']}`)" for i in missing]
    for w in run.warnings:
        lines.append(f"\n> warning recorded with the run: {w}")
    return "\n".join(lines) + "\n"
