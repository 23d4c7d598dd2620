"""MLflow's stores as foreign runs: a file store (`mlruns/`, experiment folders holding
`meta.yaml`) or a SQL store (`sqlite:///mlflow.db`), read with MLflow's own client.

Each run gives its params, the full series of each metric, its tags and note, its
artifacts and the logged models it produced (MLflow 3 keeps those outside the run's
artifacts), and the code MLflow named (`mlflow.source.*`). Reading never writes to the
source: a SQLite database is read from a copy (MLflow migrates an older one on open).

Stores come from other machines (a committed `mlruns/` or `mlflow.db`): artifact locations
name folders that are not here, and git keeps no empty folder, so a run's `artifacts/`
may be gone. Artifacts are then looked for where MLflow keeps them by default beside the
store; a run whose artifacts are nowhere here is adopted without them and said once.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from vestige.adopt.foreign import ForeignFile, ForeignRun, Found, Skipped
from vestige.api.calls import check_tag
from vestige.errors import UsageError

SQLITE_HEADER = b"SQLite format 3\x00"
#: SQL stores vestige hands to MLflow's client as they are (a SQLite file is copied first)
SERVER_DATABASES = ("postgresql:", "mysql:", "mssql:")
#: the largest page search_runs accepts (MLflow's SEARCH_MAX_RESULTS_THRESHOLD)
PAGE = 50_000
#: the longest `why` of a Skipped taken from a library's message
WHY_MAX = 240
#: MLflow's run status -> vestige's; RUNNING and SCHEDULED become interrupted
STATUS = {"FINISHED": "ok", "FAILED": "failed", "KILLED": "interrupted"}
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][-+]?[0-9]+)?")


def looks_like(path: Path) -> bool:
    """Whether `path` is an MLflow store, without importing MLflow: a folder of experiment
    folders (`*/meta.yaml`, or MLflow's `.trash`), or a SQLite file with MLflow's tables."""
    if path.is_dir():
        return (path / ".trash").is_dir() or any(p.is_file() for p in path.glob("*/meta.yaml"))
    return path.is_file() and _is_mlflow_db(path)


def read(source: str) -> Found:
    """Every run of the MLflow store `source` (a folder, a `.db` file or a database URI),
    with a `Skipped` for each experiment or run whose files MLflow cannot read."""
    client_class = _mlflow_client()
    with _reading():
        uri, root = _tracking_uri(source)
        from mlflow.exceptions import MlflowException

        try:
            return _Reader(client_class, source, uri, root).read()
        except MlflowException as e:
            why = _short(e, uri, source)
            raise UsageError(f"{source}: MLflow cannot read it: {why}") from None


def _mlflow_client() -> Any:
    """MLflow's client class, or a UsageError naming the extra that installs it."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(
            "adopting MLflow stores needs MLflow: pip install 'vestige[mlflow]'"
        ) from None
    return MlflowClient


