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


API_SCRIPT = """\
import vestige
vestige.param(alpha=0.5)
for i in range(3):
    vestige.log(step=i, loss=1.0 / (i + 1))
vestige.keep({"alpha": 0.5}, "summary")
with vestige.run() as r:
    vestige.tag("export")
    vestige.note(f"run id {r.id}")
open("out.txt", "w").write("done\\n")
"""


def test_export_of_a_program_using_the_api_runs_in_a_fresh_venv(
    project: Path, tmp_path: Path
) -> None:
    """The README's own commands, in a shell, with pip offline: a fresh venv without vestige
    gets the no-op stand-in from requirements.txt and runs the program."""
    import importlib.util

    import vestige as here

    (project / "s.py").write_text(API_SCRIPT)
    (project / "plain.py").write_text("open('plain.txt', 'w').write('x\\n')\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "api")
    # The run's interpreter: a bare venv that sees vestige and blake3 (what keep needs) but
    # no installed distribution, so that requirements.txt pins nothing pip must download.
    recorder = tmp_path / "recorder"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(recorder)], check=True)
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "vestige").symlink_to(Path(here.__file__).parent)
    spec = importlib.util.find_spec("blake3")
    assert spec is not None and spec.origin is not None
    blake3 = Path(spec.origin)
    (deps / ("blake3" if blake3.name == "__init__.py" else blake3.name)).symlink_to(
        blake3.parent if blake3.name == "__init__.py" else blake3
    )
    done = vestige("run", str(recorder / "bin" / "python"), "s.py", cwd=project,
                   env={"PYTHONPATH": str(deps)})  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    dest = tmp_path / "handoff"
    summary = json.loads(vestige("export", "1", "--to", str(dest), "--json", cwd=project).stdout)
    assert summary["metric_points"] == 3 and summary["artefacts"] >= 1
    readme = (dest / "README.md").read_text()
    assert "`artefacts/`" in readme and "`metrics.csv`" in readme
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block, readme
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VESTIGE_", "PYTHON", "PIP_", "VIRTUAL_ENV"))}  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # offline
    ran = subprocess.run(["bash", "-ec", block.group(1)], cwd=dest, env=env,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = dest / "project" / "out.txt"
    assert out.read_bytes() == (dest / "outputs" / "out.txt").read_bytes()
    installed = subprocess.run([str(dest / ".venv" / "bin" / "python"), "-c",
                                "import vestige; print(vestige.__file__)"],
                               env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert str(dest / ".venv") in installed.stdout  # the stand-in, not this checkout's vestige
    # A run that neither imports vestige nor kept or logged anything: no stand-in, and
    # the README names no folder or file that is not there.
    assert vestige("run", "plain.py", cwd=project).returncode == 0
    other = tmp_path / "plain"
    summary = json.loads(vestige("export", "2", "--to", str(other), "--json", cwd=project).stdout)
    readme = (other / "README.md").read_text()
    assert summary["artefacts"] == 0 and summary["metric_points"] == 0
    assert "artefacts/" not in readme and "metrics.csv" not in readme
    assert not (other / "artefacts").exists() and not (other / "metrics.csv").exists()
    assert not list(other.glob("*.whl")) and ".whl" not in (other / "requirements.txt").read_text()
    for name in re.findall(r"^- `([^`]+)`", readme, re.MULTILINE):
        assert (other / name.rstrip("/")).exists(), name  # each item it lists is there


def test_the_standin_offers_every_name_of_the_api(tmp_path: Path) -> None:
    """The wheel an export ships answers every public name of vestige's API with the same
    parameters, so no exported program meets an AttributeError or a TypeError."""
    import inspect
    import zipfile

    import vestige as here
    from vestige.history.standin import write_wheel

    wheel = write_wheel(tmp_path)
    assert wheel.read_bytes() == write_wheel(tmp_path).read_bytes()  # the same every time
    with zipfile.ZipFile(wheel) as z:
        source = z.read("vestige/__init__.py").decode()
    standin: dict[str, object] = {}
    exec(compile(source, "standin", "exec"), standin)
    assert sorted(standin["__all__"]) == sorted(here.__all__)  # type: ignore[arg-type]
    for name in here.__all__:
        real = getattr(here, name)
        if callable(real) and not inspect.isclass(real):
            got = inspect.signature(standin[name])  # type: ignore[arg-type]
            assert list(got.parameters) == list(inspect.signature(real).parameters), name
