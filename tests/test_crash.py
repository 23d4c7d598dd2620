"""Crashes and concurrency with real processes: vestige SIGKILLed while the command runs,
or after the command ended but before the run was sealed; a crash between the ref and
the index; eight runs at once into one fresh store. After each, the next vestige command
must leave a valid store (docs/format.md, "Write order" and L1)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from conftest import vestige

from vestige.store.live import LiveRun

pytestmark = pytest.mark.timeout(120)

HANG_GUARD_S = 60.0  # only against hangs: no test waits this long when vestige works

SLOW = """\
import time
with open("before_kill.txt", "w") as f:
    f.write("written before the kill\\n")
print("ready", flush=True)
time.sleep(60)
"""

#: Exits 0 when the test creates `go`; the test stops vestige before that.
WAITS_FOR_GO = """\
import os, time
with open("made.txt", "w") as f:
    f.write("made before exiting\\n")
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


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


def start_run(root: Path, *command: str) -> subprocess.Popen[bytes]:
    """`vestige run COMMAND` in its own session (so its group can be killed at the end)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", *command],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def read_until(proc: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read the process's stdout until `marker` appears."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + HANG_GUARD_S
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} from vestige; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                err = proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"vestige ended before {marker!r}: {seen!r} {err!r}")
            seen += chunk
    return seen


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def kill_pid(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a vestige we started, and its process group (its command), and reap it."""
    kill_group(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(HANG_GUARD_S)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def kill_child(pid: int) -> None:
    """SIGKILL the command's process group (it stays vestige's group after vestige died)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    kill_pid(pid)
    wait_until("the command to die", lambda: proc_state(pid) in (None, "Z"))


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


def child_pid_of(live: Path) -> int:
    def pid() -> int | None:
        info = LiveRun(live).info
        return info.get("child_pid") if info else None

    return wait_until("the child's pid in run.json", pid)  # type: ignore[return-value]


def wait_for_capture(live: Path) -> None:
    """What vestige captures early is on disk: when it started, the code snapshot, and
    the output printed so far (the tee writes our pipe first, then the live log)."""
    wait_until("the start", lambda: LiveRun(live).info.get("since_ns"))
    wait_until("the code snapshot", lambda: (live / "code.json").exists())

    def printed() -> bool:
        try:
            return (live / "stdout").read_bytes() == b"ready\n"
        except FileNotFoundError:
            return False

    wait_until("stdout in the live dir", printed)


def proc_state(pid: int) -> str | None:
    """The state letter of a process (R, S, T, Z, ...), None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[0].decode()


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def ls_json(root: Path) -> Any:
    return json.loads(ok(vestige("ls", "--json", cwd=root)))


def show_json(root: Path, ref: str) -> Any:
    return json.loads(ok(vestige("show", ref, "--json", cwd=root)))


def assert_fsck_clean(root: Path) -> str:
    done = vestige("fsck", cwd=root)
    text = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, text
    return text


def live_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root / ".vestige" / "live"))


# -- vestige killed while the command runs ----------------------------------------------