@contextmanager
def _reading() -> Iterator[None]:
    """While MLflow reads: its file store allowed (MLflow 3.17 refuses one without
    MLFLOW_ALLOW_FILE_STORE), its log lines and warnings silenced (vestige reports
    what it could not read itself, as Skipped)."""
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    # the file store warns through the root logger ("Malformed experiment ...")
    loggers = [logging.getLogger("mlflow"), logging.getLogger("alembic"), logging.getLogger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


# -- where the store is ---------------------------------------------------------------------


def _tracking_uri(source: str) -> tuple[str, Path | None]:
    """The tracking URI MLflow's client reads `source` from, and the file store's folder
    (None for a SQL store); a UsageError when `source` is no MLflow store."""
    if source.startswith(SERVER_DATABASES):
        return source, None
    if source.startswith("sqlite:"):
        if not source.startswith("sqlite:///"):
            raise UsageError(f"{source}: name the database file, as sqlite:///path/mlflow.db")
        return _sqlite_copy(source, Path(source[len("sqlite:///") :])), None
    path = Path(unquote(urlparse(source).path)) if source.startswith("file:") else Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file or folder; name an MLflow store (mlruns/ or "
                         "sqlite:///mlflow.db)")  # fmt: skip
    if path.is_file():
        return _sqlite_copy(source, path), None
    if not looks_like(path):
        raise UsageError(f"{source}: not an MLflow store: no experiment folders (*/meta.yaml); "
                         "name the mlruns/ folder MLflow wrote")  # fmt: skip
    return path.resolve().as_uri(), path.resolve()


def _is_mlflow_db(path: Path) -> bool:
    """Whether `path` is a SQLite database holding MLflow's `experiments` and `runs`."""
    try:
        with path.open("rb") as f:
            if f.read(16) != SQLITE_HEADER:
                return False
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        return False
    return {"experiments", "runs"} <= {name for (name,) in rows}


def _sqlite_copy(source: str, path: Path) -> str:
    """The URI of a private copy of the MLflow database at `path`: MLflow migrates a
    database of an older MLflow to its own schema when it opens it, and adopting must
    leave the source as it was."""
    if not path.is_file():
        raise UsageError(f"{source}: no such database file")
    if not _is_mlflow_db(path):
        raise UsageError(f"{source}: {path} is not an MLflow database (no experiments and "
                         "runs tables); name the mlflow.db MLflow wrote")  # fmt: skip
    fd, name = tempfile.mkstemp(suffix=".db", dir=_scratch())
    os.close(fd)
    original = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    copy = sqlite3.connect(name)
    try:
        original.backup(copy)  # consistent even while MLflow writes to it
    finally:
        copy.close()
        original.close()
    return "sqlite:///" + name


@functools.cache
def _scratch() -> Path:
    """A private folder for database copies and downloaded artifacts; it lives until the
    process ends (the writer reads the files after `read` returns)."""
    path = Path(tempfile.mkdtemp(prefix="vestige-mlflow-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# -- reading ---------------------------------------------------------------------------------


class _Reader:
    """One read of one store: the client, the experiments' names and logged models, and
    what was found."""

    def __init__(self, client_class: Any, source: str, uri: str, root: Path | None) -> None:
        self.client = client_class(tracking_uri=uri)
        self.source = source
        self.uri = uri  # for a SQLite store, its private copy's: never named to the user
        self.root = root  # the file store's folder; None for a SQL store
        self.found = Found("mlflow")
        self.cwd = Path.cwd().resolve()
        self.db = _database(source, root)  # the user's SQLite file, when it is one
        #: folders where `mlflow server` would have kept its `mlartifacts/`: beside the
        #: database (or the mlruns/ folder) it served, and the current folder
        self.homes = list(dict.fromkeys(
            [p.parent for p in (self.db, root) if p is not None] + [self.cwd]))  # fmt: skip
        self.missing: list[str] = []  # the artifact locations of runs adopted without them

    def read(self) -> Found:
        """Every run of every experiment, deleted ones too, sorted by start. A run that
        cannot be read is Skipped alone; the runs whose artifacts are nowhere here are
        named in one Skipped for the whole source."""
        for experiment, folder in self._experiments():
            models = self._models(experiment.experiment_id, folder)
            for run in self._runs(experiment.experiment_id, folder):
                try:
                    adopted = self._convert(run, experiment, models, folder)
                except Exception as e:  # any failure to read one run skips only that run
                    where = (f"{self.source}: run {run.info.run_id}" if folder is None
                             else str(folder / run.info.run_id))  # fmt: skip
                    self.found.skipped.append(Skipped(
                        where=where, why=f"cannot read the run: {self._short(e)}"))  # fmt: skip
                    continue
                self.found.runs.append(adopted)
                if "artifacts_missing" in adopted.extra:
                    self.missing.append(adopted.extra["artifacts_missing"])
        if self.missing:
            n, where = len(self.missing), _pattern(self.missing)
            self.found.skipped.append(Skipped(
                where=self.source,
                why=f"artifacts of {n} run{'s' * (n != 1)} are not here ({where}): adopted "
                    "without their files",
            ))  # fmt: skip
        self.found.runs.sort(key=lambda r: (r.started, r.foreign_id))
        self.found.skipped.sort(key=lambda s: s.where)
        return self.found

    def _short(self, error: BaseException) -> str:
        """`error` as a short `why`: see `_short` (the module's)."""
        return _short(error, self.uri, self.source)

    def _experiments(self) -> list[tuple[Any, Path | None]]:
        """(experiment, its folder in a file store) for every experiment, deleted too."""
        from mlflow.entities import ViewType

        def search(token: str | None) -> Any:
            return self.client.search_experiments(view_type=ViewType.ALL, max_results=PAGE,
                                                  page_token=token)  # fmt: skip

        if self.root is None:
            return [(e, None) for e in self._each(search, None, (), self.client.get_experiment)]
        found = self._each(search, self.root, ("*/meta.yaml", ".trash/*/meta.yaml"),
                           self.client.get_experiment, lambda e: e.experiment_id)  # fmt: skip
        live = [(e, self.root / e.experiment_id) for e in found]
        return [(e, d if d.is_dir() else d.parent / ".trash" / d.name) for e, d in live]

    def _runs(self, experiment_id: str, folder: Path | None) -> list[Any]:
        """Every run of one experiment, deleted too."""
        from mlflow.entities import ViewType

        def search(token: str | None) -> Any:
            return self.client.search_runs([experiment_id], run_view_type=ViewType.ALL,
                                           max_results=PAGE, page_token=token)  # fmt: skip

        return self._each(search, folder, ("*/meta.yaml",), self._get_run(folder),
                          lambda r: r.info.run_id)  # fmt: skip

    def _get_run(self, folder: Path | None) -> Callable[[str], Any]:
        """MLflow's `get_run`; in a file store (`folder`: the experiment's), one that also
        reads a run whose folder lacks `artifacts/`, `params/` or `metrics/`. MLflow's
        search returns such a run, but its `get_run` says "not found" (it wants all three
        folders), and git keeps no empty folder: a committed mlruns/ has many of them."""
        if folder is None:
            return self.client.get_run

        def get(run_id: str) -> Any:
            from mlflow.exceptions import MlflowException

            try:
                return self.client.get_run(run_id)
            except MlflowException as e:
                store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
                from_dir = getattr(store, "_get_run_info_from_dir", None)
                from_info = getattr(store, "_get_run_from_info", None)
                run_dir = folder / run_id
                if (e.error_code != "RESOURCE_DOES_NOT_EXIST" or from_dir is None
                        or from_info is None or not (run_dir / "meta.yaml").is_file()):  # fmt: skip
                    raise
                info = from_dir(str(run_dir))
                if (info.run_id, str(info.experiment_id)) != (run_id, folder.name):
                    raise  # in the wrong folder: MLflow ignores it, and so does vestige
                return from_info(info)

        return get

    def _models(self, experiment_id: str, folder: Path | None) -> dict[str, list[Any]]:
        """The experiment's logged models by the run that logged them: MLflow 3 keeps a
        model's files under the experiment, not in the run's artifacts. (The search leaves
        out deleted models, which MLflow's client does not read either.)"""

        def search(token: str | None) -> Any:
            return self.client.search_logged_models(experiment_ids=[experiment_id],
                                                    max_results=PAGE, page_token=token)  # fmt: skip

        def get(model_id: str) -> Any:
            from mlflow.exceptions import MlflowException

            try:
                return self.client.get_logged_model(model_id)
            except MlflowException as e:
                if e.error_code == "RESOURCE_DOES_NOT_EXIST":  # what MLflow says of a
                    return None  # deleted model: its folder stays
                raise

        by_run: dict[str, list[Any]] = {}
        for model in self._each(search, folder, ("models/*/meta.yaml",), get):
            by_run.setdefault(model.source_run_id or "", []).append(model)
        return by_run

    def _each(self, search: Callable[[str | None], Any], folder: Path | None,
              patterns: tuple[str, ...], get: Callable[[str], Any],
              key: Callable[[Any], str] | None = None) -> list[Any]:  # fmt: skip
        """Every item of a paged MLflow search. In a file store (`folder`), MLflow's search
        fails on a broken meta.yaml, or leaves it out without a word: then each meta.yaml
        under `folder` matching `patterns` that the search did not return (by `key`; all
        of them when it failed) is read alone by its folder's name, or named as skipped
        with what is wrong with it."""
        items: list[Any] = []
        token = None
        try:
            while True:
                page = search(token)
                items += page
                token = page.token
                if not token:
                    break
        except Exception:  # the file store gives up on them all for one bad meta.yaml
            if folder is None:
                raise
            items, failed = [], True
        else:
            failed = False
        if folder is None or not (failed or key):
            return items
        seen = {key(item) for item in items} if key else set()
        for meta in sorted(m for pattern in patterns for m in folder.glob(pattern)):
            if meta.parent.name in seen:
                continue
            try:
                item = get(meta.parent.name)
            except Exception as e:  # any failure to read one skips only that one
                self.found.skipped.append(Skipped(where=str(meta), why=_why(meta, e)))
                continue
            if item is not None:
                items.append(item)
        return items

    def _convert(self, run: Any, experiment: Any, models: dict[str, list[Any]],
                 folder: Path | None) -> ForeignRun:  # fmt: skip
        """One MLflow run in vestige's terms (`folder`: its experiment's, in a file store)."""
        info, data = run.info, run.data
        tags = dict(data.tags)
        system = {k: v for k, v in tags.items() if k.startswith("mlflow.")}
        user_tags = {k: v for k, v in tags.items() if not k.startswith("mlflow.")}
        name = system.pop("mlflow.runName", "") or info.run_name or ""
        user = system.pop("mlflow.user", "") or info.user_id or ""
        note = system.pop("mlflow.note.content", "")
        code, command = _code(system)
        extra: dict[str, Any] = {"experiment_id": experiment.experiment_id,
                                 "artifact_uri": info.artifact_uri}  # fmt: skip
        parent = system.pop("mlflow.parentRunId", "")
        if parent:
            extra["parent"] = parent
        if info.status not in STATUS:
            extra["status"] = info.status
        if experiment.lifecycle_stage == "deleted":
            extra["experiment_deleted"] = True
        if info.lifecycle_stage == "deleted":
            extra["run_deleted"] = True
        if system:
            extra["system_tags"] = system
        if user_tags:
            extra["tags"] = user_tags
        datasets = [_dataset(d) for d in run.inputs.dataset_inputs] if run.inputs else []
        if datasets:
            extra["datasets"] = datasets
        logged = models.get(info.run_id, [])
        if logged:
            extra["models"] = [
                {"id": m.model_id, "name": m.name, "artifact_location": m.artifact_location}
                for m in logged
            ]
        exp = experiment.experiment_id
        files, missing = self._artifacts(info.artifact_uri, run,
                                          self._places(folder, exp, info.run_id))  # fmt: skip
        for model in logged:
            places = self._places(folder, exp, f"models/{model.model_id}")
            more, gone = self._artifacts(model.artifact_location, run, places)
            files += more
            missing = missing or gone
        if missing:
            extra["artifacts_missing"] = missing
        started = info.start_time if info.start_time is not None else info.end_time or 0
        return ForeignRun(
            tool="mlflow",
            source=self.source,
            foreign_id=info.run_id,
            started=started / 1000,
            ended=None if info.end_time is None else info.end_time / 1000,
            status=STATUS.get(info.status, "interrupted"),
            command=command,
            user=user,
            name=name,
            experiment=experiment.name,
            params={k: _number(v) for k, v in data.params.items()},
            metrics={key: self._history(info.run_id, key, folder) for key in sorted(data.metrics)},
            tags=tuple(t for t in (_tag(k, v) for k, v in sorted(user_tags.items())) if _is_tag(t)),
            notes=(note,) if note else (),
            files=tuple(files),
            code=code,
            extra=extra,
        )

    def _history(self, run_id: str, key: str,
                 folder: Path | None) -> list[tuple[float, float, float]]:  # fmt: skip
        """The full series of one metric: (step, time in seconds, value) by step and time.
        A point written twice is kept once: MLflow 3's log_model writes the run's last
        values again (for the model), same step, time and value. In a file store
        (`folder`: the experiment's) whose run MLflow refuses to find (its `artifacts/`
        or `params/` folder is gone), the metric's file is read directly."""
        from mlflow.exceptions import MlflowException

        try:
            points = [(m.step, m.timestamp / 1000, m.value)
                      for m in self.client.get_metric_history(run_id, key)]  # fmt: skip
        except MlflowException:
            if folder is None:
                raise
            points = _metric_file(folder / run_id / "metrics", key)
        return sorted(set(points))

    def _places(self, folder: Path | None, exp: str, item: str) -> list[tuple[Path, Path]]:
        """Where MLflow keeps the artifacts of `item` (a run id, or `models/<model id>`) of
        experiment `exp` by default, as (folder, the root that holds it): in the file
        store's experiment `folder`, or beside a SQLite database in `mlruns/` (MLflow's
        default) or `mlartifacts/` (a server's). A store from another machine names the
        folders of the original in its artifact locations."""
        if folder is not None:
            return [(folder / item / "artifacts", folder)]
        if self.db is None:
            return []
        roots = [self.db.parent / "mlruns", self.db.parent / "mlartifacts"]
        return [(root / exp / item / "artifacts", root) for root in roots]

    def _artifacts(self, uri: str, run: Any,
                   places: list[tuple[Path, Path]]) -> tuple[list[ForeignFile], str]:  # fmt: skip
        """Every file under the artifact location `uri`, and `uri` when they are nowhere
        here ('' when they are, or when the run logged none). A local location (a path,
        `file:`, a server's `mlflow-artifacts:` under `mlartifacts/`) is read in place,
        else the first of `places` that exists; when none does, the run logged nothing
        if the root of one of them is here (git keeps no empty folder), else its artifacts
        are elsewhere. A remote location is downloaded to the scratch folder; one that
        cannot be downloaded is Skipped."""
        candidates = self._local(uri)
        if candidates is not None:
            candidates += places
            for folder, _ in candidates:
                if folder.is_dir():
                    return self._in_place(folder), ""
            return [], "" if any(root.is_dir() for _, root in candidates) else uri
        here = next((folder for folder, _ in places if folder.is_dir()), None)
        if here is not None:
            return self._in_place(here), ""
        from mlflow.artifacts import download_artifacts

        dest = Path(tempfile.mkdtemp(dir=_scratch()))
        try:
            download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=self.uri)
        except Exception as e:  # any failure to download skips only these files
            self.found.skipped.append(Skipped(where=uri, why=f"cannot download the run's "
                                              f"artifacts: {self._short(e)}"))  # fmt: skip
            return [], ""
        # the writer sees a file as changed when its mtime changes: a download made again
        # next time must not make the run look changed, so it gets the run's own time
        stamp = int((run.info.end_time or run.info.start_time or 0) * 1_000_000)
        out = []
        for path in _walk(dest):
            os.utime(path, ns=(stamp, stamp))
            out.append(ForeignFile(name=f"{uri.rstrip('/')}/{path.relative_to(dest).as_posix()}",
                                   source=str(path)))  # fmt: skip
        return out, ""

    def _in_place(self, folder: Path) -> list[ForeignFile]:
        """The files under a local artifact folder, read where they are."""
        return [ForeignFile(name=self._name(p), source=str(p)) for p in _walk(folder)]

    def _local(self, uri: str) -> list[tuple[Path, Path]] | None:
        """Where the artifacts of a local location would be, as (folder, the root whose
        presence says the store's artifacts are on this machine), or None when the
        location is remote. A path's root is the folder MLflow ran in (`<root>/<exp>/
        <run>/artifacts` three levels up from the run); a server's `mlflow-artifacts:`
        location is never downloaded (that needs the server): `mlflow server` keeps it
        in `./mlartifacts`, beside its database, looked for there and here."""
        parsed = urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            rest = unquote(parsed.path).lstrip("/")
            return [(home / "mlartifacts" / rest, home / "mlartifacts") for home in self.homes]
        if len(parsed.scheme) == 1 and parsed.scheme.isalpha():  # D:\... of a Windows machine
            path = Path("/" + uri.replace("\\", "/"))
        elif parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path)).resolve()
        else:
            return None
        parents = path.parents
        return [(path, parents[min(3, len(parents) - 1)] if parents else path)]

    def _name(self, path: Path) -> str:
        """A local artifact's name: its path from the current folder when under it, else
        its absolute path."""
        return path.relative_to(self.cwd).as_posix() if path.is_relative_to(self.cwd) else str(path)


