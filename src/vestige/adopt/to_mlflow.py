"""`vestige export-mlflow`: vestige runs written into an MLflow tracking server (issue 18).

Through MLflow's own client (imported inside functions: the CLI must start fast). Each
vestige run becomes one MLflow run tagged `vestige.run_id`. Exporting again finds it by
that tag (one search for the whole experiment) and updates it, never duplicates it: its
tags and note are set again, params and metric keys it lacks are logged (params are
immutable in MLflow; a key logged twice would double its series), artifacts it lacks
are uploaded. A run's MLflow status is set last, so a run still RUNNING in MLflow is one
whose export was cut short: its metric series are then compared point counts first.

Vestige is read in the calling thread (the index is SQLite, the redactor keeps state);
MLflow's calls go out from a few threads, each run's calls in order in one thread, so
that the server's latency overlaps: 40 runs of 2,000 points took 21.5 and 28.7 s in one
thread, 18.0 and 19.5 s in four, against a one-worker sqlite server on this project's
loaded 2-core VM (the server is the bottleneck there; MLflow's own serial log_batch loop
took 52.4 s for 100 such runs, this export 55.4 s with its artifacts and its start).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vestige.errors import StoreError, UsageError
from vestige.records import Factory, Record, Run, safe_relative

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mlflow.entities import Run as MlflowRun
    from mlflow.tracking import MlflowClient

    from vestige.capture.redact import Redactor
    from vestige.repo import Repo

#: MLflow's limits (mlflow/utils/validation.py): a batch holds at most 1,000 metrics, 100
#: params and 100 tags, 1,000 in all; a param value 6,000 characters, a tag value 8,000,
#: a key 250.
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
TAGS_PER_BATCH = 100
ENTITIES_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
#: MLflow's names: letters, digits, `_ - . : /` and spaces, a path that normalizes to itself.
NAME = re.compile(r"^[/\w.\- :]*$")
#: vestige's sealed statuses -> MLflow's terminal statuses
STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: MLflow runs exported at once (each thread sends one run's calls in order)
JOBS = 4
#: seconds the first call may take before the server is called unreachable
CHECK_TIMEOUT = 10
#: runs per page of the search for runs already exported
SEARCH_PAGE = 5000
#: the tag counting the artifacts exported: when it matches, nothing is listed again
ARTIFACTS_TAG = "vestige.artifacts"


class Exported(Record):
    """What became of one vestige run: `action` is created, updated or unchanged."""

    id: str
    seq: int
    mlflow_run_id: str
    action: str

    def to_dict(self) -> dict[str, Any]:
        """The `--json` record of the run."""
        return dict(self.__dict__)


class Report(Record):
    """An export: where the runs went (the URI without its password), what became of
    each, what was left out and why."""

    _frozen = False

    tracking_uri: str
    experiment: str
    experiment_id: str
    runs: list[Exported] = Factory(list)
    warnings: list[str] = Factory(list)


class Plan(Record):
    """What to send for one run, read from vestige in the calling thread: MLflow's strings
    and numbers only, the artifacts already copied into `folder`."""

    seq: int
    run_id: str
    started_ms: int
    ended_ms: int | None
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, list[tuple[int, int, float]]]  # key -> [(step, time ms, value)]
    folder: Path | None  # the artifacts to upload, or None
    existing: Any  # the MLflow run found by its `vestige.run_id` tag, or None


def tracking_uri(given: str | None) -> str:
    """The tracking URI: the one given, else MLFLOW_TRACKING_URI; neither is a usage error."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UsageError(
            "no MLflow tracking server named: give --tracking-uri http://HOST:PORT "
            "or set MLFLOW_TRACKING_URI"
        )
    return uri


def select(repo: Repo, refs: Sequence[str], where: str | None) -> list[Run]:
    """The runs to export: those named (each once, in order), else the sealed runs that
    match `where` (every sealed run without it), oldest first."""
    if refs:
        runs: dict[str, Run] = {}
        for ref in refs:
            run = repo.run(ref)
            if run.status == "running":
                raise UsageError(f"run #{run.seq} is still running; export it when it has ended")
            runs.setdefault(run.id, run)
        return list(runs.values())
    rows = repo.runs(where=where)
    return [repo.run(r["id"]) for r in reversed(rows) if r["status"] != "running"]


