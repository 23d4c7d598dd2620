"""The in-code API (param, tag, note, keep, log, start/finish) under `vestige run` and in a
plain `python script.py`, through real subprocesses and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import vestige


def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code))
    return path


def run_script(root: Path, code: str, *args: str, name: str = "script.py") -> str:
    """`vestige run script.py` in root; returns its stdout (asserting exit 0)."""
    write(root / name, code)
    done = vestige("run", name, *args, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def plain_python(
    root: Path, code: str, *args: str, name: str = "script.py", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python script.py` without vestige run."""
    import os

    write(root / name, code)
    return subprocess.run(
        [sys.executable, name, *args], cwd=root, capture_output=True, timeout=120,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip


def show(root: Path, ref: str = "@last") -> dict:
    done = vestige("show", ref, "--json", cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def cat(root: Path, ref: str, path: str) -> bytes:
    done = vestige("cat", ref, path, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def artefact(run: dict, name: str) -> dict:
    found = [a for a in run["artefacts"] if a["name"] == name]
    assert found, f"no artefact {name!r} in {[a['name'] for a in run['artefacts']]}"
    return found[-1]


# -- params, tags, notes ---------------------------------------------------------------------


def test_param_tag_note_under_vestige_run(project: Path) -> None:
    run_script(project, """
        import argparse, vestige
        p = argparse.ArgumentParser(); p.add_argument("--lr", type=float, default=0.1)
        args = p.parse_args()
        vestige.params(vars(args))
        vestige.param(model="vit", opt={"wd": 0.01, "beta": 0.9})
        vestige.tag("baseline", "v2")
        vestige.note("loss spikes at step 3k")
    """, "--lr", "0.5")  # fmt: skip
    run = show(project)
    assert run["params"] == {"lr": 0.5, "model": "vit", "opt.wd": 0.01, "opt.beta": 0.9}
    assert run["tags"] == ["baseline", "v2"]
    assert [n["text"] for n in run["notes"]] == ["loss spikes at step 3k"]
    listed = json.loads(vestige("ls", "--where", "tag = baseline", "--json", cwd=project).stdout)
    assert [r["tags"] for r in listed] == [["baseline", "v2"]]


def test_bad_api_calls_raise_in_the_users_code(project: Path) -> None:
    out = run_script(project, """
        import vestige
        for call in (lambda: vestige.tag("two words"), lambda: vestige.tag(3),
                     lambda: vestige.note(None), lambda: vestige.params([1, 2]),
                     lambda: vestige.keep(object(), "x"), lambda: vestige.keep({"a": 1}),
                     lambda: vestige.keep({"a": 1}, "../up"), lambda: vestige.keep("no/such/file")):
            try:
                call()
            except (TypeError, ValueError, FileNotFoundError) as e:
                print(type(e).__name__, e)
    """)  # fmt: skip
    lines = out.splitlines()
    assert len(lines) == 8, out
    assert lines[0].startswith("ValueError vestige.tag: 'two words'")
    assert lines[4].startswith("TypeError vestige.keep: cannot keep a object")
    assert "allow_pickle=True" in lines[4]
    assert "give this dict a name" in lines[5]
    assert "not a usable name" in lines[6]
    assert lines[7].startswith("FileNotFoundError")


# -- keep --------------------------------------------------------------------------------


def test_keep_every_kind(project: Path) -> None:
    (project / "ckpt").mkdir()
    (project / "ckpt" / "a.bin").write_bytes(b"A" * 100)
    (project / "ckpt" / "sub").mkdir()
    (project / "ckpt" / "sub" / "b.bin").write_bytes(b"B" * 50)
    (project / "report.txt").write_text("a report\n")
    run_script(project, """
        import os, sys
        import matplotlib; matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np, pandas as pd
        from PIL import Image
        import vestige

        fig, ax = plt.subplots(dpi=50, figsize=(4, 3)); ax.plot([1, 2, 3])
        vestige.keep(fig, "loss-curve")
        vestige.keep(ax, "curve-only.pdf")
        df = pd.DataFrame({"model": ["a", "b"], "score": [0.5, 0.75]})
        vestige.keep(df, "scores")
        vestige.keep(df["score"], "scores-as.csv")
        arr = np.arange(12, dtype=np.float32).reshape(3, 4)
        vestige.keep(arr, "embeddings")
        vestige.keep(Image.new("RGB", (8, 8), "red"), "red")
        vestige.keep({"best": 0.93, "n": np.int64(3)}, "summary")
        vestige.keep(b"\\x00\\x01raw", "blob.bin")
        vestige.keep("some text", "readme")
        vestige.keep("report.txt")
        vestige.keep("ckpt/", "checkpoints")
        vestige.keep({"a": {1, 2}}, "weird", allow_pickle=True)
        plt.close("all")
    """)  # fmt: skip
    run = show(project)
    kinds = {a["name"]: a["kind"] for a in run["artefacts"]}
    assert kinds == {
        "loss-curve": "figure", "curve-only.pdf": "figure", "scores": "dataframe",
        "scores-as.csv": "dataframe", "embeddings": "array", "red": "image", "summary": "json",
        "blob.bin": "bytes", "readme": "text", "report.txt": "file", "checkpoints": "folder",
        "weird": "pickle",
    }  # fmt: skip
    png = cat(project, "@last", "loss-curve.png")
    assert png.startswith(b"\x89PNG")
    import struct

    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (200, 150)  # 4x3 inches at the figure's own 50 dpi
    assert b"<svg" in cat(project, "@last", "loss-curve.svg")
    assert cat(project, "@last", "curve-only.pdf").startswith(b"%PDF")
    assert [f["path"] for f in artefact(run, "curve-only.pdf")["files"]] == ["curve-only.pdf"]

    import io

    import numpy as np
    import pandas as pd

    scores = pd.read_parquet(io.BytesIO(cat(project, "@last", "scores.parquet")))
    assert scores["score"].tolist() == [0.5, 0.75]
    assert cat(project, "@last", "scores-as.csv").decode().splitlines()[0] == ",score"
    arr = np.load(io.BytesIO(cat(project, "@last", "embeddings.npy")), allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape == (3, 4) and arr[2, 3] == 11
    assert cat(project, "@last", "red.png").startswith(b"\x89PNG")
    assert json.loads(cat(project, "@last", "summary.json")) == {"best": 0.93, "n": 3}
    assert cat(project, "@last", "blob.bin") == b"\x00\x01raw"
    assert cat(project, "@last", "readme.txt") == b"some text"
    assert cat(project, "@last", "report.txt") == b"a report\n"
    assert cat(project, "@last", "checkpoints/sub/b.bin") == b"B" * 50
    folder = artefact(run, "checkpoints")
    assert sorted(f["path"] for f in folder["files"]) == [
        "checkpoints/a.bin", "checkpoints/sub/b.bin"
    ]  # fmt: skip
    assert folder["source"] == str(project / "ckpt")
    import pickle

    assert pickle.loads(cat(project, "@last", "weird.pkl")) == {"a": {1, 2}}
    # the artefact name alone works when it names one file; else the error lists them
    assert cat(project, "@last", "summary") == cat(project, "@last", "summary.json")
    done = vestige("cat", "@last", "loss-curve", cwd=project)
    assert done.returncode == 2
    assert b"loss-curve.png, loss-curve.svg" in done.stderr
    text = vestige("show", "@last", cwd=project).stdout.decode()
    assert "artefacts (12)" in text and "checkpoints  [folder]" in text
    # kept bytes are found by `which`
    (project / "copy.npy").write_bytes(cat(project, "@last", "embeddings.npy"))
    which = vestige("which", "copy.npy", cwd=project)
    assert which.returncode == 0 and b"embeddings.npy" in which.stdout


def test_keep_dataframe_without_parquet_engine_is_csv(project: Path) -> None:
    run_script(project, """
        import sys
        import pandas as pd
        sys.modules["pyarrow"] = None; sys.modules["fastparquet"] = None  # as if not installed
        import vestige
        vestige.keep(pd.DataFrame({"x": [1, 2]}), "table")
    """)  # fmt: skip
    a = artefact(show(project), "table")
    assert [f["path"] for f in a["files"]] == ["table.csv"]
    assert "no parquet engine" in a["note"]
    assert cat(project, "@last", "table.csv").decode().splitlines() == [",x", "0,1", "1,2"]


def test_keep_refuses_object_arrays_and_unknown_objects(project: Path) -> None:
    out = run_script(project, """
        import numpy as np, vestige
        class Model: pass
        for obj in (np.array([object()]), Model(), {1: "int key"}):
            try:
                vestige.keep(obj, "x")
            except TypeError as e:
                print(e)
    """)  # fmt: skip
    lines = out.splitlines()
    assert "array of Python objects" in lines[0]
    assert "cannot keep a __main__.Model" in lines[1] and "allow_pickle=True" in lines[1]
    assert "cannot keep a dict" in lines[2]
    assert show(project)["artefacts"] == []


# -- a plain python script ---------------------------------------------------------------------


def test_plain_python_script_makes_a_complete_run(project: Path) -> None:
    (project / "data.csv").write_text("a,b\n1,2\n")
    done = plain_python(project, """
        import sys
        import vestige
        vestige.param(model="vit")
        data = open("data.csv").read()
        for i in range(50):
            vestige.log(loss=1 / (i + 1))
        with open("out.txt", "w") as f:
            f.write(data.upper())
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """, "--lr", "0.01")  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == b"to stdout\n"
    assert done.stderr.endswith(b"to stderr\n")
    run = show(project)
    assert run["status"] == "failed" and run["exit_code"] == 3
    assert run["command"][1:] == ["script.py", "--lr", "0.01"]
    assert run["params"] == {"lr": 0.01, "model": "vit"}
    assert [f["path"] for f in run["inputs"]] == ["data.csv"]
    assert [f["path"] for f in run["outputs"]] == ["out.txt"]
    assert run["outputs"][0].get("confirmed", True) is True  # absent when confirmed
    assert run["code"]["git"]["commit"]
    assert run["environment"]["python"]["version"].startswith("3.")
    assert run["metrics"]["keys"]["loss"]["count"] == 50
    assert vestige("log", "@last", cwd=project).stdout == b"to stdout\n"
    assert vestige("log", "@last", "--stderr", cwd=project).stdout == b"to stderr\n"
    assert vestige("cat", "@last", "script.py", cwd=project).returncode == 0
    assert vestige("fsck", cwd=project).returncode == 0


def test_plain_python_exception_marks_the_run_failed(project: Path) -> None:
    done = plain_python(project, """
        import vestige
        vestige.log(loss=1.0)
        raise RuntimeError("boom")
    """)  # fmt: skip
    assert done.returncode == 1 and b"RuntimeError: boom" in done.stderr
    run = show(project)
    assert run["status"] == "failed" and run["exit_code"] == 1
    assert b"RuntimeError: boom" in vestige("log", "@last", "--stderr", cwd=project).stdout


def test_start_finish_and_with_blocks_make_separate_runs(project: Path) -> None:
    done = plain_python(project, """
        import vestige
        vestige.start()
        vestige.log(a=1)
        vestige.finish()
        for model in ("a", "b"):
            with vestige.run() as r:
                vestige.param(model=model)
                vestige.log(loss=len(model))
                open(f"out-{model}.txt", "w").write(model)
        try:
            with vestige.run():
                vestige.log(loss=0.0)
                raise KeyError("x")
        except KeyError:
            pass
        print("end")
    """)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    runs = json.loads(vestige("ls", "--json", cwd=project).stdout)
    assert [r["status"] for r in runs] == ["failed", "ok", "ok", "ok"]
    assert [r["params"].get("model") for r in runs] == [None, "b", "a", None]
    b = show(project, str(runs[1]["seq"]))
    assert [f["path"] for f in b["outputs"]] == ["out-b.txt"]
    assert list(b["metrics"]["keys"]) == ["loss"]


def test_vestige_disable_turns_the_api_off(project: Path) -> None:
    done = plain_python(project, """
        import vestige
        vestige.log(loss=1.0); vestige.param(a=1); vestige.keep({"a": 1}, "x")
        print(vestige.run_id())
    """, env={"VESTIGE_DISABLE": "1"})  # fmt: skip
    assert done.returncode == 0 and done.stdout == b"None\n"
    assert not (project / ".vestige").exists()


def test_unwritable_store_is_a_warning_not_a_crash(project: Path) -> None:
    (project / ".vestige").write_text("not a directory")
    done = plain_python(project, """
        import vestige
        vestige.log(loss=1.0); vestige.param(a=1); vestige.tag("x")
        print("still here")
    """)  # fmt: skip
    assert done.returncode == 0 and done.stdout == b"still here\n"
    assert b"vestige: warning: not recording" in done.stderr


@pytest.mark.parametrize("mode", ["run", "plain"])
def test_import_vestige_alone_records_nothing(project: Path, mode: str) -> None:
    code = "import vestige\nprint('ok')\n"
    if mode == "plain":
        assert plain_python(project, code).returncode == 0
        assert not (project / ".vestige").exists()
    else:
        run_script(project, code)
        assert show(project)["artefacts"] == [] and show(project)["metrics"] is None


def test_exit_builtin_and_bad_finish_status(project: Path) -> None:
    done = plain_python(project, """
        import vestige
        vestige.log(loss=1.0)
        try:
            vestige.finish("done")
        except ValueError as e:
            print(e)
        exit(5)
    """)  # fmt: skip
    assert done.returncode == 5
    assert b"status must be ok, failed or interrupted" in done.stdout
    run = show(project)
    assert run["status"] == "failed" and run["exit_code"] == 5


def test_disabled_logging_does_not_grow_memory(project: Path) -> None:
    done = plain_python(project, """
        import vestige
        from vestige.api import log as _log
        for i in range(300_000):
            vestige.log(loss=1.0)
        print(len(_log._buf) <= 4 * _log.FLUSH_POINTS)
    """, env={"VESTIGE_DISABLE": "1"})  # fmt: skip
    assert done.returncode == 0 and done.stdout == b"True\n", done.stderr


def test_forked_worker_of_a_parent_that_never_logged(project: Path) -> None:
    run_script(project, """
        import multiprocessing as mp
        import vestige

        def work():
            for i in range(1000):
                vestige.log(step=i, w=float(i))

        if __name__ == "__main__":
            vestige.param(a=1)  # the parent uses the API, but logs no metric
            for method in ("fork", "forkserver"):
                p = mp.get_context(method).Process(target=work)
                p.start(); p.join()
    """)  # fmt: skip
    assert show(project)["metrics"]["keys"]["w"]["count"] == 2000


def test_cat_of_an_artefact_whose_object_is_gone_and_fsck(project: Path) -> None:
    run_script(project, """
        import vestige
        vestige.keep({"a": 1}, "summary")
        vestige.log(loss=1.0)
    """)  # fmt: skip
    run = show(project)
    digest = artefact(run, "summary")["files"][0]["hash"]
    obj = project / ".vestige" / "objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.unlink()
    done = vestige("cat", "@last", "summary.json", cwd=project)
    assert done.returncode == 2
    assert b"missing from the store; run `vestige fsck`" in done.stderr
    fsck = vestige("fsck", cwd=project)
    assert fsck.returncode == 1 and b"M2" in fsck.stderr and b"summary.json" in fsck.stderr
    metrics = run["metrics"]["object"]
    mobj = project / ".vestige" / "objects" / metrics[:2] / metrics[2:]
    mobj.chmod(0o644)
    mobj.write_bytes(mobj.read_bytes()[:-8])  # truncated: also fails O1 (its hash changed)
    fsck = vestige("fsck", cwd=project).stderr.decode()
    assert "metrics object" in fsck and "bytes, its header says" in fsck


def test_the_api_in_ipython_records_the_session(project: Path) -> None:
    import os

    (project / "cell.py").write_text(
        "import vestige\nvestige.param(a=1)\nvestige.log(loss=1.5)\n"
        "open('o.txt', 'w').write('x')\nprint('hi')\n"
    )
    ipython = Path(sys.executable).parent / "ipython"
    done = subprocess.run(
        [str(ipython), "--no-banner", "-c", "exec(open('cell.py').read())"],
        cwd=project,
        capture_output=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )  # fmt: skip  (HOME is a fresh folder: IPython's profile goes there)
    assert done.returncode == 0 and b"hi" in done.stdout, done.stderr
    run = show(project)
    assert run["status"] == "ok"
    assert run["params"] == {"a": 1}  # not IPython's own --no-banner
    assert run["metrics"]["keys"]["loss"]["last"] == 1.5
    assert [o["path"] for o in run["outputs"]] == ["o.txt"]


def test_a_plain_script_is_part_of_its_runs_code(project: Path) -> None:
    """The shim starts after the script did (its own open is never seen, and the
    interpreter drops __main__.__file__ before the run's modules are reported): the script
    is still code the run imported, so editing it makes the run stale."""
    write(project / "helper.py", "def f(x):\n    return 2 * x\n")
    code = 'import vestige\nfrom helper import f\nvestige.log(x=f(1))\nopen("r.txt", "w")\n'
    done = plain_python(project, code)
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(show(project)["code"]["imported"]) == ["helper.py", "script.py"]
    write(project / "script.py", "import vestige\nvestige.log(x=3)\n")
    stale = vestige("stale", cwd=project)
    assert stale.returncode == 1 and "code script.py changed" in stale.stdout.decode()