def _database(source: str, root: Path | None) -> Path | None:
    """The SQLite file the user named as `source` (not the copy MLflow reads), or None
    for a file store or a database server."""
    if root is not None or source.startswith(SERVER_DATABASES):
        return None
    if source.startswith("sqlite:///"):
        return Path(source[len("sqlite:///") :]).resolve()
    if source.startswith("file:"):
        return Path(unquote(urlparse(source).path)).resolve()
    return Path(source).resolve()


def _metric_file(folder: Path, key: str) -> list[tuple[float, float, float]]:
    """The points (step, time in seconds, value) of metric `key` in a file store's
    `metrics/` folder, read without MLflow: a line is `timestamp value step` (MLflow 1.x
    wrote `timestamp value`, step 0; MLflow 3 may add a dataset's name and digest)."""
    points = []
    lines = (folder / key).read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) not in (2, 3, 5):
                raise ValueError(line)
            step = int(parts[2]) if len(parts) > 2 else 0
            points.append((step, int(parts[0]) / 1000, float(parts[1])))
        except ValueError:
            raise ValueError(f"metrics/{key} line {n} is not 'timestamp value step'") from None
    return points


def _pattern(locations: list[str]) -> str:
    """The artifact locations of the runs adopted without their files, in a few words:
    the one location, or what they all begin with (`file:///D:/project/mlruns/...`)."""
    if len(set(locations)) == 1:
        return locations[0]
    first, last = min(locations), max(locations)  # their common start is everyone's
    pairs = enumerate(zip(first, last, strict=False))
    same = next((i for i, (a, b) in pairs if a != b), len(first))
    head = first[: first.rfind("/", 0, same) + 1]
    return f"{head}..." if head.strip("/:") not in ("", "file") else f"{first}, ..."


