"""W&B run folders (`wandb/run-<date>-<id>/`, `wandb/offline-run-<date>-<id>/`) as foreign runs.

A run folder holds `run-<id>.wandb`, the record file W&B writes as the run goes: a 7-byte
header (`:W&B`, magic 0xBEE1, version 0), then a leveldb log
(https://github.com/google/leveldb/blob/main/doc/log_format.md, CRC-32 as zlib computes
it) whose records are `wandb.proto.wandb_internal_pb2.Record` messages: the run, config,
every history row, summary, environment and exit. wandb 0.31 no longer ships a Python
reader for it (its `DataStore` left with the Python backend; `wandb sync` is in wandb-core,
in Go), so the framing is read here and each record parsed with wandb's own schema.

Without wandb installed (or without a readable `.wandb` file) the plain `files/` folder is
read: config.yaml, wandb-summary.json (last values only) and wandb-metadata.json. W&B writes
those three when a run is synced; an offline run has none of them. wandb before 0.18 kept
the environment (program, args, host) only in wandb-metadata.json, so that file is read
under the records too.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from vestige.adopt.foreign import ForeignFile, ForeignRun, Found, Skipped
from vestige.api.calls import check_tag
from vestige.capture.params import flatten
from vestige.errors import UsageError

TOOL = "wandb"
SUMMARY_ONLY = "summary only (install vestige[wandb] to read the full history)"
NO_RECORD_FILE = "summary only (the folder has no run-<id>.wandb record file)"
BAD_RECORD_FILE = "summary only (the run-<id>.wandb record file could not be read)"

_RUN_FOLDER = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-(?P<id>.+)")
# files/ entries W&B writes about the run rather than files the run logged or saved
_RUN_FILES = ("config.yaml", "wandb-summary.json", "wandb-metadata.json")
_NOT_FILES = frozenset({*_RUN_FILES, "requirements.txt", "output.log"})
_FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_CHUNK_HEADER = struct.Struct("<IHB")  # checksum, length, type
_BLOCK = 32768  # chunks never cross a block; a block's last < 7 bytes are zero padding
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
# what W&B names as the program of a notebook kernel that did not find its notebook
_KERNEL = re.compile(r"(?:^|[/\\])ipykernel_launcher\.py$")


class _Unreadable(Exception):
    """Nothing of a run can be adopted: it becomes `Skipped(where, why)`."""

    def __init__(self, where: Path, why: str) -> None:
        super().__init__(why)
        self.where = where
        self.why = why


class _Cut(Exception):
    """The record file stops being readable at some byte: what was read before it stands."""


class _Facts:
    """What one run folder says about its run, gathered from records or from files/."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.name = ""
        self.project = ""
        self.started: float | None = None
        self.last_time: float | None = None  # the latest time a record carries
        self.runtime = 0.0  # seconds, the most any record says
        self.finished = False  # an exit record was read
        self.exit_code: int | None = None
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}  # wandb-metadata.json's keys (camelCase)
        self.metrics: dict[str, list[tuple[float, float, float]]] = {}
        self.tags: list[str] = []
        self.notes = ""
        self.extra: dict[str, Any] = {}

    def saw_time(self, t: float) -> None:
        """Remember `t` (seconds since the epoch) if it is the latest seen."""
        if t > 0 and (self.last_time is None or t > self.last_time):
            self.last_time = t


# -- detection and the entry point ----------------------------------------------------------


def looks_like(path: Path) -> bool:
    """Whether `path` is a W&B run folder or a folder holding some: names only, no wandb."""
    if _is_run_folder(path):
        return True
    try:
        return path.is_dir() and any(_is_run_folder(child) for child in path.iterdir())
    except OSError:
        return False


def _is_run_folder(path: Path) -> bool:
    """A `run-<date>-<id>` or `offline-run-<date>-<id>` folder; not the `latest-run` link."""
    return bool(_RUN_FOLDER.fullmatch(path.name)) and path.is_dir() and not path.is_symlink()


