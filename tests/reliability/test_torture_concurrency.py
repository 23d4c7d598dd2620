"""Torture (issue 20): 16 `vestige run`s started at once in one project, each logging
metrics through the API and writing its own files, while `vestige ls --json` and `vestige
gc --dry-run` are asked again and again until they end. Afterwards every run has exactly
its own outputs, `which` names the right run, every metric point is there, the run
numbers are 1..16 (the first round also races to create the store), and fsck is clean;
then a second round in the same store. Real subprocesses, the real CLI; no timing is
asserted, only generous deadlines. With VESTIGE_TORTURE_FIGURES=<file> set, each round's
figures (its time, how often ls and gc answered meanwhile) are appended to that file as a
JSON line (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import vestige

pytestmark = pytest.mark.timeout(900)

RUNS = 16
ROUNDS = 2
STEPS = 50
#: every wait of this file gives up after this long (a stuck run, not a slow machine)
DEADLINE_S = 600
FIGURES = os.environ.get("VESTIGE_TORTURE_FIGURES")  # (read before conftest cleans env)

#: Each run waits for the common start time, logs half its points of two metrics (explicit
#: steps), writes its two files, waits until the test lets it go (once `ls` saw all the
#: runs of the round running at once, and both pollers answered since), then logs the rest.
WORKER = """
    import os
    import sys
    import time

    import vestige

    k = int(sys.argv[1])
    round_ = int(os.environ["TORTURE_ROUND"])
    go = float(os.environ["TORTURE_GO"])
    while time.time() < go:
        time.sleep(0.005)
    for step in range({steps}):
        if step == {steps} // 2:
            with open(f"out_{{k}}.txt", "w") as f:
                f.write(f"round {{round_}} run {{k}}\\n")
            os.makedirs(f"res/{{k}}/deep", exist_ok=True)
            with open(f"res/{{k}}/deep/part.txt", "w") as f:
                f.write(f"part of round {{round_}} run {{k}}\\n")
            deadline = time.monotonic() + {deadline}
            while not os.path.exists(os.environ["TORTURE_RELEASE"]):  # (outside the project)
                if time.monotonic() > deadline:
                    sys.exit("never released")
                time.sleep(0.02)
        vestige.log(step=step, loss=k + step / 1000, acc=step / {steps})
        time.sleep(0.01)
