"""`vestige stale --run` / `vestige refresh`: the stale runs rerun in the project, upstream
first, on a real chain of three scripts (a.py -> data.txt -> b.py -> fig.txt -> c.py) in a
real git repository, through the real CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import git, vestige

A = """
open("data.txt", "w").write("1 2 3\\n")
"""
B = """
import os, sys
nums = [int(x) for x in open("data.txt").read().split()]
if os.environ.get("B_FAILS"):
    sys.exit("b.py: refusing to plot")
open("fig.txt", "w").write(f"sum={sum(nums)}\\n")
"""
C = """
fig = open("fig.txt").read()
open("report.txt", "w").write("report: " + fig)
"""
#: independent of the chain: reads its own source, writes its own output
D = """
open("side.txt", "w").write(open("side-src.txt").read().upper())
"""


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = vestige(*args, cwd=cwd, env=env)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done.stdout.decode()


def write(root: Path, name: str, code: str) -> None:
    (root / name).write_text(textwrap.dedent(code))


@pytest.fixture
def chain(project: Path) -> Path:
    """a.py -> data.txt -> b.py -> fig.txt -> c.py, runs #1, #2, #3, committed."""
    for name, code in (("a.py", A), ("b.py", B), ("c.py", C)):
        write(project, name, code)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "chain")
    for name in ("a.py", "b.py", "c.py"):
        ok("run", name, cwd=project)
    return project


def runs(root: Path) -> list[dict]:
    """Every run, oldest first."""
    return sorted(json.loads(ok("ls", "--json", "-n", "1000", cwd=root)), key=lambda r: r["seq"])


def edit_a(root: Path) -> None:
    write(root, "a.py", 'open("data.txt", "w").write("1 2 3 4\\n")\n')


def test_stale_run_reruns_the_chain_in_order_and_then_nothing_is_stale(chain: Path) -> None:
    edit_a(chain)
    assert [i["seq"] for i in json.loads(vestige("stale", "--json", cwd=chain).stdout)] == [
        1, 2, 3]  # fmt: skip
    done = vestige("stale", "--run", cwd=chain)
    assert done.returncode == 0, done.stderr.decode()
    # each a new run of the command as recorded, upstream first
    new = runs(chain)[3:]
    assert [r["command"] for r in new] == [["a.py"], ["b.py"], ["c.py"]]
    assert [r["status"] for r in new] == ["ok"] * 3
    assert (chain / "report.txt").read_text() == "report: sum=10\n"
    text = done.stdout.decode()
    assert text.startswith("refresh: 3 refreshed (of 3 stale runs)"), text
    assert "ok       run #1     -> run #4" in text and "-> run #6" in text
    err = done.stderr.decode()
    assert err.index("refreshing run #1") < err.index("refreshing run #2") < err.index(
        "refreshing run #3")  # fmt: skip
    # the new run names the run it refreshes, and why
    shown = json.loads(ok("show", "5", "--json", cwd=chain))
    assert shown["rerun_of"] is None  # it ran the new code: not a rerun of a snapshot
    assert any("refresh of run #2" in n["text"] and "made by run #1" in n["text"]
               for n in shown["notes"])  # fmt: skip
    assert vestige("stale", cwd=chain).returncode == 0
    done = vestige("refresh", cwd=chain)  # nothing left to do: exit 0
    assert done.returncode == 0 and b"nothing is stale" in done.stdout


