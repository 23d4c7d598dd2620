"""Lineage, stale and restore on a three-stage chain of sloppy scripts (prepare -> train
-> plot) in a real git repository, through the real CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import git, vestige

PREPARE = """
rows = open("data/raw.csv").read().splitlines()[1:]
with open("data/clean.csv", "w") as f:
    f.write("x,y\\n" + "\\n".join(r for r in rows if r) + "\\n")
"""
TRAIN = """
import json
pts = [tuple(map(float, l.split(","))) for l in open("data/clean.csv").read().splitlines()[1:]]
n = len(pts); mx = sum(p[0] for p in pts) / n; my = sum(p[1] for p in pts) / n
slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / sum((p[0] - mx) ** 2 for p in pts)
json.dump({"slope": slope, "intercept": my - slope * mx}, open("model.json", "w"))
"""
PLOT = """
import json
m = json.load(open("model.json"))
open("fig.txt", "w").write(f"y = {m['slope']:.3f} x + {m['intercept']:.3f}\\n")
"""


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done.stdout.decode()


@pytest.fixture
def chain(project: Path) -> Path:
    (project / "data").mkdir()
    (project / "data" / "raw.csv").write_text("x,y\n1,2\n3,4\n5,7\n\n")
    for name, code in (("prepare.py", PREPARE), ("train.py", TRAIN), ("plot.py", PLOT)):
        (project / name).write_text(textwrap.dedent(code))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "chain")
    for name in ("prepare.py", "train.py", "plot.py"):
        ok("run", name, cwd=project)
    (project / "paper").mkdir()
    (project / "paper" / "fig3.txt").write_bytes((project / "fig.txt").read_bytes())
    return project


def test_lineage_walks_back_to_the_source(chain: Path) -> None:
    text = ok("lineage", "paper/fig3.txt", cwd=chain)
    lines = text.splitlines()
    assert lines[0].startswith("paper/fig3.txt")
    assert "made by run #3" in lines[1] and "plot.py" in lines[1]
    assert "read model.json" in lines[2] and "made by run #2" in lines[3]
    assert "read data/clean.csv" in lines[4] and "made by run #1" in lines[5]
    assert "read data/raw.csv" in lines[6] and "source" in lines[6]
    tree = json.loads(ok("lineage", "paper/fig3.txt", "--json", cwd=chain))
    run3 = tree["made_by"]
    assert run3["seq"] == 3 and run3["inputs"][0]["path"] == "model.json"
    run1 = run3["inputs"][0]["made_by"]["inputs"][0]["made_by"]
    assert run1["seq"] == 1 and run1["inputs"][0]["made_by"] is None
    dot = ok("lineage", "paper/fig3.txt", "--dot", cwd=chain)
    assert dot.startswith("digraph lineage {") and dot.count("->") == 6


def test_lineage_survives_edits_and_deletion_of_the_scripts(chain: Path) -> None:
    for name in ("prepare.py", "train.py", "plot.py"):
        (chain / name).unlink()
    text = ok("lineage", "paper/fig3.txt", cwd=chain)
    assert "made by run #1" in text
    which = ok("which", "paper/fig3.txt", cwd=chain)
    assert "made by run #3" in which
    # restore brings them back byte-identical, from the snapshots of the runs
    ok("restore", "1", "prepare.py", cwd=chain)
    ok("restore", "3", cwd=chain)  # the whole code snapshot of run 3
    assert git(chain, "status", "--porcelain", "--", "*.py") == ""  # as committed


def test_stale_lists_the_chain_in_order_after_an_edit(chain: Path) -> None:
    assert vestige("stale", cwd=chain).returncode == 0
    prepare = chain / "prepare.py"
    prepare.write_text(prepare.read_text().replace("if r)", "if r and not r.startswith('#'))"))
    done = vestige("stale", "--json", cwd=chain)
    assert done.returncode == 1
    items = json.loads(done.stdout)
    assert [i["seq"] for i in items] == [1, 2, 3]
    assert items[0]["reasons"] == ["code prepare.py changed"]
    assert "made by run #1, which is stale" in items[1]["reasons"][0]
    assert items[2]["outputs"] == ["fig.txt", "paper/fig3.txt"]
    assert items[0]["refresh"] == "vestige run prepare.py"
    # re-running the chain makes everything fresh again
    for name in ("prepare.py", "train.py", "plot.py"):
        ok("run", name, cwd=chain)
    (chain / "paper" / "fig3.txt").write_bytes((chain / "fig.txt").read_bytes())
    assert vestige("stale", cwd=chain).returncode == 0


def test_stale_when_an_input_changes(chain: Path) -> None:
    (chain / "data" / "raw.csv").write_text("x,y\n1,2\n3,4\n5,9\n")
    items = json.loads(vestige("stale", "--json", cwd=chain).stdout)
    assert [i["seq"] for i in items] == [1, 2, 3]
    assert items[0]["reasons"] == ["input data/raw.csv changed"]


def test_restore_to_a_folder_roles_and_refusals(chain: Path) -> None:
    out = chain.parent / "elsewhere"
    result = json.loads(ok("restore", "2", "--inputs", "--outputs", "--to", str(out), "--json",
                           cwd=chain))  # fmt: skip
    assert {(r["role"], r["status"]) for r in result} == {("inputs", "written"),
                                                           ("outputs", "written")}  # fmt: skip
    assert (out / "data" / "clean.csv").read_bytes() == (chain / "data/clean.csv").read_bytes()
    assert json.loads((out / "model.json").read_text())["slope"] > 0
    (chain / "train.py").write_text("# my new work\n")
    done = vestige("restore", "2", "train.py", cwd=chain)
    assert done.returncode == 0 and b"exists" in done.stdout
    assert (chain / "train.py").read_text() == "# my new work\n"  # never clobbered
    dry = ok("restore", "2", "train.py", "--force", "--dry-run", cwd=chain)
    assert "would-write" in dry and (chain / "train.py").read_text() == "# my new work\n"
    ok("restore", "2", "train.py", "--force", cwd=chain)
    assert (chain / "train.py").read_text() == textwrap.dedent(TRAIN)
    bad = vestige("restore", "2", "no/such.py", cwd=chain)
    assert bad.returncode == 2 and b"no file matching 'no/such.py'" in bad.stderr


def test_lineage_bad_input(chain: Path) -> None:
    done = vestige("lineage", "missing.png", cwd=chain)
    assert done.returncode == 2 and done.stderr.decode().startswith("error: no such file")
    (chain / "new.txt").write_text("nobody made this\n")
    done = vestige("lineage", "new.txt", cwd=chain)
    assert done.returncode == 1 and b"source" in done.stdout
    assert vestige("lineage", "fig.txt", "--json", "--dot", cwd=chain).returncode == 2


def test_affected_by_a_code_version_and_rerun_with_the_fix(chain: Path) -> None:
    first = json.loads(ok("show", "2", "--json", cwd=chain))["code"]["imported_hashes"]["train.py"]
    # a "bug fix" in train.py, then the chain is run again with the new version
    fixed = (chain / "train.py").read_text().replace('"intercept"', '"fixed": True, "intercept"')
    (chain / "train.py").write_text(fixed)
    for name in ("train.py", "plot.py"):
        ok("run", name, cwd=chain)
    data = json.loads(ok("affected", "--code", f"train.py@{first[:8]}", "--json", cwd=chain))
    assert [(r["seq"], r["direct"]) for r in data["runs"]] == [(2, True), (3, False)]
    assert "made by run #2" in data["runs"][1]["why"]
    assert {o["path"] for o in data["runs"][1]["outputs"]} == {"fig.txt"}
    text = ok("affected", "--code", "train.py@2", cwd=chain)  # the version run #2 used
    assert "1 run(s) used code train.py" in text and "#3" in text and "#4" not in text
    newer = json.loads(ok("affected", "--code", "train.py@4", "--json", cwd=chain))
    assert [r["seq"] for r in newer["runs"]] == [4, 5]
    # recall: re-make runs 2 and 3 with the current train.py, 3 reading what 2 re-made
    done = vestige("affected", "--code", f"train.py@{first[:8]}", "--rerun", "--json", cwd=chain)
    assert done.returncode == 0, done.stderr.decode()
    reruns = json.loads(done.stdout)["reruns"]
    assert [r["seq"] for r in reruns] == [2, 3] and all(r["exit_code"] == 0 for r in reruns)
    plot_rerun = json.loads(ok("show", str(reruns[1]["rerun_seq"]), "--json", cwd=chain))
    train_rerun = json.loads(ok("show", str(reruns[0]["rerun_seq"]), "--json", cwd=chain))
    assert plot_rerun["inputs"][0]["hash"] == train_rerun["outputs"][0]["hash"]
    assert train_rerun["code"]["imported_hashes"]["train.py"] != first  # the fixed version


def test_affected_by_input_and_package_and_bad_specs(chain: Path) -> None:
    raw = json.loads(ok("show", "1", "--json", cwd=chain))["inputs"][0]["hash"]
    data = json.loads(ok("affected", "--input", f"data/raw.csv@{raw[:6]}", "--json", cwd=chain))
    assert [r["seq"] for r in data["runs"]] == [1, 2, 3]
    import numpy

    pkg = json.loads(ok("affected", "--package", f"numpy=={numpy.__version__}", "--json",
                        cwd=chain))  # fmt: skip
    assert [r["seq"] for r in pkg["runs"]] == [1, 2, 3]
    for args, needle in (
        (["affected"], "exactly one"),
        (["affected", "--code", "train.py"], "PATH@VERSION"),
        (["affected", "--code", "train.py@ffff0000"], "no recorded run used"),
        (["affected", "--code", "train.py@1"], "did not use"),
        (["affected", "--package", "numpy"], "NAME==VERSION"),
        (["affected", "--package", "numpy==0.0.1"], "no recorded run used package"),
    ):
        done = vestige(*args, cwd=chain)
        assert done.returncode == 2, args
        assert needle in done.stderr.decode(), (args, done.stderr)


def test_diff_and_compare_after_the_scripts_are_edited_then_deleted(chain: Path) -> None:
    train = chain / "train.py"
    train.write_text(train.read_text().replace("slope * mx", "slope * mx + 1"))
    ok("run", "train.py", cwd=chain)
    for name in ("prepare.py", "train.py", "plot.py"):
        (chain / name).unlink()
    diff = json.loads(ok("diff", "2", "4", "--json", cwd=chain))
    assert "code" in diff["differ"] and "outputs" in diff["differ"]
    changed = [f for f in diff["code"]["files"] if f["path"] == "train.py"]
    assert changed and "+ 1" in changed[0]["diff"]
    model = next(f for f in diff["outputs"] if f["path"] == "model.json")
    assert model["status"] == "changed" and model["diff"]["kind"] == "json"
    text = ok("diff", "2", "4", cwd=chain)
    assert "train.py" in text and "model.json" in text
    table = json.loads(ok("compare", "1", "2", "4", "--json", cwd=chain))
    assert [r["seq"] for r in table["runs"]] == [1, 2, 4]


def test_which_path_is_the_history_of_a_path(chain: Path) -> None:
    (chain / "model.json").unlink()
    text = ok("which", "--path", "model.json", cwd=chain)
    assert "model.json: 2 record(s), oldest first (the file is not there now)" in text
    history = json.loads(ok("which", "--path", "model.json", "--json", cwd=chain))["history"]
    assert [(h["seq"], h["role"]) for h in history] == [(2, "output"), (3, "input")]
    assert history[0]["hash"] == history[1]["hash"]
    ran = json.loads(ok("which", "--path", "train.py", "--json", cwd=chain))["history"]
    assert [(h["seq"], h["role"], h["current"]) for h in ran] == [(2, "code", True)]
    done = vestige("which", "--path", "never.txt", cwd=chain)
    assert done.returncode == 1 and b"no recorded run read or wrote this path" in done.stdout
    assert vestige("which", "--path", "--similar", "x.png", cwd=chain).returncode == 2