def test_vestige_sigkilled_while_the_command_runs(
    project: Path, cleanup: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VESTIGE_HEARTBEAT_S", "0.2")  # (5 s unless told)
    (project / "slow.py").write_text(SLOW)
    proc = start_run(project, "python", "slow.py")
    cleanup.append(lambda: stop(proc))
    read_until(proc, b"ready\n")
    live = the_live_dir(project)
    child = child_pid_of(live)
    cleanup.append(lambda: kill_pid(child))
    wait_for_capture(live)
    time.sleep(1.5)  # the command computes silently: only the heartbeat says it is alive

    os.kill(proc.pid, signal.SIGKILL)  # vestige only: its command goes on sleeping
    assert proc.wait(HANG_GUARD_S) == -signal.SIGKILL
    assert proc_state(child) not in (None, "Z"), "the command outlives vestige"
    killed = time.time()
    time.sleep(1.0)  # recovery comes later: the run ends when it was last seen working

    runs = ls_json(project)  # the next command seals the orphan
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "interrupted"
    assert run["seq"] == 1
    assert run["manifest"]
    assert run["command"] == ["python", "slow.py"]

    kill_child(child)

    manifest = show_json(project, str(run["id"]))
    assert manifest["status"] == "interrupted"
    assert manifest["manifest"] == run["manifest"]
    # it ended when vestige died (its heartbeat), not at its last output nor at recovery
    assert killed - 0.7 < manifest["ended"] <= killed
    outputs = {f["path"]: f for f in manifest["outputs"]}
    assert "before_kill.txt" in outputs
    assert outputs["before_kill.txt"]["hash"] == b3(b"written before the kill\n")
    assert "slow.py" not in outputs  # the pre-run scan was used
    text = ok(vestige("show", "1", cwd=project)).decode()
    assert "interrupted" in text
    assert "before_kill.txt" in text
    assert ok(vestige("log", "1", cwd=project)) == b"ready\n"
    assert ok(vestige("cat", "1", "before_kill.txt", cwd=project)) == b"written before the kill\n"
    assert_fsck_clean(project)
    assert live_entries(project) == []
    assert os.listdir(project / ".vestige" / "tmp") == []


# -- vestige killed after the command ended, before sealing -----------------------------


@pytest.mark.parametrize("result_written", [False, True], ids=["no-result", "result-json"])
def test_vestige_killed_after_the_command_ended(
    project: Path, cleanup: list[Callable[[], None]], result_written: bool
) -> None:
    """vestige is frozen (SIGSTOP) while its command exits 0, then SIGKILLed: the command
    ended but vestige never sealed. Without result.json, the status is not known
    (`interrupted`); with it (vestige died just after writing it), it is the command's."""
    (project / "quick.py").write_text(WAITS_FOR_GO)
    proc = start_run(project, "python", "quick.py")
    cleanup.append(lambda: stop(proc))
    read_until(proc, b"ready\n")
    live = the_live_dir(project)
    child = child_pid_of(live)
    cleanup.append(lambda: kill_pid(child))
    wait_for_capture(live)

    os.kill(proc.pid, signal.SIGSTOP)
    (project / "go").write_text("")
    # the command exits; its parent is frozen, so it stays a zombie until vestige dies
    wait_until("the command to exit", lambda: proc_state(child) in (None, "Z"))
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(HANG_GUARD_S) == -signal.SIGKILL
    assert not (live / "result.json").exists()
    assert live.is_dir()

    if result_written:
        # the state vestige leaves when it dies right after recording how the command ended
        result = {
            "status": "ok",
            "exit_code": 0,
            "signal": None,
            "ended": time.time(),
            "resources": {"cpu_user_s": 0.01, "cpu_system_s": 0.0, "max_rss_bytes": 1 << 20},
        }
        LiveRun(live).save_result(result)

    runs = ls_json(project)
    assert len(runs) == 1
    run = runs[0]
    assert run["manifest"]
    if result_written:
        assert run["status"] == "ok"
        assert run["exit_code"] == 0
    else:
        assert run["status"] == "interrupted"
        assert run["exit_code"] is None
    manifest = show_json(project, "1")
    outputs = {f["path"]: f for f in manifest["outputs"]}
    assert outputs["made.txt"]["hash"] == b3(b"made before exiting\n")
    assert ok(vestige("log", "1", cwd=project)) == b"ready\n"
    assert_fsck_clean(project)
    assert live_entries(project) == []
    assert ls_json(project) == runs  # sealed once: nothing changes afterwards


# -- a crash between the ref and the index ----------------------------------------------

MAKER = """\
import sys
with open(f"out_{sys.argv[1]}.txt", "w") as f:
    f.write(f"result {sys.argv[1]}\\n")
print("made", sys.argv[1])
"""


def two_runs(root: Path) -> Any:
    (root / "maker.py").write_text(MAKER)
    ok(vestige("run", "python", "maker.py", "a", "--lr", "0.5", cwd=root))
    ok(vestige("run", "--param", "k=v", "python", "maker.py", "b", cwd=root))
    runs = ls_json(root)
    assert [r["status"] for r in runs] == ["ok", "ok"]
    return runs


def test_crash_after_the_ref_before_the_index(project: Path) -> None:
    """The last run's ref was written, then vestige died: its index row is still the
    `running` row of its start, its other rows are missing, its live dir remains."""
    before = two_runs(project)
    newest = before[0]
    run_id = str(newest["id"])
    conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
    try:
        with conn:
            conn.execute(
                "UPDATE runs SET status = 'running', manifest = NULL, ended = NULL,"
                " duration = NULL, exit_code = NULL WHERE id = ?",
                (run_id,),
            )
            conn.execute("DELETE FROM params WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM files WHERE run_id = ?", (run_id,))
    finally:
        conn.close()
    live = project / ".vestige" / "live" / run_id
    (live / "events").mkdir(parents=True)
    info = {
        "id": run_id,
        "seq": newest["seq"],
        "command": newest["command"],
        "cwd": ".",
        "root": str(project),
        "started": newest["started"],
        "host": os.uname().nodename,
        "runner_pid": 2**22 + 1,  # above pid_max: certainly not running
        "runner_start": "0",
    }
    (live / "run.json").write_text(json.dumps(info))
    (live / "stdout").write_bytes(b"made b\n")
    (live / "result.json").write_text(
        json.dumps({"status": "ok", "exit_code": 0, "signal": None, "ended": newest["ended"]})
    )

    assert ls_json(project) == before
    assert live_entries(project) == []
    text = assert_fsck_clean(project)
    assert "I1" not in text
    which = json.loads(ok(vestige("which", "out_b.txt", "--json", cwd=project)))
    assert [m["run_id"] for m in which["made_by"]] == [run_id]


def test_crash_that_lost_the_index(project: Path) -> None:
    before = two_runs(project)
    store = project / ".vestige"
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store / name).unlink(missing_ok=True)
    assert ls_json(project) == before
    text = assert_fsck_clean(project)
    assert "I1" not in text