def test_a_failure_stops_what_follows_unless_keep_going(chain: Path) -> None:
    write(chain, "d.py", D)
    (chain / "side-src.txt").write_text("side\n")
    ok("run", "d.py", cwd=chain)  # #4, independent of the chain
    edit_a(chain)
    (chain / "side-src.txt").write_text("other\n")  # d is stale too, on its own
    before = len(runs(chain))
    done = vestige("stale", "--run", "--json", cwd=chain, env={"B_FAILS": "1"})
    assert done.returncode == 1, done.stderr.decode()
    steps = {s["seq"]: s for s in json.loads(done.stdout)}
    assert [steps[n]["status"] for n in (1, 2, 3, 4)] == ["ok", "failed", "not run", "not run"]
    assert steps[2]["exit_code"] == 1 and steps[2]["new_seq"] is not None  # recorded, failed
    assert steps[3]["why"] == "stopped: run #2 failed"
    assert b"refusing to plot" in done.stderr  # its output went to stderr (JSON on stdout)
    assert len(runs(chain)) == before + 2
    # --keep-going: c (downstream of b) is skipped, d (independent) goes on
    done = vestige("refresh", "--keep-going", cwd=chain, env={"B_FAILS": "1"})
    assert done.returncode == 1
    text = done.stdout.decode()
    assert "1 refreshed, 1 fresh already, 1 failed, 1 skipped" in text, text
    lines = {line.split()[2]: line for line in text.splitlines()[1:]}
    # a was refreshed by the first refresh (#5): listed again as b's upstream, not rerun
    assert lines["#1"].split()[0] == "fresh" and "run #5 ran it since" in lines["#1"]
    assert lines["#2"].split()[0] == "failed" and "(exit 1)" in lines["#2"]
    assert lines["#3"].split()[0] == "skipped" and "upstream run #2 was not" in lines["#3"]
    assert lines["#4"].split()[0] == "ok" and "d.py" in lines["#4"]
    assert (chain / "side.txt").read_text() == "OTHER\n"
    # b is fixed: the refresh goes on from there; nothing is stale after it
    ok("refresh", cwd=chain)
    assert (chain / "report.txt").read_text() == "report: sum=10\n"
    assert vestige("stale", cwd=chain).returncode == 0


def test_dry_run_prints_the_order_and_runs_nothing(chain: Path) -> None:
    edit_a(chain)
    before = runs(chain)
    for args in (["stale", "--run", "--dry-run"], ["refresh", "--dry-run"]):
        text = ok(*args, cwd=chain)
        lines = text.splitlines()
        assert lines[0] == "would refresh 3 stale run(s), in this order:", text
        assert lines[1:] == [
            "1. run #1", "     vestige run a.py",
            "2. run #2 (after #1)", "     vestige run b.py",
            "3. run #3 (after #2)", "     vestige run c.py",
        ]  # fmt: skip
    assert runs(chain) == before
    plan = json.loads(ok("refresh", "--dry-run", "--json", cwd=chain))
    assert [(s["seq"], s["status"]) for s in plan] == [(1, "pending"), (2, "pending"),
                                                       (3, "pending")]  # fmt: skip
    assert plan[2]["upstream"] == [before[1]["id"]]
    done = vestige("stale", "--keep-going", cwd=chain)  # an option of --run alone
    assert done.returncode == 2 and b"--keep-going goes with --run" in done.stderr


WAITS = """
import os, sys, time
open("{me}.txt", "w").write("{me} v2\\n")
together = os.environ.get("TOGETHER")
if together:  # both must be running at once: each waits for the other's marker
    open(os.path.join(together, "{me}"), "w").close()
    for _ in range(1200):
        if os.path.exists(os.path.join(together, "{other}")):
            break
        time.sleep(0.05)
    else:
        sys.exit("{me}: the other never started")
print("{me} done")
"""


def test_jobs_run_independent_ones_at_once(project: Path, tmp_path: Path) -> None:
    for me in ("x", "y"):
        write(project, f"{me}.py", f'open("{me}.txt", "w").write("{me}\\n")\n')
    git(project, "add", "-A")
    git(project, "commit", "-qm", "two")
    ok("run", "x.py", cwd=project)
    ok("run", "y.py", cwd=project)
    for me, other in (("x", "y"), ("y", "x")):
        write(project, f"{me}.py", WAITS.format(me=me, other=other))
    markers = tmp_path / "markers"
    markers.mkdir()
    done = vestige("refresh", "-j", "2", cwd=project, env={"TOGETHER": str(markers)})
    assert done.returncode == 0, done.stderr.decode()
    assert "2 refreshed" in done.stdout.decode()
    out = done.stdout.decode()
    assert "#1 | x done" in out and "#2 | y done" in out  # each line says whose it is
    assert (project / "x.txt").read_text() == "x v2\n"
    assert vestige("stale", cwd=project).returncode == 0
