"""`vestige diff` and `vestige compare`, and the file comparison under them (filediff):
each format's verdict and measure, real runs diffed section by section, runs compared
in one table, and bad input as one error line with exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import clean_environment, git, vestige

from vestige.history.filediff import FileDiff, compare_bytes, compare_hashes, kind_of

# -- filediff: one format at a time ----------------------------------------------------------

CSV = b"step,loss,model\n0,1.0,vit\n1,0.5,vit\n2,0.25,vit\n"


def test_identical_bytes_are_identical_without_parsing() -> None:
    d = compare_bytes("out/x.npy", b"not an array at all", b"not an array at all")
    assert d.verdict == "identical" and d.kind == "npy"
    assert d.details["sizes"] == [19, 19]
    assert d.details["hashes"][0] == d.details["hashes"][1]
    assert "note" not in d.details  # nothing was parsed, so nothing failed to parse


def test_csv_noise_within_tolerance_is_close() -> None:
    noisy = CSV.replace(b"0.5,", b"0.500000000001,")
    d = compare_bytes("t.csv", CSV, noisy)
    assert (d.verdict, d.kind) == ("close", "csv")
    assert d.details["shape"] == [[3, 3], [3, 3]]
    assert 0 < d.details["max_abs"] < 1e-11
    assert d.details["values_differ"] == 0
    assert d.summary.startswith("shape (3, 3) -> (3, 3); max abs diff 1e-12, max rel diff 2e-12")


def test_csv_changed_value_differs_with_max_abs_diff() -> None:
    d = compare_bytes("t.csv", CSV, CSV.replace(b"0.25", b"0.75"))
    assert d.verdict == "differs"
    assert d.details["max_abs"] == pytest.approx(0.5)
    assert d.details["values_differ"] == 1
    assert d.details["first_differ"] == "line 4, column 'loss'"
    assert "max abs diff 0.5" in d.summary and "1 of 12 values differ" in d.summary


def test_csv_extra_column_and_text_cells() -> None:
    wider = b"step,loss,model,acc\n0,1.0,vit,0\n1,0.5,vit,0\n2,0.25,vit,0\n"
    d = compare_bytes("t.csv", CSV, wider)
    assert d.verdict == "differs"
    assert d.details["columns_added"] == ["acc"]
    assert d.summary == "shape (3, 3) -> (3, 4); columns added: acc"
    renamed = compare_bytes("t.csv", CSV, CSV.replace(b"2,0.25,vit", b"2,0.25,resnet"))
    assert renamed.verdict == "differs" and renamed.details["first_differ"].endswith("'model'")
    longer = compare_bytes("t.csv", CSV, CSV + b"3,0.125,vit\n")
    assert longer.verdict == "differs" and longer.details["shape"] == [[3, 3], [4, 3]]


def test_csv_nan_equals_nan_and_inf_must_match() -> None:
    a = b"x,y\n1,nan\n2,inf\n"
    assert compare_bytes("t.csv", a, b"x,y\n1.0,NaN\n2,inf\n").verdict == "close"
    d = compare_bytes("t.csv", a, b"x,y\n1,nan\n2,1e308\n")
    assert d.verdict == "differs" and d.details["values_differ"] == 1
    assert compare_bytes("t.csv", a, b"x,y\n1,0\n2,inf\n").verdict == "differs"


def test_tolerance_is_configurable() -> None:
    a, b = b"x\n1.0\n", b"x\n1.001\n"
    assert compare_bytes("t.csv", a, b).verdict == "differs"
    assert compare_bytes("t.csv", a, b, atol=1e-2).verdict == "close"
    assert compare_bytes("t.csv", a, b, rtol=1e-2).verdict == "close"
    d = compare_bytes("t.csv", a, b, rtol=1e-2, atol=0.5)
    assert (d.details["rtol"], d.details["atol"]) == (1e-2, 0.5)


def test_json_nested_numbers() -> None:
    a = {"acc": [0.9, {"top5": 0.99}], "model": "vit", "epochs": 3, "ok": True}
    noisy = {"acc": [0.9 + 1e-13, {"top5": 0.99}], "model": "vit", "epochs": 3.0, "ok": True}
    d = compare_bytes("m.json", _json(a), _json(noisy))
    assert (d.verdict, d.kind) == ("close", "json")
    changed = {**a, "acc": [0.9, {"top5": 0.5}]}
    d = compare_bytes("m.json", _json(a), _json(changed))
    assert d.verdict == "differs" and d.details["first_differ"] == "$.acc[1].top5"
    assert d.details["max_abs"] == pytest.approx(0.49)
    more = compare_bytes("m.json", _json(a), _json({**a, "loss": 1}))
    assert more.verdict == "differs" and more.details["structure"] == ["$: keys added: loss"]
    # true is not 1, and a string that reads as a number is still a string
    assert compare_bytes("m.json", _json({"x": True}), _json({"x": 1})).verdict == "differs"
    strings = compare_bytes("m.json", _json({"v": "1.0"}), _json({"v": "1.00"}))
    assert strings.verdict == "differs"


def test_npy_shape_change_and_noise() -> None:
    np = pytest.importorskip("numpy")
    x = np.arange(12.0).reshape(3, 4)
    d = compare_bytes("w.npy", _npy(np, x), _npy(np, x.reshape(4, 3)))
    assert (d.verdict, d.kind) == ("differs", "npy")
    assert d.details["shape"] == [[3, 4], [4, 3]]
    assert d.summary == "shape (3, 4) -> (4, 3)"
    close = compare_bytes("w.npy", _npy(np, x), _npy(np, x * (1 + 1e-12)))
    assert close.verdict == "close" and 0 < close.details["max_rel"] < 1e-9
    y = x.copy()
    y[2, 1] = np.nan
    d = compare_bytes("w.npy", _npy(np, x), _npy(np, y))
    assert d.verdict == "differs" and d.details["first_differ"] == "[2, 1]"
    assert compare_bytes("w.npy", _npy(np, y), _npy(np, y.copy() + 0.0)).verdict in (
        "identical", "close")  # fmt: skip
    typed = compare_bytes("w.npy", _npy(np, x), _npy(np, x.astype(np.float32)))
    assert typed.verdict == "differs" and "dtype float64 -> float32" in typed.summary


def test_npz_per_array() -> None:
    np = pytest.importorskip("numpy")
    a = _npz(np, w=np.ones(4), b=np.zeros(2))
    b = _npz(np, w=np.ones(4) + 1e-13, b=np.array([0.0, 2.0]))
    d = compare_bytes("model.npz", a, b)
    assert (d.verdict, d.kind) == ("differs", "npz")
    assert d.details["arrays"]["w"]["values_differ"] == 0
    assert d.details["arrays"]["b"]["max_abs"] == 2.0
    assert d.details["first_differ"] == "b[1]"
    added = compare_bytes("model.npz", a, _npz(np, w=np.ones(4), b=np.zeros(2), c=np.ones(1)))
    assert added.verdict == "differs" and added.details["arrays_added"] == ["c"]


def test_parquet_via_pandas() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"loss": [1.0, 0.5, 0.25], "model": ["vit", "vit", "cnn"]})
    noisy = frame.assign(loss=frame["loss"] * (1 + 1e-12))
    d = compare_bytes("r.parquet", _parquet(frame), _parquet(noisy))
    assert (d.verdict, d.kind) == ("close", "parquet")
    changed = frame.assign(loss=[1.0, 0.5, 0.3])
    d = compare_bytes("r.parquet", _parquet(frame), _parquet(changed))
    assert d.verdict == "differs" and d.details["first_differ"] == "row 2, column 'loss'"
    assert d.details["max_abs"] == pytest.approx(0.05)
    wider = compare_bytes("r.parquet", _parquet(frame), _parquet(frame.assign(acc=1)))
    assert wider.verdict == "differs" and wider.details["columns_added"] == ["acc"]


def test_png_pixels_changed() -> None:
    image = pytest.importorskip("PIL.Image")
    base = image.new("RGB", (40, 25), "white")
    dotted = base.copy()
    for x in range(5):
        dotted.putpixel((x, 3), (255, 255, 254))  # one channel, by one
    d = compare_bytes("fig.png", _png(base), _png(dotted))
    assert (d.verdict, d.kind) == ("differs", "image")
    assert d.details["pixels_changed"] == 5
    assert d.details["changed_fraction"] == pytest.approx(5 / 1000)
    assert d.summary == "40x25 -> 40x25; 0.5% of pixels changed"
    same_pixels = compare_bytes("fig.png", _png(base), _png(base.convert("RGBA")))
    assert same_pixels.verdict == "close"
    bigger = compare_bytes("fig.png", _png(base), _png(image.new("RGB", (41, 25), "white")))
    assert bigger.verdict == "differs" and bigger.summary == "40x25 -> 41x25"


def test_text_lines_added_and_removed() -> None:
    d = compare_bytes("log.txt", b"a\nb\nc\n", b"a\nB\nc\nd\n")
    assert (d.verdict, d.kind) == ("differs", "text")
    assert (d.details["lines_added"], d.details["lines_removed"]) == (2, 1)
    assert d.summary == "+2 -1 lines (3 -> 4 lines)"
    assert "-b\n+B\n" in d.details["diff"]


def test_binary_sizes_and_hashes() -> None:
    d = compare_bytes("model.bin", b"\0\1\2" * 100, b"\0\1\3" * 101)
    assert (d.verdict, d.kind) == ("differs", "binary")
    assert d.details["sizes"] == [300, 303]
    ha, hb = d.details["hashes"]
    assert d.summary == f"300 B -> 303 B; hash {ha[:12]} -> {hb[:12]}"


def test_missing_and_new() -> None:
    assert compare_bytes("o.csv", CSV, None).verdict == "missing"
    new = compare_bytes("o.csv", None, CSV)
    assert (new.verdict, new.kind, new.summary) == ("new", "csv", "new (47 B)")
    with pytest.raises(ValueError):
        compare_bytes("o.csv", None, None)


def test_unreadable_file_falls_back_with_a_note() -> None:
    d = compare_bytes("w.npy", b"not numpy\n", b"not numpy either\n")
    assert (d.verdict, d.kind) == ("differs", "text")
    assert d.details["note"].startswith("not readable as npy")
    assert kind_of("data.bin", b"\x93NUMPY...") == "npy" and kind_of("notes") == "binary"


def test_compare_hashes_and_to_dict() -> None:
    same = compare_hashes("big.h5", (10, "ab" * 32), (10, "ab" * 32))
    assert same.verdict == "identical"
    d = compare_hashes("big.h5", (10, "ab" * 32), (12, "cd" * 32), note="not kept")
    assert d.verdict == "differs" and d.details["note"] == "not kept"
    assert set(d.to_dict()) == {"name", "verdict", "kind", "summary", "details"}
    assert isinstance(d, FileDiff)


def test_csv_and_json_need_no_numpy_and_nothing_heavy_is_imported(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        for name in ("numpy", "pandas", "pyarrow", "PIL"):
            sys.modules[name] = None  # importing them now fails
        from vestige.history.filediff import compare_bytes
        a = b"x,y\\n1,2.5\\n"
        print(compare_bytes("t.csv", a, b"x,y\\n1,2.5000000000001\\n").verdict)
        print(compare_bytes("t.json", b'{"a": [1, 2.5]}', b'{"a": [1, 3]}').verdict)
        print(compare_bytes("w.npy", b"\\x93NUMPY1", b"\\x93NUMPY2").details["note"])
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["close", "differs", "numpy is not installed: not "
                                        "compared as npy"]  # fmt: skip
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, vestige.history.filediff, vestige.history.diff; "
         "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'PIL') if m in sys.modules))"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert heavy.stdout.strip() == "[]", heavy.stderr


# -- real runs -------------------------------------------------------------------------------

TRAIN = """\
import argparse, json, os
import numpy as np
from PIL import Image
import vestige

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--model", default="vit")
args = p.parse_args()
rows = open("data/input.csv").read().split()
os.makedirs("out", exist_ok=True)
with open("out/table.csv", "w") as f:
    f.write("step,loss\\n")
    for i in range(4):
        f.write(f"{i},{SCALE * i * args.lr}\\n")
