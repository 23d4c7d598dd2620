"""Sweeps with the local executor: children, failures, --fail-fast, Ctrl-C, --skip-done,
glob values, grids and bad specs (real `vestige run` processes in a real git project)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import git, vestige

TRAIN = """
import argparse, sys, time
import vestige
p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--seed", type=int, default=0)
p.add_argument("--sleep", type=float, default=0)
a = p.parse_args()
data = open(f"data/{a.model}.txt").read().strip()
time.sleep(a.sleep)
vestige.log(loss=len(data) / (a.seed + 1))
print(f"{a.model} {a.seed} {data}", flush=True)
open(f"out/{a.model}-{a.seed}.txt", "w").write(data)
sys.exit(3 if data == "broken" else 0)
"""


@pytest.fixture
def sweep_project(project: Path) -> Path:
    (project / "data").mkdir()
    for model in ("resnet", "vit", "mlp", "bad"):
        (project / "data" / f"{model}.txt").write_text("broken" if model == "bad" else model)
    (project / "out").mkdir()
    (project / "out" / ".keep").write_text("")
    (project / ".gitignore").write_text("out/\n")
    (project / "train.py").write_text(textwrap.dedent(TRAIN))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "sweep")
    return project


def runs(root: Path, *args: str) -> list[dict]:
    done = vestige("ls", "--json", *args, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def last_sweep(root: Path) -> dict:
    """The newest sweep's manifest (its children got higher numbers than the parent)."""
    parent = next(r for r in runs(root) if r["command"][:2] == ["vestige", "run"])
    return manifest(root, str(parent["seq"]))


def manifest(root: Path, ref: str) -> dict:
    return json.loads(vestige("show", ref, "--json", cwd=root).stdout)


