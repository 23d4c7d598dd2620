"""`vestige run` end to end: real commands in real subprocesses (the CLI itself runs as
`python -m vestige`), real git projects, then what a user would check with `vestige show
--json`, `ls --json`, `cat` and `log`: the command behaves exactly as without vestige
(output, stdin, exit code, signals, terminal), and the sealed run holds its code, params,
inputs, outputs and logs (docs/format.md)."""

from __future__ import annotations

import glob
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3
from conftest import git, vestige

import vestige as vestige_package

pytestmark = pytest.mark.timeout(120)

PY = sys.executable
CREATED = b"vestige: created a store at "
HANG_GUARD_S = 60


# ---------------------------------------------------------------------------- helpers


def write_script(where: Path, name: str, text: str) -> Path:
    path = where / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def b3(data: bytes | Path) -> str:
    return blake3(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


def run(cwd: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """`vestige run ARGS...` in `cwd`."""
    return vestige("run", *args, cwd=cwd, **kwargs)


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    """stdout of a vestige command that must succeed."""
    assert done.returncode == 0, (done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout


def show_json(cwd: Path, ref: str = "@last") -> dict[str, Any]:
    return json.loads(ok(vestige("show", ref, "--json", cwd=cwd)))


def ls_json(cwd: Path) -> list[dict[str, Any]]:
    return json.loads(ok(vestige("ls", "--json", cwd=cwd)))


def cat(cwd: Path, ref: str, path: str) -> bytes:
    return ok(vestige("cat", ref, path, cwd=cwd))


def log(cwd: Path, ref: str = "@last", stderr: bool = False) -> bytes:
    return ok(vestige("log", ref, *(["--stderr"] if stderr else []), cwd=cwd))


def by_path(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in records}


def confirmed(record: dict[str, Any]) -> bool:
    """A file record's `confirmed` flag (docs/format.md: optional, absent means true)."""
    return record.get("confirmed", True)


def user_stderr(data: bytes) -> bytes:
    """stderr without vestige's one-time notice that it created the store."""
    return b"".join(line for line in data.splitlines(True) if not line.startswith(CREATED))


def popen_vestige(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """`vestige ARGS...` in its own session, so that a signal reaches only vestige."""
    return subprocess.Popen(
        [PY, "-m", "vestige", *args],
        cwd=cwd,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def read_until(stream: Any, marker: bytes) -> bytes:
    """Read lines from a pipe until one holds `marker` (EOF first fails the test)."""
    seen = b""
    while marker not in seen:
        line = stream.readline()
        assert line, f"output ended before {marker!r}: {seen!r}"
        seen += line
    return seen


def python_version(exe: str) -> str:
    done = subprocess.run(
        [exe, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return done.stdout.strip()


# ---------------------------------------------------------------------------- 1. a Python analysis

ANALYZE = """
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

parser = argparse.ArgumentParser()
parser.add_argument("--scale", type=float, default=1.0)
parser.add_argument("--title", default="doubled")
parser.add_argument("--bins", type=int, default=10)
args = parser.parse_args()

with open("data.csv", newline="") as f:
    rows = list(csv.DictReader(f))
xs = [float(r["x"]) for r in rows]
ys = [float(r["y"]) * args.scale for r in rows]
os.makedirs("out", exist_ok=True)
with open("out/result.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["x", "y"])
    for x, y in zip(xs, ys):
        w.writerow([x, y])
fig, ax = plt.subplots()
ax.plot(xs, ys)
ax.set_title(args.title)
fig.savefig("out/plot.png")
print(f"read {len(rows)} rows")
print("scale ×", args.scale, "→ done")
sys.stdout.flush()
sys.stdout.buffer.write(b"no newline at the end")
"""

DATA_CSV = b"x,y\n1,2\n2,4\n3,8\n"
ANALYZE_STDOUT = "read 3 rows\nscale × 3.0 → done\n".encode() + b"no newline at the end"


def test_python_analysis_records_inputs_outputs_params_and_stdout(project: Path) -> None:
    write_script(project, "analyze.py", ANALYZE)
    (project / "data.csv").write_bytes(DATA_CSV)

    done = run(project, PY, "analyze.py", "--scale", "3")

    assert done.returncode == 0, done.stderr
    assert done.stdout == ANALYZE_STDOUT  # passed through byte for byte
    m = show_json(project)
    assert m["status"] == "ok" and m["exit_code"] == 0 and m["signal"] is None
    outputs = by_path(m["outputs"])
    assert set(outputs) == {"out/result.csv", "out/plot.png"}
    for rel, rec in outputs.items():
        assert rec["hash"] == b3(project / rel), rel
        assert rec["size"] == (project / rel).stat().st_size
        assert rec["kept"] and confirmed(rec), rec
    assert (project / "out/plot.png").read_bytes().startswith(b"\x89PNG")
    assert cat(project, "@last", "out/result.csv") == (project / "out/result.csv").read_bytes()
    inputs = by_path(m["inputs"])
    assert set(inputs) == {"data.csv"}, inputs
    assert inputs["data.csv"]["hash"] == b3(DATA_CSV) and inputs["data.csv"]["kept"]
    assert cat(project, "@last", "data.csv") == DATA_CSV
    assert m["params"] == {"scale": 3.0, "title": "doubled", "bins": 10}
    assert log(project) == ANALYZE_STDOUT
    assert m["stdout"]["size"] == len(ANALYZE_STDOUT)


# ---------------------------------------------------------------------------- 2. a shell command


def test_bash_command_output_file_and_separate_streams(project: Path) -> None:
    done = run(
        project,
        "bash",
        "-c",
        "printf 'to stdout\\n'; printf 'to stderr\\n' >&2; printf 'made\\n' > made.txt",
    )

    assert done.returncode == 0
    assert done.stdout == b"to stdout\n"
    assert user_stderr(done.stderr) == b"to stderr\n"
    m = show_json(project)
    assert m["status"] == "ok"
    made = by_path(m["outputs"])["made.txt"]
    assert made["hash"] == b3(b"made\n") and made["kept"]
    # bash is traced (capture/trace.py): its write is known, not guessed; without the
    # tracer only the folder scan sees it
    assert confirmed(made) is (shutil.which("strace") is not None)
    assert log(project) == b"to stdout\n"
    assert log(project, stderr=True) == b"to stderr\n"


# ---------------------------------------------------------------------------- 3. exit codes


def test_exit_code_is_passed_through(project: Path) -> None:
    done = run(project, PY, "-c", "import sys; print('bye'); sys.exit(3)")

    assert done.returncode == 3
    assert done.stdout == b"bye\n"
    m = show_json(project)
    assert (m["status"], m["exit_code"], m["signal"]) == ("failed", 3, None)


# ---------------------------------------------------------------------------- 4-5. signals

SLEEPER = """
import time
print("working on it", flush=True)
print("ready", flush=True)
time.sleep(60)
print("never printed", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_vestige_interrupts_the_run(project: Path, sig: signal.Signals) -> None:
    write_script(project, "sleeper.py", SLEEPER)
    proc = popen_vestige(project, "run", PY, "sleeper.py")
    try:
        printed = read_until(proc.stdout, b"ready\n")
        os.kill(proc.pid, sig)  # vestige only: it must pass the signal on to the command
        rest, _err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode in (-sig, 128 + sig)  # vestige dies of the command's signal
    assert b"never printed" not in printed + rest
    m = show_json(project)
    assert m["status"] == "interrupted"
    assert (m["exit_code"], m["signal"]) == (128 + sig, sig.name)
    assert log(project) == b"working on it\nready\n"


def test_a_signal_that_comes_before_the_commands_pid_is_known_is_not_lost(
    tmp_path: Path,
) -> None:
    """The command's output reaches the user through its tee, which may print "ready" before
    vestige has read the command's pid from it (on a busy machine); a signal sent to vestige
    then was dropped, and vestige waited for a command that never heard of it."""
    from vestige.recording.runner import Launch, RunOptions

    launch = Launch([PY, "-c", "pass"], RunOptions(cwd=str(tmp_path)))
    launch._on_signal(signal.SIGTERM, None)  # (no pid yet: the tee has not said it)
    sleeper = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        launch._child_known(sleeper.pid)
        assert sleeper.wait(timeout=HANG_GUARD_S) == -signal.SIGTERM
    finally:
        sleeper.kill()
        sleeper.wait()


DISPOSITIONS = (
    "import signal; print([signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, "
    "signal.SIGTERM, signal.SIGHUP)])"
)


@pytest.mark.parametrize("ignored", [(), (signal.SIGINT,), (signal.SIGINT, signal.SIGHUP)],
                         ids=["none", "INT", "INT+HUP"])  # fmt: skip
def test_the_command_starts_with_the_signals_it_would_have_bare(
    project: Path, ignored: tuple[int, ...]
) -> None:
    """A script's background job (`cmd &` in sh) starts with SIGINT ignored, `nohup` with
    SIGHUP: the program under vestige inherits that as it would bare, neither more nor
    less (vestige used to reset them to their default, so Ctrl-C killed a job the shell
    had shielded from it)."""

    def ignore() -> None:  # (from defaults: the suite itself may run under nohup, or `&`)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)

    bare = subprocess.run([PY, "-c", DISPOSITIONS], capture_output=True, preexec_fn=ignore)
    under = subprocess.run([PY, "-m", "vestige", "run", PY, "-c", DISPOSITIONS], cwd=project,
                           capture_output=True, preexec_fn=ignore)  # fmt: skip
    assert under.returncode == 0, under.stderr.decode()
    assert under.stdout == bare.stdout
    assert (b"True" in bare.stdout) == bool(ignored)


KILLS_ITSELF = """
import os
with open("partial.txt", "w") as f:
    f.write("half done")
print("about to die", flush=True)
os.kill(os.getpid(), 9)
"""


def test_command_killed_by_sigkill_is_sealed_as_failed(project: Path) -> None:
    write_script(project, "dies.py", KILLS_ITSELF)

    done = run(project, PY, "dies.py")

    assert done.returncode in (-9, 137)
    assert done.stdout == b"about to die\n"
    m = show_json(project)
    assert (m["status"], m["exit_code"], m["signal"]) == ("failed", 137, "SIGKILL")
    partial = by_path(m["outputs"])["partial.txt"]
    assert partial["hash"] == b3(b"half done") and confirmed(partial)
    assert log(project) == b"about to die\n"


# ---------------------------------------------------------------------------- 6. multiprocessing

POOL = """
import multiprocessing as mp
import os
import sys


def work(i):
    with open(os.path.join("parts", "part%d.txt" % i), "w") as f:
        f.write("part %d from %d" % (i, os.getpid()))
    return os.getpid()


if __name__ == "__main__":
    os.makedirs("parts", exist_ok=True)
    pool = mp.get_context(sys.argv[1]).Pool(2)
    pids = pool.map(work, range(4), chunksize=1)
    pool.close()
    pool.join()
    print("workers other than main:", os.getpid() not in pids)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_workers_outputs_are_confirmed(project: Path, method: str) -> None:
    write_script(project, "pool.py", POOL)

    done = run(project, PY, "pool.py", method)

    assert done.returncode == 0, done.stderr
    assert done.stdout == b"workers other than main: True\n"
    m = show_json(project)
    outputs = by_path(m["outputs"])
    expected = {f"parts/part{i}.txt" for i in range(4)}
    assert set(outputs) == expected
    for rel in expected:
        assert outputs[rel]["hash"] == b3(project / rel)
        assert confirmed(outputs[rel]), f"{rel}: the worker's write was not seen"


# ---------------------------------------------------------------------------- 7. code snapshot


def test_snapshot_has_uncommitted_edits_and_untracked_files_not_ignored_ones(
    project: Path,
) -> None:
    (project / ".gitignore").write_text("cache/\nresults/\n")
    write_script(project, "train.py", "print('v1')\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "train v1")
    edited = textwrap.dedent("""
        import os
        os.makedirs("results", exist_ok=True)
        with open("results/model.txt", "w") as f:
            f.write("weights")
        print("v2")
    """).lstrip()
    (project / "train.py").write_text(edited)  # not committed
    (project / "notes.txt").write_text("untracked, not ignored\n")
    (project / "cache").mkdir()
    (project / "cache" / "blob.bin").write_bytes(b"\0" * 100)  # git-ignored

    done = run(project, PY, "train.py")

    assert done.returncode == 0 and done.stdout == b"v2\n"
    m = show_json(project)
    assert m["code"]["git"]["dirty"] is True
    assert m["code"]["git"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert m["code"]["git"]["branch"] == "main"
    assert cat(project, "@last", "train.py") == edited.encode()
    assert cat(project, "@last", "notes.txt") == b"untracked, not ignored\n"
    assert m["code"]["files"] == 4  # README.md .gitignore train.py notes.txt
    missing = vestige("cat", "@last", "cache/blob.bin", cwd=project)
    assert missing.returncode == 2 and missing.stderr.startswith(b"error: ")
    model = by_path(m["outputs"])["results/model.txt"]  # ignored by git, still an output
    assert model["hash"] == b3(b"weights") and confirmed(model)
    assert cat(project, "@last", "results/model.txt") == b"weights"


# ---------------------------------------------------------------------------- 8-9. params


def test_script_first_runs_with_the_current_interpreter(project: Path) -> None:
    write_script(
        project,
        "script.py",
        """
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float)
        print(p.parse_args().lr)
        """,
    )

    done = run(project, "script.py", "--lr", "0.1")

    assert done.returncode == 0, done.stderr
    assert done.stdout == b"0.1\n"
    m = show_json(project)
    assert m["command"] == ["script.py", "--lr", "0.1"]  # as typed; the interpreter:
    assert os.path.samefile(m["environment"]["python"]["executable"], PY)
    assert m["params"] == {"lr": 0.1}
    assert isinstance(m["params"]["lr"], float)


def test_params_from_argv_when_the_script_parses_nothing(project: Path) -> None:
    write_script(project, "s.py", "import sys\nprint(len(sys.argv))\n")

    done = run(project, PY, "s.py", "--lr", "0.1", "--name=x", "epochs=3", "--flag")

    assert done.returncode == 0
    assert show_json(project)["params"] == {"lr": 0.1, "name": "x", "epochs": 3, "flag": True}


def test_params_from_click(project: Path) -> None:
    write_script(
        project,
        "c.py",
        """
        import click

        @click.command()
        @click.option("--lr", type=float, default=0.01)
        @click.option("--epochs", type=int, default=10)
        @click.option("--model", default="vit")
        def main(lr, epochs, model):
            print(lr, epochs, model)

        if __name__ == "__main__":
            main()
        """,
    )

    done = run(project, PY, "c.py", "--lr", "0.5", "--model", "resnet")

    assert done.returncode == 0, done.stderr
    assert done.stdout == b"0.5 10 resnet\n"
    assert show_json(project)["params"] == {"lr": 0.5, "epochs": 10, "model": "resnet"}


ARGPARSE_RENAMED = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--learning-rate", "--lr", dest="rate", type=float, default=1.0)
p.add_argument("--tag", type=str, default="none")
print(vars(p.parse_args()))
"""


def test_param_option_adds_and_argparse_beats_argv_heuristics(project: Path) -> None:
    write_script(project, "s.py", "print('hi')\n")
    ok(run(project, "--param", "note=hello", PY, "s.py"))
    assert show_json(project)["params"] == {"note": "hello"}

    write_script(project, "a.py", ARGPARSE_RENAMED)
    ok(run(project, PY, "a.py", "--lr", "0.1", "--tag", "007"))
    # argparse's view (dest names, its types, defaults), not a guess from argv
    assert show_json(project)["params"] == {"rate": 0.1, "tag": "007"}

    ok(run(project, "--param", "note=again", "--param", "rate=0.2", PY, "a.py", "--lr", "0.1"))
    assert show_json(project)["params"] == {"rate": 0.2, "tag": "none", "note": "again"}


# ---------------------------------------------------------------------------- 10. outside the tree


def test_files_outside_the_project_are_recorded_by_absolute_path(
    project: Path, tmp_path: Path
) -> None:
    outside = (tmp_path / "elsewhere").resolve()
    outside.mkdir()
    (outside / "in.txt").write_bytes(b"outside input\n")
    write_script(
        project,
        "io.py",
        """
        import sys
        src, dst = sys.argv[1], sys.argv[2]
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "wb") as f:
            f.write(data.upper())
        """,
    )
    src, dst = str(outside / "in.txt"), str(outside / "out.bin")

    ok(run(project, PY, "io.py", src, dst))

    m = show_json(project)
    out = by_path(m["outputs"])
    assert set(out) == {dst}
    assert out[dst]["hash"] == b3(b"OUTSIDE INPUT\n") and out[dst]["kept"] and confirmed(out[dst])
    assert cat(project, "@last", dst) == b"OUTSIDE INPUT\n"
    inputs = by_path(m["inputs"])
    assert set(inputs) == {src}
    assert inputs[src]["hash"] == b3(b"outside input\n")
    assert cat(project, "@last", src) == b"outside input\n"


def test_vestiges_own_modules_are_not_the_runs_code(project: Path) -> None:
    """The in-code API loads vestige's modules (from every subpackage) into the user's
    process: none of them is recorded as code the run imported from outside the tree."""
    write_script(
        project,
        "api.py",
        """
        import vestige
        vestige.tag("t")
        vestige.log(step=0, x=1.0)
        import vestige.history.filediff, vestige.store.objects
        """,
    )
    ok(run(project, PY, "api.py"))
    m = show_json(project)
    assert m["tags"] == ["t"]
    package = str(Path(vestige_package.__file__).resolve().parent)
    mine = [mod["path"] for mod in m["code"]["modules"] if mod["path"].startswith(package)]
    assert mine == []


# ---------------------------------------------------------------------------- 11. no git


def test_project_without_git_snapshots_the_tree_minus_default_ignores(plain_dir: Path) -> None:
    write_script(plain_dir, "a.py", "print('plain')\n")
    (plain_dir / "data.txt").write_text("data\n")
    (plain_dir / "lib").mkdir()
    (plain_dir / "lib" / "util.py").write_text("X = 1\n")
    venv = plain_dir / ".venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "pkg.py").write_text("installed = True\n")
    other_env = plain_dir / "myenv"  # a venv under any name is known by its pyvenv.cfg
    other_env.mkdir()
    (other_env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (plain_dir / "__pycache__").mkdir()
    (plain_dir / "__pycache__" / "a.pyc").write_bytes(b"\0" * 16)

    done = run(plain_dir, PY, "a.py")

    assert done.returncode == 0 and done.stdout == b"plain\n"
    m = show_json(plain_dir)
    assert m["code"]["git"] is None
    assert m["code"]["files"] == 3  # a.py data.txt lib/util.py
    assert cat(plain_dir, "@last", "lib/util.py") == b"X = 1\n"
    hidden = [".venv/pyvenv.cfg", ".venv/lib/pkg.py", "myenv/pyvenv.cfg", "__pycache__/a.pyc"]
    for path in hidden:
        refused = vestige("cat", "@last", path, cwd=plain_dir)
        assert refused.returncode == 2, path
        assert refused.stdout == b""


# ---------------------------------------------------------------------------- 12. stdin


def test_stdin_is_passed_through(project: Path) -> None:
    done = run(project, PY, "-c", "import sys; print(sys.stdin.read().upper())", input=b"abc")

    assert done.returncode == 0
    assert done.stdout == b"ABC\n"
    assert log(project) == b"ABC\n"


# ---------------------------------------------------------------------------- 13. terminal


def run_in_pty(cwd: Path, *args: str) -> tuple[int, bytes]:
    """Run `vestige ARGS...` with stdout and stderr on a pseudo-terminal; (code, bytes seen)."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # see the bytes vestige wrote, not the tty's \r\n rewriting
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen(
            [PY, "-m", "vestige", *args],
            cwd=cwd,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    seen = b""
    deadline = time.monotonic() + HANG_GUARD_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            seen += data
        code = proc.wait(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen


TTY_SCRIPT = """
import os
import sys
print("tty", os.isatty(1), os.isatty(2))
sys.stdout.write("\\r 10%\\r 50%\\r100%\\n")
print("done")
"""


def test_terminal_command_sees_a_tty_and_progress_bars_are_stored_collapsed(
    project: Path,
) -> None:
    write_script(project, "bar.py", TTY_SCRIPT)

    code, seen = run_in_pty(project, "run", PY, "bar.py")

    assert code == 0, seen
    assert b"tty True True\n\r 10%\r 50%\r100%\ndone\n" in seen  # raw, no \r\n added
    assert log(project) == b"tty True True\n100%\ndone\n"
    assert b"\r\n" not in log(project)


# ---------------------------------------------------------------------------- 14-15. interpreters


def test_isolated_python_runs_and_its_outputs_are_found_by_the_scan(project: Path) -> None:
    write_script(
        project,
        "iso.py",
        """
        import sys
        with open("iso_out.txt", "w") as f:
            f.write("isolated")
        print("isolated", "sitecustomize" in sys.modules)
        """,
    )

    done = run(project, PY, "-I", "iso.py")

    assert done.returncode == 0, done.stderr
    assert done.stdout == b"isolated False\n"  # no shim: PYTHONPATH is ignored under -I
    m = show_json(project)
    assert m["status"] == "ok"
    out = by_path(m["outputs"])["iso_out.txt"]
    assert out["hash"] == b3(b"isolated") and confirmed(out) is False


@pytest.mark.parametrize("version", ["3.8", "3.12", "3.13"])
def test_another_python_interpreter_is_captured(project: Path, version: str) -> None:
    found = sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python3"))
    if not found:
        pytest.skip(f"no Python {version} under /root/.pyenv/versions")
    exe = found[-1]
    write_script(
        project,
        "old.py",
        """
        import sys
        with open("in.txt") as f:
            text = f.read()
        with open("out.txt", "w") as f:
            f.write(text[::-1])
        print("%d.%d" % sys.version_info[:2])
        """,
    )
    (project / "in.txt").write_text("abc")

    done = run(project, exe, "old.py")

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{version}\n".encode()
    m = show_json(project)
    assert m["environment"]["python"]["version"] == python_version(exe)
    assert by_path(m["inputs"])["in.txt"]["hash"] == b3(b"abc")
    out = by_path(m["outputs"])["out.txt"]
    assert out["hash"] == b3(b"cba") and confirmed(out)


# ---------------------------------------------------------------------------- 16. never break a run


def test_store_that_cannot_be_created_only_warns(project: Path) -> None:
    blocker = project / "blocker"
    blocker.write_text("a regular file\n")
    env = {"VESTIGE_DIR": str(blocker / ".vestige")}

    done = run(project, PY, "-c", "import sys; print('still ran'); sys.exit(3)", env=env)

    assert done.returncode == 3
    assert done.stdout == b"still ran\n"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and b"vestige: warning" in lines[0], done.stderr


def test_locked_index_only_warns_and_the_store_stays_sound(project: Path) -> None:
    ok(run(project, "true"))  # creates the store
    store = project / ".vestige"
    (store / "config.toml").write_text("[index]\ntimeout = 0.5\n")
    lock = sqlite3.connect(store / "index.sqlite", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        done = run(project, PY, "-c", "import sys; print('ran anyway'); sys.exit(3)")
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert done.returncode == 3
    assert done.stdout == b"ran anyway\n"
    assert b"vestige: warning" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    fsck = vestige("fsck", cwd=project)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    runs = ls_json(project)
    assert runs[-1]["command"] == ["true"] and runs[-1]["status"] == "ok"
    for later in runs[:-1]:  # recorded after all (the warning's promise), or not at all
        assert (later["status"], later["exit_code"]) == ("failed", 3), later


# ---------------------------------------------------------------------------- 17. usage errors


def test_missing_command_or_script_is_a_usage_error_and_records_nothing(project: Path) -> None:
    done = run(project, "no-such-program-xyz")
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.startswith(b"error: ") and len(done.stderr.splitlines()) == 1
    assert not (project / ".vestige").exists()  # nothing in the store was touched

    ok(run(project, "true"))
    for args in (["no-such-program-xyz"], ["missing.py"], ["./not-here.sh"]):
        done = run(project, *args)
        assert done.returncode == 2, args
        assert done.stderr.startswith(b"error: ") and len(done.stderr.splitlines()) == 1, args
    assert [r["command"] for r in ls_json(project)] == [["true"]]

    assert run(project).returncode == 2
    assert run(project, "--param", "a=1").returncode == 2


# ---------------------------------------------------------------------------- 18. nested runs


def test_nested_vestige_run_records_its_parent(project: Path) -> None:
    write_script(project, "inner.py", "open('inner.txt', 'w').write('in')\nprint('inner')\n")
    write_script(
        project,
        "outer.py",
        """
        import subprocess
        import sys
        print("outer", flush=True)
        subprocess.run([sys.executable, "-m", "vestige", "run", sys.executable, "inner.py"],
                       check=True)
        """,
    )

    done = run(project, PY, "outer.py")

    assert done.returncode == 0, done.stderr
    assert done.stdout == b"outer\ninner\n"
    runs = {r["command"][-1]: r for r in ls_json(project)}
    assert set(runs) == {"outer.py", "inner.py"}
    outer = show_json(project, runs["outer.py"]["id"])
    inner = show_json(project, runs["inner.py"]["id"])
    assert inner["parent"] == outer["id"]
    assert outer["parent"] is None
    assert "inner.txt" in by_path(inner["outputs"])


# ---------------------------------------------------------------------------- 19. read and write


def test_file_written_then_read_back_is_an_output_only(project: Path) -> None:
    write_script(
        project,
        "rw.py",
        """
        with open("made.txt", "w") as f:
            f.write("made here")
        with open("made.txt") as f:
            print(f.read())
        """,
    )

    ok(run(project, PY, "rw.py"))

    m = show_json(project)
    assert "made.txt" in by_path(m["outputs"])
    assert "made.txt" not in by_path(m["inputs"])


BUMP = """
with open("state.txt") as f:
    n = int(f.read().split("=")[1])
with open("state.txt", "w") as f:
    f.write("count=%d\\n" % (n + 1))
"""


def test_file_read_then_overwritten_is_input_and_output(project: Path) -> None:
    (project / "state.txt").write_text("count=1\n")
    write_script(project, "bump.py", BUMP)

    ok(run(project, PY, "bump.py"))

    m = show_json(project)
    before = by_path(m["inputs"])["state.txt"]
    after = by_path(m["outputs"])["state.txt"]
    assert before["hash"] == b3(b"count=1\n"), before
    assert after["hash"] == b3(b"count=2\n") and confirmed(after)
    assert cat(project, "@last", "state.txt") == b"count=2\n"  # the output wins for a path


def test_overwritten_input_keeps_the_hash_an_earlier_run_saw(project: Path) -> None:
    """The same, for a file vestige had already hashed (and trusts: hashed 2 s after its
    last change, docs/format.md "The stat cache"): its pre-run hash is known for sure."""
    state = project / "state.txt"
    state.write_text("count=1\n")
    write_script(project, "bump.py", BUMP)
    time.sleep(max(0.0, state.stat().st_ctime + 2.2 - time.time()))  # leave the racy window
    ok(run(project, "true"))  # its code snapshot hashes state.txt (an untracked file)

    ok(run(project, PY, "bump.py"))

    m = show_json(project)
    assert by_path(m["inputs"])["state.txt"]["hash"] == b3(b"count=1\n"), m["inputs"]
    assert by_path(m["outputs"])["state.txt"]["hash"] == b3(b"count=2\n")


def test_vestige_now_places_a_run_on_a_simulated_clock(project: Path) -> None:
    """VESTIGE_NOW (tests, benchmarks, the debt ledger's histories) shifts the recorded
    start and end to that clock, in the manifest and the index alike; the duration is real."""
    (project / "a.py").write_text("print('hi')\n")
    done = vestige("run", "python", "a.py", cwd=project, env={"VESTIGE_NOW": "2026-01-05"})
    assert done.returncode == 0, done.stderr.decode()
    shown = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
    listed = json.loads(vestige("ls", "--json", cwd=project).stdout)[0]
    assert shown["started"] == listed["started"] == 1767571200.0
    assert shown["ended"] == pytest.approx(1767571200.0 + shown["duration"])
    # a bad clock never stops the user's command: it runs, unrecorded, with a warning
    bad = vestige("run", "python", "a.py", cwd=project, env={"VESTIGE_NOW": "soon"})
    assert bad.returncode == 0 and bad.stdout == b"hi\n"
    assert "bad VESTIGE_NOW 'soon'" in bad.stderr.decode()
    assert len(json.loads(vestige("ls", "--json", cwd=project).stdout)) == 1


def test_a_missing_python_script_is_bad_input_before_anything_runs(project: Path) -> None:
    for args in (["python", "missing.py"], ["python", "-u", "-W", "ignore", "missing.py"]):
        done = run(project, *args)
        assert done.returncode == 2, args
        assert done.stderr.decode().strip().endswith("error: script not found: missing.py")
    assert not (project / ".vestige" / "refs").exists() or not list(
        (project / ".vestige" / "refs" / "runs").glob("*")
    )
    ok(run(project, "python", "-c", "print(1)"))  # -c and -m name no file


def test_a_param_option_after_the_command_warns_and_the_run_goes_on(project: Path) -> None:
    """`vestige run true --param i=5` gives `--param i=5` to `true`, recorded as its own
    argument `param='i=5'`: one line says so, and the run is recorded unchanged."""
    for args in (["true", "--param", "i=5"], ["true", "-p", "i=5"], ["true", "--param=i=5"]):
        done = run(project, *args)
        assert done.returncode == 0, args
        lines = done.stderr.decode().splitlines()
        warned = [line for line in lines if "goes to true as its own argument" in line]
        assert len(warned) == 1, lines
        assert "put vestige's options before the command" in warned[0]
        shown = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
        assert shown["command"] == args and shown["status"] == "ok"
    # in vestige's place, after `--`, or not k=v: nothing said
    for args in (["--param", "i=5", "true"], ["--", "true", "--param", "i=5"],
                 ["true", "-p", "8"]):  # fmt: skip
        done = run(project, *args)
        assert done.returncode == 0 and b"own argument" not in done.stderr, args