with open("out/summary.json", "w") as f:
    json.dump({"lr": args.lr, "rows": len(rows)}, f)
np.save("out/weights.npy", np.arange(6.0) * args.lr)
img = Image.new("RGB", (20, 10), "white")
if args.lr > 0.15:
    img.putpixel((0, 0), (0, 0, 0))
img.save("out/plot.png")
for step in range(3):
    vestige.log(step=step, loss=1 / (1 + step * args.lr))
vestige.keep({"lr": args.lr}, "params")
print("done")
"""


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Run 1 (lr 0.1, code v1), then the code changes: runs 2 (lr 0.2) and 3 (lr 0.3)."""
    base = tmp_path_factory.mktemp("diff")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        root = base / "proj"
        (root / "data").mkdir(parents=True)
        git(root, "init", "-q", "-b", "main")
        (root / ".gitignore").write_text("out/\n")
        (root / "data" / "input.csv").write_text("a\nb\nc\n")
        (root / "train.py").write_text(TRAIN.replace("SCALE", "1.0"))
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
        for lr in ("0.1", "0.2", "0.3"):
            done = vestige("run", "train.py", "--lr", lr, cwd=root)
            assert done.returncode == 0, done.stderr.decode()
            (root / "train.py").write_text(TRAIN.replace("SCALE", "2.0"))
        yield Lab(root)