def _walk(folder: Path) -> list[Path]:
    """The files under `folder` (none when it does not exist), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _code(system: dict[str, str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The code record and command from (and popped off) MLflow's `mlflow.source.*` tags."""
    code: dict[str, Any] = {}
    commit = system.pop("mlflow.source.git.commit", "")
    if commit:
        code["commit"] = commit
    repo = system.pop("mlflow.source.git.repoURL", "")
    if repo:
        code["repo"] = repo
    program = system.pop("mlflow.source.name", "")
    if not program:
        return code, ()
    code["program"] = program
    return code, ("python", program) if program.endswith(".py") else (program,)


def _dataset(entry: Any) -> dict[str, Any]:
    """A dataset the run used (MLflow's run inputs), as plain values."""
    d = entry.dataset
    context = {t.key: t.value for t in entry.tags}.get("mlflow.data.context", "")
    return {"name": d.name, "digest": d.digest, "source_type": d.source_type,
            "source": d.source, "context": context}  # fmt: skip


def _number(text: str) -> Any:
    """A param as MLflow stores it (a string), as int or float when the whole string is a
    number literal, so `--where 'params.lr < 0.01'` compares numbers."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _tag(key: str, value: str) -> str:
    """A user tag as vestige's `key=value` (or `key` alone when it has no value)."""
    return f"{key}={value}" if value else key


