"""Hydra's job folders as foreign runs: `outputs/<date>/<time>/` (one run each) and
`multirun/<date>/<time>/<job number>/` (one run per job of a sweep).

A job folder is one that holds `.hydra/config.yaml` (the composed config), with
`.hydra/hydra.yaml` (Hydra's own config: the job's name, number, working directory) and
`.hydra/overrides.yaml` (the command line's overrides). Hydra records no times, status,
commit or exit code: the status comes from the job's log (`_scan_log`), the times from its
log lines, else from the folder's name (`outputs/<date>/<time>`), else from the files'
mtimes, which a git checkout sets to the checkout's time (`_times`). Everything else in
the folder is what the job wrote: its outputs and log, but for a W&B folder (`wandb/`),
which is W&B's run and adopted from there.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

from vestige.adopt.foreign import ForeignFile, ForeignRun, Found, Skipped
from vestige.capture.hydra import HYDRA_DIR, Yaml, yaml_reader
from vestige.errors import UsageError

#: How deep `looks_like` looks for a job folder: `multirun/<date>/<time>/<n>` from a project.
LOOK_DEPTH = 4
#: How many folders `looks_like` visits at most (a project's data/ may hold thousands).
LOOK_FOLDERS = 500
#: What a failed job leaves in its log (`_scan_log`).
FAILED_MARKERS = ("Traceback (most recent call last)", "Error executing job")
#: The time a log line starts with in Hydra's job logging format, `[%(asctime)s][%(name)s]
#: [%(levelname)s] - %(message)s`: `[2021-08-14 18:54:51,123]` (also without the bracket).
LOG_TIME = re.compile(r"\[?(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:,(\d{3}))?(?=[\]\s])")
#: Hydra's default run folder and a multirun job's folder (sweep folder, job number).
RUN_DIR = "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"
SWEEP_JOB_DIR = "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}/${hydra.job.num}"
#: An interpolation in hydra.yaml's `run.dir` / `sweep.dir`: `${now:%Y-%m-%d}`, `${model.name}`.
INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
#: The strftime fields a `${now:...}` folder name is read with, as patterns.
NOW_FIELDS = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}",
              "I": r"\d{2}", "M": r"\d{2}", "S": r"\d{2}", "f": r"\d{6}", "j": r"\d{3}",
              "b": "[A-Za-z]{3}", "B": "[A-Za-z]+", "p": "AM|PM|am|pm", "%": "%"}  # fmt: skip
#: What W&B names the folders in its `wandb/` folder: one per run, and a link to the last.
WANDB_RUNS = ("run-", "offline-run-", "latest-run")


def looks_like(path: Path) -> bool:
    """Whether `path` is or holds a Hydra job folder within a few levels: stats only, no
    YAML read and no import, as `vestige adopt` asks each reader which format a source is."""
    level = [path]
    visited = 0
    for _depth in range(LOOK_DEPTH + 1):
        deeper: list[Path] = []
        for folder in level:
            if (folder / HYDRA_DIR / "config.yaml").is_file():
                return True
            visited += 1
            if visited > LOOK_FOLDERS:
                return False
            deeper.extend(_subfolders(folder))
        level = deeper
    return False


def read(source: str) -> Found:
    """Every Hydra job folder at or below `source`, as foreign runs (tool `hydra`); a job
    whose config.yaml cannot be read is skipped, the others are read."""
    top = Path(source)
    if not top.exists():
        raise UsageError(f"{source}: no such file or folder; name Hydra's outputs/ or "
                         "multirun/ folder, or one job folder")  # fmt: skip
    if not top.is_dir():
        raise UsageError(f"{source}: not a folder; name Hydra's outputs/ or multirun/ "
                         "folder, or one job folder")  # fmt: skip
    found = Found(tool="hydra")
    jobs = _job_folders(top, found)
    if not jobs and not found.skipped:
        raise UsageError(f"{source}: no Hydra job folder (one holding .hydra/config.yaml) "
                         "in it; name Hydra's outputs/ or multirun/ folder")  # fmt: skip
    reader = yaml_reader()
    if reader is None:
        raise UsageError("adopting Hydra outputs needs PyYAML or OmegaConf: "
                         "pip install 'vestige[hydra]'")  # fmt: skip
    here = Path.cwd()
    for folder in jobs:
        run = _job(source, top, folder, reader, found, here)
        if run is not None:
            found.runs.append(run)
    return found


def _subfolders(folder: Path) -> list[Path]:
    """The folders in `folder`, by name, but hidden ones (`.git`, `.venv`, `.hydra`)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries
                  if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))  # fmt: skip


