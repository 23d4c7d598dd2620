"""Reading runs from Python (issue 23, item 3): `vestige.runs()` as a pandas DataFrame and
`vestige.Run(ref)` with params, openable outputs and metric arrays; `import vestige`
stays light, pandas comes only with runs(), and the export's stand-in has both names."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import vestige

import vestige as api
from vestige.errors import NotKept, RunNotFound, UsageError

TRAIN = """\
import sys
import vestige

lr = float(sys.argv[1])
for step in range(4):
    vestige.log(step=step, loss=lr / (step + 1))
with open("out.txt", "w") as f:
    f.write(f"lr={lr}\\n")
"""


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.fixture
def runs_made(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three runs: #1 `baseline` (lr 0.1), #2 (lr 0.2, a note), #3 failed; cwd = project."""
    (project / "train.py").write_text(TRAIN)
    ok("run", "--name", "baseline", "--param", "lr=0.1", sys.executable, "train.py", "0.1",
       cwd=project)  # fmt: skip
    ok("run", "--param", "lr=0.2", sys.executable, "train.py", "0.2", cwd=project)
    ok("note", "2", "the better one", cwd=project)
    ok("tag", "2", "best", cwd=project)
    assert vestige("run", "false", cwd=project).returncode == 1
    monkeypatch.chdir(project)
    return project


def test_runs_is_a_dataframe_newest_first(runs_made: Path) -> None:
    df = api.runs()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == [
        "id", "seq", "name", "status", "started", "ended", "duration", "exit_code", "command",
        "tags", "params.lr", "metrics.loss",
    ]  # fmt: skip
    assert df["seq"].tolist() == [3, 2, 1]
    assert df["status"].tolist() == ["failed", "ok", "ok"]
    assert df["exit_code"].tolist() == [1, 0, 0]
    assert str(df["started"].dtype) == "datetime64[ns, UTC]"
    assert (df["ended"] >= df["started"]).all()
    assert df["name"].iloc[2] == "baseline"
    assert df["tags"].iloc[1] == ["best"]
    assert df["params.lr"].iloc[1:].tolist() == [0.2, 0.1]
    assert df["metrics.loss"].iloc[1:].tolist() == [0.05, 0.025]
    assert np.isnan(df["metrics.loss"].iloc[0])
    assert df["command"].iloc[0] == "false"


def test_runs_where_and_cols(runs_made: Path) -> None:
    df = api.runs(where="status = 'ok' and note contains 'BETTER'",
                  cols=["seq", "lr", "metrics.loss.min", "metrics.loss.max",
                        "metrics.loss.count", "loss", "git_commit"])  # fmt: skip
    assert list(df.columns) == ["seq", "lr", "metrics.loss.min", "metrics.loss.max",
                                "metrics.loss.count", "loss", "git_commit"]  # fmt: skip
    assert df.to_dict("records")[0] | {"git_commit": None} == {
        "seq": 2, "lr": 0.2, "metrics.loss.min": 0.05, "metrics.loss.max": 0.2,
        "metrics.loss.count": 4, "loss": 0.05, "git_commit": None,
    }  # fmt: skip
    assert len(api.runs(limit=2)) == 2
    empty = api.runs(where="name = nobody", cols=["seq", "params.lr"])
    assert list(empty.columns) == ["seq", "params.lr"] and len(empty) == 0
    with pytest.raises(UsageError, match="'nope' is no column of these runs"):
        api.runs(cols=["nope"])


