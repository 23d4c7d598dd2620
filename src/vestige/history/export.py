"""Export: one run as a self-contained folder to hand to someone without vestige.

DIR/README.md          what ran, when, on what machine, with which params, and how to run it
                       again; it names only what the folder holds
DIR/project/           the code snapshot, with the kept inputs at their places: run it here
DIR/outside/           code and inputs from outside the project, when the run had some
DIR/outputs/           the outputs as the run wrote them (to compare a rerun with), if any
DIR/artefacts/         the kept artefacts (vestige.keep, figures), if any
DIR/metrics.csv        every metric point: key, step, time, value (if it logged any)
DIR/requirements.txt   the Python packages installed when it ran, pinned; and, when the code
                       imports vestige, the no-op stand-in for its API (history/standin.py)
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
    from collections.abc import Callable
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo


def command_for_readme(run: Run) -> list[str]:
    """The command as someone else would type it: `python x.py`, not this machine's path
    (nor `x.py` alone, as `vestige run x.py` records it)."""
    argv = list(run.command)
    if argv and os.path.basename(argv[0]).startswith("python") and "/" in argv[0]:
        argv[0] = "python"
    elif argv and argv[0].endswith(".py"):
        argv.insert(0, "python")
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
    from vestige.capture.redact import Redactor
    from vestige.records import Run as RunRecord

    # What export writes from the record goes through redaction again: a run recorded by
    # an older vestige, or before a secret was known, hands over no secret of this user's.
    redactor = Redactor(repo.store.secret_key())
    redactor.redact_env(os.environ)
    run = RunRecord.from_dict(redactor.scrub_manifest(run.to_dict()), manifest=run.manifest)
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
            included = c.kept and c.hash is not None and repo.store.objects.available(c.hash)
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
    env = redactor.scrub_env_record(env) if env else env
    (to / "environment.json").write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    pins = _requirements(env)
    standin = _standin(run, to)
    lines = [*pins, f"./{standin.name}"] if standin is not None else pins
    (to / "requirements.txt").write_text("".join(f"{p}\n" for p in lines))
    points = _metrics_csv(repo, run, to / "metrics.csv", redactor.scrub_text)
    (to / "README.md").write_text(_readme(run, env, inputs, counts, points, len(pins), to))
    return {"dir": str(to), **counts, "metric_points": points, "requirements": len(pins),
            "standin": standin is not None}  # fmt: skip


def _copy(repo: Repo, digest: str | None, dest: Path, mode: int | None) -> bool:
    if digest is None or not repo.store.objects.available(digest):
        return False
    repo.store.objects.copy_to(digest, dest, mode)
    return True


def _standin(run: Run, to: Path) -> Path | None:
    """When the code the run ran imports vestige (or it logged metrics), the wheel of a
    no-op stand-in for the API, written into `to`; else None. The code it ran: its project
    modules and entry script, modules from outside, its notebook (every code file, for a
    manifest that does not list them)."""
    from vestige.history.standin import uses_api, write_wheel

    code = run.code or {}
    ran = [to / "project" / p for p in code.get("imported") or []]
    ran += [to / "outside" / str(m.get("path", "")).lstrip("/") for m in code.get("modules") or []]
    if run.notebook and run.notebook.get("path"):
        ran.append(to / "project" / str(run.notebook["path"]))
    if "imported" not in code:
        ran = [*(to / "project").rglob("*"), *(to / "outside").rglob("*")]
    used = bool(run.metrics) or any(
        p.suffix in (".py", ".ipynb") and p.is_file() and uses_api(p.read_bytes()) for p in ran
    )
    return write_wheel(to) if used else None


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


def _metrics_csv(repo: Repo, run: Run, path: Path, scrub: Callable[[str], str]) -> int:
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
                w.writerow([scrub(key), int(step) if step == int(step) else step, repr(t),
                            repr(v)])  # fmt: skip
                n += 1
    return n


def _readme(
    run: Run,
    env: dict[str, Any] | None,
    inputs: list[dict[str, Any]],
    counts: dict[str, int],
    points: int,
    pins: int,
    to: Path,
) -> str:
    """The README: what ran, how to run it again, and what the folder holds (only that)."""
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
    ]
    from vestige.history.standin import WHEEL

    standin = (to / WHEEL).is_file()
    if counts["outputs"]:
        lines += ["Then compare what it wrote with `outputs/` (the files the original run "
                  "wrote, by their path in the project).", ""]  # fmt: skip
    lines += ["## What is here", "",
              f"- `project/`: the code as it ran ({counts['code']} files), with the "
              f"{counts['inputs']} input files it read at their places"]  # fmt: skip
    if (to / "outside").is_dir():
        lines.append("- `outside/`: code and inputs it had from outside the project, under "
                     "their absolute paths")  # fmt: skip
    if counts["outputs"]:
        lines.append(f"- `outputs/`: {counts['outputs']} files the run wrote")
    if counts["artefacts"]:
        lines.append(f"- `artefacts/`: {counts['artefacts']} kept artefacts")
    if points:
        lines.append(f"- `metrics.csv`: {points} metric points (key, step, time, value)")
    also = f" and `{WHEEL}`" if standin else ""
    lines.append(f"- `requirements.txt`: {pins} pinned packages{also}; `environment.json`: "
                 "the machine")  # fmt: skip
    if standin:
        lines.append(f"- `{WHEEL}`: the code imports vestige; this no-op stand-in for its "
                     "API (`vestige.param`, `log`, `keep`...) records nothing, so the code "
                     "runs without vestige (installed by requirements.txt)")  # fmt: skip
    lines.append("- `inputs.json`: every input with its hash; `run.json`: the full record")
    if missing:
        lines += ["", "## Inputs not included", "",
                  "Only their hashes were recorded (too large, or credentials); put them back "
                  "at these paths before running:", ""]  # fmt: skip
        lines += [f"- `{i['path']}` ({i['size']} bytes, blake3 `{i['hash']}`)" for i in missing]
    for w in run.warnings:
        lines.append(f"\n> warning recorded with the run: {w}")
    return "\n".join(lines) + "\n"
