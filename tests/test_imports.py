"""Start-up cost is guarded by tests, as click's test_imports does: `import vestige` runs
inside users' scripts and must load nothing but vestige itself, and `vestige run` sits in
front of every command the user records and must not load the CLI or display libraries.
Every check runs a fresh interpreter; none measures time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import vestige

#: What `import vestige` may add to the modules Python loads at start.
VESTIGE_OWN = {"vestige", "vestige._version"}
#: Never imported by `import vestige`, whatever the interpreter loads at start.
HEAVY = {
    "click",
    "rich",
    "sqlite3",
    "_sqlite3",
    "blake3",
    "numpy",
    "pandas",
    "fsspec",
    "json",
    "tomllib",
    "subprocess",
    "threading",
}
#: Never imported on the `vestige run` path: the CLI framework and optional extras.
NOT_ON_RUN_PATH = {"click", "rich", "numpy", "pandas", "fsspec", "matplotlib"}


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def modules_after(code: str, cwd: Path) -> set[str]:
    """sys.modules at the end of `python -c code` (which must print it last)."""
    out = python("-c", code, cwd=cwd).stdout.strip().splitlines()[-1]
    return set(ast.literal_eval(out))


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output (attempted imports included)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name)
    return names


def top_level(names: set[str]) -> set[str]:
    return {n.split(".", 1)[0] for n in names}


def test_import_vestige_loads_only_itself(tmp_path: Path) -> None:
    baseline = modules_after("import sys; print(sorted(sys.modules))", tmp_path)
    after = modules_after("import vestige, sys; print(sorted(sys.modules))", tmp_path)
    added = after - baseline
    assert added == VESTIGE_OWN, f"`import vestige` also imported {sorted(added - VESTIGE_OWN)}"
    assert not (after - baseline) & HEAVY
    assert not (top_level(after) & HEAVY) - top_level(baseline)


def test_import_vestige_public_names(tmp_path: Path) -> None:
    out = python(
        "-c", "import json, vestige; print(json.dumps([vestige.__all__, vestige.__version__]))",
        cwd=tmp_path,
    ).stdout  # fmt: skip
    names, version = json.loads(out)
    assert names == sorted(names)
    assert "__version__" in names
    assert version


def test_vestige_run_path_imports_no_cli_framework(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vestige", "run", "true"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = imported(done.stderr)
    recorded = {"vestige.recording.runner", "vestige.recording.seal"}
    assert recorded <= names  # the run was really recorded
    assert top_level(names) & NOT_ON_RUN_PATH == set(), sorted(
        n for n in names if n.split(".", 1)[0] in NOT_ON_RUN_PATH
    )
    listing = json.loads(vestige("ls", "--json", cwd=project).stdout)
    assert [r["command"] for r in listing] == [["true"]]


def test_help_does_not_import_rich(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vestige", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "Commands:" in done.stdout
    names = imported(done.stderr)
    assert "click" in names
    assert "rich" not in top_level(names)


def test_ls_json_does_not_import_rich(project: Path) -> None:
    assert vestige("run", "true", cwd=project).returncode == 0
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vestige", "ls", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 1
    assert "rich" not in top_level(imported(done.stderr))
