"""The MLflow reader of `vestige adopt` (issue 18) on stores MLflow itself wrote.

`train.py` runs twice in a git project, at once: into a file store (`mlruns/`) and into a
SQL store (`sqlite:///mlflow.db`). Each time it makes two runs of experiment `vision`
(params, a metric series, tags, a note, a PNG and a CSV, a logged model and a dataset;
the second FAILED) and runs of other shapes: a parent with a KILLED child, one left
RUNNING, a deleted run, a run of a deleted experiment. Every test reads those stores, or
a damaged copy of one; the last ones adopt them through the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, module_environment, vestige

from vestige.adopt import from_mlflow
from vestige.adopt.foreign import ForeignRun, Found
from vestige.errors import UsageError
from vestige.repo import Repo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytest.importorskip("mlflow")

LRS = (0.001, 0.1)
REMOTE = "https://example.org/team/proj.git"
TRAIN = f"""\
    import json
    import struct
    import sys
    import zlib

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    from mlflow.tracking import MlflowClient


    def png(width, height):
        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        rows = b"".join(b"\\0" + bytes([200, 30, 30]) * width for _ in range(height))
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input


    ids = {{}}
    mlflow.set_tracking_uri(sys.argv[1])
    mlflow.set_experiment("vision")
    for i, lr in enumerate({LRS}):
        with mlflow.start_run(run_name=f"resnet-{{i}}") as run:
            mlflow.log_params({{"lr": lr, "model": "resnet", "epochs": 3, "pretrained": True}})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1) + lr, step=step)
            mlflow.log_metric("acc", 0.5 + i / 10)
            mlflow.set_tags({{"team": "vision", "stage name": "first try"}})
            mlflow.set_tag("mlflow.note.content", f"try {{i}}")
            with open("fig.png", "wb") as f:
                f.write(png(4, 3 + i))
            with open("table.csv", "w") as f:
                f.write(f"epoch,loss\\n0,{{lr}}\\n")
            mlflow.log_artifact("fig.png", artifact_path="plots")
            mlflow.log_artifact("table.csv")
            if i == 0:
                data = mlflow.data.from_numpy(np.arange(6).reshape(3, 2), source="data/train.npy",
                                              name="train")
                mlflow.log_input(data, context="training")
                mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
            else:
                mlflow.end_run("FAILED")
        ids[f"vision{{i}}"] = run.info.run_id

    tuning = mlflow.set_experiment("tuning").experiment_id
    with mlflow.start_run(run_name="sweep") as parent:
        with mlflow.start_run(run_name="trial", nested=True) as child:
            mlflow.log_param("batch", "32x2")
            mlflow.end_run("KILLED")
    ids["parent"], ids["child"] = parent.info.run_id, child.info.run_id
    client = MlflowClient()
    ids["hanging"] = client.create_run(tuning, run_name="hanging").info.run_id
    gone = client.create_run(tuning, run_name="gone").info.run_id
    client.set_terminated(gone)
    client.delete_run(gone)
    ids["gone"] = gone
    old = client.create_experiment("old")
    ids["old"] = client.create_run(old, run_name="ancient").info.run_id
    client.set_terminated(ids["old"])
    client.delete_experiment(old)
    print(json.dumps(ids))