# -- eight runs at once into one fresh store --------------------------------------------

WRITER = """\
import sys, time
n = sys.argv[1]
with open(f"out_{n}.txt", "w") as f:
    f.write(f"output of run {n}\\n")
time.sleep(0.2)
"""


def test_eight_concurrent_runs_into_a_fresh_store(
    project: Path, cleanup: list[Callable[[], None]]
) -> None:
    (project / "writer.py").write_text(WRITER)
    assert not (project / ".vestige").exists()
    procs = []
    for n in range(8):
        proc = start_run(project, "python", "writer.py", str(n))
        cleanup.append(lambda proc=proc: stop(proc))
        procs.append(proc)
    results = []
    for proc in procs:
        _out, err = proc.communicate(timeout=HANG_GUARD_S)
        results.append((proc.returncode, err.decode()))
    assert [code for code, _ in results] == [0] * 8, results
    # each run sealed itself when its command ended: no run is left for the next command
    warnings = [err for _code, err in results if "warning" in err]
    refs = os.listdir(project / ".vestige" / "refs" / "runs")
    assert (len(refs), live_entries(project), warnings) == (8, [], [])

    runs = ls_json(project)
    assert len(runs) == 8
    assert sorted(r["seq"] for r in runs) == list(range(1, 9))
    assert len({r["id"] for r in runs}) == 8
    assert {r["status"] for r in runs} == {"ok"}
    by_arg = {}
    for r in runs:
        command = r["command"]
        assert command[:2] == ["python", "writer.py"]
        by_arg[command[2]] = r
    assert sorted(by_arg) == [str(n) for n in range(8)]
    for n, r in by_arg.items():
        manifest = show_json(project, str(r["id"]))
        outputs = {f["path"]: f for f in manifest["outputs"]}
        own = outputs.get(f"out_{n}.txt")
        assert own is not None, (n, sorted(outputs))
        assert own["hash"] == b3(f"output of run {n}\n".encode())
        assert own.get("confirmed", True) is True  # opened for writing by this run
        assert own["kept"] is True
        # another run's file may appear (the scan saw it change) but never as confirmed
        for path, f in outputs.items():
            if path != f"out_{n}.txt":
                assert f.get("confirmed") is False, (n, path)
    assert_fsck_clean(project)
    assert live_entries(project) == []