def read(source: str) -> Found:
    """Every run of the W&B folder `source` (or the one run folder it names), oldest first."""
    root = Path(source)
    if not root.exists():
        raise UsageError(f"{source}: no such file or folder")
    if _is_run_folder(root):
        folders = [root]
    elif root.is_dir():
        folders = sorted(child for child in root.iterdir() if _is_run_folder(child))
    else:
        folders = []
    if not folders:
        raise UsageError(
            f"{source}: not a W&B folder (no run-<date>-<id>/ or offline-run-<date>-<id>/ "
            "in it); name a wandb/ folder or one of its run folders"
        )
    have_wandb = _record_class() is not None
    found = Found(TOOL)
    for folder in folders:
        one = _read_folder(folder, source, have_wandb)
        found.runs.extend(one.runs)
        found.skipped.extend(one.skipped)
    return found


def _read_folder(folder: Path, source: str, have_wandb: bool) -> Found:
    """One run folder, from its record file when wandb can parse it, else from files/. An
    error this reader did not foresee skips that folder alone (named, with the error's
    first sentence) rather than losing the whole source to a traceback; a missing extra
    (UsageError) still stops the source, since every folder would need it."""
    try:
        if not have_wandb:
            return read_files(folder, source)
        if _record_file(folder) is None:
            return read_files(folder, source, history=NO_RECORD_FILE)
        return read_records(folder, source)
    except UsageError:
        raise
    except Exception as e:  # (a layout no wandb version tested here wrote)
        why = f"cannot be read ({type(e).__name__}: {_short(e)})"
        return Found(TOOL, skipped=[Skipped(where=str(folder), why=why)])


def _record_class() -> Any:
    """wandb's protobuf `Record` class, or None when wandb is not installed."""
    try:
        from wandb.proto.wandb_internal_pb2 import Record
    except ImportError:
        return None
    return Record


def _record_file(folder: Path) -> Path | None:
    """The folder's `run-<id>.wandb` file, if it has one."""
    return next(iter(sorted(folder.glob("run-*.wandb"))), None)


# -- the .wandb record file --------------------------------------------------------------


def read_records(folder: Path, source: str) -> Found:
    """One run folder read from its `.wandb` record file with wandb's schema: the full
    history. A file cut short (the run was killed, or is still running) gives what it
    holds, status `interrupted`. A file that is no record file, or holds no run record, is
    read from files/ instead when W&B left its run files there (with a warning naming the
    record file), and skipped when it did not. wandb-metadata.json, when there is one,
    fills in what the records lack (wandb before 0.18 wrote no environment record)."""
    from google.protobuf.message import DecodeError

    record_class = _record_class()
    path = _record_file(folder)
    assert path is not None and record_class is not None  # (read() checked both)
    facts = _Facts(_folder_id(folder))
    seen_run = False
    try:
        with path.open("rb") as handle:
            for payload in _payloads(handle, path):
                record = record_class()
                try:
                    record.ParseFromString(payload)
                except DecodeError as e:
                    raise _Cut(f"a record that does not parse ({e})") from None
                seen_run |= _add_record(facts, record)
    except _Cut as cut:
        facts.extra["warnings"] = [f"{path}: {cut}; adopted what comes before it"]
    except _Unreadable as e:
        return _files_instead(folder, source, e.where, e.why)
    except OSError as e:
        return _files_instead(folder, source, path, f"cannot be read ({_short(e)})")
    if not seen_run:
        why = "holds no run record (W&B stopped before writing it): nothing to adopt"
        return _files_instead(folder, source, path, why)
    left_out: list[Skipped] = []
    metadata = folder / "files" / "wandb-metadata.json"
    try:
        facts.meta = _merged(_json_file(metadata), facts.meta)  # (the records win)
    except _Unreadable as e:
        left_out.append(Skipped(where=str(e.where), why=f"{e.why}: left out"))
    found = _found(facts, folder, source)
    found.skipped[:0] = left_out
    return found


