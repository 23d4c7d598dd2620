"""The torture suite's kills (issue 20): SIGKILL at seeded instants of (a) the user's
program, (b) `vestige run`, (c) a sweep's parent, (d) `vestige gc` and (e) `vestige
reindex`, 100 kills in all (KILLS). Each operation is first timed unkilled, then killed at
instants drawn uniformly from [0, SPAN x that duration] by random.Random(SEED + target).
After each kill, once the killed tree has ended, the next vestige command (`ls --json`)
recovers, and the store must hold: every run sealed before the kill is listed with the
same manifest, readable by `show --json` and whole (its objects present, or freed by gc);
no run is left `running`; `vestige fsck` exits 0; every file under objects/ hashes (BLAKE3,
computed here) to its name. A killed program is sealed `failed` with SIGKILL; a program
whose `vestige run` was killed runs to its end, and its run is sealed with the program's
own exit code (docs/architecture.md, "When vestige dies"; docs/format.md, "Write order").

Instants are judged by causality, not by timing: the program stamps CLOCK_MONOTONIC as it
starts and ends (out/<tag>.start, out/<tag>.end) and the test stamps it just before and
after each kill, so whether the program ran across the kill is known exactly. With
VESTIGE_TORTURE_FIGURES=<file> set, each target appends its figures (instants, where the
kills landed, wall time) to that file as a JSON line (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from conftest import git, vestige

pytestmark = pytest.mark.timeout(300)

SEED = 20
#: kills per target (100 in all); reindex, the cheapest, gets the most
KILLS = {"program": 20, "vestige run": 20, "sweep": 15, "gc": 15, "reindex": 30}
SPAN = 1.2  # instants are drawn from [0, SPAN x the unkilled duration]
BIG_MIB = 8  # some iterations write an output this large: storing it takes a while
CLONES = 150  # reindex: runs added to the store, so that its refill takes a while
HANG_GUARD_S = 120.0  # only against hangs: nothing waits this long when vestige works
FIGURES = os.environ.get("VESTIGE_TORTURE_FIGURES")  # (read before conftest cleans env)
SEALED = {"ok", "failed", "interrupted"}
HEX64 = re.compile(r"[0-9a-f]{64}")

#: Writes three small outputs and, given MIB > 0, one of MIB MiB; prints as it goes; stamps
#: its start and end (CLOCK_MONOTONIC: the test's clock too); exits with CODE.
PROGRAM = """\
import os, sys, time
tag, mib, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs("out", exist_ok=True)
with open(f"out/{tag}.start", "w") as f:
    f.write(str(time.monotonic_ns()))
print(f"start {tag}", flush=True)
for k in range(3):
    with open(f"out/{tag}_{k}.txt", "w") as f:
        f.write(f"{tag} {k} {time.time_ns()}\\n" * 64)
    print(f"wrote {tag}_{k}", flush=True)
    time.sleep(0.03)
if mib:
    with open(f"out/{tag}_big.bin", "wb") as f:
        f.write(os.urandom(mib << 20))
    print(f"wrote {tag}_big", flush=True)
time.sleep(0.05)
end = time.monotonic_ns()
with open(f"out/{tag}.end", "w") as f:
    f.write(str(end))
print(f"done {tag}", flush=True)
sys.exit(code)
"""


# -- processes ----------------------------------------------------------------------------


def wait_until(what: str, check: Callable[[], object]) -> Any:
    """Poll `check` until it returns something true (the deadline only guards hangs)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    return value


def session_processes(sid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process of session `sid` that has not ended (a zombie has)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            if int(fields[3]) != sid or fields[0] in (b"Z", b"X"):
                continue
            argv = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(name), argv.split("\0")[:-1]))
    return found


def program_pid(sid: int, tag: str) -> int | None:
    """The user's program `w.py TAG` in session `sid`, once it runs (not vestige, nor its
    tee: a fork of vestige, with vestige's argv until it execs the program)."""
    for pid, argv in session_processes(sid):
        if argv[1:3] == ["w.py", tag]:
            return pid
    return None


def stamp(root: Path, tag: str, which: str) -> int | None:
    """The program's start or end stamp (monotonic ns), None if it never got there."""
    try:
        return int((root / "out" / f"{tag}.{which}").read_text())
    except (OSError, ValueError):
        return None


