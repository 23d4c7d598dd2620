"""Settings: `.vestige/config.toml`, then `[tool.vestige]` in the project's pyproject.toml.

Only files that exist are read (tomllib is imported lazily: `vestige run` starts fast).
Unknown keys are an error naming the key, so a typo is not silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from vestige.errors import UsageError
from vestige.records import Factory, Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

MiB = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_size(value: int | str, name: str) -> int:
    """'64MiB', '2GB', '500k' or a number of bytes."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise UsageError(f"config {name}: cannot read {value!r} as a size; write e.g. '64MiB'")
    unit = (m.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = " kmgt".index(unit[0]) if unit and unit[0] in "kmgt" else 0
    size = float(m.group(1)) * (base**power if power else _UNITS.get(unit, 1))
    if size == float("inf"):  # (int() of it would raise OverflowError)
        raise UsageError(f"config {name}: {value!r} is too large a size; write e.g. '64MiB'")
    return int(size)


class Config(Record):
    """Every setting with its default; see docs/configuration.md."""

    keep_inputs_max_size: int = 64 * MiB
    keep_code_max_size: int = 64 * MiB
    keep_outputs: bool = True
    scan_ignore: tuple[str, ...] = ()
    capture_gpu: bool = True
    capture_figures: bool = True
    capture_trace: str = "auto"
    index_timeout: float = 30.0
    compare_rtol: float = 1e-9
    compare_atol: float = 0.0
    executor_default: str = "local"
    executor_jobs: int = 1
    executor_dask_scheduler: str | None = None
    executor_slurm_partition: str | None = None
    executor_slurm_gpus: int | None = None
    executor_slurm_time: int | None = None
    executor_slurm_cpus: int | None = None
    executor_slurm_mem: int | None = None
    # the debt ledger (`vestige debt`, docs/debt.md): verdict thresholds
    debt_young_days: float = 14.0
    debt_few_runs: int = 5
    debt_long_lived_days: float = 30.0
    debt_many_versions: int = 4
    debt_many_consumers: int = 3
    debt_archive_days: float = 45.0
    debt_recent_days: float = 30.0
    debt_shingle_tokens: int = 12
    debt_duplicate_min: float = 0.3
    # remotes (`vestige remote add`, docs/cli.md): name -> {url, endpoint_url, profile,
    # region, other fsspec storage options}; never credentials (remote_options refuses them)
    remotes: dict[str, dict[str, Any]] = Factory(dict)
    extra: dict[str, Any] = Factory(dict)


_KEYS = {
    "keep.inputs_max_size": "keep_inputs_max_size",
    "keep.code_max_size": "keep_code_max_size",
    "keep.outputs": "keep_outputs",
    "scan.ignore": "scan_ignore",
    "capture.gpu": "capture_gpu",
    "capture.figures": "capture_figures",
    "capture.trace": "capture_trace",
    "index.timeout": "index_timeout",
    "compare.rtol": "compare_rtol",
    "compare.atol": "compare_atol",
    "executor.default": "executor_default",
    "executor.jobs": "executor_jobs",
    "executor.dask.scheduler": "executor_dask_scheduler",
    "executor.slurm.partition": "executor_slurm_partition",
    "executor.slurm.gpus": "executor_slurm_gpus",
    "executor.slurm.time": "executor_slurm_time",
    "executor.slurm.cpus": "executor_slurm_cpus",
    "executor.slurm.mem": "executor_slurm_mem",
    "debt.young_days": "debt_young_days",
    "debt.few_runs": "debt_few_runs",
    "debt.long_lived_days": "debt_long_lived_days",
    "debt.many_versions": "debt_many_versions",
    "debt.many_consumers": "debt_many_consumers",
    "debt.archive_days": "debt_archive_days",
    "debt.recent_days": "debt_recent_days",
    "debt.shingle_tokens": "debt_shingle_tokens",
    "debt.duplicate_min": "debt_duplicate_min",
}


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_config(store_dir: Path, root: Path) -> Config:
    """Read the config files that exist; the store's file wins over pyproject.toml."""
    merged: dict[str, Any] = {}
    remotes: dict[str, dict[str, Any]] = {}
    sources = [(root / "pyproject.toml", True), (store_dir / "config.toml", False)]
    for path, is_pyproject in sources:
        if not path.is_file():
            continue
        if is_pyproject:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "[tool.vestige" not in text:
                continue
        import tomllib

        try:  # (TOML is UTF-8: bytes that are not are a TOML error too, one line)
            data = tomllib.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise UsageError(f"{path}: not valid TOML ({e}); fix or remove it") from None
        if is_pyproject:
            data = data.get("tool", {}).get("vestige", {})
        if "remote" in data:  # [remote.NAME] tables: named by the user, not fixed settings
            data = dict(data)
            remotes.update(_remote_tables(data.pop("remote"), path))
        for key, value in _flatten(data).items():
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise UsageError(f"{path}: unknown setting {key!r}; known settings: {known}")
            merged[_KEYS[key]] = value
    values: dict[str, Any] = {}
    for name in Config._fields:
        if name not in merged:
            continue
        value = merged[name]
        if name.endswith("max_size"):
            value = parse_size(value, name)
        elif name == "scan_ignore":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple):
                raise UsageError(f"scan.ignore = {value!r}: write a list of globs, "
                                 'e.g. ["data/raw", "*.tmp"]')  # fmt: skip
            # "data/" means the folder: a glob matches path names, never with a trailing /
            value = tuple(str(v).rstrip("/") or str(v) for v in value)
        elif name == "capture_trace":
            if isinstance(value, bool):  # (not a dict lookup: a list is unhashable, 1 == True)
                value = "always" if value else "never"
            if value not in ("auto", "always", "never"):
                raise UsageError(f"capture.trace = {merged[name]!r}: write \"auto\" (trace "
                                 "programs outside Python), \"always\" or \"never\"")  # fmt: skip
        values[name] = value
    if remotes:
        values["remotes"] = remotes
    return Config(**values)