def test_twelve_children_one_failing(sweep_project: Path) -> None:
    done = vestige(
        "run", "--each", "model=resnet,vit,mlp,bad", "--each", "seed=1,2,3", "-j", "3",
        "--", "train.py", "--model", "{model}", "--seed", "{seed}", cwd=sweep_project,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    out = done.stdout.decode()
    assert "12 children: " in out and "9 ok" in out and "3 failed" in out
    assert "failed: model=bad seed=1" in out and "exit 3" in out
    all_runs = runs(sweep_project)
    parent = next(r for r in all_runs if r["command"][:2] == ["vestige", "run"])
    assert parent["status"] == "failed" and parent["exit_code"] == 1
    sweep = manifest(sweep_project, str(parent["seq"]))["sweep"]
    assert [c["values"] for c in sweep["children"]][:2] == [
        {"model": "resnet", "seed": "1"}, {"model": "resnet", "seed": "2"}
    ]  # fmt: skip
    assert sorted(c["status"] for c in sweep["children"]) == ["failed"] * 3 + ["ok"] * 9
    children = runs(sweep_project, "--sweep", str(parent["seq"]))
    assert len(children) == 12 and all(c["parent"] == parent["id"] for c in children)
    assert {c["params"]["model"] for c in children} == {"resnet", "vit", "mlp", "bad"}
    assert all(c["metrics"]["loss"] > 0 for c in children)
    table = json.loads(vestige("compare", "--sweep", str(parent["seq"]), "--json",
                               cwd=sweep_project).stdout)  # fmt: skip
    names = [c["name"] for c in table["columns"] if c["differs"]]
    assert {"model", "seed", "loss"} <= set(names) and len(table["runs"]) == 12
    text = vestige("show", str(parent["seq"]), cwd=sweep_project).stdout.decode()
    assert "sweep (12 children: " in text and "failed (exit 3)  model=bad seed=1" in text
    # each child's output is kept by its own run
    child = next(c for c in children if (c["params"]["model"], c["params"]["seed"]) == ("vit", 2))
    assert vestige("log", str(child["seq"]), cwd=sweep_project).stdout == b"vit 2 vit\n"


def test_fail_fast_stops_at_the_first_failure(sweep_project: Path) -> None:
    done = vestige("run", "--each", "model=bad,resnet,vit", "--fail-fast", "--",
                   "train.py", "--model", "{model}", cwd=sweep_project)  # fmt: skip
    assert done.returncode == 1
    assert runs(sweep_project)[-1]["command"][:2] == ["vestige", "run"]
    statuses = [c["status"] for c in manifest(sweep_project, "1")["sweep"]["children"]]
    assert statuses == ["failed", "not started", "not started"]
    assert len(runs(sweep_project, "--sweep", "1")) == 1


def test_ctrl_c_interrupts_running_and_pending_children(sweep_project: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", "model=resnet,vit,mlp,bad", "-j", "2",
         "--", "train.py", "--model", "{model}", "--sleep", "30"],
        cwd=sweep_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        live = sweep_project / ".vestige" / "live"
        if live.is_dir() and len(os.listdir(live)) >= 3:  # the parent and two children
            break
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    sweep = manifest(sweep_project, "1")
    assert sweep["status"] == "interrupted"
    assert [c["status"] for c in sweep["sweep"]["children"]] == ["interrupted"] * 4
    children = runs(sweep_project, "--sweep", "1")
    assert len(children) == 2 and {c["status"] for c in children} == {"interrupted"}
    assert not os.listdir(sweep_project / ".vestige" / "live")
    assert vestige("fsck", cwd=sweep_project).returncode == 0


def test_skip_done_reruns_only_what_changed(sweep_project: Path) -> None:
    args = ["run", "--each", "model=resnet,vit,bad", "--skip-done", "--",
            "train.py", "--model", "{model}"]  # fmt: skip
    assert vestige(*args, cwd=sweep_project).returncode == 1
    (sweep_project / "data" / "bad.txt").write_text("fixed")  # the one failing child's input
    done = vestige(*args, cwd=sweep_project)
    assert done.returncode == 0, done.stdout.decode()
    second = last_sweep(sweep_project)
    statuses = {c["values"]["model"]: c["status"] for c in second["sweep"]["children"]}
    assert statuses == {"resnet": "skipped", "vit": "skipped", "bad": "ok"}
    listed = runs(sweep_project, "--sweep", str(second["seq"]))  # the whole grid: the new
    assert len(listed) == 3  # child and the two earlier runs this sweep reused
    assert [r["params"]["model"] for r in listed if r["parent"] == second["id"]] == ["bad"]
    table = vestige("compare", "--sweep", str(second["seq"]), "--json", cwd=sweep_project)
    assert table.returncode == 0, table.stderr.decode()
    # a code change makes every child run again
    (sweep_project / "train.py").write_text(textwrap.dedent(TRAIN) + "# edited\n")
    done = vestige(*args, cwd=sweep_project)
    third = last_sweep(sweep_project)
    assert [c["status"] for c in third["sweep"]["children"]] == ["ok", "ok", "ok"]


def test_glob_values_and_a_grid_file(sweep_project: Path) -> None:
    show = "import sys; print(open(sys.argv[1]).read())"
    done = vestige("run", "--each", "f=glob:data/*.txt", "--", "python", "-c", show, "{f}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    children = runs(sweep_project, "--sweep", "1")
    assert sorted(c["params"]["f"] for c in children) == [
        "data/bad.txt", "data/mlp.txt", "data/resnet.txt", "data/vit.txt"
    ]  # fmt: skip
    (sweep_project / "grid.json").write_text(json.dumps(
        {"model": ["resnet", "vit"], "seed": {"range": [0, 6, 2]}}
    ))  # fmt: skip
    done = vestige("run", "--grid", "grid.json", "-j", "2", "--", "train.py", "--model",
                   "{model}", "--seed", "{seed}", cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    values = [c["values"] for c in last_sweep(sweep_project)["sweep"]["children"]]
    expected = [{"model": m, "seed": s} for m in ("resnet", "vit") for s in ("0", "2", "4")]
    assert values == expected


BAD_SPECS = [
    (["--each", "model=a,b", "--", "python", "x.py", "{modle}"], "uses {modle}"),
    (["--each", "model=a,b", "--", "python", "x.py"], "--each model=... is not used"),
    (["--each", "model", "--", "python", "x.py", "{model}"], "write NAME=V1,V2"),
    (["--each", "model=a,,b", "--", "python", "x.py", "{model}"], "empty value"),
    (["--each", "f=glob:nothing/*.csv", "--", "python", "x.py", "{f}"], "no file matches"),
    (["-j", "2", "--", "python", "x.py"], "goes with --each or --grid"),
    (["--each", "m=a", "-j", "0", "--", "python", "x.py", "{m}"], "expected 1 or more"),
    (["--grid", "missing.json", "--", "python", "x.py", "{m}"], "cannot read it"),
    (["--each", "m=a", "--each", "m=b", "--", "python", "x.py", "{m}"], "given twice"),
    (["--each", "m=a", "--executor", "nope", "--", "python", "x.py", "{m}"], "choose local"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_SPECS, ids=[n for _, n in BAD_SPECS])
def test_bad_specs_fail_before_anything_runs(sweep_project: Path, args: list[str],
                                             needle: str) -> None:  # fmt: skip
    done = vestige("run", *args, cwd=sweep_project)
    assert done.returncode == 2, done.stdout
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert not (sweep_project / ".vestige").exists()


def test_executor_settings_from_the_config(sweep_project: Path) -> None:
    (sweep_project / ".vestige").mkdir()
    (sweep_project / ".vestige" / "config.toml").write_text("[executor]\njobs = 2\n")
    done = vestige("run", "--each", "model=resnet,vit", "--", "train.py", "--model", "{model}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert last_sweep(sweep_project)["sweep"]["spec"]["jobs"] == 2
    (sweep_project / ".vestige" / "config.toml").write_text('[executor]\ndefault = "nope"\n')
    done = vestige("run", "--each", "model=resnet", "--", "train.py", "--model", "{model}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 2 and b"choose local, dask or slurm" in done.stderr


def test_concurrent_children_keep_their_own_outputs(sweep_project: Path) -> None:
    """Two children at once write into the same folder: each run lists only its own file
    (the scan of the shared tree sees both; the audit hook says whose each is)."""
    (sweep_project / "w.py").write_text(textwrap.dedent("""
        import sys, time
        time.sleep(0.3)
        open(f"out/{sys.argv[1]}.txt", "w").write(sys.argv[1])
        time.sleep(0.6)
    """))  # fmt: skip
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "w")
    done = vestige("run", "--each", "i=a,b,c,d", "-j", "2", "--", "w.py", "{i}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    for child in runs(sweep_project, "--sweep", "1"):
        outputs = [o["path"] for o in manifest(sweep_project, str(child["seq"]))["outputs"]]
        assert outputs == [f"out/{child['params']['i']}.txt"], (child["params"], outputs)


def test_sequential_shell_children_each_keep_exactly_their_bytes(sweep_project: Path) -> None:
    """No audit hook sees a shell's writes, so only order keeps them apart: with -j 1 a
    child's outputs are read (and kept) before the next command starts, even though its
    manifest is written while the next one runs. Each child also rewrites one shared file:
    each run must keep the bytes it wrote, not a later sibling's."""
    done = vestige("run", "--each", "i=1,2,3,4", "--", "sh", "-c",
                   "echo {i} > out/s{i}.txt; echo {i} > out/shared.txt; echo line-{i}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    for child in runs(sweep_project, "--sweep", "1"):
        i = child["params"]["i"]
        seq = str(child["seq"])
        outputs = {o["path"] for o in manifest(sweep_project, seq)["outputs"]}
        assert outputs == {f"out/s{i}.txt", "out/shared.txt"}, (i, outputs)
        shared = vestige("cat", seq, "out/shared.txt", cwd=sweep_project)
        assert shared.stdout.decode() == f"{i}\n"
        assert vestige("log", seq, cwd=sweep_project).stdout.decode() == f"line-{i}\n"


def test_a_failed_childs_last_line_is_in_the_summary(sweep_project: Path) -> None:
    done = vestige("run", "--each", "i=1,2", "--", "sh", "-c",
                   "echo out-{i}; echo 'boom {i}' >&2; exit {i}", cwd=sweep_project)  # fmt: skip
    assert done.returncode == 1
    text = done.stdout.decode()
    assert "exit 1: boom 1" in text and "exit 2: boom 2" in text, text


def test_a_sweep_killed_while_children_wait_to_be_committed_loses_none(
    sweep_project: Path,
) -> None:
    """Children are committed in batches (sweep/local.py Committer): one that ended waits
    a moment with only its live directory. SIGKILL the sweep just after children ended:
    the next command seals each with the status it ended with, and the store checks out."""
    (sweep_project / "q.py").write_text("import sys\nprint(sys.argv[1])\n")
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "q")
    values = ",".join(str(i) for i in range(200))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", f"i={values}", "-j", "2", "--",
         "q.py", "{i}"],
        cwd=sweep_project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    live = sweep_project / ".vestige" / "live"
    ended: dict[str, str] = {}  # run id -> status, read from result.json before the kill
    deadline = time.monotonic() + 60
    while len(ended) < 8 and time.monotonic() < deadline and proc.poll() is None:
        for d in live.iterdir() if live.is_dir() else ():
            try:
                ended[d.name] = json.loads((d / "result.json").read_text())["status"]
            except (OSError, ValueError):
                continue
    proc.kill()
    proc.wait(timeout=60)
    assert len(ended) >= 8, "the sweep finished before 8 children were seen ended"
    children = {r["id"]: r for r in runs(sweep_project, "--sweep", "1")}  # recovers first
    assert not os.listdir(live)
    for run_id, status in ended.items():
        assert children[run_id]["status"] == status == "ok", children.get(run_id)
        shown = manifest(sweep_project, run_id)
        assert shown["exit_code"] == 0 and shown["code"]["tree"], shown
    assert {c["status"] for c in children.values()} <= {"ok", "interrupted"}
    check = vestige("fsck", cwd=sweep_project)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_a_child_that_edits_code_gives_the_next_child_a_new_snapshot(
    sweep_project: Path,
) -> None:
    """A sweep reuses the last child's code snapshot while the tree and git are unchanged
    (and settled). A child that edits a tracked file changes both: the next one snapshots
    again, and records the new bytes."""
    (sweep_project / "helper.py").write_text("VERSION = 1\n")
    (sweep_project / "edit.py").write_text(textwrap.dedent("""
        import sys
        if sys.argv[1] == "2":
            open("helper.py", "w").write("VERSION = 2\\n")
    """))  # fmt: skip
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "edit")
    time.sleep(2.2)  # older than the racy window: the snapshot of child 1 may be reused
    done = vestige("run", "--each", "i=1,2,3,4", "--", "edit.py", "{i}", cwd=sweep_project)
    assert done.returncode == 0, done.stderr.decode()
    by_i = {str(c["params"]["i"]): manifest(sweep_project, str(c["seq"]))
            for c in runs(sweep_project, "--sweep", "1")}  # fmt: skip
    trees = {i: m["code"]["tree"] for i, m in by_i.items()}
    assert trees["1"] == trees["2"] != trees["3"] == trees["4"], trees
    assert by_i["1"]["code"]["git"]["dirty"] is False
    assert by_i["3"]["code"]["git"]["dirty"] is True
    for i, version in (("1", "1"), ("3", "2")):
        seq = str(by_i[i]["seq"])
        shown = vestige("cat", seq, "helper.py", cwd=sweep_project)
        assert shown.stdout.decode() == f"VERSION = {version}\n", (i, shown.stderr.decode())


CLEANUP = """
import sys, time
print("ready", flush=True)
try:
    time.sleep(30)
except KeyboardInterrupt:
    time.sleep(1.0)  # a graceful shutdown: a second Ctrl-C here would cut it short
    open(f"out/checkpoint-{sys.argv[1]}.txt", "w").write("saved")
    sys.exit(3)
"""


def test_ctrl_c_on_a_terminal_reaches_each_child_once(sweep_project: Path) -> None:
    """The terminal sends Ctrl-C to the whole foreground group, children included: the
    sweep must not send it again (a child's graceful shutdown would be cut short), must
    wait for them, and must link each to the parent."""
    import fcntl
    import termios

    (sweep_project / "clean.py").write_text(CLEANUP)
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "clean")
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", "i=1,2,3", "-j", "2", "--",
         "clean.py", "{i}"],
        cwd=sweep_project, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=controlling_terminal,
    )  # fmt: skip
    os.close(slave)
    live = sweep_project / ".vestige" / "live"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both children printed "ready"
        logs = [d / "stdout" for d in live.iterdir()] if live.is_dir() else []
        if sum(1 for f in logs if f.exists() and b"ready" in f.read_bytes()) >= 2:
            break
        time.sleep(0.1)
    os.write(master, b"\x03")  # Ctrl-C, as typed
    seen = b""
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 130, seen.decode(errors="replace")
    for i in ("1", "2"):
        assert (sweep_project / "out" / f"checkpoint-{i}.txt").read_text() == "saved"
    sweep = manifest(sweep_project, "1")
    kids = sweep["sweep"]["children"]
    # they ended because of the Ctrl-C, with their own exit code: interrupted, as a single
    # `vestige run` records a command that exits 3 after Ctrl-C
    assert [c["status"] for c in kids] == ["interrupted"] * 3, kids
    assert [c["exit_code"] for c in kids[:2]] == [3, 3] and kids[2]["run_id"] is None
    for c in kids[:2]:
        child = manifest(sweep_project, c["run_id"])
        assert (child["status"], child["exit_code"]) == ("interrupted", 3)
    assert not os.listdir(live)
    assert vestige("fsck", cwd=sweep_project).returncode == 0


def test_a_sweep_killed_hard_is_sealed_with_its_whole_plan(
    sweep_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the sweep: the next command seals the children first, then the parent
    with every combination of the plan, each with its values, run and final status."""
    monkeypatch.setenv("VESTIGE_HEARTBEAT_S", "0.2")  # (5 s unless told)
    (sweep_project / "nap.py").write_text(
        "import sys, time\ntime.sleep(0.05 if int(sys.argv[1]) < 3 else 30)\n"
    )
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "nap")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", "i=0,1,2,3,4,5,6", "-j", "2", "--",
         "nap.py", "{i}"],
        cwd=sweep_project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    refs = sweep_project / ".vestige" / "refs" / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(os.listdir(refs) if refs.is_dir() else ()) < 3:
        time.sleep(0.05)  # children 0, 1 and 2 are sealed
    time.sleep(1.5)  # children 3 and 4 are sleeping now, silently
    os.killpg(proc.pid, signal.SIGKILL)  # vestige and the children with it
    proc.wait(timeout=60)
    killed = time.time()
    time.sleep(1.5)  # recovery comes later: the sweep ended when it died, not then
    done = vestige("fsck", cwd=sweep_project)  # recovers, then checks
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    sweep = manifest(sweep_project, "1")
    assert sweep["status"] == "interrupted"
    assert sweep["exit_code"] is None  # (not 130: no Ctrl-C ended it)
    assert sweep["warnings"][0].startswith("vestige was stopped while the sweep ran")
    # it and its sleeping children ended at the kill (their heartbeats), not at recovery
    assert killed - 0.7 < sweep["ended"] <= killed
    assert sweep["duration"] == pytest.approx(sweep["ended"] - sweep["started"], abs=1e-3)
    kids = sweep["sweep"]["children"]
    assert [c["index"] for c in kids] == list(range(7))
    assert [c["values"] for c in kids] == [{"i": str(i)} for i in range(7)]
    assert [c["status"] for c in kids[:3]] == ["ok"] * 3
    assert {c["status"] for c in kids[3:]} == {"interrupted"}
    assert all(c["run_id"] for c in kids[:5]) and not any(c["run_id"] for c in kids[5:])
    for c in kids[:5]:
        child = manifest(sweep_project, c["run_id"])
        assert child["parent"] == sweep["id"] and child["status"] == c["status"]
        if c["status"] == "interrupted":
            assert killed - 0.7 < child["ended"] <= killed
        assert child["params"]["i"] in (c["values"]["i"], int(c["values"]["i"]))
    assert "plan" not in sweep["sweep"]
    assert not os.listdir(sweep_project / ".vestige" / "live")


def test_a_child_killed_by_a_crash_is_failed_not_interrupted(sweep_project: Path) -> None:
    done = vestige("run", "--each", "i=1,2", "--", "sh", "-c",
                   "test {i} = 1 || kill -SEGV $$", cwd=sweep_project)  # fmt: skip
    assert done.returncode == 1, done.stdout.decode()
    kids = manifest(sweep_project, "1")["sweep"]["children"]
    assert [(c["status"], c["exit_code"]) for c in kids] == [("ok", 0), ("failed", 139)]
    assert "failed: i=2" in done.stdout.decode()


def test_many_quick_concurrent_children_each_keep_only_their_own_file(
    sweep_project: Path,
) -> None:
    """A sibling's file can appear in this child's after-scan at any moment: what the
    siblings were seen writing is asked after the scan, so none of theirs is taken."""
    (sweep_project / "w1.py").write_text(
        "import sys\nopen(f'out/q{sys.argv[1]}.txt', 'w').write(sys.argv[1])\n"
    )
    git(sweep_project, "add", "-A")
    git(sweep_project, "commit", "-qm", "w1")
    values = ",".join(str(i) for i in range(40))
    done = vestige("run", "--each", f"i={values}", "-j", "4", "--", "w1.py", "{i}",
                   cwd=sweep_project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    wrong = []
    for child in runs(sweep_project, "--sweep", "1"):
        outputs = [o["path"] for o in manifest(sweep_project, str(child["seq"]))["outputs"]]
        if outputs != [f"out/q{child['params']['i']}.txt"]:
            wrong.append((child["params"]["i"], outputs))
    assert not wrong, wrong


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.4])
def test_a_sweep_killed_while_launching_children_records_them_right(
    sweep_project: Path, delay: float
) -> None:
    """kill -9 while children are being started, at -j 4: each child's run.json holds its
    command and scan before it starts, so none is recovered as an unknown command that
    made every file of the project, and every child that got a run is linked. (The kill
    comes `delay` after the first child wrote its file, not after a time from the start:
    on a busy machine vestige may not have made its store by then.)"""
    values = ",".join(str(i) for i in range(60))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "--each", f"i={values}", "-j", "4", "--",
         sys.executable, "-c", "open('out/s_{i}', 'w').write('{i}')"],
        cwd=sweep_project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120  # (a hang guard only)
    while not any((sweep_project / "out").glob("s_*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no child was launched"
        time.sleep(0.005)
    time.sleep(delay)
    proc.kill()  # vestige only: children already started finish on their own
    proc.wait(timeout=60)
    time.sleep(0.5)
    done = vestige("fsck", cwd=sweep_project)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    sweep = manifest(sweep_project, "1")
    linked = {c["run_id"] for c in sweep["sweep"]["children"] if c["run_id"]}
    for child in runs(sweep_project, "--where", f'parent = "{sweep["id"]}"'):
        m = manifest(sweep_project, child["id"])
        assert not m["command"][0].startswith("<unknown"), m["command"]
        i = str(m["params"]["i"])
        assert {o["path"] for o in m["outputs"]} <= {f"out/s_{i}"}, (i, m["outputs"])
        assert child["id"] in linked
    left = list((sweep_project / ".vestige" / "live").iterdir())
    # a folder made just before the kill, without run.json: no run started there (it goes
    # after recover.CREATION_GRACE_S)
    assert all(not (d / "run.json").exists() for d in left), left


def test_diff_of_two_sweeps_matches_children_by_their_values(sweep_project: Path) -> None:
    """A fixed input between two sweeps: each combination's child is compared with its
    counterpart (status, metrics, outputs), the new combination is `added`."""
    py = sys.executable
    first = vestige("run", "--each", "model=resnet,bad", "--", py, "train.py", "--model",
                    "{model}", cwd=sweep_project)  # fmt: skip
    assert first.returncode == 1  # `bad` failed
    (sweep_project / "data" / "bad.txt").write_text("fixed now")
    second = vestige("run", "--each", "model=resnet,bad,vit", "--", py, "train.py", "--model",
                     "{model}", cwd=sweep_project)  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    sweeps = [r for r in runs(sweep_project) if r["command"][:2] == ["vestige", "run"]]
    b, a = (str(r["seq"]) for r in sweeps[:2])

    done = vestige("diff", a, b, "--json", cwd=sweep_project)
    assert done.returncode == 0, done.stderr.decode()
    d = json.loads(done.stdout)
    assert "children" in d["differ"]
    rows = {r["values"]["model"]: r for r in d["children"]}
    assert [r["values"]["model"] for r in d["children"]] == ["resnet", "bad", "vit"]
    assert rows["resnet"]["status"] == "same" and rows["resnet"]["differ"] == []
    bad = rows["bad"]
    assert bad["status"] == "changed"
    assert (bad["a"]["status"], bad["a"]["exit_code"]) == ("failed", 3)
    assert (bad["b"]["status"], bad["b"]["exit_code"]) == ("ok", 0)
    assert {"inputs", "outputs", "metrics"} <= set(bad["differ"])
    assert bad["metrics"]["loss"]["a"] == 6 and bad["metrics"]["loss"]["b"] == 9
    assert [f["path"] for f in bad["outputs"]] == ["out/bad-0.txt"]
    assert rows["vit"]["status"] == "added" and rows["vit"]["a"] is None
    assert rows["vit"]["b"]["status"] == "ok" and isinstance(rows["vit"]["b"]["seq"], int)

    text = vestige("diff", a, b, cwd=sweep_project).stdout.decode()
    assert "children (1 changed, 1 added, 1 same)" in text
    line = next(x for x in text.splitlines() if "model=bad" in x)
    assert "failed (exit 3) -> " in line and "ok" in line and "loss 6 -> 9" in line
    assert "model=vit" in text and "(only in B)" in text
    assert not [x for x in text.splitlines() if x.startswith("  ~ model=resnet")]  # the same

    # a sweep and a plain run: compared as two runs, without a children section
    plain = next(str(r["seq"]) for r in runs(sweep_project) if r["command"][0] == py)
    d = json.loads(vestige("diff", a, plain, "--json", cwd=sweep_project).stdout)
    assert "children" not in d and "children" not in d["differ"]
    text = vestige("diff", a, plain, cwd=sweep_project).stdout.decode()
    assert f"(#{a} is a sweep and #{plain} is not" in text.splitlines()[1]

    # --skip-done reuses B's runs: the same run on both sides is `same`, not ok -> skipped
    third = vestige("run", "--each", "model=resnet,bad,vit", "--skip-done", "--", py,
                    "train.py", "--model", "{model}", cwd=sweep_project)  # fmt: skip
    assert third.returncode == 0, third.stderr.decode()
    c = str(next(r["seq"] for r in runs(sweep_project) if r["command"][:2] == ["vestige", "run"]))
    d = json.loads(vestige("diff", b, c, "--json", cwd=sweep_project).stdout)
    assert {r["b"]["status"] for r in d["children"]} == {"skipped"}
    assert {r["status"] for r in d["children"]} == {"same"} and "children" not in d["differ"]
