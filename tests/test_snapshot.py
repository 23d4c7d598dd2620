"""The code snapshot, at the library level: what the background thread of a run sees
while the command is already writing files (a race the end-to-end tests hit only under
load)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import git, vestige

from vestige.capture import gitprobe
from vestige.capture.code import snapshot
from vestige.capture.dirs import Dirs
from vestige.capture.gitprobe import RACY_NS, GitProbe
from vestige.repo import Repo
from vestige.store.statcache import StatCache
from vestige.store.tree import read_tree


def _snap(project: Path, since_ns: int) -> tuple[Repo, list[str], object]:
    repo = Repo.open(project, create=True)
    cache = StatCache(repo.index.conn)
    snap = snapshot(project, repo.store.objects, cache, 1 << 20, GitProbe(str(project)), since_ns)
    return repo, [e.path for e in read_tree(repo.store.objects, snap.tree)], snap


def _now_ns(project: Path) -> int:
    """Now by the filesystem's clock (as the runner reads it: the ctime of a new folder)."""
    mark = project / ".mark"
    mark.mkdir()
    ns = mark.stat().st_ctime_ns
    mark.rmdir()
    return ns


def test_file_made_by_the_run_before_git_lists_the_tree_is_not_code(project: Path) -> None:
    (project / "analyze.py").write_text("print(1)\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "script")
    time.sleep(0.05)
    since = _now_ns(project)
    time.sleep(0.05)
    (project / "fig.png").write_bytes(b"made by the run")  # untracked, made after the start
    _repo, paths, snap = _snap(project, since)
    assert "analyze.py" in paths
    assert "fig.png" not in paths
    assert snap.warnings == []


def test_tracked_file_the_run_changed_is_code_with_a_warning(project: Path) -> None:
    (project / "analyze.py").write_text("print(1)\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "script")
    time.sleep(0.05)
    since = _now_ns(project)
    time.sleep(0.05)
    (project / "analyze.py").write_text("print(2)\n")  # tracked, changed after the start
    _repo, paths, snap = _snap(project, since)
    assert "analyze.py" in paths
    assert any("analyze.py changed while the run started" in w for w in snap.warnings)


def test_untracked_file_older_than_the_run_is_code(project: Path) -> None:
    (project / "notes.py").write_text("x = 1\n")
    paths = _snap(project, time.time_ns() + 60 * 10**9)[1]
    assert "notes.py" in paths


def test_secret_named_file_is_hashed_not_kept(project: Path) -> None:
    (project / ".env").write_text("TOKEN=abc123\n")
    repo, _paths, snap = _snap(project, time.time_ns() + 60 * 10**9)
    entry = next(e for e in read_tree(repo.store.objects, snap.tree) if e.path == ".env")
    assert entry.kept is False
    assert not repo.store.objects.exists(entry.hash)


def test_large_file_is_hashed_not_kept_and_not_rehashed_each_time(project: Path) -> None:
    big = project / "weights.bin"
    big.write_bytes(b"\0" * (2 << 20))  # over the 1 MiB limit used here
    repo, _paths, snap = _snap(project, time.time_ns() + 60 * 10**9)
    entry = next(e for e in read_tree(repo.store.objects, snap.tree) if e.path == "weights.bin")
    assert entry.kept is False
    assert not repo.store.objects.exists(entry.hash)


# -- git's answers, cached while nothing they depend on changed ------------------------


def _probe(project: Path, store: Path) -> GitProbe:
    dirs = Dirs(str(project))
    dirs.refresh()
    return GitProbe(str(project), str(store), None, dirs)


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
    _files, _untracked, state = dirty.result()
    assert state["dirty"] is True

    (project / "b.py").write_text("b = 1\n")  # a new untracked file
    files, untracked, _state = _probe(project, store).result()
    assert "b.py" in files and untracked == ["b.py"]

    (project / "data").mkdir()  # a new folder: git is asked again, its new file listed
    (project / "data" / "c.py").write_text("c = 1\n")
    files, _untracked, _state = _probe(project, store).result()
    assert "data/c.py" in files

    git(project, "add", "-A")
    git(project, "commit", "-qm", "b")  # index and ref change: git is asked again
    _files, untracked, state = _probe(project, store).result()
    assert state["dirty"] is False and untracked == []
    assert state["commit"] == git(project, "rev-parse", "HEAD").strip()


def test_without_a_store_or_scan_git_is_always_asked(project: Path) -> None:
    probe = GitProbe(str(project))
    assert probe.procs != []
    files, _untracked, state = probe.result()
    assert "README.md" in files and state["branch"] == "main"


# -- files that runs made are not code -----------------------------------------------------

MAKE_RESULTS = """\
import os
os.makedirs("results", exist_ok=True)
open("results/a.csv", "w").write("x\\n1\\n")
open("results/b.csv", "w").write("x\\n2\\n")
open("made_helper.py", "w").write("SCALE = 3\\n")  # generated code a later run may import
"""


def _code_of(root: Path, run: str, into: Path) -> list[str]:
    """The files of a run's code snapshot, as `vestige restore --code --to` writes them."""
    done = vestige("restore", run, "--code", "--to", str(into), cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return sorted(p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["git", "plain"])
def test_outputs_of_earlier_runs_are_not_code_until_edited(
    kind: str, project: Path, plain_dir: Path, tmp_path: Path
) -> None:
    root = project if kind == "git" else plain_dir
    (root / "make.py").write_text(MAKE_RESULTS)
    (root / "report.py").write_text("print('report')\n")
    if kind == "git":
        git(root, "add", "-A")
        git(root, "commit", "-qm", "scripts")
    for args in (["make.py"], ["report.py"]):
        done = vestige("run", *args, cwd=root)
        assert done.returncode == 0, done.stderr.decode()
    code = _code_of(root, "2", tmp_path / "code2")
    assert "results/a.csv" not in code and "results/b.csv" not in code
    assert {"make.py", "report.py", "made_helper.py"} <= set(code)  # importable: still code
    (root / "results" / "a.csv").write_text("x\n1\n# checked by hand\n")  # edited: code again
    assert vestige("run", "report.py", cwd=root).returncode == 0
    code = _code_of(root, "3", tmp_path / "code3")
    assert "results/a.csv" in code and "results/b.csv" not in code
    dest = tmp_path / "export"
    assert vestige("export", "2", "--to", str(dest), cwd=root).returncode == 0
    shipped = {p.relative_to(dest / "project").as_posix()
               for p in (dest / "project").rglob("*") if p.is_file()}  # fmt: skip
    assert "report.py" in shipped and not any(p.startswith("results/") for p in shipped)