def across(start: int | None, end: int | None, k1: int, k2: int) -> bool:
    """Whether the program ran across the kill: it started before, it ended after."""
    return start is not None and start < k1 and end is not None and end > k2


def sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(left)


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    assert done.returncode == 0, (done.args, done.returncode, done.stdout, done.stderr)
    return done.stdout


def show(root: Path, run_id: object) -> Any:
    return json.loads(ok(vestige("show", str(run_id), "--json", cwd=root)))


def ended_as(manifest: dict[str, Any]) -> tuple[str, int | None, str | None]:
    return manifest["status"], manifest["exit_code"], manifest["signal"]


def run_args(tag: str, mib: int, code: int) -> list[str]:
    return ["run", sys.executable, "w.py", tag, str(mib), str(code)]


def backdate(store: Path) -> None:
    """Objects written days ago: gc frees nothing written in the last 10 minutes."""
    old = time.time() - 3 * 86400
    for path in (store / "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


# -- one project killed over and over -----------------------------------------------------


class Torture:
    """A project and what its kills must not break: the runs sealed before the next kill,
    the objects already re-hashed (by stat: a rewritten object gets a new ctime), and the
    figures of the target."""

    def __init__(self, root: Path, target: str) -> None:
        self.root = root
        self.store = root / ".vestige"
        self.target = target
        self.kills = KILLS[target]
        self.rng = random.Random(SEED + list(KILLS).index(target))  # the instants
        self.pick = random.Random(SEED)  # the older runs `show` reads again
        self.sealed: dict[str, dict[str, Any]] = {}
        self.listing = b""  # the last `ls --json`
        self.fsck = ""  # the last fsck's output
        self.hashed: set[tuple[str, int, int, int, int]] = set()
        self.trees: set[str] = set()
        self.landed: Counter[str] = Counter()
        self.instants: list[float] = []
        self.durations: dict[str, float] = {}
        self.started = time.monotonic()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = root.parent / "logs"
        self.logs.mkdir(exist_ok=True)
        (root / "w.py").write_text(PROGRAM)
        (root / ".gitignore").write_text("out/\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "the program")

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """`vestige ARGS` in a session of its own, its output to files outside the project."""
        n = len(self.procs)
        with open(self.logs / f"{n}.out", "wb") as out, open(self.logs / f"{n}.err", "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "vestige", *args], cwd=self.root,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"{self.procs.index(proc)}.err").read_text(errors="replace")

    def reap(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for a (killed) vestige and for all it started: a tee and a program run on."""
        code = proc.wait(HANG_GUARD_S)
        wait_until(f"the processes of {proc.args} to end", lambda: not session_processes(proc.pid))
        return code

    def timed(self, name: str, *args: str, code: int = 0) -> float:
        """Run `vestige ARGS` unkilled; return how long it took (the instants' span)."""
        t0 = time.monotonic()
        proc = self.start(*args)
        assert self.reap(proc) == code, self.stderr(proc)
        took = time.monotonic() - t0
        self.durations[name] = round(took, 3)
        self.check()
        return took

    def instants_of(self, duration: float) -> Iterator[float]:
        """The kills' instants: KILLS[target] of them, seeded."""
        for _ in range(self.kills):
            self.instants.append(self.rng.uniform(0.0, SPAN * duration))
            yield self.instants[-1]

    def live(self) -> set[str]:
        try:
            return set(os.listdir(self.store / "live"))
        except OSError:
            return set()

    def cleanup(self) -> None:
        """After a failure: SIGKILL what is left of what we started, by pid."""
        for proc in self.procs:
            for pid, _argv in session_processes(proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(HANG_GUARD_S)

    # -- after a kill -------------------------------------------------------------------

    def check(self) -> list[dict[str, Any]]:
        """The next vestige command, then every invariant; returns the runs new since the
        last check."""
        self.listing = ok(vestige("ls", "--json", cwd=self.root))  # seals what was left
        rows = json.loads(self.listing)
        by_id = {str(r["id"]): r for r in rows}
        running = [(r["seq"], r["status"]) for r in rows if r["status"] not in SEALED]
        assert not running, f"runs left unsealed: {running}"  # (2)
        for run_id, before in self.sealed.items():  # (1) nothing sealed is lost or changed
            assert run_id in by_id, f"run #{before['seq']} {run_id} is gone from ls"
            now = by_id[run_id]
            assert (now["manifest"], now["status"]) == (before["manifest"], before["status"])
        new = [r for r in rows if str(r["id"]) not in self.sealed]
        again = self.pick.sample(sorted(self.sealed), min(2, len(self.sealed)))
        for row in new[:5] + [by_id[run_id] for run_id in again]:
            shown = show(self.root, row["id"])
            assert [shown[k] for k in ("id", "manifest", "status")] == [
                row[k] for k in ("id", "manifest", "status")
            ]
        fsck = vestige("fsck", cwd=self.root)  # (3)
        self.fsck = (fsck.stdout + fsck.stderr).decode()
        assert fsck.returncode == 0, self.fsck
        self.check_refs(set(by_id))
        self.check_objects()  # (4)
        left = [n for n in self.live() if (self.store / "live" / n / "run.json").exists()]
        assert not left, f"live runs left after recovery: {left}"  # (2), L1
        aside = [n for n in os.listdir(self.store / "tmp") if n.startswith("gc-")]
        assert not aside, f"objects a killed gc moved aside were not put back: {aside}"
        self.sealed = by_id
        return new

    def check_refs(self, listed: set[str]) -> None:
        """Every ref names a sealed manifest of its run, every object of which is there (a
        payload may instead be freed by gc: refs/freed/<hash>); read here, not by vestige."""
        refs = self.store / "refs" / "runs"
        freed_dir = self.store / "refs" / "freed"
        freed = set(os.listdir(freed_dir)) if freed_dir.is_dir() else set()
        names = set(os.listdir(refs))
        assert names == listed, ("refs and ls differ", names ^ listed)
        for run_id in names:
            text = (refs / run_id).read_text()
            assert HEX64.fullmatch(text[:-1]) and text[-1] == "\n", (run_id, text)
            m = self.read(text[:-1])
            assert (m["type"], m["id"], m["status"] in SEALED) == ("run", run_id, True)
            code = m.get("code") or {}
            needed = [m["env"], code.get("tree"), (m.get("metrics") or {}).get("object")]
            needed += [(m.get(log) or {}).get("hash") for log in ("stdout", "stderr")]
            payloads = [f["hash"] for f in m["inputs"] + m["outputs"] if f.get("kept")]
            payloads += [f["hash"] for a in m.get("artefacts") or () for f in a["files"]]
            for digest in filter(None, needed):
                assert self.exists(digest), (run_id, "lost", digest)
            for digest in filter(None, payloads):
                assert self.exists(digest) or digest in freed, (run_id, "lost payload", digest)
            tree = code.get("tree")
            if tree and tree not in self.trees:
                for path, _mode, _size, digest, kept in self.read(tree)["entries"]:
                    assert not kept or self.exists(digest), (run_id, "lost code", path)
                self.trees.add(tree)

    def read(self, digest: str) -> Any:
        return json.loads((self.store / "objects" / digest[:2] / digest[2:]).read_bytes())

    def exists(self, digest: str) -> bool:
        return (self.store / "objects" / digest[:2] / digest[2:]).is_file()

    def check_objects(self) -> None:
        """Every file under objects/ is a whole object: its BLAKE3 is its name (O1, O2)."""
        for fan in os.scandir(self.store / "objects"):
            assert re.fullmatch(r"[0-9a-f]{2}", fan.name) and fan.is_dir(), fan.path
            for entry in os.scandir(fan.path):
                assert re.fullmatch(r"[0-9a-f]{62}", entry.name), entry.path
                st = entry.stat(follow_symlinks=False)
                key = (entry.path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if key in self.hashed:
                    continue
                digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
                if st.st_size:
                    digest.update_mmap(entry.path)
                assert digest.hexdigest() == fan.name + entry.name, f"{entry.path}: bad bytes"
                self.hashed.add(key)

    def figures(self) -> None:
        """Append this target's figures to VESTIGE_TORTURE_FIGURES, when it is set."""
        if not FIGURES:
            return
        line = {
            "target": self.target,
            "kills": len(self.instants),
            "seed": SEED + list(KILLS).index(self.target),
            "unkilled_s": self.durations,
            "instants_s": [round(min(self.instants), 3), round(max(self.instants), 3)],
            "landed": dict(sorted(self.landed.items())),
            "runs": len(self.sealed),
            "wall_s": round(time.monotonic() - self.started, 1),
        }
        with open(FIGURES, "a") as f:
            f.write(json.dumps(line) + "\n")


@pytest.fixture
def torture(project: Path) -> Iterator[Callable[[str], Torture]]:
    made: list[Torture] = []

    def make(target: str) -> Torture:
        made.append(Torture(project, target))
        return made[-1]

    try:
        yield make
    finally:
        for t in made:
            t.cleanup()
    for t in made:
        t.figures()


def phase(t: Torture, proc: subprocess.Popen[bytes], tag: str, live_before: set[str]) -> str:
    """Where a `vestige run` is, seen from outside (a few stats, just before a kill)."""
    if proc.poll() is not None:
        return "after vestige exited"
    mine = sorted(t.live() - live_before)
    if any((t.store / "refs" / "runs" / run_id).exists() for run_id in mine):
        return "sealed: index rows, tidying"
    storing = any(n.startswith(f"obj-{proc.pid}-") for n in os.listdir(t.store / "tmp"))
    ended = any((t.store / "live" / run_id / "result.json").exists() for run_id in mine)
    if ended or stamp(t.root, tag, "end"):
        return "sealing: storing an object" if storing else "sealing"
    if stamp(t.root, tag, "start"):
        return "program running: storing an object" if storing else "program running"
    return "starting: live dir made" if mine else "starting"


# -- (a) the user's program ---------------------------------------------------------------


def test_the_program_killed_at_random_instants(torture: Callable[[str], Torture]) -> None:
    t = torture("program")
    small = t.timed("run", *run_args("m0", 0, 3), code=3)
    big = t.timed(f"run, {BIG_MIB} MiB output", *run_args("m1", BIG_MIB, 3), code=3)
    for n, at in enumerate(t.instants_of(max(small, big))):
        tag, mib = f"a{n:02d}", BIG_MIB if n % 3 == 0 else 0
        t0 = time.monotonic()
        proc = t.start(*run_args(tag, mib, 3))
        sleep_until(t0 + at)
        pid = program_pid(proc.pid, tag)
        first = pid is None and stamp(t.root, tag, "start") is None  # not started yet
        deadline = time.monotonic() + HANG_GUARD_S
        while pid is None and proc.poll() is None and stamp(t.root, tag, "end") is None:
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.001)  # (then kill it at its first instant)
            pid = program_pid(proc.pid, tag)
        k2 = None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                k2 = time.monotonic_ns()
            except ProcessLookupError:  # it ended (and was reaped) since it was found
                pass
        code = t.reap(proc)
        new = t.check()
        assert len(new) == 1, new
        manifest = show(t.root, new[0]["id"])
        end = stamp(t.root, tag, "end")
        if manifest["signal"] is not None:  # (5) killed: failed, by SIGKILL, as a shell says
            assert pid is not None, manifest
            assert ended_as(manifest) == ("failed", 128 + 9, "SIGKILL"), manifest
            assert code in (-signal.SIGKILL, 128 + 9), t.stderr(proc)  # (as test_run.py)
            t.landed["killed as it started" if first else "killed while it ran"] += 1
        else:  # it ended before the kill (or as it came): its own end
            assert end is not None and (k2 is None or end <= k2), (manifest, end, k2)
            assert ended_as(manifest) == ("failed", 3, None), manifest
            assert code == 3, t.stderr(proc)
            t.landed["after the program ended"] += 1


# -- (b) `vestige run` --------------------------------------------------------------------


def test_vestige_run_killed_at_random_instants(torture: Callable[[str], Torture]) -> None:
    t = torture("vestige run")
    small = t.timed("run", *run_args("m0", 0, 3), code=3)
    big = t.timed(f"run, {BIG_MIB} MiB output", *run_args("m1", BIG_MIB, 3), code=3)
    for n, at in enumerate(t.instants_of(max(small, big))):
        tag, mib = f"b{n:02d}", BIG_MIB if n % 3 == 0 else 0
        live_before = t.live()
        t0 = time.monotonic()
        proc = t.start(*run_args(tag, mib, 3))
        sleep_until(t0 + at)
        where = phase(t, proc, tag, live_before)
        k1 = time.monotonic_ns()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)  # vestige alone: not its tee nor the program
        k2 = time.monotonic_ns()
        code = t.reap(proc)  # the program runs on to its end
        new = t.check()
        start, end = stamp(t.root, tag, "start"), stamp(t.root, tag, "end")
        assert start is None or end is not None, "the program died with vestige"
        t.landed[where] += 1
        if code != -signal.SIGKILL:  # vestige had exited before the kill
            assert code == 3 and [r["status"] for r in new] == ["failed"], (code, new)
            continue
        assert len(new) <= 1, new
        assert start is None or len(new) == 1, "the run of a program that started was lost"
        if not new:
            continue  # killed before its run existed
        manifest = show(t.root, new[0]["id"])
        if across(start, end, k1, k2):  # (5) sealed by recovery with the program's end
            assert ended_as(manifest) == ("failed", 3, None), (where, manifest)
            assert any("ran on" in w for w in manifest["warnings"]), manifest["warnings"]
            log = ok(vestige("log", str(new[0]["id"]), cwd=t.root)).decode()
            assert log.endswith(f"done {tag}\n"), log  # every line, through vestige's tee
            t.landed["(the program ran across the kill; its own end recorded)"] += 1
        elif end is not None and end < k1:  # it ended while vestige lived: vestige's to say
            assert ended_as(manifest) in (("failed", 3, None), ("interrupted", None, None))
        else:  # vestige died before its program started
            assert ended_as(manifest)[0] in SEALED, manifest


# -- (c) a sweep's parent -----------------------------------------------------------------


def sweep_args(tag: str, mib: int) -> list[str]:
    return ["run", "--each", "i=1,2,3,4", "-j", "2", "--",
            sys.executable, "w.py", f"{tag}_{{i}}", str(mib), "3"]  # fmt: skip


def test_a_sweep_killed_at_random_instants(torture: Callable[[str], Torture]) -> None:
    t = torture("sweep")
    took = t.timed("sweep of 4, -j 2", *sweep_args("m0", 0), code=1)
    for n, at in enumerate(t.instants_of(took)):
        tag, mib = f"c{n:02d}", BIG_MIB if n % 4 == 0 else 0
        t0 = time.monotonic()
        proc = t.start(*sweep_args(tag, mib))
        sleep_until(t0 + at)
        during = proc.poll() is None
        k1 = time.monotonic_ns()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)  # the sweep alone: its children run on
        k2 = time.monotonic_ns()
        t.reap(proc)
        new = t.check()
        stamps = {i: (stamp(t.root, f"{tag}_{i}", "start"), stamp(t.root, f"{tag}_{i}", "end"))
                  for i in range(1, 5)}  # fmt: skip
        for i, (start, end) in stamps.items():
            assert start is None or end is not None, f"child {i} died with its sweep"
        started = sum(1 for start, _end in stamps.values() if start is not None)
        ran_on = sum(1 for start, end in stamps.values() if across(start, end, k1, k2))
        when = "during the sweep" if during else "after the sweep exited"
        t.landed[f"{when}: {started} children started, {ran_on} ran across the kill"] += 1
        parents = [r for r in new if r["parent"] is None]
        if not parents:
            assert not new and not started, ("children without their sweep", new)
            continue
        assert len(parents) == 1, parents
        parent = str(parents[0]["id"])
        children = show(t.root, parent)["sweep"]["children"]
        assert [c["index"] for c in children] == [0, 1, 2, 3], children  # every combination
        by_id = {str(r["id"]): r for r in new}
        named = {c["run_id"] for c in children if c["run_id"]}
        assert named == set(by_id) - {parent}, (children, new)  # every child run, named
        for child in children:
            start, end = stamps[int(child["values"]["i"])]
            if child["run_id"] is None:
                assert start is None and child["status"] in ("interrupted", "not started")
                continue
            row = by_id[child["run_id"]]
            assert (row["parent"], row["status"]) == (parent, child["status"]), (row, child)
            if across(start, end, k1, k2):
                # A local sweep's children have no tee (docs/architecture.md, "Sweeps"):
                # one that ran on past its sweep's death is sealed with its end unknown,
                # but not as still running: it had ended (reaped or not) before recovery.
                ends = (row["status"], row["exit_code"])
                assert ends in (("failed", 3), ("interrupted", None)), (child, row)
                warnings = show(t.root, row["id"])["warnings"]
                assert not [w for w in warnings if "still running" in w], warnings
                t.landed[f"(a child ran across the kill, sealed {ends[0]})"] += 1


# -- (d) `vestige gc` ---------------------------------------------------------------------


def test_gc_killed_at_random_instants(torture: Callable[[str], Torture]) -> None:
    t = torture("gc")
    ok(vestige(*run_args("g_a", 0, 0), cwd=t.root))
    ok(vestige("tag", "1", "hold", cwd=t.root))
    ok(vestige(*run_args("g_b", BIG_MIB, 0), cwd=t.root))
    ok(vestige("tag", "1", "--rm", "hold", cwd=t.root))  # untagged: gc may free its files
    t.check()
    backdate(t.store)
    took = t.timed("gc --keep-last 1", "gc", "--keep-last", "1")
    freed = t.store / "refs" / "freed"
    assert len(os.listdir(freed)) >= 3, "gc had nothing to free"
    for n, at in enumerate(t.instants_of(took)):
        tag, mib = f"d{n:02d}", BIG_MIB if n % 3 == 0 else 0
        ok(vestige(*run_args(tag, mib, 0), cwd=t.root))  # the one before: a candidate now
        rows = json.loads(ok(vestige("ls", "--json", cwd=t.root)))
        t.sealed = {str(r["id"]): r for r in rows}
        backdate(t.store)
        records = len(os.listdir(freed))
        t0 = time.monotonic()
        proc = t.start("gc", "--keep-last", "1")
        sleep_until(t0 + at)
        exited = proc.poll() is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        code = t.reap(proc)
        if exited or code == 0:
            t.landed["after gc exited"] += 1
        elif any(n.startswith("gc-") for n in os.listdir(t.store / "tmp")):
            t.landed["objects moved aside (quarantined)"] += 1
        elif len(os.listdir(freed)) > records:
            t.landed["freed records written, nothing aside"] += 1
        else:
            t.landed["before freeing anything"] += 1
        t.check()  # the next command puts back what the killed gc had moved aside
    ok(vestige("gc", "--keep-last", "1", cwd=t.root))  # and gc works on after
    t.check()


# -- (e) `vestige reindex` ----------------------------------------------------------------

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def clone_runs(store: Path, base: dict[str, Any], count: int, rng: random.Random) -> None:
    """Add `count` runs like `base` (a manifest) to the store as docs/format.md says a
    seal writes them: the manifest object (canonical JSON, named by its BLAKE3, 0444),
    then its ref. They name base's objects: a bigger store for reindex to refill."""
    for k in range(count):
        run_id = base["id"][:10] + "".join(rng.choice(CROCKFORD) for _ in range(16))
        manifest = {**base, "id": run_id, "seq": base["seq"] + 1 + k,
                    "started": base["started"] + k, "ended": base["ended"] + k}  # fmt: skip
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = blake3.blake3(data.encode()).hexdigest()
        path = store / "objects" / digest[:2] / digest[2:]
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data.encode())
        path.chmod(0o444)
        (store / "refs" / "runs" / run_id).write_text(digest + "\n")


def test_reindex_killed_at_random_instants(torture: Callable[[str], Torture]) -> None:
    t = torture("reindex")
    ok(vestige("run", "--each", "i=1,2,3,4", "-j", "2", "--",
               sys.executable, "w.py", "e_{i}", "0", "0", cwd=t.root))  # fmt: skip
    ok(vestige(*run_args("e_last", 0, 0), cwd=t.root))
    ok(vestige("pin", "2", cwd=t.root))
    ok(vestige("tag", "3", "paper", cwd=t.root))
    ok(vestige("note", "4", "a note", cwd=t.root))
    backdate(t.store)
    ok(vestige("gc", "--keep-last", "2", cwd=t.root))  # freed records, for the index too
    t.check()
    base = (t.store / "refs" / "runs" / show(t.root, "6")["id"]).read_text()
    clone_runs(t.store, t.read(base.strip()), CLONES, random.Random(SEED))
    took = t.timed("reindex", "reindex")  # (it indexes the clones)
    before = t.listing
    assert len(json.loads(before)) == 6 + CLONES
    for at in t.instants_of(took):
        t0 = time.monotonic()
        proc = t.start("reindex")
        sleep_until(t0 + at)
        exited = proc.poll() is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        code = t.reap(proc)
        t.landed["after reindex exited" if exited or code == 0 else "during reindex"] += 1
        t.check()
        assert t.listing == before, "a killed reindex lost runs, pins or tags from the index"
        assert "I1" not in t.fsck, t.fsck  # the index agrees with the refs


#: `vestige reindex`, SIGKILLed as it writes the first run's rows of its refill.
REINDEX_KILLED_IN_REFILL = """\
import os, signal, sys
from vestige.index.record import Recorder

def killed(self, *args):
    os.kill(os.getpid(), signal.SIGKILL)

Recorder._record = Recorder._write = killed  # (run by run, or reindex's bulk rows)
sys.argv = ["vestige", "reindex"]
from vestige.cli import main
main()
"""


def test_a_reindex_killed_while_it_refills_loses_no_run(project: Path) -> None:
    """The instant the random kills of reindex hit now and then, made certain: the index
    emptied, not refilled yet. The old index must stay whole (one transaction), not be
    left empty, with every run gone from ls and show until someone runs reindex again."""
    (project / "w.py").write_text(PROGRAM)
    ok(vestige(*run_args("r1", 0, 0), cwd=project))
    assert vestige(*run_args("r2", 0, 3), cwd=project).returncode == 3
    ok(vestige("pin", "1", cwd=project))
    ok(vestige("tag", "2", "paper", cwd=project))
    before = ok(vestige("ls", "--json", cwd=project))
    killed = subprocess.run([sys.executable, "-c", REINDEX_KILLED_IN_REFILL], cwd=project,
                            capture_output=True, timeout=HANG_GUARD_S, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert ok(vestige("ls", "--json", cwd=project)) == before
    assert show(project, "2")["status"] == "failed"
    fsck = ok(vestige("fsck", cwd=project)).decode()
    assert "I1" not in fsck, fsck


def test_a_command_that_ended_is_not_said_to_run_on_while_unreaped(project: Path) -> None:
    """What the sweep kills above met: an orphaned command that ended is a zombie until
    its new parent reaps it (this VM's init takes ~1.5 s; some containers' never do).
    Recovery must not record it as still running when the run is sealed."""
    (project / "w.py").write_text(PROGRAM)
    ok(vestige(*run_args("z1", 0, 0), cwd=project))
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # never reaped until the end
    try:
        wait_until("a zombie", lambda: Path(f"/proc/{zombie.pid}/stat").read_bytes()
                   .rsplit(b")", 1)[1].split()[0] == b"Z")  # fmt: skip
        ticks = Path(f"/proc/{zombie.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19]
        run_id = show(project, "1")["id"][:10] + "ZZZZZZZZZZZZZZZZ"
        live = project / ".vestige" / "live" / run_id
        (live / "events").mkdir(parents=True)
        info = {"id": run_id, "seq": 2, "command": ["python", "w.py"], "cwd": ".",
                "root": str(project), "started": time.time() - 2, "host": os.uname().nodename,
                "runner_pid": 2**22 + 1, "runner_start": "0",  # (above pid_max: gone)
                "child_pid": zombie.pid, "child_start": ticks.decode()}  # fmt: skip
        (live / "run.json").write_text(json.dumps(info))
        (live / "stdout").write_bytes(b"start z2\n")
        rows = json.loads(ok(vestige("ls", "--json", cwd=project)))  # recovers it
        assert [(r["seq"], r["status"]) for r in rows] == [(2, "interrupted"), (1, "ok")]
        warnings = show(project, "2")["warnings"]
        assert not [w for w in warnings if "still running" in w], warnings
        assert "vestige was stopped while the command ran; captured until then" in warnings
    finally:
        zombie.wait()
