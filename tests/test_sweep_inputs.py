"""Sweeps: what is checked before anything runs (axes without values, missing programs,
empty globs), what --skip-done compares for commands vestige cannot see read (the files
their arguments name), and the wording of the summary, `ls --sweep` and `compare --sweep`
(real `vestige run` processes in a real git project)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git, vestige

from vestige.errors import UsageError
from vestige.sweep.spec import combinations


@pytest.fixture
def proj(project: Path) -> Path:
    """A project with tracked data, an ignored folder and a few commands to sweep."""
    (project / "data").mkdir()
    (project / "data" / "a.csv").write_text("1,2\n")
    (project / "data" / "b.csv").write_text("3,4\n")
    (project / "raw").mkdir()
    (project / "raw" / "x.csv").write_text("5\n")
    (project / "out").mkdir()
    (project / ".gitignore").write_text("raw/\nout/\n")
    (project / "step.sh").write_text('echo "step $1"\n')
    (project / "show.sh").write_text('cat "${1#--file=}"\n')
    (project / "write.sh").write_text('echo "made $1" > "$1"\n')
    (project / "count.py").write_text(  # reads its file through another program: unseen
        "import subprocess, sys\nsubprocess.run(['wc', '-c', sys.argv[1]], check=True)\n"
    )
    (project / "ok.py").write_text("print('ok')\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "sweep inputs")
    return project


def sweep(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return vestige("run", *args, cwd=root)


def last_statuses(root: Path) -> dict[str, str]:
    """{values as `k=v`: status} of the newest sweep's children."""
    listed = json.loads(vestige("ls", "--json", cwd=root).stdout)
    parent = next(r for r in listed if r["command"][:2] == ["vestige", "run"])
    shown = json.loads(vestige("show", str(parent["seq"]), "--json", cwd=root).stdout)
    return {
        " ".join(f"{k}={v}" for k, v in c["values"].items()): c["status"]
        for c in shown["sweep"]["children"]
    }


def assert_usage_error(done: subprocess.CompletedProcess[bytes], root: Path, needle: str) -> None:
    """Exit 2, one `error:` line that says `needle`, and nothing recorded."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert not (root / ".vestige").exists()


# -- axes without values ----------------------------------------------------------------

EMPTY_AXES = [
    ({"k": {"range": [5, 1, 1]}}, "k: range [5, 1, 1] gives no values"),
    ({"k": {"range": [0]}}, "k: range [0] gives no values"),
    ({"k": {"range": [0.5, 0.1, 0.1]}}, "k: range [0.5, 0.1, 0.1] gives no values"),
    ({"m": ["a"], "k": {"range": [3, 3]}}, "k: range [3, 3] gives no values"),
    ({"k": []}, "k: expected a non-empty list"),
]


@pytest.mark.parametrize(("grid", "needle"), EMPTY_AXES, ids=[n for _, n in EMPTY_AXES])
def test_a_grid_axis_without_values_fails_before_anything_runs(
    proj: Path, grid: dict, needle: str
) -> None:
    (proj / "g.json").write_text(json.dumps(grid))
    argv = ["--", "echo", *(f"{{{name}}}" for name in grid)]
    assert_usage_error(sweep(proj, "--grid", "g.json", *argv), proj, needle)


def test_any_axis_without_values_is_an_error_naming_it() -> None:
    with pytest.raises(UsageError, match="'seed' has no values"):
        combinations([("model", ["a", "b"]), ("seed", [])])


# -- programs that do not exist -------------------------------------------------------------

MISSING = [
    (["--each", "k=5,10", "--", "nosuch.py", "--k", "{k}"], "script not found: nosuch.py"),
    (["--each", "k=5,10", "--", "nosuchprogram", "{k}"],
     "command not found: nosuchprogram (is it on PATH?)"),
    (["--each", "k=1", "--", "./nope.sh", "{k}"],
     "command not found or not executable: ./nope.sh"),
    (["--each", "script=ok.py,gone.py", "--", "{script}", "--x", "1"],
     "script not found: gone.py (the command for script=gone.py)"),
    (["--each", "m=a,b", "--", "nb-{m}.ipynb"], "notebook not found: nb-a.ipynb"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needle"), MISSING, ids=[n for _, n in MISSING])
def test_a_missing_script_or_program_fails_before_anything_runs(
    proj: Path, args: list[str], needle: str
) -> None:
    assert_usage_error(sweep(proj, *args), proj, needle)


def test_a_program_from_a_placeholder_runs_when_every_one_exists(proj: Path) -> None:
    (proj / "ok2.py").write_text("print('ok2')\n")
    done = sweep(proj, "--each", "script=ok.py,ok2.py", "--", "{script}")
    assert done.returncode == 0, done.stderr.decode()
    assert last_statuses(proj) == {"script=ok.py": "ok", "script=ok2.py": "ok"}


# -- --skip-done and the files a command names -----------------------------------------------


def done_then(proj: Path, args: list[str], edit: Callable[[], object]) -> dict[str, str]:
    """Sweep twice (the second skips every combination), `edit`, sweep again: that last
    sweep's statuses, over the same combinations."""
    assert sweep(proj, *args).returncode == 0
    assert sweep(proj, *args).returncode == 0
    done = last_statuses(proj)
    assert set(done.values()) == {"skipped"}, done
    edit()
    assert sweep(proj, *args).returncode == 0
    after = last_statuses(proj)
    assert set(after) == set(done)
    return after