"""


def own_files(k: int) -> set[str]:
    return {f"out_{k}.txt", f"res/{k}/deep/part.txt"}


def ok(*args: str, cwd: Path) -> bytes:
    done = vestige(*args, cwd=cwd, timeout=DEADLINE_S)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done.stdout


def as_json(*args: str, cwd: Path) -> Any:
    return json.loads(ok(*args, "--json", cwd=cwd))


class Poller:
    """Runs one CLI command again and again in a thread (once the store exists) until
    stopped; keeps every failure: a non-zero exit, or output `check` refuses."""

    def __init__(self, project: Path, args: tuple[str, ...], check: Callable[[Any], str]) -> None:
        self.project, self.args, self.check = project, args, check
        self.calls = 0
        self.most_running = 0  # (for `ls`: the most runs one answer listed as running)
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        store = self.project / ".vestige" / "format"  # (a store exists once this does)
        while not self.stop.is_set() and not store.exists():
            time.sleep(0.01)
        while not self.stop.is_set():
            try:
                done = vestige(*self.args, cwd=self.project, timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.failures.append(f"{self.args}: no answer in {DEADLINE_S} s")
                continue
            self.calls += 1
            if done.returncode != 0:
                self.failures.append(f"{self.args} exited {done.returncode}: "
                                     f"{done.stderr.decode(errors='replace')[-2000:]}")  # fmt: skip
                continue
            try:
                data = json.loads(done.stdout)
            except ValueError as e:
                self.failures.append(f"{self.args}: not JSON ({e}): {done.stdout[:500]!r}")
                continue
            problem = self.check(data)
            if problem:
                self.failures.append(f"{self.args}: {problem}")
            elif isinstance(data, list):
                running = sum(r.get("status") == "running" for r in data)
                self.most_running = max(self.most_running, running)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=DEADLINE_S)


def check_listing(data: Any) -> str:
    """What is wrong with one `ls --json` answer taken while runs come and go, or ''."""
    if not isinstance(data, list):
        return f"not a list: {data!r:.200}"
    seqs = [r.get("seq") for r in data]
    ids = [r.get("id") for r in data]
    if len(set(seqs)) != len(seqs) or len(set(ids)) != len(ids):
        return f"a run number or id twice: {sorted(seqs)}"
    if seqs != sorted(seqs, reverse=True):
        return f"not newest first: {seqs}"
    bad = [r for r in data if r.get("status") not in ("running", "ok")]
    return f"runs neither running nor ok: {bad}" if bad else ""


def check_plan(data: Any) -> str:
    if not isinstance(data, dict) or data.get("dry_run") is not True:
        return f"not a dry-run plan: {data!r:.300}"
    return ""


def start_round(project: Path, round_: int, release: Path) -> list[subprocess.Popen[bytes]]:
    """The RUNS runs of a round, started together: each waits for a common start time."""
    env = {**os.environ, "TORTURE_ROUND": str(round_), "TORTURE_GO": str(time.time() + 2.0),
           "TORTURE_RELEASE": str(release)}  # fmt: skip
    return [
        subprocess.Popen(
            [sys.executable, "-m", "vestige", "run", sys.executable, "w.py", str(k)],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for k in range(RUNS)
    ]  # fmt: skip


def hold_until_polled(
    procs: list[subprocess.Popen[bytes]], ls: Poller, gc: Poller, release: Path
) -> None:
    """Let the runs go on once `ls` listed all of them running at once and both pollers
    answered twice more since (or as soon as a run ended early: the caller sees why)."""
    deadline = time.monotonic() + DEADLINE_S
    marks: tuple[int, int] | None = None
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if marks is None and ls.most_running >= RUNS:
            marks = (ls.calls, gc.calls)
        if marks is not None and ls.calls >= marks[0] + 2 and gc.calls >= marks[1] + 2:
            break
        time.sleep(0.02)
    release.touch()
    assert marks is not None, f"ls never listed the {RUNS} runs running at once"


def figures(round_: int, seconds: float, ls: Poller, gc: Poller) -> None:
    """Append a round's figures to VESTIGE_TORTURE_FIGURES, when it is set."""
    if not FIGURES:
        return
    line = {"test": "concurrency", "round": round_, "runs": RUNS, "round_s": round(seconds, 1),
            "ls_calls": ls.calls, "gc_calls": gc.calls, "most_running": ls.most_running,
            "failures": len(ls.failures) + len(gc.failures)}  # fmt: skip
    with open(FIGURES, "a") as f:
        f.write(json.dumps(line) + "\n")


def check_outputs(run: dict[str, Any], k: int) -> None:
    """The run's confirmed outputs are exactly its own files; anything else it lists is a
    file no run had claimed when it was sealed: not confirmed, and said to be ambiguous."""
    outputs = {f["path"]: f for f in run["outputs"]}
    confirmed = {p for p, f in outputs.items() if f.get("confirmed", True)}
    assert confirmed == own_files(k), (k, outputs)
    anyone = set().union(*(own_files(j) for j in range(RUNS)))
    for path in set(outputs) - confirmed:
        record = outputs[path]
        assert path in anyone, (k, record)  # (nothing but the runs' own files)
        assert record.get("ambiguous") is True, (k, record)
    for path in own_files(k):
        assert outputs[path]["kept"] is True, (k, outputs[path])
        assert not outputs[path].get("ambiguous"), (k, outputs[path])


def check_metrics(project: Path, seq: int, k: int) -> None:
    """Every point of both metrics, in order, with its exact value."""
    series = as_json("metrics", str(seq), "loss", "acc", cwd=project)
    steps = list(range(STEPS))
    assert series["loss"]["step"] == steps, (k, series["loss"]["step"])
    assert series["loss"]["value"] == [k + s / 1000 for s in steps], k
    assert series["acc"]["step"] == steps, (k, series["acc"]["step"])
    assert series["acc"]["value"] == [s / STEPS for s in steps], k
    summary = as_json("metrics", str(seq), cwd=project)
    assert {key: v["count"] for key, v in summary.items()} == {"loss": STEPS, "acc": STEPS}


