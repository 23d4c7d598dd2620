"""The code snapshot, at the library level: what the background thread of a run sees
while the command is already writing files (a race the end-to-end tests hit only under
load)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import git

from vestige.capture import gitprobe
from vestige.capture.code import snapshot
from vestige.capture.gitprobe import RACY_NS, GitProbe
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


# -- git's answers, cached while nothing they depend on changed ------------------------


def _probe(project: Path, store: Path) -> GitProbe:
    return GitProbe(str(project), Scanner(project).scan(), str(store))


def _later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the files are old enough to be trusted (ctime cannot be set back)."""
    real = time.time_ns
    monkeypatch.setattr(gitprobe.time, "time_ns", lambda: real() + 10 * RACY_NS)


def test_git_answers_are_reused_only_while_nothing_changed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    (project / "a.py").write_text("a = 1\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a")
    first = _probe(project, store).result()
    assert not (store / "cache" / "git.json").exists()  # files too fresh: racy, not saved
    _later(monkeypatch)
    assert _probe(project, store).result() == first
    reused = _probe(project, store)
    assert reused.procs == [] and reused.result() == first  # no git process started

    (project / "a.py").write_text("a = 2\n")  # an uncommitted edit
    dirty = _probe(project, store)
    assert dirty.procs != []
    files, state = dirty.result()
    assert state["dirty"] is True

    (project / "b.py").write_text("b = 1\n")  # a new untracked file
    files, _state = _probe(project, store).result()
    assert "b.py" in files

    git(project, "add", "-A")
    git(project, "commit", "-qm", "b")  # index and ref change: git is asked again
    _files, state = _probe(project, store).result()
    assert state["dirty"] is False
    assert state["commit"] == git(project, "rev-parse", "HEAD").strip()


def test_without_a_store_or_scan_git_is_always_asked(project: Path) -> None:
    probe = GitProbe(str(project))
    assert probe.procs != []
    files, state = probe.result()
    assert "README.md" in files and state["branch"] == "main"
