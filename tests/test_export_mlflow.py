"""`vestige export-mlflow` into a real `mlflow server` (sqlite backend, artifacts served by
the server) started on 127.0.0.1 once per module; runs made with the real CLI in a git
project, read back through MLflow's own client."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git, module_environment, vestige

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient

TRAIN = textwrap.dedent("""\
    import os, sys
    import vestige
    args = sys.argv[1:]
    lr = float(args[args.index("--lr") + 1])
    for i in range(40):
        vestige.log(step=i, loss=lr / (i + 1), acc=i / 40)
    vestige.log({"val/loss": lr * 2}, step=0)
    vestige.log(step=40, loss=float("nan"))
    vestige.log({"odd|key": 1.0}, step=0)
    os.makedirs("out", exist_ok=True)
    with open("out/model.txt", "w") as f:
        f.write(f"model lr={lr}\\n")
    print("trained", lr)
    sys.exit(1 if "--fail" in args else 0)
""")
#: what the runs' environment says of who ran them (mlflow.user)
USER = "ada"
#: seconds the server may take to answer /health (it made its database: 33 s seen on a
#: busy 2-core VM)
SERVER_START = 240


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An `mlflow server` this module started: its URL, and a wait until it answers."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        """The server's process, its URL and the file its output goes to."""
        self.proc, self.url, self.log = proc, url, log

    def ready(self) -> str:
        """The URL, once GET /health answers (the test fails if the server died)."""
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"mlflow server did not answer in {SERVER_START} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real tracking server (sqlite backend, artifacts proxied), started at once so that
    it boots while the runs are made; its process group ended at the end."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = base / "server.log"
    mlflow = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # (one process less)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{base}/m.db",
             "--artifacts-destination", str(base / "art"), "--workers", "1"],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # (the server and the uvicorn it started)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_project(root: Path) -> None:
    """A git project with three runs: #1 (lr 0.1, named, tagged, noted), #2 (lr 0.2),
    #3 (failed, with a param longer than MLflow keeps)."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text(TRAIN)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "train")
    env = {"USER": USER}
    for args in (["--lr", "0.1"], ["--lr", "0.2"], ["--lr", "0.3", "--blob", "x" * 7000, "--fail"]):
        done = vestige("run", "train.py", *args, cwd=root, env=env)
        assert done.returncode == (1 if "--fail" in args else 0), done.stderr.decode()
    for args in (["tag", "1", "best", "stage=prod"], ["note", "1", "looks good"],
                 ["name", "1", "baseline"]):  # fmt: skip
        assert vestige(*args, cwd=root).returncode == 0


@pytest.fixture(scope="module")
def project(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project, its runs made while the server boots."""
    with module_environment(tmp_path_factory, "export-mlflow") as base:
        make_project(base / "proj")
        yield base / "proj"