def export_mlflow(
    repo: Repo, runs: Sequence[Run], uri: str, experiment: str, jobs: int = JOBS
) -> Report:
    """Write `runs` into the MLflow experiment `experiment` (made when missing) of the
    tracking server at `uri`; runs exported before are updated, not duplicated."""
    client = connect(uri, experiment)
    from vestige.capture.redact import Redactor

    # What leaves the project goes through redaction again (as `vestige export` does): a
    # run recorded before a secret was known hands over no secret of this user's.
    redactor = Redactor(repo.store.secret_key())
    redactor.redact_env(os.environ)
    with _environ(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):  # (set_terminated prints)
        experiment_id = _experiment(client, uri, experiment)
        report = Report(_shown(uri), experiment, experiment_id)
        found = _exported(client, uri, experiment_id)
        users: dict[str | None, str] = {}
        with tempfile.TemporaryDirectory(prefix="vestige-mlflow-") as tmp, \
                ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # fmt: skip
            pending: deque[Future[Exported]] = deque()
            try:
                for run in runs:
                    plan = _plan(repo, redactor, client, uri, run, found.get(run.id),
                                 Path(tmp), users, report.warnings)  # fmt: skip
                    pending.append(pool.submit(_send, client, uri, experiment_id, plan))
                    if len(pending) >= 2 * jobs:  # (a bounded window: plans hold metrics)
                        report.runs.append(pending.popleft().result())
                while pending:
                    report.runs.append(pending.popleft().result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return report


def connect(uri: str, experiment: str) -> MlflowClient:
    """MLflow's client for `uri`, once one cheap call has answered: without retries and
    with a short timeout, so that an unreachable server is said at once (MLflow's client
    retries for minutes by default)."""
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        need = "exporting to MLflow needs MLflow: pip install 'vestige[mlflow]'"
        raise UsageError(need) from None
    with _environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                  MLFLOW_HTTP_REQUEST_TIMEOUT=str(CHECK_TIMEOUT)):  # fmt: skip
        try:
            client = MlflowClient(tracking_uri=uri)
            client.get_experiment_by_name(experiment)
        except (MlflowException, OSError) as e:
            raise UsageError(
                f"cannot reach the MLflow tracking server at {_shown(uri)} ({_reason(e)}); "
                "start it, or give another --tracking-uri"
            ) from None
    return client


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for the block (MLflow reads its settings at each call),
    then put back as they were."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _shown(uri: str) -> str:
    """The URI as said in a message: without the password of a `user:password@` part."""
    return re.sub(r"(://[^/\s:@]*):[^/\s@]*@", r"\1:***@", uri)


def _reason(error: BaseException) -> str:
    """Why a call to the server failed, in a few words (MLflow's message is a paragraph)."""
    text = " ".join(str(error).split())
    for words in ("Connection refused", "Name or service not known", "timed out"):
        if words.lower() in text.lower():
            return words.lower()
    return _shown(text)[:200]


def _experiment(client: MlflowClient, uri: str, name: str) -> str:
    """The id of the experiment `name`, made when missing; a deleted one is a usage error
    (MLflow keeps its name taken)."""
    found = _call(uri, f"reading the experiment {name!r}", client.get_experiment_by_name, name)
    if found is None:
        return str(_call(uri, f"making the experiment {name!r}", client.create_experiment, name))
    if found.lifecycle_stage == "deleted":
        raise UsageError(
            f"the MLflow experiment {name!r} at {_shown(uri)} is deleted: restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) "
            "or give another --experiment"
        )
    return str(found.experiment_id)


def _exported(client: MlflowClient, uri: str, experiment_id: str) -> dict[str, MlflowRun]:
    """{vestige run id: MLflow run} of the runs already exported to the experiment: one
    search (paged), not one per run."""
    found: dict[str, MlflowRun] = {}
    token = None
    while True:
        page = _call(uri, "searching the exported runs", client.search_runs,
                     [experiment_id], filter_string="tags.`vestige.run_id` != ''",
                     max_results=SEARCH_PAGE, page_token=token)  # fmt: skip
        for run in page:
            found.setdefault(run.data.tags["vestige.run_id"], run)
        token = page.token
        if not token:
            return found


