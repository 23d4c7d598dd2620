"""`vestige which` from anywhere (issue 23, item 4): the user's list of stores
(store/known.py) and `which --all-stores`, the default outside a project. Real `vestige
run` processes in two projects, HOME and XDG_DATA_HOME in tmp dirs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import vestige


@pytest.fixture
def two_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Projects a (writes fig.txt) and b (writes other.txt), each with one recorded run,
    and a paper folder holding a copy of a's figure; the user's data folder in tmp."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    a, b, paper = tmp_path / "a", tmp_path / "b", tmp_path / "paper"
    for d in (a, b, paper):
        d.mkdir()
    vestige("run", "sh", "-c", "echo other > other.txt", cwd=b)
    vestige("run", "sh", "-c", "echo unused > x.txt", cwd=a)
    done = vestige("run", "sh", "-c", "echo the figure > fig.txt", cwd=a)
    assert done.returncode == 0, done.stderr
    shutil.copy(a / "fig.txt", paper / "fig3.txt")
    return a, b, paper


def listed(tmp_path: Path) -> list[str]:
    return (tmp_path / "xdg" / "vestige" / "stores").read_text().splitlines()


def test_runs_list_each_store_once(two_projects: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, _paper = two_projects
    assert listed(tmp_path) == [str(b / ".vestige"), str(a / ".vestige")]  # a: two runs, once


def test_which_outside_a_project_names_the_project_and_run(
    two_projects: tuple[Path, Path, Path],
) -> None:
    a, _b, paper = two_projects
    done = vestige("which", "fig3.txt", cwd=paper)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "made by run #2 " in out and f"of {a}," in out
    assert "echo the figure" in out
    data = json.loads(vestige("which", "fig3.txt", "--json", cwd=paper).stdout)
    [maker] = data["made_by"]
    assert (maker["seq"], maker["project"], maker["path"]) == (2, str(a), "fig.txt")
    assert data["skipped"] == []


def test_a_deleted_store_is_dropped_from_the_list(
    two_projects: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, paper = two_projects
    shutil.rmtree(b / ".vestige")
    data = json.loads(vestige("which", "fig3.txt", "--json", cwd=paper).stdout)
    assert data["stores"] == [str(a / ".vestige")]
    assert listed(tmp_path) == [str(a / ".vestige")]


def test_an_unreadable_store_is_skipped_with_a_note(
    two_projects: tuple[Path, Path, Path],
) -> None:
    a, b, paper = two_projects
    (b / ".vestige" / "format").write_text('{"format": 99, "kind": "vestige-store"}\n')
    done = vestige("which", "fig3.txt", cwd=paper)
    assert done.returncode == 0
    assert f"skipped the store {b / '.vestige'}: store format 99 is newer" in done.stderr.decode()
    assert f"of {a}," in done.stdout.decode()


def test_all_stores_inside_a_project(two_projects: tuple[Path, Path, Path]) -> None:
    a, b, paper = two_projects
    inside = vestige("which", str(paper / "fig3.txt"), cwd=b)
    assert inside.returncode == 1  # b's own store only: b made none of these bytes
    data = json.loads(vestige("which", "--all-stores", str(paper / "fig3.txt"), "--json",
                              cwd=b).stdout)  # fmt: skip
    assert data["stores"][0] == str(b / ".vestige")  # the store here first
    assert [(m["project"], m["seq"]) for m in data["made_by"]] == [(str(a), 2)]


def test_nothing_found_anywhere_says_how_many_stores(
    two_projects: tuple[Path, Path, Path],
) -> None:
    _a, _b, paper = two_projects
    (paper / "new.txt").write_text("never recorded\n")
    done = vestige("which", "new.txt", cwd=paper)
    assert done.returncode == 1
    assert "no recorded run made these bytes in the 2 stores searched" in done.stdout.decode()


def test_no_list_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (tmp_path / "f.txt").write_text("x\n")
    done = vestige("which", "f.txt", cwd=tmp_path)
    assert done.returncode == 2  # as before the list: a usage error, one line
    assert "no vestige store here, and this user has recorded into none" in done.stderr.decode()


def test_all_stores_refuses_path_and_similar(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x\n")
    done = vestige("which", "--all-stores", "--path", "f.txt", cwd=tmp_path)
    assert done.returncode == 2
    assert b"--all-stores finds exact bytes only" in done.stderr


def test_concurrent_appends_and_compaction_lose_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes remembering stores while another compacts the list: every live store ends
    up listed once (the flock and the inode check)."""
    import subprocess
    import sys

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    stores = [tmp_path / f"s{i}" / ".vestige" for i in range(12)]
    for s in stores:
        s.mkdir(parents=True)
        (s / "format").write_text('{"format": 1, "kind": "vestige-store"}\n')
    code = ("import sys; from vestige.store.known import remember, known_stores\n"
            "for s in sys.argv[1:]:\n"
            "    remember(s); remember(s + '-gone'); known_stores()\n")  # fmt: skip
    env = {**os.environ}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *map(str, stores[i::3])], env=env)
        for i in range(3)
    ]
    assert [p.wait() for p in procs] == [0, 0, 0]
    from vestige.store.known import known_stores

    assert sorted(known_stores()) == sorted(map(str, stores))  # (a last `-gone` dropped)
    assert sorted(listed(tmp_path)) == sorted(map(str, stores))