def _job_folders(top: Path, found: Found) -> list[Path]:
    """The job folders at or below `top`, in path order; a `.hydra/` folder without its
    config.yaml (a job cut short, a file lost) is skipped. A job folder's own folders are
    its outputs, not jobs; a sweep's multirun.yaml is no job (not a folder)."""
    jobs: list[Path] = []
    pending = [top]
    while pending:
        folder = pending.pop()
        hydra = folder / HYDRA_DIR
        if hydra.is_dir():
            if (hydra / "config.yaml").is_file():
                jobs.append(folder)
            else:
                found.skipped.append(Skipped(where=str(hydra), why="no config.yaml in it: "
                                             "not a whole Hydra job folder"))  # fmt: skip
            continue
        pending.extend(reversed(_subfolders(folder)))
    return sorted(jobs)


def _job(
    source: str, top: Path, folder: Path, reader: Yaml, found: Found, here: Path
) -> ForeignRun | None:
    """One job folder as a foreign run, or None (and a Skipped) when its config.yaml cannot
    be read. A missing hydra.yaml or overrides.yaml leaves out only what they say."""
    config = folder / HYDRA_DIR / "config.yaml"
    try:
        params = reader.params(config)
    except (OSError, ValueError) as e:
        found.skipped.append(Skipped(where=str(config), why=str(e)))
        return None
    hydra, overrides = _recorded(reader, folder, found)
    job, runtime = _dict(hydra.get("job")), _dict(hydra.get("runtime"))
    files, newest, wandb = _files(folder, here)
    logs = sorted(folder.glob("*.log"))
    job_name = _text(job.get("name")) or (logs[0].stem if len(logs) == 1 else "")
    log = folder / f"{job_name}.log" if job_name else None
    log = log if log is not None and log.is_file() else None
    status, logged = _scan_log(log) if log is not None else ("ok", None)
    number = _number(job, folder)
    label = job_name or (folder.parent.name if number is not None else folder.name)
    foreign_id, experiment = _named(folder, top, runtime, here)
    named = _folder_time(folder, hydra, multirun=number is not None)
    started, ended, said = _times(logged, named, config, newest)
    extra = {**_extra(overrides, runtime), "times": said}
    if wandb:
        extra["wandb"] = wandb[0] if len(wandb) == 1 else wandb
    return ForeignRun(
        tool="hydra",
        source=source,
        foreign_id=foreign_id,
        started=started,
        ended=ended,
        status=status,
        command=("python", f"{job_name}.py", *overrides) if job_name else (),
        cwd=_text(runtime.get("cwd")),
        name=f"{label}#{number}" if number is not None else label,
        experiment=experiment,
        params=params,
        files=tuple(files),
        code={"program": f"{job_name}.py"} if job_name else {},
        extra=extra,
        stdout=str(log.absolute()) if log is not None else None,
    )


def _times(
    logged: tuple[float, float] | None, named: float | None, config: Path, newest: float
) -> tuple[float, float | None, str]:
    """(started, ended, where they come from) for `extra["times"]`. Hydra records no times,
    and the files' mtimes are the checkout's time for a job folder committed to git (every
    checkout would give the job another start, so another vestige run id): the job's log
    lines come first ("log": its first and last), then the time in the folder's name
    ("folder name": the start only, the end is unknown), and only when neither is there the
    mtimes ("file times": config.yaml is written first, the newest file last)."""
    if logged is not None:
        return logged[0], max(logged), "log"
    if named is not None:
        return named, None, "folder name"
    started = config.stat().st_mtime
    return started, max(newest, started), "file times"


def _recorded(reader: Yaml, folder: Path, found: Found) -> tuple[dict[str, Any], list[str]]:
    """What Hydra recorded of the job beside its config: hydra.yaml's `hydra` mapping (`job`:
    name, number; `runtime`: working directory, output folder, version, config group
    choices; `run` / `sweep`: how its folder was named), and the overrides (overrides.yaml,
    else hydra.yaml's copy); {} and [] for what is missing."""
    tree = _optional(reader, folder / HYDRA_DIR / "hydra.yaml", found)
    hydra = _dict(_dict(tree).get("hydra"))
    overrides = _optional(reader, folder / HYDRA_DIR / "overrides.yaml", found)
    if not isinstance(overrides, list):
        overrides = _dict(hydra.get("overrides")).get("task")
    listed = [str(o) for o in overrides] if isinstance(overrides, list) else []
    return hydra, listed


