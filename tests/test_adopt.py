"""The writer of adopted runs (adopt/write.py), whatever tool they come from: an adopted
run is a run like any other for ls, show, metrics, which, diff, fsck and rerun; adopting
again adds nothing; the same foreign run gets the same id in every store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, vestige

from vestige.adopt.foreign import ForeignFile, ForeignRun
from vestige.adopt.write import Writer, run_id_for
from vestige.repo import Repo

TOKEN = "ghp_" + "a" * 36  # a GitHub token's shape: redacted wherever it shows up


def foreign(root: Path, i: int, lr: float, commit: str = "", **changes: object) -> ForeignRun:
    """The i-th run of a pretend MLflow store whose files live in the project."""
    (root / "art").mkdir(exist_ok=True)
    (root / "art" / f"table{i}.csv").write_text(f"a,b\n{i},2\n")
    (root / f"console{i}.log").write_text(f"epoch 1\nused {TOKEN}\n")
    fields: dict[str, object] = {
        "tool": "mlflow",
        "source": "mlruns",
        "foreign_id": f"run-{i}",
        "started": 1.7e9 + i,
        "ended": 1.7e9 + i + 10,
        "command": ("python", "train.py"),
        "params": {"lr": lr, "model": "small", "token": TOKEN},
        "metrics": {"loss": [(s, 1.7e9 + i + s, 1.0 / (s + 1)) for s in range(5)]},
        "tags": ("stage=dev",),
        "notes": ("first try",),
        "files": (ForeignFile(f"art/table{i}.csv", str(root / "art" / f"table{i}.csv")),),
        "code": {"commit": commit, "program": "train.py"} if commit else {},
        "stdout": str(root / f"console{i}.log"),
        "name": f"run{i}",
        "experiment": "exp",
    }
    fields.update(changes)
    return ForeignRun(**fields)  # type: ignore[arg-type]


def adopt(root: Path, runs: list[ForeignRun]) -> list[tuple[str, int | None]]:
    repo = Repo.open(root, create=True)
    try:
        return [(a.action, a.seq) for a in Writer(repo).adopt(runs)]
    finally:
        repo.close()


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def ls(root: Path, *where: str) -> list[dict[str, object]]:
    done = vestige("ls", "--json", *where, cwd=root)
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, object]] = json.loads(done.stdout)
    return listed


def test_adopted_runs_are_runs_like_any_other(project: Path, tmp_path: Path) -> None:
    (project / "train.py").write_text(
        "import os\nos.makedirs('art', exist_ok=True)\n"
        "open('art/table1.csv', 'w').write('a,b\\n1,2\\n')\n"
    )
    git(project, "add", "train.py")
    git(project, "commit", "-qm", "train")
    commit = head(project)
    assert adopt(project, [foreign(project, 1, 0.1, commit), foreign(project, 2, 0.2, commit)]) \
        == [("new", 1), ("new", 2)]  # fmt: skip

    runs = {r["seq"]: r for r in ls(project)}
    assert set(runs) == {1, 2} and {r["adopted"] for r in runs.values()} == {"mlflow"}
    assert runs[1]["git_commit"] == commit and runs[1]["params"]["lr"] == 0.1
    assert runs[1]["tags"] == ["stage=dev"] and runs[1]["started"] == 1.7e9 + 1
    assert [r["seq"] for r in ls(project, "--where", "adopted = mlflow")] == [2, 1]
    assert ls(project, "--where", "adopted = false") == []
    assert [r["seq"] for r in ls(project, "--where", "params.lr > 0.15")] == [2]

    shown = json.loads(vestige("show", "1", "--json", cwd=project).stdout)
    assert shown["adopted"]["id"] == "run-1" and shown["adopted"]["tool"] == "mlflow"
    assert shown["adopted"]["name"] == "run1" and shown["adopted"]["experiment"] == "exp"
    assert shown["code"]["git"]["commit"] == commit and shown["code"]["tree"]
    assert shown["code"]["imported"] == ["train.py"]
    text = vestige("show", "1", cwd=project).stdout.decode()
    assert "adopted   from mlflow mlruns, run run-1 (name run1, experiment exp)" in text

    # no secret anywhere in the store: params and the console log are scrubbed
    assert TOKEN not in json.dumps(shown)
    assert TOKEN.encode() not in vestige("log", "1", cwd=project).stdout
    assert b"epoch 1" in vestige("log", "1", cwd=project).stdout
    for path in (project / ".vestige").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    series = vestige("metrics", "2", "loss", "--json", cwd=project)
    assert series.returncode == 0, series.stderr
    points = json.loads(series.stdout)
    assert len(json.dumps(points)) and "0.2" in series.stdout.decode()

    elsewhere = tmp_path / "copy.csv"
    elsewhere.write_bytes((project / "art" / "table2.csv").read_bytes())
    which = vestige("which", str(elsewhere), cwd=project)
    assert which.returncode == 0 and b"made by run #2" in which.stdout, which.stdout

    diff = vestige("diff", "1", "2", cwd=project).stdout.decode()
    assert "lr: 0.1 -> 0.2" in diff
    assert vestige("fsck", cwd=project).returncode == 0

    # the code came from git at the commit: rerun makes the run's output again
    rerun = vestige("rerun", "1", cwd=project)
    assert b"1 of 1 outputs identical" in rerun.stdout, rerun.stdout + rerun.stderr


def test_adopting_again_adds_nothing_and_a_changed_run_is_updated(project: Path) -> None:
    runs = [foreign(project, 1, 0.1), foreign(project, 2, 0.2)]
    assert adopt(project, runs) == [("new", 1), ("new", 2)]
    refs = sorted(p.name for p in (project / ".vestige" / "refs" / "runs").iterdir())
    assert adopt(project, runs) == [("unchanged", 1), ("unchanged", 2)]
    assert sorted(p.name for p in (project / ".vestige" / "refs" / "runs").iterdir()) == refs

    # run 2 went on after it was first adopted: the same run, its newer record
    grown = foreign(project, 2, 0.2, ended=1.7e9 + 60, status="failed")
    assert adopt(project, [runs[0], grown]) == [("unchanged", 1), ("updated", 2)]
    listed = {r["seq"]: r for r in ls(project)}
    assert set(listed) == {1, 2} and listed[2]["status"] == "failed"
    assert listed[2]["duration"] == 58.0
    # a new run after them is numbered after them
    assert adopt(project, [foreign(project, 3, 0.3)]) == [("new", 3)]
    assert vestige("fsck", cwd=project).returncode == 0


def test_a_foreign_run_has_one_id_in_every_store(tmp_path: Path, project: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    one, two = foreign(project, 1, 0.1), foreign(other, 1, 0.1)
    adopt(project, [one])
    adopt(other, [two])
    ids = {ls(p)[0]["id"] for p in (project, other)}
    assert ids == {run_id_for(one)}
    assert run_id_for(one) != run_id_for(foreign(project, 2, 0.1))
    assert run_id_for(one) != run_id_for(one.replace(tool="wandb"))


def test_a_plan_writes_nothing(project: Path) -> None:
    repo = Repo.open(project, create=True)
    try:
        planned = Writer(repo).plan([foreign(project, 1, 0.1)])
    finally:
        repo.close()
    assert [(a.action, a.files, a.size) for a in planned] == [("new", 1, 8)]
    assert not list((project / ".vestige" / "refs" / "runs").glob("*"))
    assert ls(project) == []


def test_code_from_saved_files_or_a_commit_git_lacks(project: Path) -> None:
    saved = project / "saved"
    saved.mkdir()
    (saved / "train.py").write_text("print('saved code')\n")
    code = {"program": "train.py", "files": (ForeignFile("train.py", str(saved / "train.py")),)}
    with_files = foreign(project, 1, 0.1, code=code)
    unknown = foreign(project, 2, 0.1, code={"commit": "0123abcd" * 5, "program": "train.py"})
    adopt(project, [with_files, unknown])
    one = json.loads(vestige("show", "1", "--json", cwd=project).stdout)
    assert one["code"]["files"] == 1 and one["code"]["git"] is None
    restored = vestige("cat", "1", "train.py", cwd=project)
    assert restored.returncode == 0 and restored.stdout == b"print('saved code')\n"
    two = json.loads(vestige("show", "2", "--json", cwd=project).stdout)
    assert two["code"]["git"]["commit"] == "0123abcd" * 5 and "tree" not in two["code"]


def test_a_copy_holding_less_does_not_replace_the_adopted_run(project: Path) -> None:
    """Two copies of one store (one lost its artifacts, or is older) hold the same run:
    adopting both in any order keeps the record that holds more, never flips."""
    full = foreign(project, 1, 0.1)
    bare = foreign(project, 1, 0.1, files=(), metrics={"loss": [(0, 1.7e9 + 1, 1.0)]})
    assert adopt(project, [full]) == [("new", 1)]
    assert adopt(project, [bare]) == [("unchanged", 1)]
    assert adopt(project, [full, bare]) == [("unchanged", 1), ("unchanged", 1)]
    shown = json.loads(vestige("show", "1", "--json", cwd=project).stdout)
    assert [o["path"] for o in shown["outputs"]] == ["art/table1.csv"]
    assert shown["metrics"]["points"] == 5


def test_the_ui_shows_where_an_adopted_run_came_from(project: Path) -> None:
    """The run page says the tool, source and foreign id, escaped (a foreign run's name is
    anyone's text), and a run with no command renders; its metric series is served."""
    pytest.importorskip("starlette", reason="the ui extra is not installed")
    from test_ui import Server

    odd = foreign(project, 1, 0.1, name="<script>alert(1)</script>", command=())
    adopt(project, [odd])
    run_id = run_id_for(odd)
    with Server(project) as server:
        status, _headers, body = server.get(f"/run/{run_id}")
        assert status == 200
        page = body.decode()
        assert "from mlflow mlruns, run run-1" in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
        listed, _headers, body = server.get("/")
        assert listed == 200 and run_id[:10] in body.decode()