@pytest.fixture(scope="module")
def exported(server: Server, project: Path) -> dict[str, Any]:
    """The first export (experiment `proj`): its JSON, stderr, and the client."""
    url = server.ready()
    done = vestige("export-mlflow", "--tracking-uri", url, "--json", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    return {"runs": json.loads(done.stdout), "stderr": done.stderr.decode(),
            "client": MlflowClient(tracking_uri=url), "url": url}  # fmt: skip


def show(project: Path, ref: str) -> dict[str, Any]:
    """`vestige show REF --json`: the run as vestige holds it."""
    done = vestige("show", ref, "--json", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def series(project: Path, ref: str) -> dict[str, list[tuple[int, int, Any]]]:
    """Every metric series of a run as MLflow should hold it: (step, ms, value), NaN as
    "nan" (NaN equals nothing)."""
    from vestige.repo import Repo

    repo = Repo.open(project)
    try:
        run = repo.run(ref)
        return {k: [(int(st), round(t * 1000), "nan" if math.isnan(v) else v)
                    for st, t, v in zip(s.steps, s.times, s.values, strict=True)]
                for k, s in repo.metrics(run).items()}  # fmt: skip
    finally:
        repo.close()


def export_with_library(project: Path, refs: list[str], url: str, experiment: str) -> Any:
    """`vestige export-mlflow REFS` in this process (MLflow imported once, not per command)."""
    from vestige.adopt.to_mlflow import export_mlflow, select
    from vestige.repo import Repo

    repo = Repo.open(project)
    try:
        return export_mlflow(repo, select(repo, refs, None), url, experiment)
    finally:
        repo.close()


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, int, Any]]:
    """A series as MLflow holds it: (step, ms, value), NaN as "nan"."""
    return [(m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
            for m in client.get_metric_history(run_id, key)]  # fmt: skip


def counts(client: MlflowClient, run_id: str) -> dict[str, int]:
    """The number of points MLflow holds of each series of a run."""
    return {k: len(client.get_metric_history(run_id, k)) for k in ("loss", "acc", "val/loss")}


def artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of an MLflow run under `path`."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def read_artifact(client: MlflowClient, run_id: str, path: str, dest: Path) -> bytes:
    """The bytes of one artifact, downloaded through MLflow's client."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dest))).read_bytes()


def experiment_runs(client: MlflowClient, name: str) -> list[Any]:
    """The (active) MLflow runs of an experiment."""
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], max_results=1000))


# -- a first export -------------------------------------------------------------------------


def test_export_writes_params_metrics_tags_notes_status_and_artifacts(
    exported: dict[str, Any], project: Path, tmp_path: Path
) -> None:
    """Every run read back through MLflow's client matches vestige's record: status,
    times, tags, note, params, every series point by point, artifacts byte for byte."""
    client: MlflowClient = exported["client"]
    runs = exported["runs"]
    assert [(r["seq"], r["action"]) for r in runs] == [(1, "created"), (2, "created"),
                                                         (3, "created")]  # fmt: skip
    assert all(set(r) == {"id", "seq", "mlflow_run_id", "action"} for r in runs)
    assert len(experiment_runs(client, "proj")) == 3  # the project folder's name
    commit = git(project, "rev-parse", "HEAD").strip()
    for r in runs:
        record = show(project, str(r["seq"]))
        got = client.get_run(r["mlflow_run_id"])
        assert got.info.status == {1: "FINISHED", 2: "FINISHED", 3: "FAILED"}[r["seq"]]
        assert got.info.start_time == round(record["started"] * 1000)
        assert got.info.end_time == round(record["ended"] * 1000)
        tags = got.data.tags
        assert tags["vestige.run_id"] == r["id"] == record["id"]
        assert tags["vestige.seq"] == str(r["seq"])
        assert tags["vestige.command"].startswith("train.py --lr ")
        assert tags["mlflow.source.name"] == "train.py"
        assert tags["mlflow.source.git.commit"] == commit
        assert tags["mlflow.user"] == USER and got.info.user_id == USER
        params = {k: v if isinstance(v, str) else json.dumps(v)
                  for k, v in record["params"].items()}  # fmt: skip
        if r["seq"] == 3:  # (7,000 characters: cut to MLflow's 6,000, with a warning)
            assert params["blob"] == "x" * 7000
            params["blob"] = "x" * 6000
        assert got.data.params == params and params["lr"] == str(record["params"]["lr"])
        want = series(project, str(r["seq"]))
        assert set(want) == {"loss", "acc", "val/loss", "odd|key"}
        del want["odd|key"]  # (MLflow takes no `|` in a name: left out, with a warning)
        assert set(got.data.metrics) == set(want)
        for key, points in want.items():
            assert history(client, r["mlflow_run_id"], key) == points, key
        assert len(want["loss"]) == 41 and want["loss"][-1][2] == "nan"
        held = artifacts(client, r["mlflow_run_id"])
        assert {"out/model.txt", "code/train.py", "logs/stdout.txt"} <= held
        assert tags["vestige.artifacts"] == str(len(held))
        where = tmp_path / str(r["seq"])
        lr = record["params"]["lr"]
        assert read_artifact(client, r["mlflow_run_id"], "out/model.txt", where) == (
            f"model lr={lr}\n".encode()
        )
        code = read_artifact(client, r["mlflow_run_id"], "code/train.py", where)
        assert code == TRAIN.encode()
        assert read_artifact(client, r["mlflow_run_id"], "logs/stdout.txt", where) == (
            f"trained {lr}\n".encode()
        )
    first = client.get_run(runs[0]["mlflow_run_id"])
    assert first.info.run_name == "#1 baseline"
    assert first.data.tags["vestige.tag.best"] == "true"
    assert first.data.tags["stage"] == "prod"  # (a `k=v` tag: key k, value v)
    assert first.data.tags["mlflow.note.content"] == "looks good"
    assert client.get_run(runs[1]["mlflow_run_id"]).info.run_name == "#2"
    stderr = exported["stderr"]
    assert "warning: run #3: param 'blob': 7,000 characters cut to MLflow's 6,000" in stderr
    assert "warning: run #1: metric 'odd|key' left out" in stderr


def test_export_again_duplicates_nothing_and_carries_new_tags_and_notes(
    server: Server, project: Path, tmp_path: Path
) -> None:
    """A second export changes nothing; after tags, a note and a name change in vestige,
    a third updates the same MLflow runs (no new run, no point logged twice)."""
    url = server.ready()
    client = MlflowClient(tracking_uri=url)
    copy = tmp_path / "copy"  # (its own store: the other tests' runs keep their tags)
    shutil.copytree(project, copy)
    made = [r.to_dict() for r in export_with_library(copy, ["1", "2"], url, "again").runs]
    assert [r["action"] for r in made] == ["created", "created"]
    lengths = {r["mlflow_run_id"]: counts(client, r["mlflow_run_id"]) for r in made}

    second = vestige("export-mlflow", "1", "2", "--experiment", "again", cwd=copy,
                     env={"MLFLOW_TRACKING_URI": url})  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    lines = second.stdout.decode().splitlines()
    assert lines[-1] == (f"2 runs exported to {url}, experiment 'again': "
                         "0 created, 0 updated, 2 unchanged")  # fmt: skip
    assert "unchanged" in lines[0] and made[0]["mlflow_run_id"] in lines[0]

    for args in (["tag", "2", "reviewed"], ["note", "2", "checked twice"],
                 ["tag", "1", "--rm", "best"], ["name", "2", "second"]):  # fmt: skip
        assert vestige(*args, cwd=copy).returncode == 0
    third = vestige("export-mlflow", "--where", "seq < 3", "--experiment", "again",
                    "--tracking-uri", url, "--json", cwd=copy)  # fmt: skip
    assert third.returncode == 0, third.stderr.decode()
    again = [(r["seq"], r["action"], r["mlflow_run_id"]) for r in json.loads(third.stdout)]
    assert again == [(1, "updated", made[0]["mlflow_run_id"]),
                     (2, "updated", made[1]["mlflow_run_id"])]  # fmt: skip
    assert len(experiment_runs(client, "again")) == 2
    assert {r["mlflow_run_id"]: counts(client, r["mlflow_run_id"]) for r in made} == lengths
    one, two = (client.get_run(r["mlflow_run_id"]) for r in made)
    assert "vestige.tag.best" not in one.data.tags  # removed in vestige: removed here
    assert two.data.tags["vestige.tag.reviewed"] == "true"
    assert two.data.tags["mlflow.note.content"] == "checked twice"
    assert two.info.run_name == "#2 second"
    assert len(artifacts(client, two.info.run_id)) == int(two.data.tags["vestige.artifacts"])


def test_an_export_cut_short_is_finished_without_duplicates(
    exported: dict[str, Any], project: Path
) -> None:
    """An MLflow run left RUNNING with part of a series (an export killed part way) is
    found by its tag and completed: the missing points, params and artifacts, its status.
    Through the library, as a user's Python would (the CLI is its thin shell)."""
    from mlflow.entities import Metric, Param

    client: MlflowClient = exported["client"]
    run = exported["runs"][1]
    experiment = client.create_experiment("cut-short")
    half = client.create_run(experiment, tags={"vestige.run_id": run["id"]})
    want = series(project, "2")
    client.log_batch(half.info.run_id, metrics=[Metric("loss", v, t, s)
                                                for s, t, v in want["loss"][:10]],
                     params=[Param("lr", "0.2")])  # fmt: skip
    report = export_with_library(project, ["2"], exported["url"], "cut-short")
    assert [r.to_dict() for r in report.runs] == [{"id": run["id"], "seq": 2, "action": "updated",
                                                   "mlflow_run_id": half.info.run_id}]  # fmt: skip
    got = client.get_run(half.info.run_id)
    assert got.info.status == "FINISHED" and len(experiment_runs(client, "cut-short")) == 1
    for key in ("loss", "acc", "val/loss"):
        assert history(client, half.info.run_id, key) == want[key], key
    assert {"out/model.txt", "code/train.py", "logs/stdout.txt"} <= artifacts(
        client, half.info.run_id
    )


# -- bad input ------------------------------------------------------------------------------


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The one `error:` line of a command that failed with exit 2."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_no_tracking_uri_is_a_usage_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither --tracking-uri nor MLFLOW_TRACKING_URI: exit 2, one line saying both."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    line = one_error_line(vestige("export-mlflow", cwd=project))
    assert "--tracking-uri" in line and "MLFLOW_TRACKING_URI" in line


def test_an_unreachable_server_is_one_line_at_once(project: Path) -> None:
    """A port nobody listens on: exit 2, one line naming the URI (no minutes of
    retries)."""
    url = f"http://127.0.0.1:{free_port()}"  # (nobody listens there)
    line = one_error_line(vestige("export-mlflow", "--tracking-uri", url, cwd=project,
                                  timeout=90))  # fmt: skip
    assert url in line and "cannot reach" in line


def test_an_unknown_run_or_two_selections_are_usage_errors(project: Path) -> None:
    """A run that does not exist, or runs and --all together: exit 2 before MLflow is
    asked."""
    url = "http://127.0.0.1:1"  # (refused before any server is asked)
    assert "no run #99" in one_error_line(
        vestige("export-mlflow", "99", "--tracking-uri", url, cwd=project)
    )
    both = vestige("export-mlflow", "1", "--all", "--tracking-uri", url, cwd=project)
    assert both.returncode == 2 and b"one of them" in both.stderr


def test_without_mlflow_the_message_names_the_extra(project: Path) -> None:
    """A Python where `import mlflow` fails (as without the extra) says what to install."""
    script = ("import sys; sys.modules['mlflow'] = None; sys.argv[0] = 'vestige'; "
              "from vestige.cli import main; raise SystemExit(main())")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script, "export-mlflow", "--tracking-uri", "http://127.0.0.1:1"],
        cwd=project, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert "pip install 'vestige[mlflow]'" in one_error_line(done)
