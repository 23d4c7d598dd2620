"""The code snapshot, at the library level: what the background thread of a run sees
while the command is already writing files (a race the end-to-end tests hit only under
load)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import git

from vestige.capture.code import snapshot
from vestige.capture.gitprobe import GitProbe
from vestige.capture.scan import Scanner
from vestige.repo import Repo
from vestige.store.statcache import StatCache
from vestige.store.tree import read_tree


def _snap(project: Path, before: dict, started: float) -> tuple[Repo, list[str], object]:
    repo = Repo.open(project, create=True)
    cache = StatCache(repo.index.conn)
    snap = snapshot(
        project, repo.store.objects, cache, before, 1 << 20, GitProbe(str(project)), started
    )
    return repo, [e.path for e in read_tree(repo.store.objects, snap.tree)], snap


def test_file_made_by_the_run_before_git_lists_the_tree_is_not_code(project: Path) -> None:
    (project / "analyze.py").write_text("print(1)\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "script")
    before = Scanner(project).scan()
    started = time.time()
    time.sleep(0.01)
    (project / "fig.png").write_bytes(b"made by the run")  # untracked, not in `before`
    _repo, paths, snap = _snap(project, before, started)
    assert "analyze.py" in paths
    assert "fig.png" not in paths
    assert snap.warnings == []


def test_untracked_file_missing_from_the_scan_but_older_than_the_run_is_code(
    project: Path,
) -> None:
    (project / "notes.py").write_text("x = 1\n")
    before: dict = {}  # e.g. a scan.ignore pattern left it out of the scan
    paths = _snap(project, before, time.time() + 60)[1]
    assert "notes.py" in paths


def test_secret_named_file_is_hashed_not_kept(project: Path) -> None:
    (project / ".env").write_text("TOKEN=abc123\n")
    before = Scanner(project).scan()
    repo, _paths, snap = _snap(project, before, time.time())
    entry = next(e for e in read_tree(repo.store.objects, snap.tree) if e.path == ".env")
    assert entry.kept is False
    assert not repo.store.objects.exists(entry.hash)


def test_large_file_is_hashed_not_kept_and_not_rehashed_each_time(project: Path) -> None:
    big = project / "weights.bin"
    big.write_bytes(b"\0" * (2 << 20))  # over the 1 MiB limit used here
    before = Scanner(project).scan()
    repo, _paths, snap = _snap(project, before, time.time())
    entry = next(e for e in read_tree(repo.store.objects, snap.tree) if e.path == "weights.bin")
    assert entry.kept is False
    assert not repo.store.objects.exists(entry.hash)
