"""How a run learns its files (docs/architecture.md): exactly from its processes, and by a
folder scan whose cost does not grow with the project: outputs in a 50,000-file project,
writes by programs outside Python, files changed just before the run, folders that appear
between runs, files a run made and then read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import git, vestige

pytestmark = pytest.mark.timeout(180)

PY = sys.executable


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> bytes:
    done = vestige(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def show(cwd: Path, ref: str = "@last") -> dict[str, Any]:
    return json.loads(ok("show", ref, "--json", cwd=cwd))


def files(records: list[dict[str, Any]]) -> dict[str, bool]:
    """path -> confirmed, for a run's outputs or inputs."""
    return {f["path"]: f.get("confirmed", True) for f in records}


def script(where: Path, name: str, text: str) -> None:
    (where / name).write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def big(project: Path) -> Path:
    """A git project with 50,000 data files in 50 folders, ignored by git."""
    (project / ".gitignore").write_text("data/\nout/\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ignore data")
    for d in range(50):
        folder = project / "data" / f"d{d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"img{i}.png").write_bytes(b"x")
    return project


def test_outputs_in_a_large_project_are_found_and_only_they(big: Path) -> None:
    script(
        big,
        "make.py",
        """
        import os
        os.makedirs("out", exist_ok=True)
        open("out/result.txt", "w").write("result\\n")          # a new folder and file
        open("data/d3/new.png", "wb").write(b"new")             # a new file, big folder
        with open("data/d1/img5.png", "wb") as f:               # rewritten in place
            f.write(b"rewritten")
        os.rename("data/d2/img7.png", "data/d2/moved.png")      # a rename
        os.remove("data/d4/img9.png")                           # a removal
    """,
    )
    ok("run", PY, "make.py", cwd=big)  # (the first run walks the tree once)
    run = show(big)
    assert files(run["outputs"]) == {
        "out/result.txt": True, "data/d3/new.png": True, "data/d1/img5.png": True,
        "data/d2/moved.png": True,
    }  # fmt: skip
    # a second run: the folder list comes from the cache, and still nothing else shows
    script(big, "again.py", 'open("data/d7/img1.png", "wb").write(b"again")\n')
    ok("run", PY, "again.py", cwd=big)
    assert files(show(big)["outputs"]) == {"data/d7/img1.png": True}


def test_files_of_a_program_outside_python_are_found_by_their_folders(project: Path) -> None:
    (project / "data.csv").write_text("b\na\n")
    (project / "sub").mkdir()
    (project / "sub" / "keep.txt").write_text("unchanged\n")
    command = "sort data.csv > out.txt; mv out.txt sub/sorted.txt; cp data.csv copy.csv"
    ok("run", "--no-trace", "bash", "-c", command, cwd=project)
    outputs = files(show(project)["outputs"])
    assert outputs == {"sub/sorted.txt": False, "copy.csv": False}


def test_a_file_changed_just_before_the_run_is_not_its_output(project: Path) -> None:
    for i in range(20):  # the run starts within the same clock tick as the change
        (project / "just-before.txt").write_text(f"{i}\n")
        ok("run", "--no-trace", "bash", "-c", "true", cwd=project)
        assert show(project)["outputs"] == [], i


def test_a_folder_made_between_runs_is_looked_into(project: Path) -> None:
    ok("run", "--no-trace", "bash", "-c", "true", cwd=project)  # the folder list is kept
    (project / "late" / "deeper").mkdir(parents=True)  # made outside any run
    ok("run", "--no-trace", "bash", "-c", "echo x > late/deeper/made.txt", cwd=project)
    assert files(show(project)["outputs"]) == {"late/deeper/made.txt": False}


def test_a_file_the_run_made_and_read_back_is_not_its_input(project: Path) -> None:
    script(
        project,
        "rw.py",
        """
        open("f.txt", "w").write("hi")
        print(open("f.txt").read())
    """,
    )
    for _ in range(2):  # the second run rewrites what the first made: still not an input
        ok("run", PY, "rw.py", cwd=project)
        run = show(project)
        assert "f.txt" not in files(run["inputs"])
        assert files(run["outputs"]) == {"f.txt": True}