def _diff(lab: Lab, ref_a: str, ref_b: str) -> dict:
    from vestige.history.diff import diff_runs
    from vestige.repo import Repo

    repo = Repo.open(lab.root)
    try:
        return diff_runs(repo, repo.run(ref_a), repo.run(ref_b))
    finally:
        repo.close()


def test_diff_of_two_runs_section_by_section(lab: Lab) -> None:
    d = _diff(lab, "1", "2")
    json.dumps(d, allow_nan=False)  # plain JSON
    assert d["differ"] == ["command", "params", "code", "outputs", "metrics", "artefacts"]
    assert (d["a"]["seq"], d["b"]["seq"]) == (1, 2)
    assert d["command"]["a"][-2:] == ["--lr", "0.1"] and d["command"]["b"][-2:] == ["--lr", "0.2"]
    assert d["params"] == {"added": {}, "removed": {}, "changed": {"lr": {"a": 0.1, "b": 0.2}}}
    [code] = d["code"]["files"]
    assert (code["path"], code["status"], code["note"]) == ("train.py", "modified", None)
    assert '-        f.write(f"{i},{1.0 * i * args.lr}\\n")' in code["diff"]
    assert '+        f.write(f"{i},{2.0 * i * args.lr}\\n")' in code["diff"]
    assert code["diff"].startswith("--- a/train.py (run #1)\n+++ b/train.py (run #2)\n")
    assert [(f["path"], f["status"]) for f in d["inputs"]] == [("data/input.csv", "same")]
    outputs = {f["path"]: f for f in d["outputs"]}
    assert {p: f["status"] for p, f in outputs.items()} == {
        "out/plot.png": "changed", "out/summary.json": "changed", "out/table.csv": "changed",
        "out/weights.npy": "changed",
    }  # fmt: skip
    table = outputs["out/table.csv"]["diff"]
    assert (table["kind"], table["verdict"]) == ("csv", "differs")
    assert table["details"]["max_abs"] == pytest.approx(1.2 - 0.3)
    plot = outputs["out/plot.png"]["diff"]
    assert plot["kind"] == "image" and plot["details"]["pixels_changed"] == 1
    assert outputs["out/weights.npy"]["diff"]["details"]["shape"] == [[6], [6]]
    assert outputs["out/summary.json"]["diff"]["details"]["first_differ"] == "$.lr"
    loss = d["metrics"]["loss"]
    assert loss["status"] == "changed"
    assert loss["a"] == pytest.approx(1 / 1.2) and loss["b"] == pytest.approx(1 / 1.4)
    assert loss["delta"] == pytest.approx(1 / 1.4 - 1 / 1.2)
    [art] = d["artefacts"]
    assert art["path"] == "params.json" and art["diff"]["verdict"] == "differs"
    assert d["env"]["python"]["a"] == d["env"]["python"]["b"]