def test_runs_of_another_folder_and_bad_where(runs_made: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert api.runs(store=runs_made)["seq"].tolist() == [3, 2, 1]
    assert len(api.runs(store=runs_made / ".vestige", where="name = baseline")) == 1
    with pytest.raises(UsageError, match="bad --where at position 16"):
        api.runs(where="command matches '('", store=runs_made)


def test_run_gives_params_metrics_and_openable_outputs(runs_made: Path) -> None:
    run = api.Run("baseline")
    assert (run.seq, run.name, run.status, run.exit_code) == (1, "baseline", "ok", 0)
    assert run.params == {"lr": 0.1}
    assert run.command[-2:] == ["train.py", "0.1"]
    assert repr(run).startswith("<vestige.Run #1 'baseline' ok:")
    loss = run.metrics["loss"]
    assert isinstance(loss.values, np.ndarray) and loss.values.dtype == np.float64
    assert loss.steps.tolist() == [0, 1, 2, 3]
    assert np.allclose(np.asarray(loss), [0.1, 0.05, 0.1 / 3, 0.025])
    assert len(loss.times) == 4 and loss.times[0] >= run.started
    assert api.Run(2).notes == ["the better one"] and api.Run(2).tags == ("best",)

    # out.txt now holds run #2's bytes: #2 gets the project's file, #1 a copy of its own
    assert api.Run(2).outputs["out.txt"] == runs_made / "out.txt"
    copy = run.outputs["out.txt"]
    assert copy.read_text() == "lr=0.1\n"
    assert runs_made / ".vestige" / "cache" / "files" in copy.parents
    assert not os.access(copy, os.W_OK) or os.geteuid() == 0
    assert copy.stat().st_mode & 0o222 == 0  # read-only: it is the run's record
    assert run.outputs["out.txt"] == copy  # (made once)
    assert list(run.outputs) == ["out.txt"] and "train.py" not in run.outputs
    (runs_made / "out.txt").unlink()
    assert api.Run(2).outputs["out.txt"].read_text() == "lr=0.2\n"
    with pytest.raises(KeyError):
        run.outputs["nothing.txt"]


def test_run_references_and_errors(runs_made: Path) -> None:
    assert api.Run().seq == 3  # @last
    assert api.Run(-2).seq == 2
    assert api.Run(api.Run(2).id[:12]).seq == 2
    with pytest.raises(RunNotFound):
        api.Run(99)
    (runs_made / "big.bin").write_bytes(b"x" * 100)
    ok("run", sys.executable, "-c", "open('big.bin').read()", cwd=runs_made)
    run = api.Run("@last")
    assert run.inputs["big.bin"] == runs_made / "big.bin"
    (runs_made / "big.bin").write_bytes(b"y" * 100)
    assert run.inputs["big.bin"].read_bytes() == b"x" * 100  # (a kept input: from the store)
    (runs_made / "big.bin").write_bytes(b"x" * 100)
    assert run.inputs["big.bin"] == runs_made / "big.bin"  # (the same bytes again)
    # bytes the store did not keep, and the project no longer holds: one clear error
    (runs_made / ".vestige" / "config.toml").write_text("[keep]\noutputs = false\n")
    ok("run", sys.executable, "-c", "open('o.bin', 'w').write('q' * 50)", cwd=runs_made)
    assert api.Run("@last").outputs["o.bin"] == runs_made / "o.bin"  # (hashed: still there)
    (runs_made / "o.bin").write_text("changed")
    with pytest.raises(NotKept, match="kept no copy"):
        api.Run("@last").outputs["o.bin"]


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_pandas_only_when_runs_is_called_and_a_clear_error_without_it(runs_made: Path) -> None:
    done = python("""
        import sys, vestige
        run = vestige.Run("baseline")
        assert run.params == {"lr": 0.1}, run.params
        assert "pandas" not in sys.modules, "Run imported pandas"
        vestige.runs()
        assert "pandas" in sys.modules
    """, runs_made)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = python("""
        import sys
        sys.modules["pandas"] = None  # as if it were not installed
        import vestige
        vestige.runs()
    """, runs_made)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: vestige.runs() needs pandas, which is not installed: pip install pandas"
    )


def test_the_export_standin_offers_runs_and_run(tmp_path: Path) -> None:
    import zipfile

    from vestige.history.standin import write_wheel

    with zipfile.ZipFile(write_wheel(tmp_path)) as z:
        source = z.read("vestige/__init__.py").decode()
    standin: dict[str, object] = {}
    exec(compile(source, "standin", "exec"), standin)
    for name in ("runs", "Run"):
        assert name in api.__all__ and name in standin["__all__"]  # type: ignore[operator]
        real, stand = getattr(api, name), standin[name]
        # (a class: its constructor's parameters, as inspect.signature gives them)
        assert list(inspect.signature(stand).parameters) == list(  # type: ignore[arg-type]
            inspect.signature(real).parameters)  # fmt: skip
        with pytest.raises(RuntimeError, match="stand-in that `vestige export` ships"):
            stand()  # type: ignore[operator]
