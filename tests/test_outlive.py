"""The user's program outlives vestige: `vestige run` killed with -9 (or by the OOM killer)
while its command runs must not kill the command. Its output keeps flowing to vestige's
stdout (a pipe or a terminal) and into the run's live log, it ends with its own exit
code, and the next vestige command records that end, with a warning saying vestige died
(docs/architecture.md, "When vestige dies")."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import vestige

from vestige.store.live import LiveRun

pytestmark = pytest.mark.timeout(180)

HANG_GUARD_S = 60.0  # only against hangs: no test waits this long when vestige works

#: Prints a numbered line every 0.05 s until the test creates `go` (after killing
#: vestige), then five more, writes finished.txt and exits 7.
COUNTS = """\
import os, sys, time
deadline = time.monotonic() + 60
i = 0
more = None
while more != 0 and time.monotonic() < deadline:
    print(f"line {i}", flush=True)
    i += 1
    if more is None and os.path.exists("go"):
        more = 5
    elif more:
        more -= 1
    time.sleep(0.05)
print("bye", flush=True)
with open("finished.txt", "w") as f:
    f.write(f"finished after {i} lines\\n")
sys.exit(7)
"""


def wait_until(what: str, check: Callable[[], object]) -> object:
    """Poll `check` until it returns something true (the deadline only guards hangs)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def proc_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z, ...), None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[0].decode()


class Vestige:
    """`vestige run python counts.py` in its own session, its stdout and stderr on a pipe
    or on a pseudo-terminal; what it printed so far is in `seen`."""

    def __init__(self, root: Path, terminal: bool) -> None:
        command = [sys.executable, "-m", "vestige", "run", "python", "counts.py"]
        if terminal:
            self.fd, slave = os.openpty()
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.ONLCR  # the bytes as written, no \r\n rewriting
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            try:
                self.proc = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL,
                                             stdout=slave, stderr=slave,
                                             start_new_session=True)  # fmt: skip
            finally:
                os.close(slave)
        else:
            self.proc = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         start_new_session=True)  # fmt: skip
            assert self.proc.stdout is not None
            self.fd = self.proc.stdout.fileno()
        self.seen = b""
        self.closed = False

    def read_until(self, marker: bytes) -> None:
        """Read what it prints until `marker` was seen."""
        deadline = time.monotonic() + HANG_GUARD_S
        while marker not in self.seen:
            assert not self.closed, f"output ended before {marker!r}: {self.seen!r}"
            assert time.monotonic() < deadline, f"no {marker!r}; got {self.seen!r}"
            self._read(deadline - time.monotonic())

    def read_to_the_end(self) -> None:
        """Read until every writer closed the pipe or terminal."""
        deadline = time.monotonic() + HANG_GUARD_S
        while not self.closed:
            assert time.monotonic() < deadline, f"output never ended; got {self.seen!r}"
            self._read(deadline - time.monotonic())

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            chunk = b""
        if chunk:
            self.seen += chunk
        else:
            self.closed = True

    def stop(self) -> None:
        """Kill whatever of it is left (its process group: the command, the tee)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(HANG_GUARD_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self.fd)


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Things to undo at the end whatever happens (processes to kill)."""
    undo: list[Callable[[], None]] = []
    yield undo
    for action in reversed(undo):
        with contextlib.suppress(Exception):
            action()


def the_live_dir(root: Path) -> Path:
    live = root / ".vestige" / "live"

    def one() -> Path | None:
        dirs = list(live.iterdir()) if live.is_dir() else []
        return dirs[0] if len(dirs) == 1 and (dirs[0] / "run.json").exists() else None

    return wait_until("the live directory", one)  # type: ignore[return-value]


def started(root: Path, terminal: bool, cleanup: list[Callable[[], None]]) -> tuple[Vestige, int]:
    """A running `vestige run python counts.py` whose capture is on disk: (it, the
    command's pid)."""
    (root / "counts.py").write_text(COUNTS)
    run = Vestige(root, terminal)
    cleanup.append(run.stop)
    run.read_until(b"line 0\n")
    live = the_live_dir(root)
    child = wait_until("the command's pid", lambda: LiveRun(live).info.get("child_pid"))
    assert isinstance(child, int)
    cleanup.append(lambda: os.kill(child, signal.SIGKILL))
    wait_until("the code snapshot", lambda: (live / "code.json").exists())
    return run, child