def test_diff_runs_with_the_same_code(lab: Lab) -> None:
    d = _diff(lab, "2", "3")
    assert d["code"]["files"] == []
    assert "code" not in d["differ"] and "params" in d["differ"]
    same = _diff(lab, "3", "3")
    assert same["differ"] == []
    assert all(f["status"] == "same" and f["diff"] is None for f in same["outputs"])


def test_diff_tolerance_from_arguments_and_config(lab: Lab) -> None:
    from vestige.history.diff import diff_runs
    from vestige.repo import Repo

    def table_verdict(**tol: float) -> str:
        repo = Repo.open(lab.root)
        try:
            d = diff_runs(repo, repo.run("1"), repo.run("2"), **tol)
        finally:
            repo.close()
        [table] = [f for f in d["outputs"] if f["path"] == "out/table.csv"]
        return str(table["diff"]["verdict"])

    assert table_verdict() == "differs"
    assert table_verdict(atol=1.0) == "close"
    config = lab.root / ".vestige" / "config.toml"
    config.write_text("[compare]\natol = 1.0\n")
    try:
        assert table_verdict() == "close"
        assert table_verdict(atol=0.0) == "differs"
    finally:
        config.unlink()


def invoke(lab: Lab, monkeypatch: pytest.MonkeyPatch, module: str, *args: str) -> str:
    """Run a command object through click's runner, in the project (not a terminal)."""
    import importlib

    monkeypatch.chdir(lab.root)
    command = importlib.import_module(f"vestige.cli.{module}").command
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_diff_text(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(lab, monkeypatch, "cmd_diff", "1", "2")
    assert "\x1b[" not in out  # colour only on a terminal
    lines = out.splitlines()
    assert lines[0].startswith("run #1 (") and " -> run #2 (" in lines[0]
    assert "  ~ lr: 0.1 -> 0.2" in lines
    assert "code (1 file changed)" in lines and "  modified  train.py" in lines
    assert "--- a/train.py (run #1)" in lines
    assert any(line.startswith("@@ ") for line in lines)
    assert "outputs (4 changed)" in lines
    [table] = [line for line in lines if line.startswith("  changed  out/table.csv")]
    assert "csv, differs: shape (4, 2) -> (4, 2); max abs diff 0.9" in table
    [plot] = [line for line in lines if line.startswith("  changed  out/plot.png")]
    assert "20x10 -> 20x10; 0.5% of pixels changed" in plot
    [loss] = [line for line in lines if line.startswith("  ~ loss")]
    assert "0.833333 -> 0.714286" in loss and "(-0.119048)" in loss
    assert lines[-1] == "runs #1 and #2 do not differ in env, inputs"
    short = invoke(lab, monkeypatch, "cmd_diff", "1", "2", "--no-code")
    assert "  modified  train.py" in short and "@@" not in short


def test_diff_json_and_no_difference(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(invoke(lab, monkeypatch, "cmd_diff", "-2", "-1", "--json"))
    assert set(data) == {"a", "b", "differ", "command", "params", "code", "env", "inputs",
                         "outputs", "metrics", "artefacts"}  # fmt: skip
    assert (data["a"]["seq"], data["b"]["seq"]) == (2, 3)
    out = invoke(lab, monkeypatch, "cmd_diff", "3", "@last")
    assert out.splitlines()[-1] == (
        "runs #3 and #3 do not differ in command, params, code, env, inputs, outputs, "
        "metrics, artefacts"
    )


def test_compare_table(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(lab, monkeypatch, "cmd_compare", "1", "2", "3")
    lines = out.splitlines()
    assert lines[0].split() == ["#", "status", "lr", "loss"]
    assert lines[1].split() == ["1", "ok", "0.1", "0.833333"]
    assert lines[3].split() == ["3", "ok", "0.3", "0.625"]
    assert lines[-1] == "constant: model=vit"
    every = invoke(lab, monkeypatch, "cmd_compare", "--where", "params.model = vit", "--all")
    lines = every.splitlines()
    assert lines[0].split() == ["#", "status", "lr", "loss", "model"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]  # oldest first
    data = json.loads(invoke(lab, monkeypatch, "cmd_compare", "3", "1", "--json"))
    assert [r["seq"] for r in data["runs"]] == [3, 1]
    assert [(c["name"], c["differs"]) for c in data["columns"]] == [
        ("lr", True), ("loss", True), ("model", False)]  # fmt: skip
    assert data["columns"][0]["values"] == [0.3, 0.1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["diff", "1", "99"], "no run #99"),
        (["diff", "1"], "Missing argument"),
        (["compare", "1"], "at least 2 runs"),
        (["compare", "1", "1"], "at least 2 runs"),
        (["compare"], "name the runs to compare"),
        (["compare", "1", "2", "--where", "seq > 0"], "not both"),
        (["compare", "--where", "seq = 1"], "--where matches 1 run"),
        (["compare", "--where", "seq <"], "bad --where"),
        (["compare", "1", "nope"], "no run matches 'nope'"),
    ],
)
def test_bad_input_is_one_error_line_exit_2(
    lab: Lab,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    from vestige.cli import _app, main

    monkeypatch.setitem(_app.COMMANDS, "diff", ("cmd_diff", "Show how two runs differ."))
    monkeypatch.setitem(_app.COMMANDS, "compare", ("cmd_compare", "Compare runs."))
    monkeypatch.chdir(lab.root)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("error: ") and needle in line


# -- helpers ---------------------------------------------------------------------------------


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _npy(np: object, array: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)  # type: ignore[attr-defined]
    return buf.getvalue()


def _npz(np: object, **arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[attr-defined]
    return buf.getvalue()


def _parquet(frame: object) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)  # type: ignore[attr-defined]
    return buf.getvalue()


def _png(image: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")  # type: ignore[attr-defined]
    return buf.getvalue()


def test_py_shortcut_records_the_command_as_typed_not_the_interpreter(
    project: Path, tmp_path: Path
) -> None:
    """`vestige run train.py` in two venvs: the same command (as typed), no command change
    in `diff`; the interpreter each ran with stays in its environment record; rerun and
    export still know how to run it."""
    (project / "train.py").write_text("import sys\nprint(sys.argv[1:])\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "train")
    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    assert vestige("run", "train.py", "--lr", "0.1", cwd=project).returncode == 0
    done = vestige("run", "train.py", "--lr", "0.1", cwd=project,
                   env={"VIRTUAL_ENV": str(other)})  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    diff = json.loads(vestige("diff", "1", "2", "--json", cwd=project).stdout)
    assert diff["command"] == {"a": ["train.py", "--lr", "0.1"], "b": ["train.py", "--lr", "0.1"]}
    text = vestige("diff", "1", "2", cwd=project).stdout.decode()
    assert "do not differ in command" in text, text
    shown = [json.loads(vestige("show", n, "--json", cwd=project).stdout) for n in ("1", "2")]
    assert [s["params"] for s in shown] == [{"lr": 0.1}, {"lr": 0.1}]
    from vestige.repo import Repo

    repo = Repo.open(project)
    try:
        used = [repo.environment(repo.run(n))["python"]["executable"] for n in ("1", "2")]
    finally:
        repo.close()
    assert used[1] == str(other / "bin" / "python") and used[0] != used[1]
    rerun = vestige("rerun", "2", "--json", cwd=project)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert json.loads(vestige("show", "3", "--json", cwd=project).stdout)["command"] == [
        "train.py", "--lr", "0.1"
    ]  # fmt: skip