def test_sixteen_concurrent_runs_with_ls_and_gc_polling(project: Path, tmp_path: Path) -> None:
    (project / "w.py").write_text(textwrap.dedent(WORKER.format(steps=STEPS, deadline=DEADLINE_S)))
    (project / ".gitignore").write_text("out_*.txt\nres/\n")  # (the outputs are not code)
    for round_ in range(1, ROUNDS + 1):
        first = (round_ - 1) * RUNS + 1
        release = tmp_path / f"release-{round_}"
        started = time.monotonic()
        with (Poller(project, ("ls", "--json"), check_listing) as ls,
              Poller(project, ("gc", "--dry-run", "--keep-last", "1", "--json"),
                     check_plan) as gc):  # fmt: skip
            procs = start_round(project, round_, release)
            try:
                hold_until_polled(procs, ls, gc, release)
            finally:
                for k, proc in enumerate(procs):
                    err = proc.communicate(timeout=DEADLINE_S)[1]
                    assert proc.returncode == 0, (round_, k, err.decode(errors="replace"))
                    assert b"warning" not in err, (round_, k, err.decode(errors="replace"))
        figures(round_, time.monotonic() - started, ls, gc)
        assert not ls.failures, ls.failures[:3]
        assert not gc.failures, gc.failures[:3]

        listed = as_json("ls", cwd=project)
        assert sorted(r["seq"] for r in listed) == list(range(1, first + RUNS))
        assert len({r["id"] for r in listed}) == len(listed)
        assert {r["status"] for r in listed} == {"ok"}
        this_round = {int(r["command"][-1]): r for r in listed if r["seq"] >= first}
        assert sorted(this_round) == list(range(RUNS)), [r["command"] for r in listed]

        for k, row in sorted(this_round.items()):
            run = as_json("show", str(row["seq"]), cwd=project)
            assert run["exit_code"] == 0 and run["status"] == "ok", (k, run["warnings"])
            check_outputs(run, k)
            assert run["metrics"]["points"] == 2 * STEPS, (k, run["metrics"])
            check_metrics(project, row["seq"], k)
            which = as_json("which", f"out_{k}.txt", cwd=project)
            makers = [(m["seq"], m["confirmed"]) for m in which["made_by"]]
            assert makers == [(row["seq"], True)], (k, which)
            text = ok("cat", str(row["seq"]), f"res/{k}/deep/part.txt", cwd=project)
            assert text == f"part of round {round_} run {k}\n".encode()

        done = vestige("fsck", cwd=project, timeout=DEADLINE_S)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert b"error" not in done.stderr, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("removed", ["run.json", "the folder"])
def test_a_run_sealed_while_a_command_looks_at_live_runs_is_not_an_orphan(
    project: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], removed: str
) -> None:
    """Found by the torture above: `vestige ls` exited 1 (FileNotFoundError on
    `live/<id>/sealing`) when a run ended just as ls looked at the live runs. Every command
    seals the live runs whose vestige died (recording/recover.py): it read run.json, then
    the owner sealed the run and removed its live folder, run.json first; asked again, the
    folder said "no run.json: the runner died at once", and ls claimed the run, in a folder
    that was gone (the crash) or going (then it sealed the run a second time, as if
    orphaned). Here the owner is this process, alive, and it seals at the worst moment."""
    from vestige.fastpath import boot_id, hostname, proc_start
    from vestige.ids import new_run_id
    from vestige.recording.recover import recover
    from vestige.repo import Repo
    from vestige.store.refs import Refs

    ok("run", sys.executable, "-c", "pass", cwd=project)  # (a store, with its index)
    store = project / ".vestige"
    live = store / "live" / new_run_id()
    (live / "events").mkdir(parents=True)
    info = {"id": live.name, "started": time.time(), "since_ns": time.time_ns(),
            "root": str(project), "cwd": ".", "host": hostname(), "boot_id": boot_id(),
            "runner_pid": os.getpid(), "runner_start": proc_start(os.getpid()),
            "parent": None, "rerun_of": None, "command": ["python", "x.py"], "seq": 2}  # fmt: skip
    (live / "run.json").write_text(json.dumps(info))
    real_get = Refs.get

    def get(refs: Refs, run_id: str) -> str | None:
        found = real_get(refs, run_id)
        if run_id == live.name and live.exists():  # the owner seals now: its folder goes
            if removed == "run.json":
                (live / "run.json").unlink()
            else:
                (live / "run.json").unlink()
                (live / "events").rmdir()
                live.rmdir()
        return found

    repo = Repo.open_at(str(store), str(project))
    monkeypatch.setattr(Refs, "get", get)
    try:
        assert recover(repo) == []  # (not claimed, not sealed: its owner is alive)
    finally:
        monkeypatch.undo()
        repo.close()
    assert not (live / "sealing").exists()
    assert not (store / "refs" / "runs" / live.name).exists()
    assert "warning" not in capfd.readouterr().err