def _call(uri: str, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, a failure of MLflow's said in one line (exit 2)."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except (MlflowException, OSError) as e:
        raise StoreError(
            f"MLflow at {_shown(uri)}: {doing} failed ({_reason(e)}); exporting again "
            "finishes the export (nothing is logged twice)"
        ) from None


# -- the plan of a run: vestige read, in the calling thread --------------------------------


def _plan(
    repo: Repo, redactor: Redactor, client: MlflowClient, uri: str, run: Run,
    existing: MlflowRun | None, tmp: Path, users: dict[str | None, str], warnings: list[str],
) -> Plan:  # fmt: skip
    """What to send for `run`: its tags, its params and metric series MLflow lacks, and
    its artifacts MLflow lacks, copied into a folder of `tmp`."""
    run = Run.from_dict(redactor.scrub_manifest(run.to_dict()), manifest=run.manifest)
    say = f"run #{run.seq}"
    tags = _tags(repo, run, _user(repo, run, users), warnings)
    params = _params(run, say, warnings)
    metrics = _metrics(repo, redactor, run, say, warnings)
    files = _artifacts(repo, run, say, warnings)
    tags[ARTIFACTS_TAG] = str(len(files))
    if existing is not None:
        params = {k: v for k, v in params.items() if k not in existing.data.params}
        if existing.info.status != "RUNNING":  # (its export ended: its series are whole)
            metrics = {k: v for k, v in metrics.items() if k not in existing.data.metrics}
        if existing.data.tags.get(ARTIFACTS_TAG) == str(len(files)):
            files = {}
        elif files:
            listed = _call(uri, f"listing the artifacts of run #{run.seq}", _listed, client,
                           existing.info.run_id)  # fmt: skip
            files = {dest: digest for dest, digest in files.items() if dest not in listed}
    folder = None
    if files:
        folder = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{run.seq}-"))
        for dest, digest in files.items():
            repo.store.objects.copy_to(digest, folder / dest)
    return Plan(run.seq, run.id, _ms(run.started), None if run.ended is None else _ms(run.ended),
                STATUS.get(run.status, "KILLED"), tags, params, metrics, folder,
                existing)  # fmt: skip


def _ms(seconds: float) -> int:
    """Epoch seconds (vestige's) as epoch milliseconds (MLflow's)."""
    return round(seconds * 1000)


def _tags(repo: Repo, run: Run, user: str, warnings: list[str]) -> dict[str, str]:
    """The MLflow tags of a run: each vestige tag (`k=v` as key k, value v; any other as
    `vestige.tag.<tag>` = "true"), then vestige's own, which win."""
    tags: dict[str, str] = {}
    for tag in run.tags:
        key, eq, value = tag.partition("=")
        if not (eq and key):
            key, value = f"vestige.tag.{tag}", "true"
        if _usable(key, f"run #{run.seq}: tag {tag!r}", warnings):
            tags[key] = _cut(value, MAX_TAG_VALUE, f"run #{run.seq}: tag {key!r}", warnings)
    name = repo.run_name(run.id)
    own = {
        "vestige.run_id": run.id,
        "vestige.seq": str(run.seq),
        "vestige.command": run.command_line,
        "mlflow.runName": f"#{run.seq} {name}" if name else f"#{run.seq}",
        "mlflow.source.name": _program(run.command),
        "mlflow.source.git.commit": ((run.code or {}).get("git") or {}).get("commit") or "",
        "mlflow.user": user,
        "mlflow.note.content": "\n\n".join(str(n.get("text", "")) for n in run.notes),
    }
    for key, value in own.items():
        if value:
            tags[key] = _cut(value, MAX_TAG_VALUE, f"run #{run.seq}: tag {key!r}", warnings)
    return tags


def _program(command: Sequence[str]) -> str:
    """The program a command ran: the script after a Python interpreter and its options
    (`-m pkg`: the module), else the command itself."""
    args = list(command)
    if args and os.path.basename(args[0]).startswith("python"):
        args = args[1:]
        while args and args[0].startswith("-"):
            if args[0] == "-m" and len(args) > 1:
                return args[1]
            args = args[1:]
    return args[0] if args else ""


def _user(repo: Repo, run: Run, users: dict[str | None, str]) -> str:
    """Who ran it: the user an adopted run's tool named, else USER (or LOGNAME) of its
    environment record, "" when unknown; each environment object read once (runs of one
    environment share it)."""
    if run.adopted and run.adopted.get("user"):
        return str(run.adopted["user"])
    if run.env not in users:
        env_vars = (repo.environment(run) or {}).get("env_vars") or {}
        users[run.env] = str(env_vars.get("USER") or env_vars.get("LOGNAME") or "")
    return users[run.env]


def _params(run: Run, say: str, warnings: list[str]) -> dict[str, str]:
    """The run's params as MLflow's strings (a string as it is, any other value as JSON),
    each cut to MLflow's length with a warning."""
    out = {}
    for key, value in run.params.items():
        if _usable(key, f"{say}: param {key!r}", warnings):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out[key] = _cut(text, MAX_PARAM_VALUE, f"{say}: param {key!r}", warnings)
    return out


def _metrics(
    repo: Repo, redactor: Redactor, run: Run, say: str, warnings: list[str]
) -> dict[str, list[tuple[int, int, float]]]:
    """Every series in full, as MLflow's points: whole steps, times in milliseconds, values
    as they are (NaN and inf too: MLflow keeps NaN, and stores inf as the largest double)."""
    out = {}
    for name, series in repo.metrics(run).items():
        key = redactor.scrub_text(name)
        if not _usable(key, f"{say}: metric {key!r}", warnings):
            continue
        points = []
        cut = False
        for step, t, value in zip(series.steps, series.times, series.values, strict=True):
            if not math.isfinite(step):
                cut = True
                continue
            cut = cut or step != int(step)
            points.append((int(step), _ms(t), value))
        if cut:
            warnings.append(f"{say}: metric {key!r} has steps that are not whole numbers "
                            "(MLflow's are): cut to integers, infinite ones left out")  # fmt: skip
        out[key] = points
    return out


def _usable(key: str, what: str, warnings: list[str]) -> bool:
    """Whether MLflow takes `key` as a name; when not, a warning says why it is left out."""
    why = None
    if not key or len(key) > MAX_KEY:
        why = f"MLflow names are 1 to {MAX_KEY} characters"
    elif not NAME.match(key):
        why = "MLflow names hold only letters, digits, spaces and _ - . : /"
    elif posixpath.normpath(key) != key or key.startswith(("/", "..")):
        why = "MLflow names must be plain relative paths (no //, ./ or trailing /)"
    if why is not None:
        warnings.append(f"{what} left out: {why}")
    return why is None


def _cut(value: str, limit: int, what: str, warnings: list[str]) -> str:
    """`value` cut to MLflow's limit, with a warning when it was longer."""
    if len(value) <= limit:
        return value
    warnings.append(f"{what}: {len(value):,} characters cut to MLflow's {limit:,}")
    return value[:limit]


def _artifacts(repo: Repo, run: Run, say: str, warnings: list[str]) -> dict[str, str]:
    """{artifact path: object} of what the store holds of a run: its kept outputs under
    their paths (outside the project: under `outside/`), its artefacts under
    `artefacts/`, its logs under `logs/`, its code snapshot under `code/`. A path that is
    not a plain relative one (a tampered manifest) or taken already is left out, said."""
    objects = repo.store.objects
    found: list[tuple[str, str | None]] = []
    for f in run.outputs:
        if f.kept:
            found.append((f"outside/{f.path[1:]}" if f.path.startswith("/") else f.path, f.hash))
    for artefact in run.artefacts:
        for f in artefact.get("files") or []:
            if f.get("kept", True):
                found.append((f"artefacts/{f.get('path')}", f.get("hash")))
    for stream, log in (("stdout", run.stdout), ("stderr", run.stderr)):
        if log and log.get("size"):
            found.append((f"logs/{stream}.txt", log.get("hash")))
    tree = (run.code or {}).get("tree")
    if tree and objects.available(tree):
        from vestige.store.tree import read_tree

        found += [(f"code/{e.path}", e.hash) for e in read_tree(objects, tree) if e.kept]
    out: dict[str, str] = {}
    for dest, digest in found:
        if not digest or not objects.available(digest):
            continue
        if not safe_relative(dest):
            warnings.append(f"{say}: artifact {dest!r} left out: not a plain relative path")
        elif dest in out:
            warnings.append(f"{say}: artifact {dest!r} left out: that path is taken already")
        else:
            out[dest] = digest
    return out


def _listed(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file an MLflow run holds under `path` (one listing per folder)."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= _listed(client, run_id, info.path)
        else:
            out.add(info.path)
    return out


# -- sending: MLflow's calls, in a worker thread -------------------------------------------


def _send(client: MlflowClient, uri: str, experiment_id: str, plan: Plan) -> Exported:
    """Create or update one MLflow run from its plan; its artifacts folder removed after."""
    try:
        if plan.existing is None:
            mlflow_id = _create(client, uri, experiment_id, plan)
            return Exported(plan.run_id, plan.seq, mlflow_id, "created")
        changed = _update(client, uri, plan)
        action = "updated" if changed else "unchanged"
        return Exported(plan.run_id, plan.seq, plan.existing.info.run_id, action)
    finally:
        if plan.folder is not None:
            shutil.rmtree(plan.folder, ignore_errors=True)


def _create(client: MlflowClient, uri: str, experiment_id: str, plan: Plan) -> str:
    """A new MLflow run: made with its tags (so that a cut export is found again), then
    artifacts, params and metrics, the artifact count, and its status last."""
    doing = f"exporting run #{plan.seq}"
    first = {k: v for k, v in plan.tags.items() if k not in ("mlflow.runName", ARTIFACTS_TAG)}
    made = _call(uri, doing, client.create_run, experiment_id, start_time=plan.started_ms,
                 tags=first, run_name=plan.tags["mlflow.runName"])  # fmt: skip
    mlflow_id = str(made.info.run_id)
    if plan.folder is not None:
        _call(uri, doing, client.log_artifacts, mlflow_id, str(plan.folder))
    count = {ARTIFACTS_TAG: plan.tags[ARTIFACTS_TAG]}  # (after them: they are all there)
    _log(client, uri, doing, mlflow_id, _points(plan.metrics), plan.params, count)
    _call(uri, doing, client.set_terminated, mlflow_id, plan.status, plan.ended_ms)
    return mlflow_id


def _update(client: MlflowClient, uri: str, plan: Plan) -> bool:
    """An MLflow run exported before: what it lacks sent, tags that changed set again, the
    `vestige.tag.*` tags vestige no longer has deleted, its status set when its export was
    cut short. Whether anything was sent."""
    existing = plan.existing
    mlflow_id = str(existing.info.run_id)
    doing = f"updating run #{plan.seq}"
    cut_short = existing.info.status == "RUNNING"
    metrics = plan.metrics
    if cut_short:  # (series may stop part way: send the points after those it holds)
        metrics = {}
        for key, points in plan.metrics.items():
            held = 0
            if key in existing.data.metrics:
                held = len(_call(uri, doing, client.get_metric_history, mlflow_id, key))
            if points[held:]:
                metrics[key] = points[held:]
    if plan.folder is not None:
        _call(uri, doing, client.log_artifacts, mlflow_id, str(plan.folder))
    tags = {k: v for k, v in plan.tags.items() if existing.data.tags.get(k) != v}
    gone = [k for k in existing.data.tags if k.startswith("vestige.tag.") and k not in plan.tags]
    points = _points(metrics)
    _log(client, uri, doing, mlflow_id, points, plan.params, tags)
    for key in gone:
        _call(uri, doing, client.delete_tag, mlflow_id, key)
    if cut_short:
        _call(uri, doing, client.set_terminated, mlflow_id, plan.status, plan.ended_ms)
    return bool(plan.folder or points or plan.params or tags or gone or cut_short)


def _points(metrics: dict[str, list[tuple[int, int, float]]]) -> list[Any]:
    """MLflow's Metric of every point, key by key, each series in order."""
    from mlflow.entities import Metric

    return [Metric(key, value, t, step) for key, points in metrics.items()
            for step, t, value in points]  # fmt: skip


def _log(
    client: MlflowClient, uri: str, doing: str, run_id: str, metrics: list[Any],
    params: dict[str, str], tags: dict[str, str],
) -> None:  # fmt: skip
    """Params, metrics and tags in as few log_batch calls as MLflow's limits allow."""
    from mlflow.entities import Param, RunTag

    param_list = [Param(k, v) for k, v in params.items()]
    tag_list = [RunTag(k, v) for k, v in tags.items()]
    m = p = t = 0
    while m < len(metrics) or p < len(param_list) or t < len(tag_list):
        batch_tags = tag_list[t : t + TAGS_PER_BATCH]
        batch_params = param_list[p : p + PARAMS_PER_BATCH]
        room = min(METRICS_PER_BATCH, ENTITIES_PER_BATCH - len(batch_tags) - len(batch_params))
        batch_metrics = metrics[m : m + room]
        _call(uri, doing, client.log_batch, run_id, metrics=batch_metrics, params=batch_params,
              tags=batch_tags, synchronous=True)  # fmt: skip
        m, p, t = m + len(batch_metrics), p + len(batch_params), t + len(batch_tags)
