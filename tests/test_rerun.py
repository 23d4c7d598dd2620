"""`vestige rerun`: re-make a run from its kept snapshot and inputs, with a verdict per output
(real runs, real subprocesses, a real git repository)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

from conftest import git, vestige


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done.stdout.decode()


def script(root: Path, name: str, code: str) -> None:
    (root / name).write_text(textwrap.dedent(code))
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"add {name}")


def rerun(root: Path, *args: str) -> tuple[int, dict]:
    done = vestige("rerun", *args, "--json", cwd=root)
    assert done.returncode in (0, 1), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def test_deterministic_run_reproduces_after_the_script_is_deleted(project: Path) -> None:
    (project / "data.csv").write_text("a,b\n1,2\n3,4\n")
    script(project, "double.py", """
        import json, sys
        rows = [l.split(",") for l in open("data.csv").read().split()[1:]]
        out = [[int(x) * 2 for x in r] for r in rows]
        open("out.json", "w").write(json.dumps(out))
        print("done", sys.argv[1:])
    """)  # fmt: skip
    ok("run", "double.py", cwd=project)
    (project / "double.py").unlink()
    (project / "data.csv").unlink()  # both come back from the store
    code, result = rerun(project, "1")
    assert code == 0 and result["reproduced"] is True
    assert [(v["path"], v["verdict"]) for v in result["verdicts"]] == [("out.json", "identical")]
    new = json.loads(ok("show", str(result["rerun_seq"]), "--json", cwd=project))
    assert new["rerun_of"] == result["run"] and new["status"] == "ok"
    assert not (project / "double.py").exists()
    # its temp dir is gone (everything of it is in the store); --keep keeps it
    assert result["kept_dir"] is False and not Path(result["dir"]).exists()
    code, result = rerun(project, "1", "--keep")
    assert code == 0 and result["kept_dir"] is True
    assert (Path(result["dir"]) / "out.json").read_text() == "[[2, 4], [6, 8]]"
    shutil.rmtree(result["dir"])


def test_random_output_differs_and_fails(project: Path) -> None:
    script(project, "rand.py", """
        import os
        open("r.txt", "w").write(os.urandom(8).hex())
    """)  # fmt: skip
    ok("run", "rand.py", cwd=project)
    code, result = rerun(project, "1")
    assert code == 1 and result["reproduced"] is False
    assert result["verdicts"][0]["verdict"] == "differs"
    text = vestige("rerun", "1", cwd=project)
    assert text.returncode == 1 and b"NOT reproduced: 0 of 1" in text.stdout


def test_float_noise_is_close(project: Path) -> None:
    script(project, "noise.py", """
        import json, os
        x = 1.0 + 1e-12 * (1 + os.getpid() % 97)
        json.dump({"loss": x, "n": 3}, open("m.json", "w"))
        open("m.csv", "w").write(f"step,loss\\n0,{x!r}\\n")
    """)  # fmt: skip
    ok("run", "noise.py", cwd=project)
    code, result = rerun(project, "1")
    verdicts = {v["path"]: v["verdict"] for v in result["verdicts"]}
    assert verdicts == {"m.csv": "close", "m.json": "close"}, result
    assert code == 0
    code, strict = rerun(project, "1", "--rtol", "0")
    assert code == 1 and {v["verdict"] for v in strict["verdicts"]} == {"differs"}


def test_changed_param_and_new_outputs(project: Path) -> None:
    script(project, "gen.py", """
        import argparse
        p = argparse.ArgumentParser(); p.add_argument("--n", type=int, default=3)
        n = p.parse_args().n
        open("seq.txt", "w").write(",".join(map(str, range(n))))
        if n > 3:
            open("extra.txt", "w").write("more")
    """)  # fmt: skip
    ok("run", "gen.py", "--n", "3", cwd=project)
    code, result = rerun(project, "1", "--param", "n=5")
    verdicts = {v["path"]: v["verdict"] for v in result["verdicts"]}
    # other bytes are what a changed param asks for: changed, not a failed reproduction
    assert verdicts == {"seq.txt": "changed", "extra.txt": "new"} and code == 0
    assert result["changed_params"] == {"n": ["3", "5"]} and result["reproduced"] is False
    (seq,) = [v for v in result["verdicts"] if v["path"] == "seq.txt"]
    assert seq["summary"].startswith("param n 3 -> 5 changed: ")
    new = json.loads(ok("show", str(result["rerun_seq"]), "--json", cwd=project))
    assert new["params"]["n"] == 5 and new["command"][-2:] == ["--n", "5"]
    bad = vestige("rerun", "1", "--param", "lr=0.1", cwd=project)
    assert bad.returncode == 2 and b"param 'lr' does not appear on the command line" in bad.stderr


def test_cannot_rerun_when_an_unkept_input_is_gone(project: Path) -> None:
    (project / ".vestige").mkdir()
    (project / ".vestige" / "config.toml").write_text('[keep]\ninputs_max_size = "10"\n')
    (project / "big.txt").write_text("more than ten bytes of input\n")
    (project / ".gitignore").write_text("big.txt\n")  # data, not code: not in the snapshot
    script(project, "count.py", 'open("n.txt", "w").write(str(len(open("big.txt").read())))\n')
    ok("run", "count.py", cwd=project)
    # still there with the same bytes: copied from its place
    code, result = rerun(project, "1")
    assert code == 0 and result["verdicts"][0]["verdict"] == "identical"
    (project / "big.txt").write_text("changed\n")
    done = vestige("rerun", "1", cwd=project)
    assert done.returncode == 2
    line = done.stderr.decode().strip()
    assert line.startswith("error: input big.txt of run #1 was only hashed, not kept")
    assert len(line.splitlines()) == 1


def test_in_place_needs_a_clean_tree_and_yes(project: Path) -> None:
    script(project, "w.py", 'open("w.txt", "w").write("w")\n')
    (project / ".gitignore").write_text("w.txt\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ignore output")
    ok("run", "w.py", cwd=project)
    (project / "w.py").write_text("# dirty\n")
    done = vestige("rerun", "1", "--in-place", "--yes", cwd=project)
    assert done.returncode == 2 and b"clean git tree" in done.stderr
    git(project, "checkout", "-q", "w.py")
    done = vestige("rerun", "1", "--in-place", cwd=project)  # stdin is not a terminal
    assert done.returncode == 2 and b"--yes" in done.stderr
    code, result = rerun(project, "1", "--in-place", "--yes")
    assert code == 0 and result["dir"] == str(project)
    assert vestige("rerun", "1", "--in-place", "--dir", "x", cwd=project).returncode == 2


def test_a_rerun_is_not_where_bytes_came_from(project: Path) -> None:
    """After a rerun reproduced an old run, lineage and stale still name the original as
    the maker, and debt's latest version of the script is the newest run's, not the
    rerun's (it ran the old code again)."""
    script(project, "make.py", 'open("fig.txt", "w").write("v1")\n')
    ok("run", "python", "make.py", cwd=project)
    script(project, "other.py", 'open("table.txt", "w").write("t")\n')
    ok("run", "python", "other.py", cwd=project)
    code, result = rerun(project, "1")
    assert code == 0 and result["reproduced"] is True
    tree = json.loads(ok("lineage", "fig.txt", "--json", cwd=project))
    assert tree["made_by"]["seq"] == 1
    script(project, "make.py", 'open("fig.txt", "w").write("v1")  # edited\n')
    stale = json.loads(vestige("stale", "--json", cwd=project).stdout)
    assert [s["seq"] for s in stale] == [1]
    ok("run", "python", "make.py", cwd=project)  # #4: the latest version of make.py
    code, result = rerun(project, "1")  # #5 runs the old make.py again
    assert code == 0
    debt = json.loads(ok("debt", "--json", cwd=project))
    (unit,) = [u for u in debt["units"] if u["unit"] == "make.py"]
    assert unit["restore"] == "vestige restore 4 make.py", unit