def _files_instead(folder: Path, source: str, where: Path, why: str) -> Found:
    """The run of a folder whose record file gave no run (`where` and `why` say what is
    wrong with it): read from files/ when W&B wrote its run files there, the record
    file's trouble kept as a warning; skipped, naming the record file, when it did not."""
    files = folder / "files"
    if not any((files / name).is_file() for name in _RUN_FILES):
        return Found(TOOL, skipped=[Skipped(where=str(where), why=why)])
    warning = f"{where}: {why.removesuffix(': nothing to adopt')}; read files/ instead"
    found = read_files(folder, source, history=BAD_RECORD_FILE, warnings=[warning])
    if not found.runs:  # (files/ is no better: both are named)
        found.skipped.insert(0, Skipped(where=str(where), why=why))
    return found


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`under` with `over`'s keys on top, nested dicts merged key by key; an empty value
    in `over` (a run record's blank git commit) leaves `under`'s in place."""
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        elif value not in ("", None, [], {}) or key not in out:
            out[key] = value
    return out


def _payloads(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    """The records of an open `.wandb` file, as bytes; raises _Cut where it stops being
    readable (cut short, a bad checksum) and _Unreadable when it is no W&B file at all."""
    header = handle.read(_FILE_HEADER.size)
    if len(header) < _FILE_HEADER.size or header[:4] != b":W&B":
        raise _Unreadable(path, "not a W&B record file (it does not start with ':W&B')")
    _ident, _magic, version = _FILE_HEADER.unpack(header)
    if version != 0:
        raise _Unreadable(path, f"W&B record file version {version}; this vestige reads 0")
    start, offset = 0, _FILE_HEADER.size  # blocks are counted from the start of the file
    block = header + handle.read(_BLOCK - offset)
    parts: list[bytes] = []
    while True:
        if _BLOCK - (offset - start) < _CHUNK_HEADER.size:  # the block's end, or its padding
            start = offset = start + _BLOCK
            block = handle.read(_BLOCK)
        at = offset - start
        if at >= len(block):
            if parts:
                raise _Cut(f"cut off at byte {offset}, inside a record")
            return
        if at + _CHUNK_HEADER.size > len(block):
            raise _Cut(f"cut off at byte {offset}, inside a record header")
        checksum, length, kind = _CHUNK_HEADER.unpack_from(block, at)
        data = block[at + _CHUNK_HEADER.size : at + _CHUNK_HEADER.size + length]
        if len(data) < length:
            raise _Cut(f"cut off at byte {offset}, inside a record")
        if zlib.crc32(data, zlib.crc32(bytes([kind]))) != checksum:
            raise _Cut(f"damaged at byte {offset} (a checksum does not match)")
        offset += _CHUNK_HEADER.size + length
        if kind == _FULL and not parts:
            yield data
        elif kind == _FIRST and not parts:
            parts = [data]
        elif kind == _MIDDLE and parts:
            parts.append(data)
        elif kind == _LAST and parts:
            yield b"".join([*parts, data])
            parts = []
        else:
            raise _Cut(f"damaged at byte {offset} (chunk type {kind} out of order)")


def _add_record(facts: _Facts, record: Any) -> bool:
    """Fold one record into `facts`; True for a run record (the one a run cannot lack)."""
    kind = record.WhichOneof("record_type")
    body = getattr(record, kind) if kind else None
    if kind == "run":
        _add_run(facts, body)
        return True
    if kind == "config":
        _apply(facts.config, body.update, body.remove)
    elif kind == "summary":
        _apply(facts.summary, body.update, body.remove)
    elif kind == "history":
        _add_history(facts, body)
    elif kind == "environment":
        from google.protobuf.json_format import MessageToDict

        facts.meta.update(MessageToDict(body))  # (the keys of wandb-metadata.json)
    elif kind == "exit":
        facts.finished = True
        facts.exit_code = body.exit_code
        facts.runtime = max(facts.runtime, float(body.runtime))
    elif kind in ("output_raw", "output", "stats"):
        facts.saw_time(body.timestamp.seconds + body.timestamp.nanos / 1e9)
    elif kind == "artifact" and body.type != "code":  # (code artifacts: files/code/ has them)
        facts.extra.setdefault("artifacts", []).append(f"{body.type}:{body.name}")
    return False


def _add_run(facts: _Facts, run: Any) -> None:
    """A run record: the first names the run; later ones (tags or notes set while the run
    went on) change only what they set."""
    facts.run_id = run.run_id or facts.run_id
    facts.name = run.display_name or facts.name
    facts.project = run.project or facts.project
    facts.notes = run.notes or facts.notes
    facts.tags = list(run.tags) or facts.tags
    if run.start_time.seconds:
        facts.started = run.start_time.seconds + run.start_time.nanos / 1e9
    _apply(facts.config, run.config.update, run.config.remove)
    for key, value in (
        ("entity", run.entity),
        ("group", run.run_group),
        ("job_type", run.job_type),
        ("sweep_id", run.sweep_id),
    ):
        if value:
            facts.extra[key] = value
    if run.git.commit or run.git.remote_url:
        git = facts.meta.setdefault("git", {})
        git.setdefault("commit", run.git.commit)
        git.setdefault("remote", run.git.remote_url)


def _apply(tree: dict[str, Any], updates: Any, removes: Any = ()) -> None:
    """Apply config or summary items (`key` or `nested_key` path, JSON value) to `tree`."""
    for item in updates:
        _put(tree, list(item.nested_key) or [item.key], _json_value(item.value_json))
    for item in removes:
        *parents, leaf = list(item.nested_key) or [item.key]
        node: Any = tree
        for part in parents:
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        node.pop(leaf, None)


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `tree[path[0]][path[1]]... = value`, making (or replacing) branches on the way."""
    *parents, leaf = path
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _json_value(text: str) -> Any:
    """A value W&B wrote as JSON text (NaN and Infinity included); the text if it is not."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _add_history(facts: _Facts, history: Any) -> None:
    """One wandb.log row: each numeric value becomes a point (step, time, value) of its series."""
    row: dict[str, Any] = {}
    for item in history.item:
        _put(row, list(item.nested_key) or [item.key], _item_value(item))
    step = row.get("_step", history.step.num)
    when = row.get("_timestamp")
    if isinstance(when, int | float):
        facts.saw_time(float(when))
    else:
        when = facts.last_time if facts.last_time is not None else (facts.started or 0.0)
    if isinstance(row.get("_runtime"), int | float):
        facts.runtime = max(facts.runtime, float(row["_runtime"]))
    for key, value in _numbers(row).items():
        facts.metrics.setdefault(key, []).append((step, when, value))


def _item_value(item: Any) -> Any:
    """A history item's value: wandb writes JSON text; newer writers may use typed fields."""
    kind = item.WhichOneof("value")
    if kind is None:
        return _json_value(item.value_json) if item.value_json else None
    if kind == "none":
        return None
    return _json_value(item.json) if kind == "json" else getattr(item, kind)


def _numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a row or summary, dotted: keys starting with "_" (W&B's own)
    and media (dicts with a `_type`: images, tables, histograms) left out."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and "_type" not in value:
            out.update(_numbers(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
    return out


# -- the files/ folder ----------------------------------------------------------------------


def read_files(
    folder: Path, source: str, history: str = SUMMARY_ONLY, warnings: list[str] | None = None
) -> Found:
    """One run folder read from `files/` alone: config.yaml, wandb-summary.json (one point
    per metric) and wandb-metadata.json; `history` says why in `extra`, `warnings` what
    went wrong before. Without the record file the exit code is unknown, so the status
    is `interrupted`. A corrupt config, summary or metadata file skips the run (named,
    exit 1) rather than sealing one whose params or metrics are silently missing and that
    `--where` would then mis-select; once the file is mended, adopting again adds the run."""
    files = folder / "files"
    if not files.is_dir():
        why = "no run-<id>.wandb record file and no files/ folder: nothing to adopt"
        return Found(TOOL, skipped=[Skipped(where=str(folder), why=why)])
    facts = _Facts(_folder_id(folder))
    try:
        facts.config = _config_yaml(files / "config.yaml")
        facts.summary = _json_file(files / "wandb-summary.json")
        facts.meta = _json_file(files / "wandb-metadata.json")
    except _Unreadable as e:
        return Found(TOOL, skipped=[Skipped(where=str(e.where), why=e.why)])
    facts.extra["history"] = history
    facts.extra["status"] = "unknown: the exit code is only in the .wandb record file"
    if warnings:
        facts.extra["warnings"] = list(warnings)
    return _found(facts, folder, source)


def _config_yaml(path: Path) -> dict[str, Any]:
    """W&B's config.yaml, `{key: {value: ..., desc: ...}}`, as `{key: value}`; {} if absent."""
    if not path.exists():
        return {}
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"{path}: reading W&B's config.yaml needs PyYAML: pip install 'vestige[wandb]'"
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise _Unreadable(path, f"not readable YAML ({_short(e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _Unreadable(path, "not a mapping of config keys (W&B writes key: {value: ...})")
    return {
        key: value["value"] if isinstance(value, dict) and "value" in value else value
        for key, value in data.items()
        if key != "wandb_version"
    }


def _json_file(path: Path) -> dict[str, Any]:
    """A JSON object file of W&B's (summary, metadata); {} if absent."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _Unreadable(path, f"not readable JSON ({_short(e)})") from None
    if not isinstance(data, dict):
        raise _Unreadable(path, f"a JSON {type(data).__name__}, not the object W&B writes")
    return data


def _short(error: Exception) -> str:
    """An exception's message as a short line: a YAML error's problem and where it is, else
    the message's first sentence (library messages can span many lines)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if isinstance(problem, str) and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    text = " ".join(str(error).split()) or type(error).__name__
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first if len(first) <= 200 else first[:199] + "…"


# -- facts -> ForeignRun ------------------------------------------------------------------


def _found(facts: _Facts, folder: Path, source: str) -> Found:
    """The ForeignRun of one folder's facts, and the saved files it had to leave out."""
    skipped: list[Skipped] = []
    files, stdout = _logged_files(folder / "files", skipped)
    meta = facts.meta
    git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
    code: dict[str, Any] = {}
    for key, value in (
        ("commit", git.get("commit")),
        ("repo", git.get("remote")),
        ("program", meta.get("codePath") or meta.get("program")),
    ):
        if isinstance(value, str) and value and not (key == "program" and _no_script(value)):
            code[key] = value
    saved = _code_files(folder / "files" / "code")
    if saved:
        code["files"] = saved
    tags = [t for t in facts.tags if _is_tag(t)]
    odd = [t for t in facts.tags if not _is_tag(t)]
    extra = {"folder": folder.name, **facts.extra}
    if odd:
        extra["tags"] = odd
    requirements = folder / "files" / "requirements.txt"
    if requirements.is_file():
        lines = requirements.read_text(encoding="utf-8", errors="replace").splitlines()
        extra["requirements"] = [ln.strip() for ln in lines if ln.strip() and ln[0] != "#"]
    for key in ("os", "python", "executable", "colab"):
        if isinstance(meta.get(key), str):
            extra[key] = meta[key]
    started, ended = _times(facts, folder, extra)
    run = ForeignRun(
        tool=TOOL,
        source=source,
        foreign_id=facts.run_id,
        started=started,
        ended=ended,
        status=("ok" if facts.exit_code == 0 else "failed") if facts.finished else "interrupted",
        exit_code=facts.exit_code if facts.finished else None,
        command=_command(meta),
        cwd=str(meta.get("root") or ""),
        host=str(meta.get("host") or ""),
        user=str(meta.get("username") or ""),
        name=facts.name,
        experiment=facts.project,
        params=flatten({k: v for k, v in facts.config.items() if k != "_wandb"}),
        metrics=_with_summary(facts, ended if ended is not None else started),
        tags=tuple(tags),
        notes=(facts.notes,) if facts.notes else (),
        files=files,
        code=code,
        extra=extra,
        stdout=stdout,
    )
    return Found(TOOL, runs=[run], skipped=skipped)


def _folder_id(folder: Path) -> str:
    """The run id in a run folder's name (`offline-run-20240101_120000-<id>`)."""
    match = _RUN_FOLDER.fullmatch(folder.name)
    return match.group("id") if match else folder.name


def _is_tag(text: str) -> bool:
    """Whether a W&B tag is also a vestige tag (a word: no spaces, no commas)."""
    try:
        check_tag(text)
    except ValueError:
        return False
    return True


def _times(facts: _Facts, folder: Path, extra: dict[str, Any]) -> tuple[float, float | None]:
    """(started, ended) from the times the run's records and files carry: the run record's
    start (else metadata `startedAt`); the latest record or summary `_timestamp`, and start
    + runtime; else the first and last time in W&B's logs/debug-internal.log. The files'
    modification times only when none of those exist: in a cloned or copied folder they
    are the copy's (an end a year after the start). Ended is None when only the start is
    known, and never before the start."""
    started = facts.started
    if started is None:
        started = _iso_time(facts.meta.get("startedAt"))
        if started is None and isinstance(facts.meta.get("startedAt"), str):
            extra["startedAt"] = facts.meta["startedAt"]
    summary = facts.summary
    runtime = max(facts.runtime, _number(summary.get("_runtime")) or 0.0)
    if isinstance(summary.get("_wandb"), dict):
        runtime = max(runtime, _number(summary["_wandb"].get("runtime")) or 0.0)
    ends = [t for t in (facts.last_time, _number(summary.get("_timestamp"))) if t]
    logged = _log_times(folder / "logs" / "debug-internal.log")
    if started is None and logged is not None:
        started = logged[0]
    if started is None and ends:
        started = max(ends) - runtime
    if started is not None and (runtime or facts.finished):
        ends.append(started + runtime)
    if not ends and logged is not None:
        ends.append(logged[1])
    if started is None:  # (no time in the records or files: the file times are all there is)
        times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
        return min(times, default=0.0), max(times, default=None)
    return started, max(max(ends), started) if ends else None


def _number(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _iso_time(text: Any) -> float | None:
    """An ISO 8601 time W&B wrote (UTC when it names no zone) in seconds; None if not one."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _log_times(path: Path) -> tuple[float, float] | None:
    """The first and last time in W&B's debug-internal.log, when it is wandb-core's (JSON
    lines with a zoned `time`); None for the older text log, whose times name no zone."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 65536))
            tail = handle.read()
    except OSError:
        return None
    first = next(_line_times(head.splitlines()), None)
    last = next(_line_times(reversed(tail.splitlines())), None)
    return None if first is None or last is None else (first, max(first, last))


def _line_times(lines: Iterable[bytes]) -> Iterator[float]:
    """The zoned `time` of each JSON log line among `lines` (others are passed over)."""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        text = entry.get("time") if isinstance(entry, dict) else None
        if isinstance(text, str) and (text.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", text)):
            when = _iso_time(text)
            if when is not None:
                yield when


def _with_summary(facts: _Facts, when: float) -> dict[str, list[tuple[float, float, float]]]:
    """The history's series, plus one point for each numeric summary value the history
    lacks (`run.summary["best"] = ...`, or every metric when only the summary was read)."""
    metrics = dict(facts.metrics)
    step, t = facts.summary.get("_step"), facts.summary.get("_timestamp")
    step = step if isinstance(step, int | float) else 0
    t = t if isinstance(t, int | float) else when
    for key, value in _numbers(facts.summary).items():
        if key not in metrics:
            metrics[key] = [(step, t, value)]
    return metrics


def _command(meta: dict[str, Any]) -> tuple[str, ...]:
    """The command as W&B saw the run start: `python <program> <args>` (`python -m pkg`
    for a module; an absolute program under `root` made relative to it, the run's cwd);
    `<notebook>.ipynb` alone for a notebook, as `vestige run` runs one (the kernel's args
    are not the notebook's); () when W&B names no script: a REPL, or a notebook it could
    not find (`<python with no main file>`, `ipykernel_launcher.py`). W&B leaves `args`
    out when there were none."""
    local, program, in_git = (meta.get(key) for key in ("codePathLocal", "program", "codePath"))
    names = [name for name in (local, program, in_git) if isinstance(name, str) and name]
    root = meta.get("root") if isinstance(meta.get("root"), str) else ""
    notebook = next((name for name in names if name.endswith(".ipynb")), None)
    if notebook is not None:
        return (_under(notebook, root),)
    program = local or program
    if not isinstance(program, str) or not program or _no_script(program):
        return ()
    args = meta.get("args")
    args = [str(a) for a in args] if isinstance(args, list) else []
    if program.startswith("-m "):
        return ("python", "-m", program[3:].strip(), *args)
    return ("python", _under(program, root), *args)


def _no_script(program: str) -> bool:
    """Whether W&B's `program` names no script: `<python with no main file>` (a REPL, a
    notebook it could not find) or the Jupyter kernel's launcher."""
    return program.startswith("<") or bool(_KERNEL.search(program))


def _under(path: str, root: str) -> str:
    """`path` relative to `root` when it is an absolute path under it, else as it is."""
    if not root:
        return path
    for flavour in (PurePosixPath, PureWindowsPath):
        try:
            return flavour(path).relative_to(flavour(root)).as_posix()
        except ValueError:
            continue
    return path


def _code_files(code: Path) -> tuple[ForeignFile, ...]:
    """files/code/**: the code W&B saved (save_code=True), named by its path under code/."""
    return tuple(
        ForeignFile(name=path.relative_to(code).as_posix(), source=str(path.absolute()))
        for path in _walk(code)
        if path.is_file()
    )


def _logged_files(
    files: Path, skipped: list[Skipped]
) -> tuple[tuple[ForeignFile, ...], str | None]:
    """files/** the run logged or saved (media/, wandb.save'd files), named by their path
    from the current directory (absolute outside it), and output.log as the run's stdout.
    A wandb.save'd file is a link to the user's file; a link to nothing is skipped."""
    if not files.is_dir():
        return (), None
    shown = _shown(files)
    out: list[ForeignFile] = []
    for path in _walk(files):
        inside = path.relative_to(files)
        if inside.parts[0] == "code" or (len(inside.parts) == 1 and path.name in _NOT_FILES):
            continue
        if not path.exists():
            why = f"a link to {os.readlink(path)}, which does not exist: file left out"
            skipped.append(Skipped(where=str(path), why=why))
            continue
        if path.is_file():
            out.append(
                ForeignFile(name=f"{shown}/{inside.as_posix()}", source=str(path.absolute()))
            )
    log = files / "output.log"
    return tuple(out), str(log.absolute()) if log.is_file() else None


def _walk(top: Path) -> list[Path]:
    """Every file (and link to one, or to nothing) under `top`, sorted; links to folders
    are neither followed nor listed."""
    return sorted(Path(folder, name) for folder, _dirs, names in os.walk(top) for name in names)


def _shown(path: Path) -> str:
    """`path` as the user would name it: from the current directory if under it."""
    full = path.absolute()
    try:
        return full.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return full.as_posix()