def _extra(overrides: list[str], runtime: dict[str, Any]) -> dict[str, Any]:
    """What vestige has no field for: the overrides, the config group choices (the app's,
    not Hydra's own `hydra/...` ones) and Hydra's version, when known."""
    extra: dict[str, Any] = {"overrides": overrides}
    choices = {k: v for k, v in _dict(runtime.get("choices")).items()
               if not str(k).startswith("hydra/")}  # fmt: skip
    if choices:
        extra["choices"] = choices
    if _text(runtime.get("version")):
        extra["hydra_version"] = runtime["version"]
    return extra


def _optional(reader: Yaml, path: Path, found: Found) -> Any:
    """An optional YAML file of the job's: its content, None when it is missing; a file
    that cannot be read is said as skipped (the job is still adopted without it)."""
    if not path.is_file():
        return None
    try:
        return reader.tree(path)
    except (OSError, ValueError) as e:
        found.skipped.append(Skipped(where=str(path), why=f"{e}; the job was adopted "
                                     "without what it says"))  # fmt: skip
        return None


def _files(folder: Path, here: Path) -> tuple[list[ForeignFile], float, list[str]]:
    """The files the job wrote (every file in its folder but `.hydra/`'s and W&B's), named
    as the user sees them (relative to `here` when under it, else absolute); the newest
    mtime of any file read (its end, when nothing better tells); and the W&B folders left
    out, as named: a W&B run's internals (its .wandb record, its own config.yaml) are W&B's
    run, adopted with `vestige adopt <job>/wandb`, not outputs of the job."""
    out: list[ForeignFile] = []
    wandb: list[str] = []
    newest = 0.0
    hydra = folder / HYDRA_DIR
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [d for d in dirnames if _is_wandb(Path(dirpath, d))]:
            dirnames.remove(name)
            wandb.append(_shown(Path(os.path.abspath(os.path.join(dirpath, name))), here))
        dirnames.sort()
        own = not Path(dirpath).is_relative_to(hydra)
        for name in sorted(filenames):
            path = Path(os.path.abspath(os.path.join(dirpath, name)))
            try:
                st = path.stat()
            except OSError:  # (a dangling link)
                continue
            newest = max(newest, st.st_mtime)
            if own and stat.S_ISREG(st.st_mode):
                out.append(ForeignFile(name=_shown(path, here), source=str(path)))
    return out, newest, sorted(wandb)


def _is_wandb(path: Path) -> bool:
    """Whether `path` is W&B's folder: named `wandb` and holding a run folder (`run-*`,
    `offline-run-*`) or the `latest-run` link; a `wandb/` of the app's own stays output."""
    if path.name != "wandb":
        return False
    try:
        return any(e.name.startswith(WANDB_RUNS) for e in os.scandir(path))
    except OSError:
        return False


def _shown(path: Path, here: Path) -> str:
    """`path` (absolute) as the user sees it: relative to `here` when under it."""
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


def _scan_log(log: Path) -> tuple[str, tuple[float, float] | None]:
    """The job's status from its log, and the times of its first and last timestamped lines
    (None when no line has one: an empty log, another format).

    `failed` when the log holds a traceback or Hydra's "Error executing job", else `ok`.
    Hydra writes neither to the log itself (it prints them to stderr): they are there when
    the app logs its exception (`log.exception`) or its stderr went to the log, so a failed
    job whose log says nothing is adopted as `ok`; Hydra keeps nothing better.

    The log's times (`[2021-08-14 18:54:51,123]`) are local times without a zone; they are
    read as this machine's local time, so the job's start (and vestige run id) is the one
    its log says wherever it is checked out, as long as the machines share a time zone."""
    failed = False
    first: float | None = None
    last = 0.0
    try:
        with log.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                failed = failed or any(m in line for m in FAILED_MARKERS)
                when = _log_time(line)
                if when is not None:
                    first = when if first is None else first
                    last = when
    except OSError:
        return "ok", None
    return "failed" if failed else "ok", None if first is None else (first, last)


def _log_time(line: str) -> float | None:
    """The time a log line starts with (Hydra's format: `[2021-08-14 18:54:51,123]...`),
    as this machine's local time; None when it starts with none (a traceback's lines)."""
    match = LOG_TIME.match(line)
    if match is None:
        return None
    try:
        when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return when.timestamp() + int(match[2] or 0) / 1000