def test_a_file_read_then_rewritten_is_an_input_as_it_was_read(project: Path) -> None:
    (project / "state.txt").write_text("old\n")
    script(
        project,
        "bump.py",
        """
        old = open("state.txt").read()
        open("state.txt", "w").write(old.upper())
    """,
    )
    ok("run", PY, "bump.py", cwd=project)
    run = show(project)
    assert files(run["outputs"]) == {"state.txt": True}
    (read,) = [f for f in run["inputs"] if f["path"] == "state.txt"]
    assert ok("cat", "@last", "state.txt", cwd=project) == b"OLD\n"  # (the output)
    assert read["note"] == "changed by the run; recorded as it was when read"


def test_the_first_look_at_a_large_tree_says_so_once(project: Path) -> None:
    for d in range(5):
        (project / "data" / f"d{d}").mkdir(parents=True)
        for i in range(100 * (d + 1)):
            (project / "data" / f"d{d}" / f"{i}.bin").write_bytes(b"")
    env = {"VESTIGE_SCAN_NOTE_ENTRIES": "500"}
    first = vestige("run", "--no-trace", "bash", "-c", "true", cwd=project, env=env)
    assert first.returncode == 0
    notes = [line for line in first.stderr.decode().splitlines() if "first look" in line]
    assert len(notes) == 1, first.stderr.decode()
    assert "data/d4 (500)" in notes[0] and "scan.ignore" in notes[0]
    second = vestige("run", "--no-trace", "bash", "-c", "true", cwd=project, env=env)
    assert "first look" not in second.stderr.decode()


def test_a_large_folder_without_git_says_how_to_bound_its_snapshot(plain_dir: Path) -> None:
    from vestige.capture import code

    (plain_dir / "many").mkdir()
    for i in range(code.LARGE_PLAIN_TREE + 1):
        (plain_dir / "many" / f"{i}.txt").write_bytes(b"")
    ok("run", "--no-trace", "bash", "-c", "true", cwd=plain_dir)
    assert any("not a git repository" in w for w in show(plain_dir)["warnings"])


def test_the_scan_cache_can_be_lost(project: Path) -> None:
    ok("run", "--no-trace", "bash", "-c", "true", cwd=project)
    caches = list((project / ".vestige" / "cache").glob("dirs-*"))
    assert len(caches) == 1
    caches[0].write_bytes(b"not marshal")
    ok("run", "--no-trace", "bash", "-c", "echo y > made.txt", cwd=project)
    assert files(show(project)["outputs"]) == {"made.txt": False}


# -- programs outside Python: the tracer (capture/trace.py) -------------------------------

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace: make setup")


@needs_strace
def test_every_program_of_a_shell_pipeline_is_traced(project: Path) -> None:
    (project / "data.csv").write_text("b\na\n")
    (project / "stay").mkdir()
    (project / "stay" / "table.bin").write_bytes(b"0123456789")
    (project / "gone.txt").write_text("x\n")
    command = (
        "sort -r data.csv > sorted.txt; cp data.csv copy.csv; mv copy.csv moved.csv; "
        "printf AB | dd of=stay/table.bin bs=1 seek=2 conv=notrunc status=none; rm gone.txt"
    )
    ok("run", "bash", "-c", command, cwd=project)
    run = show(project)
    assert files(run["outputs"]) == {"sorted.txt": True, "moved.csv": True,
                                     "stay/table.bin": True}  # fmt: skip
    assert files(run["inputs"]) == {"data.csv": True}
    assert ok("cat", "@last", "stay/table.bin", cwd=project) == b"01AB456789"


