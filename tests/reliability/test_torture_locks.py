"""Torture suite (issue 20): an index another process holds locked (a `sqlite3` shell left
in a transaction, a database browser). The program starts at once and is untouched;
reading commands answer meanwhile (WAL readers do not wait for a writer); the run is
sealed, with its real end, once the lock is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import vestige

pytestmark = pytest.mark.timeout(300)

LOCKER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("COMMIT")
"""

PROGRAM = """\
import sys
open("out.txt", "w").write("made while the index was locked\\n")
open("ran", "w").write("")
print("the program ran", flush=True)
sys.exit(7)
"""


def wait_for(check: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_locked_index_delays_nothing_of_the_program(project: Path) -> None:
    assert vestige("run", "true", cwd=project).returncode == 0
    (project / "make.py").write_text(PROGRAM)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(project / ".vestige" / "index.sqlite")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    run = None
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        command = [sys.executable, "-m", "vestige", "run", "python", "make.py"]
        run = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
        # the program runs to its end while the index is still locked
        wait_for(lambda: (project / "ran").exists(), "the program to run under the lock")
        assert locker.poll() is None
        listed = vestige("ls", "--json", cwd=project, timeout=60)  # a reader does not wait
        assert listed.returncode == 0, listed.stderr.decode()
        assert [r["seq"] for r in json.loads(listed.stdout)][-1] == 1
        assert locker.poll() is None  # (the lock was held all along)
    finally:
        assert locker.stdin is not None
        locker.stdin.close()  # release the lock
        locker.wait(timeout=60)
        if run is not None and run.poll() is None and locker.returncode != 0:
            run.kill()
    assert run is not None
    out, err = run.communicate(timeout=120)
    assert run.returncode == 7 and out == b"the program ran\n", err.decode()
    shown = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
    assert (shown["seq"], shown["status"], shown["exit_code"]) == (2, "failed", 7)
    assert sorted(o["path"] for o in shown["outputs"]) == ["out.txt", "ran"]
    assert vestige("fsck", cwd=project).returncode == 0
