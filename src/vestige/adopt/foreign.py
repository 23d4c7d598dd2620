"""A run of another tool, as each reader hands it to the writer (adopt/write.py).

Readers (from_mlflow.py, from_wandb.py, from_hydra.py) know their format and nothing of
the store; the writer knows the store and nothing of the formats. A reader that cannot
read one run says so with a `Skipped` (the file and what is wrong) and goes on with the
rest.
"""

from __future__ import annotations

from typing import Any

from vestige.records import Factory, Record


class ForeignFile(Record):
    """One file a foreign run logged or wrote: `name` is where it lives in the run's
    project (or its artifact path), `source` the local file to read its bytes from now."""

    name: str
    source: str


class ForeignRun(Record):
    """Everything a reader found about one foreign run, in vestige's terms.

    `metrics` holds full series: key -> [(step, time in seconds, value), ...].
    `status` is vestige's: `ok`, `failed` or `interrupted` (killed, crashed, still running
    or unknown when it was adopted). `code` names the code: `commit` (a git commit),
    `program` (the script), `repo` (its git remote), `files` (ForeignFile of saved code).
    """

    tool: str  # "mlflow", "wandb", "hydra"
    source: str  # the store, folder or URI it was adopted from (as the user named it)
    foreign_id: str  # the run's id in its tool (MLflow run id, W&B run id, Hydra job folder)
    started: float
    ended: float | None = None
    status: str = "ok"
    exit_code: int | None = None
    command: tuple[str, ...] = ()
    cwd: str = ""
    host: str = ""
    user: str = ""
    name: str = ""  # the run's name in its tool
    experiment: str = ""  # MLflow experiment, W&B project, Hydra sweep folder
    params: dict[str, Any] = Factory(dict)
    metrics: dict[str, list[tuple[float, float, float]]] = Factory(dict)
    tags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    files: tuple[ForeignFile, ...] = ()
    code: dict[str, Any] = Factory(dict)
    #: what else the tool said that vestige has no field for (kept in `adopted.extra`)
    extra: dict[str, Any] = Factory(dict)
    stdout: str | None = None  # a path: the run's console log, when the tool kept one


class Skipped(Record):
    """A run (or file) a reader could not adopt: `where` names the file, `why` what is wrong."""

    where: str
    why: str


class Found(Record):
    """What a reader found in one source: the runs it read and what it had to skip."""

    _frozen = False

    tool: str
    runs: list[ForeignRun] = Factory(list)
    skipped: list[Skipped] = Factory(list)