"""


@dataclass
class Store:
    """A project where train.py wrote an MLflow store: how to name it, the run ids by
    role (vision0, vision1, parent, child, hanging, gone, old), the commit and when."""

    project: Path
    source: str  # as a user names it from the project
    ids: dict[str, str]
    commit: str
    before: float
    after: float


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Store]]:
    """The file store and the SQL store, written at the same time by train.py."""
    with module_environment(tmp_path_factory, "mlflow") as base:
        made = {}
        for kind, uri in (("file", "file:./mlruns"), ("sql", "sqlite:///mlflow.db")):
            project = base / kind
            project.mkdir()
            git(project, "init", "-q", "-b", "main")
            (project / "train.py").write_text(textwrap.dedent(TRAIN))
            git(project, "add", "-A")
            git(project, "commit", "-qm", "start")
            git(project, "remote", "add", "origin", REMOTE)
            env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "USER": "alice",
                   "LOGNAME": "alice"}  # fmt: skip
            process = subprocess.Popen([sys.executable, "train.py", uri], cwd=project, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)  # fmt: skip
            made[kind] = (project, process, time.time())
        out = {}
        for kind, (project, process, before) in made.items():
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
            ids = json.loads(stdout.strip().splitlines()[-1])
            source = "mlruns" if kind == "file" else "sqlite:///mlflow.db"
            commit = git(project, "rev-parse", "HEAD").strip()
            out[kind] = Store(project, source, ids, commit, before, time.time())
        yield out


def read(store: Store, source: str | None = None) -> Found:
    """What the reader finds in `store`, read from its project folder."""
    here = os.getcwd()
    os.chdir(store.project)
    try:
        return from_mlflow.read(source or store.source)
    finally:
        os.chdir(here)


def by_role(store: Store, found: Found) -> dict[str, ForeignRun]:
    """The runs found, by the role train.py gave them; nothing else and nothing skipped."""
    assert found.skipped == []
    roles = {run_id: role for role, run_id in store.ids.items()}
    assert sorted(roles[r.foreign_id] for r in found.runs) == sorted(store.ids)
    return {roles[r.foreign_id]: r for r in found.runs}


@pytest.fixture(params=["file", "sql"])
def store(request: pytest.FixtureRequest, stores: dict[str, Store]) -> Store:
    """Each store in turn."""
    return stores[request.param]


# -- detection ------------------------------------------------------------------------------


def test_looks_like(stores: dict[str, Store], tmp_path: Path) -> None:
    assert from_mlflow.looks_like(stores["file"].project / "mlruns")
    assert from_mlflow.looks_like(stores["sql"].project / "mlflow.db")
    assert not from_mlflow.looks_like(stores["file"].project)
    assert not from_mlflow.looks_like(stores["file"].project / "train.py")
    assert not from_mlflow.looks_like(tmp_path / "missing")
    (tmp_path / "emptied" / ".trash").mkdir(parents=True)  # every experiment deleted
    assert from_mlflow.looks_like(tmp_path / "emptied")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE experiments (id INTEGER)")  # no runs table
    other.commit()
    other.close()
    assert not from_mlflow.looks_like(tmp_path / "other.db")


# -- what a run becomes ---------------------------------------------------------------------


def test_identity_status_times_and_user(store: Store) -> None:
    runs = by_role(store, read(store))
    first, second = runs["vision0"], runs["vision1"]
    assert (first.tool, first.source, first.name, first.experiment) == \
        ("mlflow", store.source, "resnet-0", "vision")  # fmt: skip
    assert (first.status, second.status) == ("ok", "failed")
    assert store.before <= first.started <= first.ended <= second.started <= store.after
    assert second.ended is not None and second.ended <= store.after
    assert first.user == "alice" and first.exit_code is None and first.stdout is None
    assert "status" not in first.extra and "status" not in second.extra
    found = read(store)
    assert [r.foreign_id for r in found.runs] == \
        [r.foreign_id for r in sorted(found.runs, key=lambda r: r.started)]  # fmt: skip


def test_params_are_numbers_where_mlflow_kept_numbers(store: Store) -> None:
    runs = by_role(store, read(store))
    assert runs["vision0"].params == {"lr": 0.001, "model": "resnet", "epochs": 3,
                                      "pretrained": "True"}  # fmt: skip
    assert runs["vision1"].params["lr"] == 0.1
    assert runs["child"].params == {"batch": "32x2"}
    number = from_mlflow._number
    assert [number(t) for t in ("0", "-3", "1e-3", ".5", "2.", "-1.5E+2")] == \
        [0, -3, 0.001, 0.5, 2.0, -150.0]  # fmt: skip
    assert [number(t) for t in ("007", "nan", "inf", "1_000", " 1", "0x10", "1.2.3", "")] == \
        ["007", "nan", "inf", "1_000", " 1", "0x10", "1.2.3", ""]  # fmt: skip


def test_metrics_are_full_series(store: Store) -> None:
    runs = by_role(store, read(store))
    for i, lr in enumerate(LRS):
        run = runs[f"vision{i}"]
        assert set(run.metrics) == {"loss", "acc"}
        loss = run.metrics["loss"]
        assert [p[0] for p in loss] == [0, 1, 2, 3, 4]  # each point once (log_model re-logs)
        assert [p[2] for p in loss] == pytest.approx([1.0 / (s + 1) + lr for s in range(5)])
        assert all(run.started <= p[1] <= (run.ended or 0) for p in loss)
        assert [p[1] for p in loss] == sorted(p[1] for p in loss)
        assert run.metrics["acc"] == [(0, pytest.approx(loss[-1][1], abs=1), 0.5 + i / 10)]
    assert runs["parent"].metrics == {}


def test_tags_notes_and_system_tags(store: Store) -> None:
    runs = by_role(store, read(store))
    first = runs["vision0"]
    assert first.tags == ("team=vision",)  # "stage name" is no vestige tag: in extra only
    assert first.extra["tags"] == {"team": "vision", "stage name": "first try"}
    assert first.notes == ("try 0",) and runs["vision1"].notes == ("try 1",)
    assert first.extra["system_tags"] == {"mlflow.source.type": "LOCAL",
                                          "mlflow.source.git.branch": "main"}  # fmt: skip
    assert runs["parent"].tags == () and runs["parent"].notes == ()
    assert runs["child"].extra["parent"] == store.ids["parent"]
    assert "parent" not in runs["parent"].extra


def test_code_and_command(store: Store) -> None:
    runs = by_role(store, read(store))
    first = runs["vision0"]
    assert first.code == {"commit": store.commit, "program": "train.py", "repo": REMOTE}
    assert first.command == ("python", "train.py")
    assert first.cwd == "" and first.host == ""
    assert runs["hanging"].code == {} and runs["hanging"].command == ()


def test_other_shapes_of_run(store: Store) -> None:
    runs = by_role(store, read(store))
    assert runs["child"].status == "interrupted" and "status" not in runs["child"].extra
    hanging = runs["hanging"]
    assert (hanging.status, hanging.extra["status"], hanging.ended) == \
        ("interrupted", "RUNNING", None)  # fmt: skip
    assert runs["gone"].extra["run_deleted"] is True and runs["gone"].status == "ok"
    assert "run_deleted" not in hanging.extra and "experiment_deleted" not in hanging.extra
    old = runs["old"]
    assert (old.experiment, old.name, old.extra["experiment_deleted"]) == ("old", "ancient", True)
    assert runs["child"].experiment == "tuning" and runs["child"].name == "trial"


def test_datasets_and_models_in_extra(store: Store) -> None:
    runs = by_role(store, read(store))
    first = runs["vision0"]
    (dataset,) = first.extra["datasets"]
    assert (dataset["name"], dataset["context"], dataset["source_type"]) == \
        ("train", "training", "local")  # fmt: skip
    assert "data/train.npy" in dataset["source"] and dataset["digest"]
    (model,) = first.extra["models"]
    assert model["name"] == "model" and model["id"].startswith("m-")
    assert "datasets" not in runs["vision1"].extra and "models" not in runs["vision1"].extra
    assert first.extra["experiment_id"] == runs["vision1"].extra["experiment_id"]
    assert first.extra["artifact_uri"].endswith(f"{first.foreign_id}/artifacts")


def test_files_are_the_artifacts_in_place_named_from_here(store: Store) -> None:
    runs = by_role(store, read(store))
    for i, lr in enumerate(LRS):
        run = runs[f"vision{i}"]
        names = {Path(f.name).name: f for f in run.files}
        expected = {"fig.png", "table.csv"} | (
            {"MLmodel", "python_model.pkl", "requirements.txt", "conda.yaml", "python_env.yaml"}
            if i == 0 else set())  # fmt: skip
        assert set(names) == expected
        for f in run.files:  # the file itself, no copy, named from the project
            assert Path(f.source).is_absolute() and Path(f.source).is_relative_to(store.project)
            assert f.name == Path(f.source).relative_to(store.project).as_posix()
            assert f.name.startswith("mlruns/")
        fig, table = names["fig.png"], names["table.csv"]
        assert fig.name.endswith(f"{run.foreign_id}/artifacts/plots/fig.png")
        assert Path(fig.source).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert Path(table.source).read_text() == f"epoch,loss\n0,{lr}\n"
        if i == 0:
            assert "/models/m-" in names["python_model.pkl"].name


def test_files_outside_the_current_folder_are_named_absolute(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = from_mlflow.read(str(stores["file"].project / "mlruns"))
    (first,) = [r for r in found.runs if r.foreign_id == stores["file"].ids["vision0"]]
    assert first.files and all(f.name == f.source and Path(f.name).is_absolute()
                               for f in first.files)  # fmt: skip
    assert first.source == str(stores["file"].project / "mlruns")


def test_every_way_of_naming_a_store_reads_the_same(stores: dict[str, Store]) -> None:
    file, sql = stores["file"], stores["sql"]
    ids = sorted(file.ids.values())
    root = file.project / "mlruns"
    for source in ("./mlruns", "file:./mlruns", root.as_uri(), str(root)):
        assert sorted(r.foreign_id for r in read(file, source).runs) == ids, source
    ids = sorted(sql.ids.values())
    for source in (
        "mlflow.db",
        str(sql.project / "mlflow.db"),
        f"sqlite:///{sql.project}/mlflow.db",
    ):
        assert sorted(r.foreign_id for r in read(sql, source).runs) == ids, source


def test_reading_leaves_the_source_as_it_was(
    stores: dict[str, Store], capfd: pytest.CaptureFixture[str]
) -> None:
    def state(root: Path) -> dict[str, tuple[str, int]]:
        return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in root.rglob("*") if p.is_file()}  # fmt: skip

    before = {kind: state(s.project) for kind, s in stores.items()}
    for s in stores.values():
        by_role(s, read(s))
    assert {kind: state(s.project) for kind, s in stores.items()} == before
    assert capfd.readouterr().err == ""  # MLflow's log lines silenced
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


# -- what cannot be read ---------------------------------------------------------------------


def copy_store(store: Store, dest: Path) -> Path:
    """A copy of the file store's mlruns/ under `dest` (its artifact URIs still name the
    original's folders)."""
    target = dest / "mlruns"
    shutil.copytree(store.project / "mlruns", target)
    return target