def test_skip_done_sees_an_edited_shell_script(proj: Path) -> None:
    args = ["--each", "i=1,2", "--skip-done", "--", "bash", "step.sh", "{i}"]
    edited = done_then(proj, args, lambda: (proj / "step.sh").write_text('echo "step $1, e"\n'))
    assert edited == {"i=1": "ok", "i=2": "ok"}
    assert sweep(proj, *args).returncode == 0  # the edited script ran: done now
    assert last_statuses(proj) == {"i=1": "skipped", "i=2": "skipped"}


def test_skip_done_sees_a_changed_data_file_a_glob_named(proj: Path) -> None:
    args = ["--each", "f=glob:data/*.csv", "--skip-done", "--", "wc", "-c", "{f}"]
    edited = done_then(proj, args, lambda: (proj / "data" / "a.csv").write_text("1,2\n10,20\n"))
    assert edited == {"f=data/a.csv": "ok", "f=data/b.csv": "skipped"}


def test_skip_done_sees_a_file_named_as_an_option_value(proj: Path) -> None:
    args = ["--each", "f=a,b", "--skip-done", "--", "bash", "show.sh", "--file=data/{f}.csv"]
    assert sweep(proj, *args).returncode == 0
    (proj / "data" / "b.csv").write_text("3,4,5\n")
    assert sweep(proj, *args).returncode == 0
    assert last_statuses(proj) == {"f=a": "skipped", "f=b": "ok"}


def test_skip_done_reruns_when_the_earlier_run_has_no_record_of_the_bytes(proj: Path) -> None:
    """An ignored file is in no snapshot; untraced, a program outside Python leaves no
    record of its reads: nothing proves the file unchanged, so the combination runs again.
    Traced (capture/trace.py), its read is an input: unchanged, the combination is done."""
    for flag, expected in (("--no-trace", "ok"), ("--trace", "skipped")):
        args = [flag, "--each", "f=glob:raw/*.csv", "--skip-done", "--", "wc", "-c", "{f}"]
        assert sweep(proj, *args).returncode == 0
        assert sweep(proj, *args).returncode == 0
        if flag == "--trace" and shutil.which("strace") is None:
            expected = "ok"
        assert last_statuses(proj) == {"f=raw/x.csv": expected}, flag


def test_skip_done_checks_a_python_scripts_file_arguments_too(proj: Path) -> None:
    args = ["--each", "f=a,b", "--skip-done", "--", "count.py", "data/{f}.csv"]
    edited = done_then(proj, args, lambda: (proj / "data" / "a.csv").write_text("1,2,3\n"))
    assert edited == {"f=a": "ok", "f=b": "skipped"}


def test_skip_done_takes_an_output_as_the_run_left_it(proj: Path) -> None:
    """A file the command wrote is recorded with the bytes it left: unchanged since, the
    combination is done; edited since, it runs again."""
    args = ["--each", "i=1,2", "--skip-done", "--", "bash", "write.sh", "out/{i}.txt"]
    edited = done_then(proj, args, lambda: (proj / "out" / "2.txt").write_text("edited\n"))
    assert edited == {"i=1": "skipped", "i=2": "ok"}
    assert (proj / "out" / "2.txt").read_text() == "made out/2.txt\n"


# -- wording -------------------------------------------------------------------------------


def test_the_summary_counts_one_child_and_several_children(proj: Path) -> None:
    done = sweep(proj, "--each", "i=1", "--", "echo", "{i}")
    assert done.returncode == 0 and "sweep #1: 1 child: 1 ok" in done.stdout.decode()
    done = sweep(proj, "--each", "i=1,2", "--", "echo", "{i}")
    assert done.returncode == 0 and "sweep #3: 2 children: 2 ok" in done.stdout.decode()