def test_figures_left_open_at_show_reproduce(project: Path) -> None:
    """The most common sloppy script: plt.show() at the end. vestige keeps the open figure
    as PNG and SVG; matplotlib's SVG carries a date and random ids, so a rerun of the same
    plot used to 'differ' (issue 21, item 7). Its own renderings are deterministic."""
    script(project, "plot.py", """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3], [3, 1, 2])
        plt.title("a line")
        plt.show()
    """)  # fmt: skip
    ok("run", "plot.py", cwd=project)
    code, result = rerun(project, "1")
    verdicts = {v["path"]: v["verdict"] for v in result["verdicts"]}
    assert code == 0 and result["reproduced"] is True, verdicts
    assert len(verdicts) == 2 and set(verdicts.values()) == {"identical"}, verdicts


def test_a_changed_param_compares_outputs_by_role(project: Path) -> None:
    """`rerun --param lr=0.01` of a run that wrote `out-lr0.1.csv`: the rerun's
    `out-lr0.01.csv` is the same output (its name holds the param), changed; the text says
    which param changed instead of NOT reproduced, and exit 0 unless the rerun failed."""
    script(project, "fit.py", """
        import sys
        given = sys.argv[sys.argv.index("--lr") + 1]
        lr = float(given)
        open(f"out-lr{given}.csv", "w").write(f"lr,loss\\n{lr},{1 - lr}\\n")
        open("log.txt", "w").write("done\\n")
        if lr > 1:
            sys.exit("lr too large")
    """)  # fmt: skip
    ok("run", "fit.py", "--lr", "0.1", cwd=project)
    done = vestige("rerun", "1", "--param", "lr=0.01", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert any(
        line.split()[:2] == ["changed", "out-lr0.1.csv"]
        and "param lr 0.1 -> 0.01 changed" in line
        and "out-lr0.01.csv" in line
        for line in lines
    ), lines
    assert any(line.split()[:2] == ["identical", "log.txt"] for line in lines), lines
    assert not any(line.split()[0] == "new" for line in lines[1:-1]), lines  # paired
    assert lines[-1] == "param lr 0.1 -> 0.01: 1 of 2 outputs changed, 1 identical or close"
    done = vestige("rerun", "1", "--param", "lr=2", cwd=project)  # the rerun fails: exit 1
    assert done.returncode == 1 and done.stdout.decode().splitlines()[-1].endswith(
        "; the rerun failed")  # fmt: skip
