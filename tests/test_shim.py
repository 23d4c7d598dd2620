"""The capture shim (src/vestige/shim) in real Python subprocesses, read back with
vestige.capture.events. The runner is not involved: each test builds the child's
environment (PYTHONPATH=<shim>, VESTIGE_*) itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from vestige.capture.events import RunEvents, read_events

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "src" / "vestige" / "shim"
PYENV = Path("/root/.pyenv/versions")
WARNING = "vestige: capture disabled in this process:"

pytestmark = pytest.mark.timeout(60)


@dataclass
class Sandbox:
    root: Path
    live: Path
    store: Path

    def env(self, *, capture: bool = True, extra_path: list[Path] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [SHIM, *(extra_path or [])])
        env.pop("PYTHONSTARTUP", None)
        if capture:
            env.update(
                VESTIGE_RUN_ID="run-test",
                VESTIGE_LIVE=str(self.live),
                VESTIGE_ROOT=str(self.root),
                VESTIGE_STORE=str(self.store),
                VESTIGE_SHIM=str(SHIM),
            )
        return env

    def script(self, text: str, name: str = "main.py") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def run(
        self,
        *args: str | Path,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        **kwargs: object,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, *map(str, args)],
            cwd=self.root,
            env=self.env() if env is None else env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )

    def events(self) -> RunEvents:
        return read_events(self.live)


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    root = tmp_path / "proj"
    live = tmp_path / "proj" / ".vestige" / "live" / "run-test"
    live.mkdir(parents=True)
    return Sandbox(root=root, live=live, store=root / ".vestige")


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def stat_of(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)


# ---------------------------------------------------------------------------- files


def test_reads_writes_renames_and_modules(box: Sandbox, tmp_path: Path) -> None:
    (box.root / "data.csv").write_text("a,b\n1,2\n")
    (box.root / "notes.txt").write_text("bytes path\n")
    (box.store / "objects").mkdir()
    (box.store / "objects" / "x").write_text("store internals\n")
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "helper.py").write_text("VALUE = 42\n")
    box.script(
        """
        import csv, json, os, pathlib, sys, tempfile
        import click
        sys.path.insert(0, sys.argv[1])
        import helper

        with open("data.csv") as f:
            rows = list(csv.reader(f))
        with open(b"notes.txt", "rb") as f:
            f.read()
        with open("out.txt", "w") as f:
            f.write(str(rows))
        with open("log.txt", "a") as f:
            f.write("x")
        fd = os.open("raw.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"raw")
        os.close(fd)
        fd, tmp = tempfile.mkstemp(dir=".", suffix=".tmp")
        os.write(fd, b"tmp")
        os.close(fd)
        os.replace(tmp, "final.txt")
        pathlib.Path("written.txt").write_text("hello")
        open("gone.txt", "w").close()
        os.remove("gone.txt")
        open(os.__file__).close()              # stdlib: not an input
        open(click.__file__).close()           # site-packages: not an input
        open(".vestige/objects/x").close()     # the store: ignored
        open(os.path.join(sys.argv[1], "helper.py")).read()  # user code reading a .py
        try:
            open("missing.txt")
        except FileNotFoundError:
            pass
        os.mkdir("sub")
        os.chdir("sub")
        open("rel.txt", "w").close()           # relative to the cwd of the moment
        print(helper.VALUE)
        """
    )
    env = box.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # importlib writes x.pyc.<id>, then renames
    out = ok(box.run("main.py", libs, env=env))
    assert out.strip() == "42"
    assert list((libs / "__pycache__").glob("helper.*.pyc"))

    ev = box.events()
    root = str(box.root)
    assert ev.reads[f"{root}/data.csv"] == stat_of(box.root / "data.csv")
    assert f"{root}/notes.txt" in ev.reads
    assert ev.reads[f"{root}/missing.txt"] is None
    assert ev.writes >= {
        f"{root}/out.txt",
        f"{root}/log.txt",
        f"{root}/raw.bin",
        f"{root}/final.txt",
        f"{root}/written.txt",
        f"{root}/gone.txt",
        f"{root}/sub/rel.txt",
    }
    assert f"{root}/final.txt" in {r["dst"] for r in ev.renames}
    assert ev.removed == {f"{root}/gone.txt"}
    # reads and writes are told apart
    assert f"{root}/out.txt" not in ev.reads
    assert f"{root}/data.csv" not in ev.writes
    # nothing from the interpreter, the venv, site-packages, the store or the journals
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for path in [*ev.reads, *ev.writes]:
        assert not any(path.startswith(p + os.sep) for p in prefixes), path
        assert "site-packages" not in path.split(os.sep), path
        assert not path.startswith(str(box.store)), path
        assert not path.endswith(".pyc"), path
        assert "__pycache__" not in path, path
    # the imported project module is code (modules), not an input; the main script too;
    # an explicit open() of a .py file by user code is an input
    helper = str(libs / "helper.py")
    assert helper in ev.modules
    assert f"{root}/main.py" in ev.modules
    assert helper in ev.reads
    assert f"{root}/main.py" not in ev.reads
    assert not any("site-packages" in m or m.startswith(sys.base_prefix) for m in ev.modules)

    (proc,) = ev.processes
    assert proc["argv"] == ["main.py", str(libs)]
    assert proc["cwd"] == root
    assert proc["exe"] == sys.executable
    assert proc["version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert proc["ppid"] == os.getpid()
    assert proc["exited"] is True
    assert ev.root_process(os.getpid()) is proc


def test_once_per_path_and_mode(box: Sandbox) -> None:
    (box.root / "in.txt").write_text("x")
    box.script(
        """
        for _ in range(3):
            open("in.txt").read()
            open("out.txt", "w").write("y")
        open("in.txt", "r+").close()
        """
    )
    ok(box.run("main.py"))
    lines = [
        json.loads(line)
        for f in (box.live / "events").iterdir()
        for line in f.read_text().splitlines()
    ]
    opens = [(e["path"].rsplit("/", 1)[1], e["mode"]) for e in lines if e["e"] == "open"]
    assert sorted(opens) == [("in.txt", "r"), ("in.txt", "w"), ("out.txt", "w")]


def test_no_environment_means_no_capture(box: Sandbox) -> None:
    box.script("open('x.txt', 'w').write('x')\nprint('ran')\n")
    out = ok(box.run("main.py", env=box.env(capture=False)))
    assert out == "ran\n"
    assert not (box.live / "events").exists()


def test_dash_m_argv_is_completed_at_exit(box: Sandbox) -> None:
    (box.root / "pkgmod.py").write_text("import sys\nprint(sys.argv[1])\n")
    assert ok(box.run("-m", "pkgmod", "arg")) == "arg\n"
    (proc,) = box.events().processes
    assert proc["argv"] == ["-m", "arg"]
    assert proc["exit_argv"] == [str(box.root / "pkgmod.py"), "arg"]


# ---------------------------------------------------------------------------- params

ARGPARSE_SCRIPT = """
    import argparse, json, pathlib, sys

    def build():
        p = argparse.ArgumentParser(prog="train")
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out"))
        p.add_argument("--tags", nargs="*", default=[])
        return p

    if sys.argv[1] == "known":
        ns, rest = build().parse_known_args(sys.argv[2:])
        print(json.dumps([sorted(vars(ns)), rest, repr(ns)]))
    elif sys.argv[1] == "sub":
        p = argparse.ArgumentParser()
        p.add_argument("--seed", type=int, default=0)
        sub = p.add_subparsers(dest="cmd")
        fit = sub.add_parser("fit")
        fit.add_argument("--depth", type=int, default=1)
        print(repr(p.parse_args(sys.argv[2:])))
    elif sys.argv[1] == "intermixed":
        p = argparse.ArgumentParser()
        p.add_argument("--c", type=complex, default=1j)
        p.add_argument("files", nargs="*")
        print(repr(p.parse_intermixed_args(sys.argv[2:])))
    else:
        print(repr(build().parse_args(sys.argv[2:])))
        print(type(argparse.__loader__).__name__, type(argparse.__spec__.loader).__name__)
"""


def test_argparse_params(box: Sandbox) -> None:
    box.script(ARGPARSE_SCRIPT)
    argv = ["main.py", "plain", "--lr", "0.5", "--tags", "a", "b"]
    with_shim = ok(box.run(*argv))
    without = ok(box.run(*argv, env=box.env(capture=False) | {"PYTHONPATH": ""}))
    assert with_shim == without
    (event,) = box.events().params
    assert event["source"] == "argparse"
    assert event["caller"] == "__main__"
    assert event["values"] == {"lr": 0.5, "epochs": 3, "out": "out", "tags": ["a", "b"]}
    assert box.events().main_params(os.getpid()) == event["values"]


def test_argparse_parse_known_args(box: Sandbox) -> None:
    box.script(ARGPARSE_SCRIPT)
    argv = ["main.py", "known", "--epochs", "7", "--unknown", "1"]
    with_shim = ok(box.run(*argv))
    assert with_shim == ok(box.run(*argv, env=box.env(capture=False) | {"PYTHONPATH": ""}))
    assert json.loads(with_shim)[1] == ["--unknown", "1"]
    (event,) = box.events().params
    assert event["caller"] == "__main__"
    assert event["values"]["epochs"] == 7


def test_argparse_subparsers_record_the_outermost_parse(box: Sandbox) -> None:
    box.script(ARGPARSE_SCRIPT)
    ok(box.run("main.py", "sub", "--seed", "5", "fit", "--depth", "4"))
    (event,) = box.events().params
    assert event["values"] == {"seed": 5, "cmd": "fit", "depth": 4}


def test_argparse_intermixed_and_unusual_values(box: Sandbox) -> None:
    box.script(ARGPARSE_SCRIPT)
    ok(box.run("main.py", "intermixed", "a", "--c", "1+2j", "b"))
    (event,) = box.events().params
    assert event["values"] == {"c": "(1+2j)", "files": ["a", "b"]}


def test_argparse_exit_codes_unchanged(box: Sandbox) -> None:
    box.script(ARGPARSE_SCRIPT)
    plain = box.env(capture=False) | {"PYTHONPATH": ""}
    for argv, code in ((["plain", "--help"], 0), (["plain", "--epochs", "x"], 2)):
        with_shim = box.run("main.py", *argv)
        without = box.run("main.py", *argv, env=plain)
        assert with_shim.returncode == without.returncode == code
        assert with_shim.stdout == without.stdout
        assert with_shim.stderr == without.stderr
    assert box.events().params == []


def test_click_params(box: Sandbox) -> None:
    box.script(
        """
        import click

        @click.group()
        @click.option("--verbose/--quiet", default=False)
        def cli(verbose):
            pass

        @cli.command()
        @click.option("--lr", type=float, default=0.1)
        @click.argument("data", type=click.Path())
        def train(lr, data):
            print("train", lr, data)

        if __name__ == "__main__":
            cli()
        """
    )
    assert ok(box.run("main.py", "--verbose", "train", "--lr", "0.3", "d.csv")) == (
        "train 0.3 d.csv\n"
    )
    group, command = box.events().params
    assert group["source"] == command["source"] == "click"
    assert group["caller"] == command["caller"] == "__main__"
    assert group["command"] == "main.py"
    assert group["values"] == {"verbose": True}
    assert command["command"] == "train"
    assert command["values"] == {"lr": 0.3, "data": "d.csv"}
    assert box.events().main_params(os.getpid()) == {"verbose": True, "lr": 0.3, "data": "d.csv"}


def test_click_exit_codes_unchanged(box: Sandbox) -> None:
    box.script(
        """
        import click

        @click.command()
        @click.option("--n", type=int, required=True)
        def main(n):
            raise SystemExit(n)

        main()
        """
    )
    plain = box.env(capture=False) | {"PYTHONPATH": ""}
    for argv in (["--n", "3"], ["--n", "x"], ["--help"]):
        with_shim = box.run("main.py", *argv)
        without = box.run("main.py", *argv, env=plain)
        assert (with_shim.returncode, with_shim.stdout, with_shim.stderr) == (
            without.returncode,
            without.stdout,
            without.stderr,
        )


# ---------------------------------------------------------------------------- processes


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_workers_have_their_own_journal(box: Sandbox, method: str) -> None:
    box.script(
        f"""
        import multiprocessing as mp, os

        def work(i):
            with open("part-%d.txt" % i, "w") as f:
                f.write(str(os.getpid()))

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            procs = [ctx.Process(target=work, args=(i,)) for i in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            print(os.getpid(), [p.exitcode for p in procs])
        """
    )
    out = ok(box.run("main.py")).split()
    main_pid = int(out[0])
    assert out[1:] == ["[0,", "0]"]
    ev = box.events()
    lines = {
        int(f.stem): [json.loads(x) for x in f.read_text().splitlines()]
        for f in (box.live / "events").iterdir()
    }
    for i in range(2):
        path = box.root / f"part-{i}.txt"
        worker = int(path.read_text())
        assert worker != main_pid
        opens = [e for e in lines[worker] if e["e"] == "open"]
        assert {"e": "open", "pid": worker, "path": str(path), "mode": "w", "st": None} in opens
        (hello,) = [p for p in ev.processes if p["pid"] == worker]
        assert hello["ppid"] == main_pid
        assert hello["exited"] is True
        assert not any(e.get("path") == str(path) for e in lines[main_pid])
    root = ev.root_process(os.getpid())
    assert root is not None and root["pid"] == main_pid


def test_subprocess_and_system_spawn_events(box: Sandbox) -> None:
    box.script(
        """
        import os, subprocess
        subprocess.run(["bash", "-c", "echo hi > from_bash.txt"], check=True)
        subprocess.run("true", shell=True, check=True)
        os.system("true")
        """
    )
    ok(box.run("main.py"))
    spawns = [(s["exe"], s["argv"]) for s in box.events().spawns]
    assert spawns == [
        ("bash", ["bash", "-c", "echo hi > from_bash.txt"]),
        ("/bin/sh", ["/bin/sh", "-c", "true"]),
        ("/bin/sh", ["/bin/sh", "-c", "true"]),
    ]


def test_python_subprocess_reports_too(box: Sandbox) -> None:
    (box.root / "in.txt").write_text("x")
    box.script(
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "open('in.txt').read()"], check=True)
        """
    )
    ok(box.run("main.py"))
    ev = box.events()
    assert len(ev.processes) == 2
    root = ev.root_process(os.getpid())
    assert root is not None
    (child,) = [p for p in ev.processes if p is not root]
    assert child["ppid"] == root["pid"]
    assert child["argv"] == ["-c"]
    assert str(box.root / "in.txt") in ev.reads


# ---------------------------------------------------------------------------- chain-loading


def make_other_sitecustomize(tmp_path: Path, body: str) -> Path:
    other = tmp_path / "other-site"
    other.mkdir()
    (other / "sitecustomize.py").write_text(textwrap.dedent(body))
    return other


def test_chain_loads_the_next_sitecustomize(box: Sandbox, tmp_path: Path) -> None:
    other = make_other_sitecustomize(
        tmp_path,
        """
        import os
        os.environ["OTHER_SITE_RAN"] = "yes"
        with open(os.path.join(os.path.dirname(__file__), "marker"), "a") as f:
            f.write("x")
        """,
    )
    box.script(
        """
        import os, sys
        mod = sys.modules["sitecustomize"]
        print(os.environ.get("OTHER_SITE_RAN"), mod.__file__, mod.__name__)
        """
    )
    expected = f"yes {other / 'sitecustomize.py'} sitecustomize\n"
    for capture in (True, False):
        (other / "marker").unlink(missing_ok=True)
        out = ok(box.run("main.py", env=box.env(capture=capture, extra_path=[other])))
        assert out == expected
        assert (other / "marker").read_text() == "x"
    # what the chained module did is captured too
    assert str(other / "marker") in box.events().writes


def test_chained_sitecustomize_errors_behave_as_without_vestige(
    box: Sandbox, tmp_path: Path
) -> None:
    other = make_other_sitecustomize(tmp_path, "raise RuntimeError('broken site')\n")
    box.script("import sys\nprint('sitecustomize' in sys.modules)\n")
    with_shim = box.run("main.py", env=box.env(extra_path=[other]))
    without = box.run("main.py", env=box.env(capture=False) | {"PYTHONPATH": str(other)})
    assert with_shim.returncode == without.returncode == 0
    assert with_shim.stdout == without.stdout == "False\n"
    assert with_shim.stderr == without.stderr
    assert "Error in sitecustomize" in with_shim.stderr
    assert box.events().processes[0]["exited"] is True  # capture still on


# ---------------------------------------------------------------------------- robustness

ROBUST_SCRIPT = """
    import os, sys
    print("out line")
    print("err line", file=sys.stderr)
    open("result.txt", "w").write("r")
    sys.exit(3)
"""


@pytest.mark.parametrize("bad", ["file", "missing-parent"])
def test_unwritable_journal_leaves_the_program_alone(box: Sandbox, bad: str) -> None:
    box.script(ROBUST_SCRIPT)
    if bad == "file":
        live = box.root / "not-a-dir"
        live.write_text("")
    else:
        live = box.root / "no" / "such" / "dir"
    env = box.env() | {"VESTIGE_LIVE": str(live)}
    with_shim = box.run("main.py", env=env)
    without = box.run("main.py", env=box.env(capture=False) | {"PYTHONPATH": ""})
    assert with_shim.returncode == without.returncode == 3
    assert with_shim.stdout == without.stdout == "out line\n"
    warning, *rest = with_shim.stderr.splitlines(keepends=True)
    assert warning.startswith(WARNING)
    assert "".join(rest) == without.stderr == "err line\n"


def test_program_closing_all_fds_never_gets_journal_lines(box: Sandbox) -> None:
    box.script(
        """
        import os
        open("before.txt", "w").close()
        os.closerange(3, 256)                   # a daemon cleaning up its fds
        fd = os.open("mine.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"only mine\\n")
        open("after.txt", "w").close()          # an event while our old fd number is reused
        os.write(fd, b"still mine\\n")
        os.close(fd)
        """
    )
    done = box.run("main.py")
    assert (done.returncode, done.stderr) == (0, "")
    assert (box.root / "mine.txt").read_text() == "only mine\nstill mine\n"
    writes = box.events().writes
    assert {str(box.root / n) for n in ("before.txt", "mine.txt", "after.txt")} <= writes


def test_threads_write_whole_lines(box: Sandbox) -> None:
    box.script(
        """
        import threading
        def work(t):
            for i in range(50):
                open("t%d-%d.out" % (t, i), "w").close()
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        """
    )
    ok(box.run("main.py"))
    (journal,) = (box.live / "events").iterdir()
    lines = journal.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    assert len(box.events().writes) == 400


def test_isolated_child_runs_normally(box: Sandbox) -> None:
    box.script(ROBUST_SCRIPT)
    done = box.run("-I", "main.py")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out line\n", "err line\n")
    assert not (box.live / "events").exists()


# ---------------------------------------------------------------------------- interpreters


def pythons(*patterns: str) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        found += sorted(str(p) for p in PYENV.glob(pattern) if p.exists())
    return found


MODERN = pythons("3.8*/bin/python3", "3.12*/bin/python3", "3.13*/bin/python3")
OLD = pythons("2.7*/bin/python", "3.6*/bin/python", "3.7*/bin/python")


@pytest.mark.skipif(not MODERN, reason="no pyenv 3.8 / 3.12 / 3.13")
@pytest.mark.parametrize("python", MODERN)
def test_other_modern_interpreters_record(box: Sandbox, python: str) -> None:
    (box.root / "in.txt").write_text("x")
    box.script("open('in.txt').read()\nopen('out.txt', 'w').write('y')\nprint('ok')\n")
    assert ok(box.run("main.py", python=python)) == "ok\n"
    ev = box.events()
    assert str(box.root / "in.txt") in ev.reads
    assert str(box.root / "out.txt") in ev.writes
    assert str(box.root / "main.py") in ev.modules
    (proc,) = ev.processes
    assert proc["exited"] is True
    assert proc["exe"].startswith(str(PYENV))


@pytest.mark.skipif(not OLD, reason="no pyenv 2.7 / 3.6 / 3.7")
@pytest.mark.parametrize("python", OLD)
def test_old_interpreters_are_not_disturbed(box: Sandbox, python: str) -> None:
    done = box.run("-c", "print(1)", python=python)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
    assert not (box.live / "events").exists()


@pytest.mark.skipif(not OLD, reason="no pyenv 2.7 / 3.6 / 3.7")
@pytest.mark.parametrize("python", OLD)
def test_old_interpreters_chain_load(box: Sandbox, tmp_path: Path, python: str) -> None:
    other = make_other_sitecustomize(tmp_path, "import os\nos.environ['OTHER'] = 'ran'\n")
    code = (
        "import os, sys; sys.stdout.write('%s %s' % "
        "(os.environ.get('OTHER'), sys.modules['sitecustomize'].__file__))"
    )
    done = box.run("-c", code, python=python, env=box.env(extra_path=[other]))
    assert done.returncode == 0, done.stderr
    word, path = done.stdout.split()
    assert word == "ran"
    assert Path(path).parent == other


# ---------------------------------------------------------------------------- reader


def write_journal(live: Path, pid: int, lines: list[object], tail: str = "") -> None:
    events = live / "events"
    events.mkdir(exist_ok=True)
    text = "".join(json.dumps(x) + "\n" for x in lines) + tail
    (events / f"{pid}.jsonl").write_text(text)


def test_reader_tolerates_truncated_and_garbled_lines(tmp_path: Path) -> None:
    write_journal(
        tmp_path,
        10,
        [
            {"e": "hello", "pid": 10, "ppid": 1, "t": 1.0},
            {"e": "open", "pid": 10, "path": "/p/a", "mode": "r", "st": [1, 2, 3, 4]},
            "not an event",
            {"e": "open", "pid": 10, "path": "/p/b", "mode": "w", "st": None},
        ],
        tail='not json\n{"e":"open","pid":10,"path":"/p/c","mo',
    )
    write_journal(
        tmp_path,
        11,
        [
            {"e": "hello", "pid": 11, "ppid": 10, "t": 2.0},
            {"e": "open", "pid": 11, "path": "/p/a", "mode": "r", "st": [9, 9, 9, 9]},
            {"e": "rename", "pid": 11, "src": "/p/t", "dst": "/p/d"},
            {"e": "remove", "pid": 11, "path": "/p/t2"},
            {"e": "spawn", "pid": 11, "exe": "ls", "argv": ["ls"]},
            {"e": "modules", "pid": 11, "files": ["/p/m.py"]},
            {"e": "exit", "pid": 11, "t": 3.0},
        ],
    )
    ev = read_events(tmp_path)
    assert ev.reads == {"/p/a": (1, 2, 3, 4)}
    assert ev.writes == {"/p/b", "/p/d"}
    assert ev.removed == {"/p/t2"}
    assert ev.spawns == [{"pid": 11, "exe": "ls", "argv": ["ls"]}]
    assert ev.modules == {"/p/m.py"}
    assert [(p["pid"], p["exited"]) for p in ev.processes] == [(10, False), (11, True)]
    assert read_events(tmp_path / "nowhere") == RunEvents()


def test_reader_main_params(tmp_path: Path) -> None:
    def params(pid: int, caller: str, **values: object) -> dict[str, object]:
        return {"e": "params", "pid": pid, "source": "argparse", "caller": caller, "values": values}

    write_journal(
        tmp_path,
        20,
        [
            {"e": "hello", "pid": 20, "ppid": 5, "t": 1.0},
            params(20, "lib.config", a=0),
            params(20, "__main__", a=1, b=1),
            params(20, "__main__", b=2),
        ],
    )
    write_journal(
        tmp_path, 21, [{"e": "hello", "pid": 21, "ppid": 20, "t": 2.0}, params(21, "__main__", w=1)]
    )
    ev = read_events(tmp_path)
    root = ev.root_process(5)
    assert root is not None and root["pid"] == 20
    assert ev.main_params(5) == {"a": 1, "b": 2}
    # unknown runner pid: the earliest process is the root
    assert ev.main_params(999) == {"a": 1, "b": 2}
    # no __main__ params in the root: its first params event
    ev.params = [p for p in ev.params if not (p["pid"] == 20 and p["caller"] == "__main__")]
    assert ev.main_params(5) == {"a": 0}
    # none in the root: the first of any process
    ev.params = [p for p in ev.params if p["pid"] == 21]
    assert ev.main_params(5) == {"w": 1}
    ev.params = []
    assert ev.main_params(5) == {}
    assert RunEvents().root_process(5) is None