def _is_tag(text: str) -> bool:
    """Whether `text` is a valid vestige tag (a word without spaces or commas)."""
    try:
        check_tag(text)
    except ValueError:
        return False
    return True


def _why(meta: Path, error: Exception) -> str:
    """What is wrong with the meta.yaml MLflow could not read, in one line."""
    import yaml

    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        return f"not valid YAML{at}: {_one_line(str(getattr(e, 'problem', None) or e))}"
    except (OSError, UnicodeDecodeError) as e:
        return f"cannot read it: {_first_sentence(str(e))}"
    if not isinstance(data, dict):
        return f"not a YAML mapping of MLflow's fields (a {type(data).__name__})"
    return _misplaced(meta, data) or \
        f"MLflow cannot read it: {_first_sentence(str(error) or type(error).__name__)}"  # fmt: skip


def _misplaced(meta: Path, data: dict[str, Any]) -> str:
    """The id in a meta.yaml that is not the name of the folder MLflow looks for it by
    (MLflow then ignores the run, model or experiment), or ''."""
    if "run_id" in data:  # <experiment>/<run>/meta.yaml
        checks = [("run_id", meta.parent), ("experiment_id", meta.parent.parent)]
    elif "model_id" in data:  # <experiment>/models/<model>/meta.yaml
        checks = [("model_id", meta.parent), ("experiment_id", meta.parent.parent.parent)]
    else:  # <experiment>/meta.yaml
        checks = [("experiment_id", meta.parent)]
    for field, folder in checks:
        if str(data.get(field)) != folder.name:
            return f"its {field} {data.get(field)!r} is not its folder's name {folder.name!r}"
    return ""


def _one_line(text: str) -> str:
    """`text` with its whitespace runs (newlines too) as single spaces."""
    return " ".join(text.split())


def _first_sentence(text: str) -> str:
    """The first sentence of a library's message, on one line and at most WHY_MAX
    characters: a `why` is one short line (MLflow's messages go on with advice)."""
    text = _one_line(text)
    end = re.search(r"[.!?](?=\s+[A-Z])", text)
    if end:
        text = text[: end.start()]
    return text if len(text) <= WHY_MAX else text[: WHY_MAX - 3] + "..."


def _short(error: BaseException, uri: str, source: str) -> str:
    """`error` as a short `why`, naming the user's `source` where MLflow named the private
    copy of the database it reads (`uri`), which the user never gave."""
    text = str(error) or type(error).__name__
    if uri != source and uri.startswith("sqlite:///"):
        copy = re.escape(Path(uri[len("sqlite:///") :]).name)
        text = re.sub(rf"[^\s'\"]*{copy}", lambda _: source, text)
    return _first_sentence(text)
