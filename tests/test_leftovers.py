"""Issue 20, item 13: what a dead or failed vestige leaves behind is cleaned by the next
command (a store's temp files of a writer that died, the live folder of a run that
could not start on a full disk), and `rerun` removes its temp dir unless --keep
(tests/test_rerun.py). Real subprocesses on real stores."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import vestige


def dead_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_full_disk_at_start_runs_the_command_and_leaves_no_live_folder(
    project: Path, tmp_path: Path
) -> None:
    assert vestige("run", "true", cwd=project).returncode == 0  # the store exists

    def small_disk() -> None:  # every file vestige writes past 64 bytes fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")}  # (no .pyc cut short
    script = "import sys; print('still here'); sys.exit(3)"  # in the source tree)
    done = subprocess.run([sys.executable, "-m", "vestige", "run", sys.executable, "-c", script],
                          cwd=project, env=env, capture_output=True, preexec_fn=small_disk,
                          timeout=120)  # fmt: skip
    assert done.returncode == 3 and done.stdout == b"still here\n"
    assert b"not recording this run" in done.stderr, done.stderr.decode()
    assert os.listdir(project / ".vestige" / "live") == []
    assert os.listdir(project / ".vestige" / "tmp") == []
    check = vestige("fsck", cwd=project)
    assert check.returncode == 0 and b"L1" not in check.stdout + check.stderr


def test_temp_files_of_a_dead_writer_are_removed_by_the_next_command(project: Path) -> None:
    assert vestige("run", "true", cwd=project).returncode == 0
    tmp = project / ".vestige" / "tmp"
    dead, alive = dead_pid(), os.getpid()
    old = time.time() - 120
    names = {
        f"obj-{dead}-1-1": old,  # a kill while storing a large output: removed
        f"ref-{dead}-1-2": old,
        f"w-{dead}-ab12": old,
        f"obj-{dead}-1-3": time.time(),  # written just now (a writer on another host?): kept
        f"obj-{alive}-1-4": old,  # its writer is alive: kept
        f"gc-{alive}-x": old,  # not a writer's temp file: not this rule's
        "notes.txt": old,
    }
    for name, when in names.items():
        (tmp / name).write_bytes(b"\0" * 4096)
        os.utime(tmp / name, (when, when))
    done = vestige("ls", "--json", cwd=project)
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 1
    left = sorted(os.listdir(tmp))
    assert left == sorted([f"obj-{dead}-1-3", f"obj-{alive}-1-4", f"gc-{alive}-x", "notes.txt"])


@pytest.mark.parametrize("own", [False, True], ids=["PYTHONPYCACHEPREFIX", "vestige-cache"])
def test_bytecode_files_cut_short_by_a_full_disk_are_removed(
    project: Path, tmp_path: Path, own: bool
) -> None:
    """CPython installs a .pyc a full disk cut short, then fails every import of it
    ("marshal data too short") instead of compiling the source: vestige would never start
    again. It is removed and named (in vestige's own bytecode cache, used under
    PYTHONDONTWRITEBYTECODE, every one cut short is), and the next start works."""
    assert vestige("run", "true", cwd=project).returncode == 0
    env = {**os.environ}
    if own:
        env.update(PYTHONDONTWRITEBYTECODE="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pyc")
        env.pop("PYTHONDONTWRITEBYTECODE", None)

    def ls() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "vestige", "ls"], cwd=project, env=env,
                              capture_output=True, timeout=120)  # fmt: skip

    assert ls().returncode == 0
    cache = tmp_path / ("cache" if own else "pyc")
    cut = [next(cache.rglob(f"vestige/{name}.cpython-*.pyc")) for name in ("errors", "repo")]
    for path in cut if own else cut[:1]:
        path.write_bytes(path.read_bytes()[:40])  # the header and a little
    broken = ls()
    said = broken.stderr.decode()
    assert broken.returncode == 2 and said.count("\n") == 1, said
    assert "removed a truncated bytecode file" in said and str(cut[0]) in said
    again = ls()
    assert again.returncode == 0, again.stderr.decode()
