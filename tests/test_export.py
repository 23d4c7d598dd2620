"""`vestige export`: a run as a folder that re-runs with plain Python, from its README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import git, vestige


def test_export_reruns_with_plain_python_from_its_readme(project: Path, tmp_path: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "in.csv").write_text("x\n1\n2\n3\n")
    (project / "src").mkdir()
    (project / "src" / "stats.py").write_text(textwrap.dedent("""
        import argparse, json
        import vestige
        p = argparse.ArgumentParser(); p.add_argument("--scale", type=float, default=1.0)
        a = p.parse_args()
        xs = [float(l) for l in open("../data/in.csv").read().split()[1:]]
        for i, x in enumerate(xs):
            vestige.log(step=i, x=x * a.scale)
        json.dump({"sum": sum(xs) * a.scale}, open("../out/sum.json", "w"))
    """))  # fmt: skip
    (project / "out").mkdir()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "stats")
    done = vestige("run", "stats.py", "--scale", "2", cwd=project / "src")
    assert done.returncode == 0, done.stderr.decode()
    dest = tmp_path / "handoff"
    summary = json.loads(vestige("export", "1", "--to", str(dest), "--json", cwd=project).stdout)
    assert summary["outputs"] == 1 and summary["metric_points"] == 3
    readme = (dest / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block, readme
    lines = block.group(1).splitlines()
    cd = next(line for line in lines if line.startswith("cd "))
    cmd = lines[lines.index(cd) + 1]
    assert cmd == "python stats.py --scale 2"
    assert (
        dest / "project" / "out"
    ).is_dir()  # made for the outputs, though git keeps no empty folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESTIGE_")}
    env["VESTIGE_DISABLE"] = "1"  # the person receiving it may have vestige, or not
    subprocess.run(f"{cd} && {cmd.replace('python', sys.executable, 1)}", shell=True,
                   cwd=dest, env=env, check=True)  # fmt: skip
    assert (dest / "project" / "out" / "sum.json").read_bytes() == (
        dest / "outputs" / "out" / "sum.json"
    ).read_bytes()  # fmt: skip
    rows = (dest / "metrics.csv").read_text().splitlines()
    assert rows[0] == "key,step,time,value" and rows[1].startswith("x,0,") and len(rows) == 4
    assert "numpy==" in (dest / "requirements.txt").read_text()
    assert "vestige==" not in (dest / "requirements.txt").read_text()
    inputs = json.loads((dest / "inputs.json").read_text())
    assert [i["path"] for i in inputs] == ["data/in.csv"]
    assert json.loads((dest / "run.json").read_text())["seq"] == 1
    again = vestige("export", "1", "--to", str(dest), cwd=project)
    assert again.returncode == 2 and b"not an empty folder" in again.stderr