@needs_strace
def test_a_compiled_program_is_traced(project: Path, tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    source = tmp_path / "copy.c"
    source.write_text(
        textwrap.dedent("""
        #include <stdio.h>
        int main(void) {
            FILE *in = fopen("in.dat", "rb"), *out = fopen("out.dat", "wb");
            int c;
            while ((c = fgetc(in)) != EOF) fputc(c + 1, out);
            fclose(in); fclose(out);
            return 0;
        }
    """)
    )
    binary = tmp_path / "copy"
    subprocess.run([cc, "-O1", "-o", str(binary), str(source)], check=True)
    (project / "in.dat").write_bytes(b"abc")
    ok("run", str(binary), cwd=project)
    run = show(project)
    assert files(run["outputs"]) == {"out.dat": True}
    assert files(run["inputs"]) == {"in.dat": True}


@needs_strace
def test_a_python_program_spawning_a_tool_is_traced_on_demand(project: Path) -> None:
    (project / "data.csv").write_text("b\na\n")
    script(
        project,
        "pipe.py",
        """
        import subprocess
        subprocess.run(["sort", "-o", "sorted.txt", "data.csv"], check=True)
    """,
    )
    ok("run", PY, "pipe.py", cwd=project)  # auto: Python is not traced; the folder scan sees
    assert files(show(project)["outputs"]) == {"sorted.txt": False}
    ok("run", "--trace", PY, "pipe.py", cwd=project)
    run = show(project)
    assert files(run["outputs"]) == {"sorted.txt": True}
    assert files(run["inputs"]) == {"data.csv": True}  # (not pipe.py: code, not data)


@needs_strace
def test_a_file_name_that_is_not_utf8_is_recorded_byte_for_byte(project: Path) -> None:
    ok("run", "bash", "-c", "printf hi > $'caf\\xe9.txt'", cwd=project)
    (output,) = show(project)["outputs"]
    assert output["path"].encode("utf-8", "surrogateescape") == b"caf\xe9.txt"
    assert output.get("confirmed", True)


def test_without_strace_the_run_goes_on_with_one_warning(project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with bash and coreutils, without strace
    bin_dir.mkdir()
    for tool in ("bash", "sort"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    (project / "data.csv").write_text("b\na\n")
    env = {"PATH": str(bin_dir)}
    first = vestige("run", "bash", "-c", "sort data.csv > out.txt", cwd=project, env=env)
    assert first.returncode == 0
    said = [line for line in first.stderr.decode().splitlines() if "strace is not" in line]
    assert len(said) == 1 and said[0].startswith("vestige: warning:"), said
    run = show(project)
    assert files(run["outputs"]) == {"out.txt": False}  # the folder scan found it
    assert any("strace is not installed" in w for w in run["warnings"])
    second = vestige("run", "bash", "-c", "true", cwd=project, env=env)
    assert "strace is not" not in second.stderr.decode()  # said once (per boot), not each run


def test_a_tracer_that_cannot_trace_leaves_the_run_alone(project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # ptrace forbidden (a container): strace refuses at once
    bin_dir.mkdir()
    fake = bin_dir / "strace"
    fake.write_text("#!/bin/sh\necho 'strace: PTRACE_TRACEME: Operation not permitted' >&2\n"
                    "exit 1\n")  # fmt: skip
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = vestige("run", "bash", "-c", "echo made > out.txt; exit 3", cwd=project, env=env)
    assert done.returncode == 3  # the command ran, untraced, with its own exit code
    assert "Operation not permitted" in done.stderr.decode()
    assert (project / "out.txt").read_text() == "made\n"
    assert files(show(project)["outputs"]) == {"out.txt": False}


# -- runs at the same time in one folder --------------------------------------------------


def start(project: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ}
    return subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", *args], cwd=project, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def runs(project: Path) -> list[dict[str, Any]]:
    return [show(project, str(r["seq"])) for r in json.loads(ok("ls", "--json", cwd=project))]


def test_concurrent_runs_each_keep_only_what_their_processes_wrote(project: Path) -> None:
    script(
        project,
        "w.py",
        """
        import sys, time
        time.sleep(0.3)  # all of them are going at once
        open(f"out_{sys.argv[1]}.txt", "w").write(sys.argv[1])
        time.sleep(0.3)
    """,
    )
    ok("run", PY, "w.py", "x", cwd=project)  # (the store exists before they race)
    (project / "out_x.txt").unlink()
    procs = [start(project, PY, "w.py", str(k)) for k in range(8)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else b""
    for run in runs(project)[:8]:
        k = run["command"][-1]
        assert files(run["outputs"]) == {f"out_{k}.txt": True}, run["command"]
    which = json.loads(ok("which", "out_3.txt", "--json", cwd=project))
    assert which["made_by"][0]["command"].endswith("w.py 3")


def test_what_no_concurrent_run_can_claim_is_ambiguous_in_each(project: Path) -> None:
    (project / "first").mkdir()
    slow = "sleep 0.5; echo {0} > first/{0}.txt; sleep 0.5"
    procs = [start(project, "--no-trace", "bash", "-c", slow.format(name))
             for name in ("a", "b")]  # fmt: skip
    for p in procs:
        assert p.wait(timeout=120) == 0
    for run in runs(project):
        outputs = {f["path"]: f for f in run["outputs"]}
        assert set(outputs) == {"first/a.txt", "first/b.txt"}
        assert all(f.get("ambiguous") and f.get("confirmed") is False
                   for f in outputs.values())  # fmt: skip


@needs_strace
def test_concurrent_traced_programs_each_keep_their_own(project: Path) -> None:
    slow = "sleep 0.5; echo {0} > {0}.txt; sleep 0.5"
    procs = [start(project, "bash", "-c", slow.format(name)) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    for run in runs(project):
        name = "a" if "a.txt" in run["command"][-1] else "b"
        assert files(run["outputs"]) == {f"{name}.txt": True}


def test_the_end_of_a_padded_pid_is_found_in_a_trace_log(tmp_path: Path) -> None:
    """strace pads pids to five columns: a small pid's exit line has two spaces."""
    from vestige.capture.trace import wait_for_exit

    log = tmp_path / "trace"
    log.write_text('2143  openat(AT_FDCWD, "x", O_RDONLY) = 3\n2143  +++ exited with 0 +++\n')
    assert wait_for_exit(str(log), 2143, timeout=0.1)
    assert not wait_for_exit(str(log), 214, timeout=0.05)
    log.write_text("123456 +++ exited with 0 +++\n")
    assert wait_for_exit(str(log), 123456, timeout=0.1)


def _hex(text: str) -> str:
    return "".join(f"\\x{b:02x}" for b in text.encode())


def test_padded_and_resumed_trace_lines_are_read(tmp_path: Path) -> None:
    """strace aligns short results (`)      = 0`) and splits a syscall that another
    process interrupted (`<unfinished ...>` ... `<... openat resumed>`): both count."""
    from vestige.capture.trace import read

    d = _hex("/p")
    lines = [
        f'100 openat(AT_FDCWD<{d}>, "{_hex("a.csv")}", O_RDONLY <unfinished ...>',
        f'101 openat(AT_FDCWD<{d}>, "{_hex("b.txt")}", O_WRONLY|O_CREAT|O_TRUNC, 0666 '
        "<unfinished ...>",
        f"100 <... openat resumed>)             = 3<{_hex('/p/a.csv')}>",
        f"101 <... openat resumed>) = 4<{_hex('/p/b.txt')}>",
        f'102 unlinkat(AT_FDCWD<{d}>, "{_hex("c.txt")}", 0)  = 0',
        f'102 chdir("{_hex("/q")}")                 = 0',
        f'102 openat(AT_FDCWD<{_hex("/q")}>, "{_hex("d.txt")}", O_RDONLY)   = -1 ENOENT (No '
        "such file or directory)",
        "102 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=7, si_uid=0} ---",
        "102 +++ killed by SIGTERM +++",
    ]
    log = tmp_path / "trace"
    log.write_text("\n".join(lines) + "\n")
    traced = read(str(log), "/p")
    assert set(traced.reads) == {"/p/a.csv"}
    assert set(traced.writes) == {"/p/b.txt"}
    assert traced.removed == {"/p/c.txt"}
    assert traced.exited == {102}


@needs_strace
def test_a_traced_program_killed_by_a_signal_has_its_end_in_the_log(tmp_path: Path) -> None:
    """The end of a killed program is in the log (the seal waits for it)."""
    from vestige.capture.trace import command, wait_for_exit

    log = tmp_path / "trace"
    argv = command(shutil.which("strace") or "strace", ["sh", "-c", "kill -9 $$"], str(log))
    proc = subprocess.Popen(argv)  # (-D: the process is the command, strace its grandchild)
    assert proc.wait(timeout=60) == -9
    assert wait_for_exit(str(log), proc.pid, timeout=30)


@needs_strace
def test_an_input_another_process_changed_during_the_run_is_said_so(project: Path) -> None:
    (project / "data.csv").write_text("old\n")
    wait = "touch started; while [ ! -e go ]; do sleep 0.02; done; cat data.csv > out.txt"
    proc = start(project, "bash", "-c", wait)
    while not (project / "started").exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.01)
    (project / "data.csv").write_text("new\n")  # not by the run: by someone beside it
    (project / "go").touch()
    assert proc.wait(timeout=120) == 0
    run = show(project)
    (data,) = [f for f in run["inputs"] if f["path"] == "data.csv"]
    assert "not by it" in data["note"]
    assert ok("cat", "@last", "out.txt", cwd=project) == b"new\n"
    assert ok("cat", "@last", "data.csv", cwd=project) == b"new\n"


def test_a_run_that_overlapped_one_sealed_earlier_makes_its_files_ambiguous(
    project: Path,
) -> None:
    """Run A starts and ends while B is going: both are told of the other, B from the index
    (A left no live directory and, seen by no process, no confirmed output)."""
    wait = "touch started; while [ ! -e go ]; do sleep 0.02; done; echo b > b.txt"
    b = start(project, "--no-trace", "bash", "-c", wait)
    while not (project / "started").exists():
        assert b.poll() is None, b.stderr.read() if b.stderr else b""
        time.sleep(0.01)
    ok("run", "--no-trace", "bash", "-c", "echo a > a.txt", cwd=project)
    (project / "go").touch()
    assert b.wait(timeout=120) == 0
    for run in runs(project):
        outputs = {f["path"]: f for f in run["outputs"]}
        assert "a.txt" in outputs, run["command"]
        assert all(f.get("ambiguous") for f in outputs.values()), (run["command"], outputs)


@needs_strace
def test_a_run_that_copied_bytes_is_not_their_origin(project: Path) -> None:
    script(project, "make.py", 'open("data.csv", "w").write("1,2\\n")\n')
    ok("run", PY, "make.py", cwd=project)
    ok("run", "bash", "-c", "cp data.csv copy.csv", cwd=project)  # (read and wrote the bytes)
    tree = json.loads(ok("lineage", "data.csv", "--json", cwd=project))
    assert tree["made_by"]["command"][-1] == "make.py"
    script(project, "make.py", 'open("data.csv", "w").write("1,2\\n")  # changed\n')
    stale = json.loads(vestige("stale", "--json", cwd=project).stdout)
    assert [s["command"][-1] for s in stale] == ["make.py", "cp data.csv copy.csv"]
    assert stale[0]["outputs"] == ["data.csv"] and stale[1]["outputs"] == ["copy.csv"]


@needs_strace
def test_a_traced_run_keeps_only_its_own_files(project: Path, tmp_path: Path) -> None:
    """Traced to its end, a run's outputs are what its processes wrote (a file someone
    else saved meanwhile is not one), and its inputs are data: not git's files, not the
    user's dotfiles."""
    home = tmp_path / "user"
    home.mkdir()
    (home / ".myrc").write_text("set x\n")
    (project / "data.csv").write_text("1\n")
    wait = ("touch started; while [ ! -e go ]; do sleep 0.02; done; "
            "cat ~/.myrc .git/HEAD data.csv > out.txt")  # fmt: skip
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "vestige", "run", "bash", "-c", wait],
                            cwd=project, env=env, stderr=subprocess.PIPE)  # fmt: skip
    while not (project / "started").exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.01)
    (project / "notes.txt").write_text("saved by an editor meanwhile\n")
    (project / "go").touch()
    assert proc.wait(timeout=120) == 0
    run = show(project)
    assert files(run["outputs"]) == {"started": True, "out.txt": True}
    assert files(run["inputs"]) == {"data.csv": True}


@needs_strace
def test_a_file_name_that_is_not_utf8_can_be_asked_about(project: Path) -> None:
    ok("run", "bash", "-c", "printf hi > $'caf\\xe9.txt'; cat $'caf\\xe9.txt' > copy.txt",
       cwd=project)  # fmt: skip
    ok("run", "bash", "-c", "cat $'caf\\xe9.txt' > again.txt", cwd=project)
    name = b"caf\xe9.txt"
    done = subprocess.run([sys.executable, "-m", "vestige", "which", "--path", name, "--json"],
                          cwd=project, capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    history = json.loads(done.stdout)["history"]
    assert [h["role"] for h in history] == ["output", "input"]
    stale = vestige("stale", "--json", cwd=project)
    assert stale.returncode == 0 and json.loads(stale.stdout) == [], stale.stderr


@pytest.mark.parametrize("trace", ["--no-trace", "--trace"])
def test_writes_through_symbolic_links_are_outputs(project: Path, tmp_path: Path,
                                                   trace: str) -> None:  # fmt: skip
    """`data -> /scratch/...` and a link to a file: what a run writes through them is its
    output, under the name it used, whether a process reported it or only the scan saw it."""
    if trace == "--trace" and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "old.txt").write_text("before\n")
    (project / "out").symlink_to(scratch)
    (project / "latest.txt").symlink_to(scratch / "old.txt")
    (project / "loop").symlink_to(project)  # (a link holding the tree: never walked)
    ok("run", "bash", "-c", "echo new > out/made.txt", cwd=project)  # (the walk learns them)
    ok("run", trace, "bash", "-c", "echo a > out/result.txt; echo b > latest.txt", cwd=project)
    outputs = files(show(project)["outputs"])
    confirmed = trace == "--trace"
    assert outputs.get("out/result.txt") is confirmed and outputs.get("latest.txt") is confirmed
    assert ok("cat", "@last", "out/result.txt", cwd=project) == b"a\n"