def kill_vestige(run: Vestige, child: int) -> None:
    os.kill(run.proc.pid, signal.SIGKILL)  # vestige only, as `kill -9 PID` or the OOM killer
    assert run.proc.wait(HANG_GUARD_S) == -signal.SIGKILL
    assert proc_state(child) not in (None, "Z"), "the command died with vestige"


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def counted(text: bytes) -> bytes:
    """The program's whole stdout: `line 0` ... `line N`, every one, then `bye`."""
    match = re.search(rb"line 0\n(?:line \d+\n)*bye\n", text)
    assert match, text
    lines = match.group().splitlines()[:-1]
    assert lines == [f"line {i}".encode() for i in range(len(lines))], "a line was lost"
    return match.group()


def show_json(root: Path, ref: str) -> Any:
    return json.loads(ok(vestige("show", ref, "--json", cwd=root)))


def assert_fsck_clean(root: Path) -> None:
    done = vestige("fsck", cwd=root)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_the_command_outlives_a_killed_vestige_and_its_end_is_recorded(
    project: Path, cleanup: list[Callable[[], None]], terminal: bool
) -> None:
    run, child = started(project, terminal, cleanup)

    kill_vestige(run, child)
    (project / "go").write_text("")
    run.read_to_the_end()  # its output still reaches vestige's stdout, to the last line
    wait_until("the command to end", lambda: proc_state(child) in (None, "Z"))

    assert (project / "finished.txt").exists(), "the command did not finish"
    printed = counted(run.seen)
    assert len(printed.splitlines()) > 6  # lines came after vestige died
    runs = json.loads(ok(vestige("ls", "--json", cwd=project)))  # recovers the run
    assert len(runs) == 1
    assert (runs[0]["status"], runs[0]["exit_code"]) == ("failed", 7)  # the command's own end
    manifest = show_json(project, "1")
    assert (manifest["status"], manifest["exit_code"], manifest["signal"]) == ("failed", 7, None)
    died = [w for w in manifest["warnings"] if "vestige" in w and "died" in w]
    assert died, manifest["warnings"]
    assert "ran on" in died[0]  # the command did not die with it
    assert ok(vestige("log", "1", cwd=project)) == printed  # every line, in the run's log
    outputs = {f["path"]: f for f in manifest["outputs"]}
    assert "finished.txt" in outputs
    assert ok(vestige("cat", "1", "finished.txt", cwd=project)).startswith(b"finished after")
    assert_fsck_clean(project)
    assert os.listdir(project / ".vestige" / "live") == []


def test_a_run_recovered_while_its_command_still_runs_says_so(
    project: Path, cleanup: list[Callable[[], None]]
) -> None:
    """The next vestige command comes while the orphaned command still runs: the run is
    sealed as it is (`interrupted`, ending when vestige died), saying the command went on;
    the command still finishes, and its tee writes nothing into the sealed run."""
    run, child = started(project, False, cleanup)
    kill_vestige(run, child)

    runs = json.loads(ok(vestige("ls", "--json", cwd=project)))
    assert proc_state(child) not in (None, "Z"), "the command still runs"
    assert [r["status"] for r in runs] == ["interrupted"]
    warnings = show_json(project, "1")["warnings"]
    died = [w for w in warnings if "vestige" in w and "died" in w]
    assert died and "still running" in died[0], warnings

    (project / "go").write_text("")
    run.read_to_the_end()
    wait_until("the command to end", lambda: proc_state(child) in (None, "Z"))
    assert (project / "finished.txt").exists(), "the command did not finish"
    counted(run.seen)
    assert os.listdir(project / ".vestige" / "live") == []  # not made again by the tee
    assert json.loads(ok(vestige("ls", "--json", cwd=project))) == runs
    assert_fsck_clean(project)
