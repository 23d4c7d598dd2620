"""Settings documented in docs/configuration.md do what the page says."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import vestige


def _manifest(project: Path) -> dict:
    return json.loads(vestige("show", "@last", "--json", cwd=project).stdout)


def test_scan_ignore_leaves_files_out_of_outputs_and_snapshot(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.vestige.scan]\nignore = ["scratch/*"]\n')
    (project / "scratch").mkdir()
    (project / "scratch" / "old.txt").write_text("untracked, ignored by vestige\n")
    script = (
        "import os\nopen('scratch/tmp.txt', 'w').write('x')\nopen('kept.txt', 'w').write('y')\n"
    )
    (project / "make.py").write_text(script)
    assert vestige("run", "python", "make.py", cwd=project).returncode == 0
    outputs = {o["path"] for o in _manifest(project)["outputs"]}
    assert outputs == {"kept.txt"}
    missing = vestige("cat", "@last", "scratch/old.txt", cwd=project)
    assert missing.returncode == 2 and b"error:" in missing.stderr


def test_keep_outputs_false_hashes_without_copying(project: Path) -> None:
    (project / "make.py").write_text("open('out.bin', 'wb').write(b'payload' * 100)\n")
    assert vestige("run", "python", "make.py", cwd=project).returncode == 0  # makes the store
    (project / ".vestige" / "config.toml").write_text("[keep]\noutputs = false\n")
    (project / "make.py").write_text("open('out.bin', 'wb').write(b'other' * 100)\n")
    assert vestige("run", "python", "make.py", cwd=project).returncode == 0
    (out,) = _manifest(project)["outputs"]
    assert out["path"] == "out.bin" and out["hash"] and out["kept"] is False
    refused = vestige("cat", "@last", "out.bin", cwd=project)
    assert refused.returncode == 2 and b"kept no copy" in refused.stderr


def test_scan_ignore_takes_a_folder_written_with_a_slash(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.vestige.scan]\nignore = ["scratch/"]\n')
    (project / "scratch").mkdir()
    (project / "data.txt").write_text("read\n")
    script = "open('scratch/tmp.txt', 'w').write(open('data.txt').read())\n"
    (project / "make.py").write_text(script)
    assert vestige("run", "python", "make.py", cwd=project).returncode == 0
    run = _manifest(project)
    assert run["outputs"] == []
    assert [f["path"] for f in run["inputs"]] == ["data.txt"]


def test_scan_ignore_that_is_not_a_list_is_refused(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.vestige.scan]\nignore = 3\n")
    done = vestige("run", "python", "-c", "pass", cwd=project)
    assert done.returncode == 2 and b"scan.ignore" in done.stderr