# -- remotes: [remote.NAME] tables -------------------------------------------------------------

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: What a [remote.NAME] table may hold besides fsspec's other storage options.
REMOTE_KEYS = ("url", "endpoint_url", "profile", "region")
#: Option names that would put a secret into config.toml: refused. Credentials come from the
#: standard variables and profiles only (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/...), which
#: s3fs reads itself, so no secret is ever written into the store (issue 17).
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "sas", "session")


def check_remote_name(name: str) -> str:
    """A remote's name as given, or a UsageError saying what a name may be."""
    if not _REMOTE_NAME.match(name):
        raise UsageError(f"remote name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(e.g. origin)")  # fmt: skip
    return name


def remote_options(name: str, table: dict[str, Any], where: str) -> dict[str, Any]:
    """A remote's checked settings: a string `url`, string values for the known keys,
    scalar values for other fsspec options, and no option that names a secret."""
    url = table.get("url")
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f'{where}: remote {name!r} has no url; write url = "s3://bucket/path"')
    out: dict[str, Any] = {}
    for key, value in table.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise UsageError(f"{where}: remote {name!r}: {key!r} would keep a secret in the "
                             "store's config; use the standard variables or a profile "
                             "(AWS_ACCESS_KEY_ID, AWS_PROFILE) instead")  # fmt: skip
        if key in REMOTE_KEYS and not isinstance(value, str):
            raise UsageError(f"{where}: remote {name!r}: {key} must be a string")
        if not isinstance(value, str | int | float | bool):
            raise UsageError(f"{where}: remote {name!r}: {key} must be a string, number or "
                             "true/false")  # fmt: skip
        out[key] = value
    return out


def _remote_tables(tables: Any, path: Path) -> dict[str, dict[str, Any]]:
    """The [remote.NAME] tables of one config file, checked."""
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: 'remote' must be tables [remote.NAME]; see docs/cli.md")
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        check_remote_name(name)
        if not isinstance(table, dict):
            raise UsageError(f"{path}: remote {name!r} must be a table [remote.{name}]")
        out[name] = remote_options(name, table, str(path))
    return out


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_string(value)


def add_remote(store_dir: Path, name: str, options: dict[str, Any]) -> None:
    """Append a [remote.NAME] table to the store's config.toml (the file is parsed again
    before it replaces the old one, atomically). A name already there is a UsageError."""
    check_remote_name(name)
    options = remote_options(name, options, "vestige remote add")
    path = store_dir / "config.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if name in load_config(store_dir, store_dir).remotes or _section_lines(text, name):
        raise UsageError(f"remote {name!r} exists already; `vestige remote rm {name}` first")
    lines = [f"[remote.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in options.items()]
    block = "\n".join(lines) + "\n"
    if text and not text.endswith("\n"):
        text += "\n"
    _write_config(path, text + ("\n" if text else "") + block)


def remove_remote(store_dir: Path, name: str) -> None:
    """Remove the [remote.NAME] table from the store's config.toml."""
    path = store_dir / "config.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    span = _section_lines(text, name)
    if span is None:
        raise UsageError(f"no remote {name!r} in {path}; see `vestige remote ls`")
    lines = text.splitlines(keepends=True)
    start, end = span
    while end > start and not lines[end - 1].strip():  # (the blank line before the next)
        end -= 1
    while start > 0 and not lines[start - 1].strip():
        start -= 1
    _write_config(path, "".join(lines[:start] + lines[end:]))


def _section_lines(text: str, name: str) -> tuple[int, int] | None:
    """(first line, line after the last) of the table [remote.NAME] as `add_remote` writes
    it, or None when the file has no such header line."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*remote\s*\.\s*(\"?)" + re.escape(name) + r"\1\s*\]\s*(#.*)?$")
    for i, line in enumerate(lines):
        if header.match(line):
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith("["):
                end += 1
            return i, end
    return None


def _write_config(path: Path, text: str) -> None:
    """Check `text` parses as TOML, then replace the file with it (temp, fsync, rename)."""
    import os
    import tomllib

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: would not be valid TOML after this change ({e}); "
                         "edit it by hand") from None  # fmt: skip
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