def test_an_empty_glob_pattern_says_so(proj: Path) -> None:
    done = sweep(proj, "--each", "f=glob:", "--", "wc", "{f}")
    assert_usage_error(done, proj, "--each 'f=glob:': the glob pattern is empty")
    assert "f=glob:'data/*.csv'" in done.stderr.decode()
    (proj / "g.json").write_text(json.dumps({"f": "glob:"}))
    done = sweep(proj, "--grid", "g.json", "--", "wc", "{f}")
    assert_usage_error(done, proj, "f: 'glob:': the glob pattern is empty")


def test_ls_and_compare_sweep_of_a_run_that_is_no_sweep(proj: Path) -> None:
    assert vestige("run", "echo", "hi", cwd=proj).returncode == 0
    for command in ("ls", "compare"):
        done = vestige(command, "--sweep", "1", cwd=proj)
        assert done.returncode == 2, (command, done.stdout)
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "run #1 is not a sweep" in lines[0], lines


def test_compare_sweep_with_one_child_talks_of_the_sweep(proj: Path) -> None:
    assert sweep(proj, "--each", "i=1", "--", "echo", "{i}").returncode == 0
    assert vestige("ls", "--sweep", "1", cwd=proj).returncode == 0
    done = vestige("compare", "--sweep", "1", cwd=proj)
    assert done.returncode == 2
    text = done.stderr.decode()
    assert "sweep #1 has 1 recorded child" in text and "--where" not in text, text
    assert sweep(proj, "--each", "i=1,2", "--", "echo", "{i}").returncode == 0
    done = vestige("compare", "--sweep", "3", "--where", "params.i = 9", cwd=proj)
    assert done.returncode == 2
    assert "sweep #3 has 0 recorded children for which --where holds" in done.stderr.decode()


def test_ls_sweep_of_a_sweep_still_running(proj: Path) -> None:
    """A running sweep has no manifest yet: its live directory says it is a sweep."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", "s=30", "--", "sleep", "{s}"],
        cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        live = proj / ".vestige" / "live"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if live.is_dir() and len(os.listdir(live)) >= 2:  # the parent and its child
                break
            time.sleep(0.2)
        done = vestige("ls", "--sweep", "1", "--json", cwd=proj)
        assert done.returncode == 0, done.stderr.decode()
        children = json.loads(done.stdout)
        assert len(children) == 1 and children[0]["command"][-2:] == ["sleep", "30"], children
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)


def test_doubled_braces_are_literal_braces(proj: Path) -> None:
    """As in str.format: a shell's ${HOME} is written ${{HOME}}; a single {HOME} is a
    placeholder without values (exit 2, and the message says how to write a brace)."""
    bad = vestige("run", "--each", "i=1", "--", "sh", "-c", "echo ${HOME} {i}", cwd=proj)
    assert bad.returncode == 2 and b"{{HOME}}" in bad.stderr, bad.stderr
    done = vestige("run", "--each", "i=1,2", "--", "sh", "-c",
                   "echo ${{HOME}}-{i}-{{i}} > out/b{i}.txt", cwd=proj)  # fmt: skip
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    home = os.environ["HOME"]
    for i in ("1", "2"):
        assert (proj / "out" / f"b{i}.txt").read_text() == f"{home}-{i}-{{i}}\n"


def test_a_backslash_escapes_a_comma_in_each_values(proj: Path) -> None:
    """`--each shape=3\\,4,5\\,6` gives two values, `3,4` and `5,6`; a backslash before
    anything else is kept (a regex `\\d+` stays as written)."""
    done = vestige("run", "--each", "shape=3\\,4,5\\,6", "--each", "pat=\\d+", "--",
                   "sh", "-c", "echo '{shape} {pat}' > 'out/{shape}.txt'", cwd=proj)  # fmt: skip
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert (proj / "out" / "3,4.txt").read_text() == "3,4 \\d+\n"
    assert (proj / "out" / "5,6.txt").read_text() == "5,6 \\d+\n"
    assert last_statuses(proj) == {"pat=\\d+ shape=3,4": "ok", "pat=\\d+ shape=5,6": "ok"}


def test_each_backslash_rules(tmp_path: Path) -> None:
    """`\\,` is a comma, `\\\\` one backslash, any other backslash stays (docs/cli.md)."""
    from vestige.sweep.spec import parse_each

    assert parse_each("v=3\\,4,5", tmp_path) == ("v", ["3,4", "5"])
    assert parse_each("v=a\\\\,b", tmp_path) == ("v", ["a\\", "b"])
    assert parse_each("v=\\d+,x\\y,end\\", tmp_path) == ("v", ["\\d+", "x\\y", "end\\"])
    with pytest.raises(UsageError, match="empty value"):
        parse_each("v=a,\\,,", tmp_path)