def run_folder(root: Path, run_id: str) -> Path:
    """The folder of a run in a file store."""
    (folder,) = [p for p in root.glob(f"*/{run_id}") if p.is_dir()]
    return folder


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        ("run_id: [unclosed\n", "not valid YAML at line 2: "),
        ("just words\n", "not a YAML mapping of MLflow's fields (a str)"),
        ("{ids}status: 99\n", "MLflow cannot read it: "),
        ("run_id: abc\n", "its run_id 'abc' is not its folder's name '{run}'"),
    ],
)
def test_a_corrupt_run_meta_yaml_skips_that_run_alone(
    stores: dict[str, Store], tmp_path: Path, garbage: str, why: str,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store = stores["file"]
    root = copy_store(store, tmp_path)
    folder = run_folder(root, store.ids["vision1"])
    ids = f"run_id: {folder.name}\nexperiment_id: '{folder.parent.name}'\n"
    (folder / "meta.yaml").write_text(garbage.format(ids=ids))
    found = from_mlflow.read(str(root))
    assert sorted(r.foreign_id for r in found.runs) == \
        sorted(v for k, v in store.ids.items() if k != "vision1")  # fmt: skip
    (skipped,) = found.skipped
    assert skipped.where == str(folder / "meta.yaml")
    assert skipped.why.startswith(why.format(run=folder.name)), skipped.why
    assert "\n" not in skipped.why
    assert capfd.readouterr().err == ""


def test_a_run_or_experiment_in_the_wrong_folder_is_skipped(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    """MLflow's search leaves out, without a word, a run whose meta.yaml names another
    experiment, and an experiment whose meta.yaml names another id."""
    store = stores["file"]
    root = copy_store(store, tmp_path)
    run = run_folder(root, store.ids["vision1"])
    run_meta = run / "meta.yaml"
    run_meta.write_text(run_meta.read_text().replace("experiment_id: '", "experiment_id: '9"))
    tuning = run_folder(root, store.ids["parent"]).parent
    tuning_meta = tuning / "meta.yaml"
    tuning_meta.write_text(tuning_meta.read_text().replace("experiment_id: '", "experiment_id: '7"))
    found = from_mlflow.read(str(root))
    assert sorted(r.foreign_id for r in found.runs) == \
        sorted(store.ids[k] for k in ("vision0", "old"))  # fmt: skip
    assert [(s.where, s.why) for s in found.skipped] == sorted([
        (str(run_meta), f"its experiment_id '9{run.parent.name}' is not its folder's name "
                        f"'{run.parent.name}'"),
        (str(tuning_meta), f"its experiment_id '7{tuning.name}' is not its folder's name "
                           f"'{tuning.name}'"),
    ])  # fmt: skip


def as_committed(root: Path) -> None:
    """The file store `root` as a git clone of it has it: git keeps no empty folder, so a
    run that logged no artifact (or no param, no metric) has no `artifacts/` folder."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def a_run_without_artifacts(store: Store, dest: Path) -> tuple[Path, Path]:
    """A committed copy of the file store, made on another machine, whose FAILED run
    `vision1` logged no artifact (so it has no `artifacts/` folder) and, as MLflow 1.x wrote
    them (`timestamp value`, no step), the points of a nested metric `val/loss`; the copy
    and the run's folder."""
    root = copy_store(store, dest)
    for meta in root.rglob("meta.yaml"):
        meta.write_text(meta.read_text().replace(str(store.project), "/home/someone/project"))
    run = run_folder(root, store.ids["vision1"])
    shutil.rmtree(run / "artifacts")
    (run / "metrics" / "val").mkdir()
    (run / "metrics" / "val" / "loss").write_text("1700000000000 0.5\n1700000001000 0.25\n")
    as_committed(root)
    assert not (run / "artifacts").exists() and (run / "metrics" / "loss").is_file()
    return root, run


def test_a_committed_store_keeps_the_metrics_of_a_run_without_artifacts(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    """MLflow's search returns a run without `artifacts/`, but its get_metric_history says
    "Run not found" (it wants metrics/, params/ and artifacts/): the metric files are read."""
    store = stores["file"]
    root, _ = a_run_without_artifacts(store, tmp_path)
    found = from_mlflow.read(str(root))
    runs = by_role(store, found)
    second = runs["vision1"]
    assert set(second.metrics) == {"loss", "acc", "val/loss"}
    assert [p[0] for p in second.metrics["loss"]] == [0, 1, 2, 3, 4]
    assert [p[2] for p in second.metrics["loss"]] == \
        pytest.approx([1.0 / (s + 1) + 0.1 for s in range(5)])  # fmt: skip
    assert second.metrics["val/loss"] == [(0, 1_700_000_000.0, 0.5), (0, 1_700_000_001.0, 0.25)]
    assert second.params["lr"] == 0.1 and second.status == "failed"
    assert second.files == ()  # it logged none: nothing is missing
    assert not any("artifacts_missing" in r.extra for r in found.runs)
    assert len(runs["vision0"].files) == 7 and runs["hanging"].metrics == {}


def test_a_run_without_artifacts_is_read_when_the_search_gives_up(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    """A broken meta.yaml makes MLflow's search fail for the whole experiment: each run is
    then read alone, and MLflow's get_run says "not found" of one without `artifacts/`."""
    store = stores["file"]
    root, _ = a_run_without_artifacts(store, tmp_path)
    meta = run_folder(root, store.ids["vision0"]) / "meta.yaml"
    meta.write_text("just words\n")
    found = from_mlflow.read(str(root))
    runs = {r.foreign_id: r for r in found.runs}
    assert sorted(runs) == sorted(v for k, v in store.ids.items() if k != "vision0")
    second = runs[store.ids["vision1"]]
    assert set(second.metrics) == {"loss", "acc", "val/loss"} and second.files == ()
    assert [(s.where, s.why) for s in found.skipped] == \
        [(str(meta), "not a YAML mapping of MLflow's fields (a str)")]  # fmt: skip


def test_a_run_that_cannot_be_read_is_skipped_alone_in_one_line(
    stores: dict[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure on one run skips that run, with the first sentence of what MLflow said,
    naming the user's database where MLflow named the private copy it reads."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    store = stores["sql"]
    real = MlflowClient.get_metric_history

    def failing(self: MlflowClient, run_id: str, key: str) -> object:
        if run_id == store.ids["vision1"]:
            uri = self._tracking_client.tracking_uri  # the copy vestige made
            raise MlflowException(f"Cannot read {key} in {uri}. Perhaps run mlflow db upgrade"
                                  f"\nor see the docs about {uri}.")  # fmt: skip
        return real(self, run_id, key)

    monkeypatch.setattr(MlflowClient, "get_metric_history", failing)
    found = read(store)
    assert sorted(r.foreign_id for r in found.runs) == \
        sorted(v for k, v in store.ids.items() if k != "vision1")  # fmt: skip
    assert [(s.where, s.why) for s in found.skipped] == [(
        f"sqlite:///mlflow.db: run {store.ids['vision1']}",
        "cannot read the run: Cannot read acc in sqlite:///mlflow.db",
    )]  # fmt: skip


def test_a_corrupt_model_meta_yaml_skips_the_model_alone(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    store = stores["file"]
    root = copy_store(store, tmp_path)
    (meta,) = root.glob("*/models/*/meta.yaml")
    meta.write_text("model_id: [\n")
    found = from_mlflow.read(str(root))
    runs = {r.foreign_id: r for r in found.runs}
    assert len(runs) == len(store.ids)
    first = runs[store.ids["vision0"]]  # its own artifacts, not the model's
    assert sorted(Path(f.name).name for f in first.files) == ["fig.png", "table.csv"]
    assert "models" not in first.extra
    (skipped,) = found.skipped
    assert skipped.where == str(meta) and skipped.why.startswith("not valid YAML at line 2")


def test_a_corrupt_experiment_meta_yaml_skips_that_experiment(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    store = stores["file"]
    root = copy_store(store, tmp_path)
    folder = run_folder(root, store.ids["vision0"]).parent
    (folder / "meta.yaml").write_text("name: [vision\n")
    found = from_mlflow.read(str(root))
    assert sorted(r.foreign_id for r in found.runs) == \
        sorted(v for k, v in store.ids.items() if not k.startswith("vision"))  # fmt: skip
    (skipped,) = found.skipped
    assert skipped.where == str(folder / "meta.yaml")
    assert skipped.why.startswith("not valid YAML at line 2"), skipped.why


def test_a_store_copied_from_elsewhere_finds_its_artifacts_inside(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores["file"]
    root = copy_store(store, tmp_path)
    for meta in root.rglob("meta.yaml"):  # as on the machine the store came from
        meta.write_text(meta.read_text().replace(str(store.project), "/gone/project"))
    monkeypatch.chdir(tmp_path)
    runs = {r.foreign_id: r for r in from_mlflow.read("mlruns").runs}
    first = runs[store.ids["vision0"]]
    assert first.extra["artifact_uri"].startswith("file:///gone/project/mlruns/")
    assert len(first.files) == 7
    assert all(Path(f.source).is_relative_to(root) and not f.name.startswith("/")
               for f in first.files)  # fmt: skip


def a_server_database(
    stores: dict[str, Store], tmp_path: Path
) -> tuple[Path, MlflowClient, str, str]:
    """A copy of the sqlite store as `mlflow server` keeps one (server/mlflow.db), with two
    experiments whose artifacts are named mlflow-artifacts:/7 and :/8: (db, its client,
    their ids)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(stores["sql"].project / "mlflow.db", db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    served = client.create_experiment("served", artifact_location="mlflow-artifacts:/7")
    far = client.create_experiment("far", artifact_location="mlflow-artifacts:/8")
    return db, client, served, far


def test_a_server_store_reads_mlartifacts_beside_it(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow server` (the default since 3.7) keeps artifacts in ./mlartifacts beside its
    mlflow.db and names them mlflow-artifacts:/...; without a server, the folder is read."""
    db, client, served, far = a_server_database(stores, tmp_path)
    run = client.create_run(served, run_name="on-server").info.run_id
    lost = client.create_run(far, run_name="elsewhere").info.run_id
    report = db.parent / "mlartifacts" / "7" / run / "artifacts" / "report.txt"
    report.parent.mkdir(parents=True)  # where the server puts what the run logs
    report.write_text("served\n")
    monkeypatch.chdir(tmp_path)
    found = from_mlflow.read(f"sqlite:///{db}")
    runs = {r.foreign_id: r for r in found.runs}
    (f,) = runs[run].files
    assert (f.name, f.source) == ("server/mlartifacts/7/" + run + "/artifacts/report.txt",
                                  str(report))  # fmt: skip
    # the server's artifacts are here, and none of this run's: it logged none (or they
    # are elsewhere); never downloaded, which would need the server
    assert runs[lost].files == () and "artifacts_missing" not in runs[lost].extra
    assert found.skipped == []


def test_a_server_store_whose_artifacts_are_not_here_says_so_once(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `mlartifacts/` beside the database nor here: the runs of `mlflow-artifacts:`
    locations are adopted without files, and one line says so, naming what the user gave."""
    _db, client, served, far = a_server_database(stores, tmp_path)
    done = client.create_run(served, run_name="done").info.run_id
    client.set_terminated(done)
    crashed = client.create_run(far, run_name="crashed").info.run_id
    client.set_terminated(crashed, "FAILED")
    monkeypatch.chdir(tmp_path)
    source = "server/mlflow.db"
    found = from_mlflow.read(source)
    runs = {r.foreign_id: r for r in found.runs}
    assert len(runs) == len(stores["sql"].ids) + 2
    for run_id, exp in ((done, 7), (crashed, 8)):
        assert runs[run_id].files == ()
        assert runs[run_id].extra["artifacts_missing"] == \
            f"mlflow-artifacts:/{exp}/{run_id}/artifacts"  # fmt: skip
    assert runs[crashed].status == "failed"
    assert len(runs[stores["sql"].ids["vision0"]].files) == 7  # the others' are where named
    assert [(s.where, s.why) for s in found.skipped] == [(
        source,
        "artifacts of 2 runs are not here (mlflow-artifacts:/...): adopted without their files",
    )]  # fmt: skip


def a_database_from_another_machine(store: Store, db: Path) -> None:
    """A copy of the SQL store's database at `db` whose artifact locations name folders of
    the Windows machine it was made on (file:///D:/course/week-02/mlruns/<exp>/...)."""
    db.parent.mkdir(parents=True)
    shutil.copy(store.project / "mlflow.db", db)
    with sqlite3.connect(db) as con:
        for table, column in (("runs", "artifact_uri"), ("experiments", "artifact_location"),
                              ("logged_models", "artifact_location")):  # fmt: skip
            con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                        (str(store.project), "file:///D:/course/week-02"))  # fmt: skip
    con.close()


def test_a_sqlite_store_from_another_machine_reads_the_artifacts_beside_it(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores["sql"]
    db = tmp_path / "week-02" / "mlflow.db"
    a_database_from_another_machine(store, db)
    shutil.copytree(store.project / "mlruns", db.parent / "mlruns")  # committed beside it
    monkeypatch.chdir(tmp_path)
    found = from_mlflow.read(f"sqlite:///{db}")
    runs = by_role(store, found)
    first = runs["vision0"]
    assert first.extra["artifact_uri"].startswith("file:///D:/course/week-02/mlruns/")
    assert len(first.files) == 7 and len(runs["vision1"].files) == 2  # with the model's
    assert all(Path(f.source).is_relative_to(db.parent / "mlruns") and
               f.name.startswith("week-02/mlruns/") for f in first.files)  # fmt: skip
    assert not any("artifacts_missing" in r.extra for r in found.runs)  # the others logged none


def test_a_sqlite_store_whose_artifacts_are_nowhere_says_so_once(
    stores: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores["sql"]
    db = tmp_path / "week-02" / "mlflow.db"
    a_database_from_another_machine(store, db)  # its mlruns/ not committed
    monkeypatch.chdir(tmp_path)
    found = from_mlflow.read("week-02/mlflow.db")
    assert all(r.files == () for r in found.runs)
    assert all(r.extra["artifacts_missing"] == r.extra["artifact_uri"] and
               r.extra["artifact_uri"].startswith("file:///D:/course/week-02/mlruns/")
               for r in found.runs)  # fmt: skip
    n = len(store.ids)
    assert [(s.where, s.why) for s in found.skipped] == [(
        "week-02/mlflow.db",
        f"artifacts of {n} runs are not here (file:///D:/course/week-02/mlruns/...): adopted "
        "without their files",
    )]  # fmt: skip


def test_an_older_schema_is_read_from_an_upgraded_copy(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    """MLflow migrates a database of an older MLflow when it opens it: on a copy."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config

    db = tmp_path / "old.db"
    shutil.copy(stores["sql"].project / "mlflow.db", db)
    command.downgrade(_get_alembic_config(f"sqlite:///{db}"), "-1")  # the previous MLflow's
    before = db.read_bytes()
    found = from_mlflow.read(str(db))
    assert sorted(r.foreign_id for r in found.runs) == sorted(stores["sql"].ids.values())
    assert db.read_bytes() == before


# -- bad input ----------------------------------------------------------------------------------


def test_a_folder_that_is_no_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UsageError, match=r"not an MLflow store: no experiment folders") as e:
        from_mlflow.read(str(tmp_path))
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_a_source_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        from_mlflow.read(str(tmp_path / "mlruns"))
    with pytest.raises(UsageError, match="no such database file"):
        from_mlflow.read(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(UsageError, match=r"name the database file, as sqlite:///path/mlflow\.db"):
        from_mlflow.read("sqlite://")


def test_a_database_of_another_schema(tmp_path: Path) -> None:
    foo = tmp_path / "foo.db"
    with sqlite3.connect(foo) as con:
        con.execute("CREATE TABLE foo (x INTEGER)")
    Repo.open(tmp_path, create=True).close()  # vestige's own index is SQLite too
    (index,) = (tmp_path / ".vestige").rglob("index.sqlite")
    text = tmp_path / "text.db"
    text.write_text("not a database\n")
    for db in (foo, index, text):
        before = db.read_bytes()
        for source in (str(db), f"sqlite:///{db}"):
            with pytest.raises(UsageError, match="is not an MLflow database") as e:
                from_mlflow.read(source)
            assert "\n" not in str(e.value)
        assert db.read_bytes() == before


def test_without_mlflow_a_line_says_which_extra_to_install(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""\
        import sys
        sys.modules["mlflow"] = None  # as if MLflow were not installed
        from vestige.adopt import from_mlflow
        from vestige.errors import UsageError
        assert from_mlflow.looks_like(__import__("pathlib").Path({str(tmp_path)!r})) is False
        try:
            from_mlflow.read({str(tmp_path)!r})
        except UsageError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "adopting MLflow stores needs MLflow: pip install 'vestige[mlflow]'\n"


# -- through the CLI -----------------------------------------------------------------------------


def cli(store: Store, *args: str) -> str:
    """Run the real `vestige` in the store's project; its stdout, after checking it worked."""
    done = vestige(*args, cwd=store.project)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def store_files(project: Path) -> set[str]:
    """The objects and refs of the project's vestige store."""
    root = project / ".vestige"
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not p.name.startswith("index.sqlite")}  # fmt: skip


@pytest.fixture(scope="module")
def adopted(stores: dict[str, Store]) -> dict[str, object]:
    """The file store adopted by `vestige adopt mlruns` in its project, after a dry run;
    what each said, and the seq of each run by role."""
    store = stores["file"]
    Repo.open(store.project, create=True).close()
    empty = store_files(store.project)
    dry = cli(store, "adopt", "mlruns", "--dry-run")
    assert store_files(store.project) == empty  # a dry run writes nothing
    said = cli(store, "adopt", "mlruns")
    started = {r.started: r.foreign_id for r in read(store).runs}
    roles = {run_id: role for role, run_id in store.ids.items()}
    listed = json.loads(cli(store, "ls", "--json"))
    roles = {roles[started[row["started"]]]: row["seq"] for row in listed}
    return {"dry": dry, "said": said, "seq": roles}


def test_cli_adopts_the_store(stores: dict[str, Store], adopted: dict[str, object]) -> None:
    store = stores["file"]
    n = len(store.ids)
    assert str(adopted["dry"]).startswith(f"mlruns (mlflow): would adopt {n} runs, 9 files, ")
    assert str(adopted["said"]).startswith(f"mlruns (mlflow): adopted {n} runs, 9 files, ")
    seq: dict[str, int] = adopted["seq"]  # type: ignore[assignment]
    assert (seq["vision0"], seq["vision1"]) == (1, 2)  # in the order they started
    listed = {r["seq"]: r for r in json.loads(cli(store, "ls", "--json"))}
    assert len(listed) == n and {r["adopted"] for r in listed.values()} == {"mlflow"}
    first = listed[seq["vision0"]]
    assert (first["status"], first["git_commit"], first["tags"]) == \
        ("ok", store.commit, ["team=vision"])  # fmt: skip
    assert first["params"] == {"lr": 0.001, "model": "resnet", "epochs": 3, "pretrained": "True"}
    assert listed[seq["vision1"]]["status"] == "failed"
    assert listed[seq["hanging"]]["status"] == "interrupted"
    cheap = json.loads(cli(store, "ls", "--json", "--where", "params.lr < 0.01"))
    assert [r["seq"] for r in cheap] == [seq["vision0"]]


def test_cli_shows_an_adopted_run(stores: dict[str, Store], adopted: dict[str, object]) -> None:
    store = stores["file"]
    seq: dict[str, int] = adopted["seq"]  # type: ignore[assignment]
    shown = json.loads(cli(store, "show", str(seq["vision0"]), "--json"))
    assert shown["adopted"]["id"] == store.ids["vision0"]
    assert (shown["adopted"]["name"], shown["adopted"]["experiment"]) == ("resnet-0", "vision")
    assert shown["adopted"]["extra"]["tags"] == {"team": "vision", "stage name": "first try"}
    assert shown["code"]["git"]["commit"] == store.commit and shown["code"]["tree"]
    assert shown["code"]["imported"] == ["train.py"]  # from git at the commit MLflow named
    outputs = {Path(o["path"]).name for o in shown["outputs"]}
    assert {"fig.png", "table.csv", "python_model.pkl"} <= outputs
    text = cli(store, "show", str(seq["vision0"]))
    assert f"from mlflow mlruns, run {store.ids['vision0']} (name resnet-0" in text
    assert "try 0" in text


def test_cli_metrics_and_diff(stores: dict[str, Store], adopted: dict[str, object]) -> None:
    store = stores["file"]
    seq: dict[str, int] = adopted["seq"]  # type: ignore[assignment]
    series = json.loads(cli(store, "metrics", str(seq["vision1"]), "loss", "--json"))["loss"]
    assert series["step"] == [0, 1, 2, 3, 4]
    assert series["value"] == pytest.approx([1.0 / (s + 1) + 0.1 for s in range(5)])
    diff = cli(store, "diff", str(seq["vision0"]), str(seq["vision1"]))
    assert "lr: 0.001 -> 0.1" in diff and "acc" in diff


def test_cli_which_finds_an_artifact_copied_elsewhere(
    stores: dict[str, Store], adopted: dict[str, object], tmp_path: Path
) -> None:
    store = stores["file"]
    seq: dict[str, int] = adopted["seq"]  # type: ignore[assignment]
    fig = run_folder(store.project / "mlruns", store.ids["vision1"]) / "artifacts/plots/fig.png"
    copy = tmp_path / "figure-for-the-paper.png"
    shutil.copy(fig, copy)
    said = cli(store, "which", str(copy))
    assert f"made by run #{seq['vision1']} " in said
    assert f"{store.ids['vision1']}/artifacts/plots/fig.png" in said


def test_cli_adopting_again_adds_nothing(
    stores: dict[str, Store], adopted: dict[str, object]
) -> None:
    store = stores["file"]
    before = store_files(store.project)
    n = len(store.ids)
    assert (
        cli(store, "adopt", "mlruns") == f"mlruns (mlflow): adopted 0 runs; {n} already adopted\n"
    )
    assert store_files(store.project) == before
    assert len(json.loads(cli(store, "ls", "--json"))) == n


def test_cli_adopts_a_sqlite_store_and_names_what_it_skips(
    stores: dict[str, Store], tmp_path: Path
) -> None:
    store = stores["sql"]
    Repo.open(store.project, create=True).close()
    broken = copy_store(stores["file"], tmp_path)
    meta = run_folder(broken, stores["file"].ids["vision1"]) / "meta.yaml"
    meta.write_text("just words\n")
    done = vestige("adopt", "sqlite:///mlflow.db", str(broken), cwd=store.project)
    assert done.returncode == 1  # the rest is adopted; the broken run is named
    assert done.stderr.decode() == \
        f"skipped: {meta}: not a YAML mapping of MLflow's fields (a str)\n"  # fmt: skip
    said = done.stdout.decode().splitlines()
    assert said[0].startswith(
        f"sqlite:///mlflow.db (mlflow): adopted {len(store.ids)} runs, 9 files"
    )
    assert said[1].startswith(f"{broken} (mlflow): adopted 6 runs, 7 files, ")
    assert said[1].endswith("; 1 skipped: #8 #9 #10 #11 #12 #13")
    listed = json.loads(cli(store, "ls", "--json", "--where", "params.lr >= 0.1"))
    assert [r["status"] for r in listed] == ["failed"]  # the SQL store's; the copy's is broken