def _folder_time(folder: Path, hydra: dict[str, Any], multirun: bool) -> float | None:
    """The job's start as its folder's name says (this machine's local time, as Hydra's
    `${now:...}` wrote it), None when the name holds no time. Read with the folder pattern
    hydra.yaml recorded (`run.dir`; `sweep.dir`/`sweep.subdir` for a multirun job: the
    sweep's start) from its first `${now:...}` on, so a renamed or moved `outputs/` still
    reads; else with Hydra's defaults, `outputs/<date>/<time>` and `multirun/<date>/<time>/
    <job number>`, which is also what a job run with `hydra.run.dir=...` set by hand gets."""
    own = _dict(hydra.get("sweep" if multirun else "run"))
    pattern = _text(own.get("dir"))
    if multirun and pattern:
        pattern = f"{pattern}/{_text(own.get('subdir')) or '${hydra.job.num}'}"
    path = Path(os.path.abspath(folder)).as_posix()
    start = pattern.find("${now:")
    if start >= 0:
        when = _time_named(path, pattern[pattern.rfind("/", 0, start) + 1 :])
        if when is not None:
            return when
    return _time_named(path, SWEEP_JOB_DIR if multirun else RUN_DIR)


def _time_named(path: str, pattern: str) -> float | None:
    """The time `path`'s last folders hold as `pattern` names them (a Hydra folder pattern:
    `${now:FORMAT}` the time, any other `${...}` one folder name's worth of anything); None
    when they do not match or the formats do not say the day (a year and a day at least)."""
    regex, formats, at = "", [], 0
    for match in INTERPOLATION.finditer(pattern):
        regex += re.escape(pattern[at : match.start()])
        at = match.end()
        if not match[1].startswith("now:"):
            regex += "[^/]*"
            continue
        fields = _strftime_regex(match[1][4:])
        if fields is None:
            return None
        regex += f"({fields})"
        formats.append(match[1][4:])
    regex += re.escape(pattern[at:])
    said = " ".join(formats)
    if not formats or not re.search("%[Yy]", said) or not re.search("%[dj]", said):
        return None
    found = re.search(f"(?:^|/){regex}$", path)
    if found is None:
        return None
    try:
        return datetime.strptime(" ".join(found.groups()), said).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _strftime_regex(form: str) -> str | None:
    """A regex for what strftime writes with `form` (`%Y-%m-%d`), no groups; None for a
    field it does not know (a folder name vestige then does not read a time from)."""
    out = ""
    for part in re.split("(%.)", form):
        if part.startswith("%") and len(part) == 2:
            field = NOW_FIELDS.get(part[1])
            if field is None:
                return None
            out += f"(?:{field})"
        else:
            out += re.escape(part)
    return out


def _named(folder: Path, top: Path, runtime: dict[str, Any], here: Path) -> tuple[str, str]:
    """The job's foreign id and experiment. The id is the job folder as Hydra named it: its
    output_dir relative to the app's working directory (`multirun/2024-05-01/10-00-00/3`,
    the same whichever folder is adopted and wherever it was moved to); without hydra.yaml,
    its path relative to the source (the source's own name when it is the job folder). The
    experiment is the folder above it: a multirun's sweep folder, `outputs/<date>`."""
    output_dir, cwd = _text(runtime.get("output_dir")), _text(runtime.get("cwd"))
    if output_dir and cwd and Path(output_dir).is_relative_to(cwd) and output_dir != cwd:
        named = Path(output_dir).relative_to(cwd)
        return str(named), str(named.parent) if named.parent != Path() else ""
    full = Path(os.path.abspath(folder))
    rel = folder.relative_to(top)
    return str(rel) if rel != Path() else full.name, _shown(full.parent, here)


def _number(job: dict[str, Any], folder: Path) -> int | None:
    """A multirun job's number (`hydra.job.num`; without hydra.yaml, its folder's name in a
    sweep folder holding multirun.yaml); None for a single run."""
    num = job.get("num")
    if isinstance(num, int) and not isinstance(num, bool):
        return num
    if not job and folder.name.isdigit() and (folder.parent / "multirun.yaml").is_file():
        return int(folder.name)
    return None


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping (a YAML node of the expected shape), else {}."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """`value` when it is a non-empty string, else "" (Hydra writes `???` for unset)."""
    return value if isinstance(value, str) and value != "???" else ""
