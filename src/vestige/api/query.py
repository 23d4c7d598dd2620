"""Runs read from Python: `vestige.runs()` and `vestige.Run(ref)` (docs/api.md).

`runs(where=..., cols=[...])` is one row per run, newest first, as a pandas DataFrame (like
`mlflow.search_runs`): status, times, the command, name and tags, then a `params.K` column
per param and a `metrics.K` column per metric (its last value; `metrics.K.min`, `.max`,
`.count` on request). `Run(42)` is one run: its params, its files as paths that can be
opened, its metric series as numpy arrays.

A file of a run is handed out where its exact bytes are: the project's own file while it
still holds them (checked through the stat cache, like `stale`), else a read-only copy
materialized from the store into `.vestige/cache/files/<hash>/<name>` (a cache: deleting
it costs a copy), or the user's cache folder when the store cannot be written.

pandas and numpy are imported only by the calls that return them: `import vestige` stays
as light as tests/test_imports.py pins it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from vestige.errors import NotKept, UsageError
from vestige.records import FileRecord, safe_recorded
from vestige.repo import Repo

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

    import numpy
    import pandas

    from vestige.records import Run as RunRecord

#: The run columns runs() gives (in this order when `cols` is not given, `cwd`,
#: `git_commit`, `parent` only when asked), before the params.* and metrics.* columns.
BASE_COLUMNS = ("id", "seq", "name", "status", "started", "ended", "duration", "exit_code",
                "command", "tags")  # fmt: skip
MORE_COLUMNS = ("cwd", "git_commit", "parent")
#: The summaries of a metric a column may ask for: metrics.loss.min ...
STATS = ("last", "min", "max", "count")


def _import(name: str, what: str) -> Any:
    """Import an optional library, or say in one line what to install."""
    from importlib import import_module

    try:
        return import_module(name)
    except ImportError:
        raise ImportError(f"{what} needs {name}, which is not installed: pip install {name}"
                          ) from None  # fmt: skip


def _open(store: str | os.PathLike[str] | None) -> Repo:
    """The repo of `store` (a project folder, or its .vestige folder), else the one found
    from the current directory, as the CLI finds it."""
    if store is None:
        return Repo.open()
    path = Path(store).expanduser().resolve()
    if path.name == ".vestige":
        path = path.parent
    if not path.is_dir():
        raise UsageError(f"store={str(store)!r} is not a folder; give a project folder")
    return Repo.open(path)


def runs(
    where: str | None = None,
    cols: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    store: str | os.PathLike[str] | None = None,
) -> pandas.DataFrame:
    """The runs `where` selects (the --where language of `vestige ls`, docs/cli.md), newest
    first, as a pandas DataFrame with a row per run.

    Without `cols`: id, seq, name, status, started, ended (UTC timestamps), duration
    (seconds), exit_code, command, tags, then params.K and metrics.K (last value) for every
    key the runs have. `cols` picks columns by those names, plus cwd, git_commit, parent,
    metrics.K.min / .max / .count / .last, and bare names (a metric if any run logged it,
    else a param, as `ls --cols`); each column is labelled as asked. `limit`: the newest
    N runs only. `store`: a project folder (default: found from the current directory).
    """
    pd = _import("pandas", "vestige.runs()")
    if isinstance(cols, str):
        cols = [c.strip() for c in cols.split(",") if c.strip()]
    repo = _open(store)
    try:
        listed = repo.runs(where=where, limit=limit)
        stats = repo.index.runs.metric_stats_of([r["id"] for r in listed])
    finally:
        repo.close()
    param_keys = sorted({k for r in listed for k in r["params"]})
    metric_keys = sorted({k for r in listed for k in stats.get(r["id"], {})})
    if cols is None:
        wanted = [*BASE_COLUMNS, *(f"params.{k}" for k in param_keys),
                  *(f"metrics.{k}" for k in metric_keys)]  # fmt: skip
    else:
        wanted = list(cols)
    data: dict[str, Any] = {}
    for label in wanted:
        if label in data:
            continue
        data[label] = _column(pd, label, listed, stats, set(param_keys), set(metric_keys))
    return pd.DataFrame(data, columns=wanted if cols is not None else None)


def _column(
    pd: Any, label: str, listed: list[dict[str, Any]],
    stats: dict[str, dict[str, tuple[Any, ...]]], params: set[str], metrics: set[str],
) -> Any:  # fmt: skip
    """The values of one column of runs(), one per listed run."""
    if label in ("started", "ended"):
        return pd.to_datetime([r[label] for r in listed], unit="s", utc=True)
    if label == "exit_code":
        return pd.array([r["exit_code"] for r in listed], dtype="Int64")
    if label == "command":
        return [shlex.join(r["command"]) for r in listed]
    if label in BASE_COLUMNS or label in MORE_COLUMNS:
        return [r.get(label) for r in listed]
    kind, dot, key = label.partition(".")
    if not (dot and kind in ("params", "metrics") and key):
        if label in metrics:
            kind, key = "metrics", label
        elif label in params:
            kind, key = "params", label
        else:
            known = ", ".join((*BASE_COLUMNS, *MORE_COLUMNS))
            raise UsageError(f"cols: {label!r} is no column of these runs (no run has a metric "
                             f"or param of that name; columns: {known}, params.K, "
                             "metrics.K)")  # fmt: skip
    if kind == "params":
        return [r["params"].get(key) for r in listed]
    stat = 0  # last
    base, sep, suffix = key.rpartition(".")
    if key not in metrics and sep and suffix in STATS and base in metrics:
        key, stat = base, STATS.index(suffix)
    values = [stats.get(r["id"], {}).get(key, (None,) * 4)[stat] for r in listed]
    if stat == 3:
        return pd.array(values, dtype="Int64")
    return [float("nan") if v is None else v for v in values]


class Metric:
    """One metric series of a run: `steps`, `times` (epoch seconds) and `values`, numpy
    float64 arrays of equal length; `numpy.asarray(metric)` is the values."""

    def __init__(self, name: str, steps: numpy.ndarray, times: numpy.ndarray,
                 values: numpy.ndarray) -> None:  # fmt: skip
        self.name = name
        self.steps = steps
        self.times = times
        self.values = values

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        last = f", last {self.values[-1]:g}" if len(self.values) else ""
        return f"Metric({self.name!r}, {len(self.values)} points{last})"


class Files(Mapping[str, Path]):
    """A run's files of one role by recorded path (relative to the project, or absolute
    outside it): `run.outputs["fig.png"]` is a Path holding exactly the bytes the run
    wrote, found or materialized on access (see the module's docstring). A key may also
    be a unique end of a recorded path (`"fig.png"` for `results/fig.png`)."""

    def __init__(self, run: Run, records: Sequence[FileRecord]) -> None:
        self._run = run
        self._records = {f.path: f for f in records}

    def __getitem__(self, path: str) -> Path:
        return self._run._materialize(self._record(path))

    def _record(self, path: str) -> FileRecord:
        if path in self._records:
            return self._records[path]
        tail = "/" + path.lstrip("/")
        ends = [p for p in self._records if p.endswith(tail)]
        if len(ends) == 1:
            return self._records[ends[0]]
        if ends:
            raise KeyError(f"{path!r} ends several of run #{self._run.seq}'s paths: "
                           + ", ".join(sorted(ends)[:5]))  # fmt: skip
        raise KeyError(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<{len(self)} files of run #{self._run.seq}: {', '.join(list(self)[:5])}>"


class Run:
    """One recorded run, read from the store: `Run(42)`, `Run("baseline")` (a name),
    `Run("@last")`, `Run(-1)`, or an id prefix, as `vestige show` takes them.

    id, seq, name, status, command (argv list), cwd, started, ended, duration (epoch
    seconds), exit_code, params, tags, notes (texts) and `record` (the whole manifest);
    `outputs`, `inputs` and `artefacts` map recorded paths to openable Paths; `metrics`
    maps each key to a Metric of numpy arrays (read on first use)."""

    def __init__(self, ref: int | str = "@last", *, store: str | os.PathLike[str] | None = None
                 ) -> None:  # fmt: skip
        repo = _open(store)
        try:
            record = repo.run(str(ref))
            self.name: str | None = repo.run_name(record.id)
        finally:
            repo.close()
        self._store = repo.store
        self.record: RunRecord = record
        self.id, self.seq, self.status = record.id, record.seq, record.status
        self.command, self.cwd = list(record.command), record.cwd
        self.started, self.ended, self.duration = record.started, record.ended, record.duration
        self.exit_code = record.exit_code
        self.params: dict[str, Any] = dict(record.params)
        self.tags: tuple[str, ...] = tuple(record.tags)
        self.notes: list[str] = [str(n.get("text", "")) for n in record.notes]
        self.outputs = Files(self, record.outputs)
        self.inputs = Files(self, record.inputs)
        self.artefacts = Files(self, [FileRecord.from_dict(f) for a in record.artefacts
                                      for f in a.get("files") or ()])  # fmt: skip
        self._metrics: dict[str, Metric] | None = None

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"<vestige.Run #{self.seq}{named} {self.status}: {shlex.join(self.command)}>"

    @property
    def metrics(self) -> dict[str, Metric]:
        """Every metric series of the run by key (numpy arrays), read once."""
        if self._metrics is None:
            np = _import("numpy", "Run.metrics")
            repo = self._repo()
            try:
                series = repo.metrics(self.record)
            finally:
                repo.close()
            self._metrics = {
                key: Metric(
                    key,
                    *(
                        np.frombuffer(getattr(s, part), dtype=np.float64).copy()
                        for part in ("steps", "times", "values")
                    ),
                )
                for key, s in series.items()
            }
        return self._metrics

    def _repo(self) -> Repo:
        return Repo.open_at(str(self._store.path), str(self._store.root))

    def _materialize(self, f: FileRecord) -> Path:
        """A path holding exactly the bytes `f` records: the project's file when it still
        holds them, else a read-only copy from the store in the cache."""
        if f.hash is None:
            raise NotKept(f"{f.path}: run #{self.seq} saw it but could not hash it")
        repo = self._repo()
        try:
            from vestige.store.statcache import StatCache

            cache = StatCache(repo.index.conn)
            try:
                here = _project_path(repo, f.path)
                if here is not None and _holds(cache, here, f.hash):
                    return here
                if not f.kept or not repo.store.objects.exists(f.hash):
                    freed = repo.freed_error(f.path, f.hash)
                    if freed is not None:
                        raise freed
                    why = f.note or "it was over the size limit"
                    raise NotKept(f"{f.path}: run #{self.seq} kept no copy ({why}), and the "
                                  "project no longer holds those bytes")  # fmt: skip
                name = Path(f.path).name  # (its name only: a recorded path is data)
                copy = _cache_dir(repo) / f.hash / (name if name not in ("", ".", "..") else "file")
                if not _holds(cache, copy, f.hash):
                    repo.store.objects.copy_to(f.hash, copy, 0o444)  # (verified first)
                return copy
            finally:
                cache.flush()
        finally:
            repo.close()


def _project_path(repo: Repo, recorded: str) -> Path | None:
    """Where a recorded path is on disk now (None for a path that would leave its folder)."""
    if not safe_recorded(recorded):
        return None
    return Path(recorded) if recorded.startswith("/") else repo.store.root / recorded


def _holds(cache: Any, path: Path, digest: str) -> bool:
    """Whether the file at `path` holds exactly the bytes `digest` names (the stat cache
    spares re-hashing an unchanged file)."""
    from vestige.store.hashing import hash_file
    from vestige.store.stat import Stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    if not os.path.isfile(path):
        return False
    stat = Stat.of(st)
    known = cache.get(str(path), stat)
    if known is None:
        try:
            known = hash_file(path, st.st_size)
        except OSError:
            return False
        cache.put(str(path), stat, known)
    return bool(known == digest)


def _cache_dir(repo: Repo) -> Path:
    """Where copies materialized from the store go: the store's cache, or the user's when
    the store cannot be written."""
    if not repo.readonly:
        return repo.store.path / "cache" / "files"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vestige" / "files"
