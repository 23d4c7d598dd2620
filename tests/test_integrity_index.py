"""Issue 20, items 6 and 12: an index that is empty or damaged is rebuilt (and says so),
run numbers are never given twice, `reindex` names the runs it could not read, and a
store that cannot be written (a read-only mount, an archive) is read all the same while
the commands that must write refuse with one line. Real subprocesses on real stores."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git, vestige

pytestmark = pytest.mark.timeout(300)

SCRIPT = """\
import sys
name = sys.argv[1] if len(sys.argv) > 1 else "a"
with open("out.txt", "w") as f:
    f.write(f"made by {name}\\n")
print("made", name)
"""

#: A program that runs until the test lets it end (no sleep to guess a duration with).
WAITER = """\
import os, time
for _ in range(12000):  # at most ~2 minutes, should the test die first
    if os.path.exists("go"):
        break
    time.sleep(0.01)
"""

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    """stdout of a call that must succeed."""
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def runs(cwd: Path) -> list[dict[str, object]]:
    """`vestige ls --json`, oldest first."""
    return list(reversed(json.loads(ok(vestige("ls", "--json", cwd=cwd)))))


def recorded(project: Path, count: int) -> list[dict[str, object]]:
    """`count` runs of SCRIPT, each writing out.txt; their `ls --json` records."""
    (project / "make.py").write_text(SCRIPT)
    git(project, "add", "make.py")
    git(project, "commit", "-qm", "make")
    for i in range(count):
        ok(vestige("run", "python", "make.py", f"r{i}", cwd=project))
    return runs(project)


def index_files(project: Path) -> list[Path]:
    store = project / ".vestige"
    return [store / f"index.sqlite{s}" for s in ("", "-wal", "-shm")]


# -- item 6: an empty or damaged index; numbers never given twice -------------------------


def test_an_empty_index_file_is_rebuilt_and_numbers_are_not_given_again(project: Path) -> None:
    before = recorded(project, 2)
    assert [r["seq"] for r in before] == [1, 2]
    main, *others = index_files(project)
    main.write_bytes(b"")  # 0 bytes: a full disk, a careless tool, a sync that cut it
    for path in others:
        path.unlink(missing_ok=True)

    done = vestige("ls", "--json", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    assert [r["id"] for r in json.loads(done.stdout)] == [before[1]["id"], before[0]["id"]]
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "index" in lines[0] and "0 bytes" in lines[0] and "rebuilt" in lines[0]

    ok(vestige("run", "python", "make.py", "third", cwd=project))
    after = runs(project)
    assert [r["seq"] for r in after] == [1, 2, 3]
    ok(vestige("reindex", cwd=project))
    assert runs(project) == after
    for r in after:  # every run reachable by its number and its id
        shown = json.loads(ok(vestige("show", str(r["seq"]), "--json", cwd=project)))
        assert shown["id"] == r["id"]
        assert (
            json.loads(ok(vestige("show", str(r["id"]), "--json", cwd=project)))["seq"] == r["seq"]
        )


def test_reindex_writes_the_same_rows_and_indexes_as_recording_did(project: Path) -> None:
    """reindex fills the emptied tables in bulk (its indexes dropped and made again, no
    per-run DELETEs): every row and every index is what the runs' own sealing wrote."""
    (project / "rich.py").write_text(
        "import vestige\n"
        "vestige.log(loss=0.5, acc=0.25)\n"
        "vestige.log(loss=0.25)\n"
        "vestige.tag('first')\n"
        "vestige.note('a note')\n"
        "open('out.txt', 'w').write('x')\n"
    )  # fmt: skip
    for i, params in enumerate((("lr=0.1", "model=vit"), ("lr=3", 'name=é"q', "flag=true"))):
        args = [a for p in params for a in ("--param", p)]
        ok(vestige("run", *args, sys.executable, "rich.py", str(i), cwd=project))
    ok(vestige("tag", "1", "shell-tag", cwd=project))
    ok(vestige("note", "2", "from the shell", cwd=project))
    tables = ("runs", "params", "files", "tags", "notes", "metrics", "blobs")

    def dump() -> tuple[dict[str, list[tuple[object, ...]]], list[tuple[object, ...]]]:
        conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
        try:
            rows = {t: sorted(conn.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}
            made = sorted(conn.execute("SELECT name, tbl_name, sql FROM sqlite_master"
                                       " WHERE type = 'index'"))  # fmt: skip
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
        return rows, made

    before = dump()
    assert all(before[0][t] for t in ("runs", "params", "files", "tags", "notes", "metrics"))
    ok(vestige("reindex", cwd=project))
    after = dump()
    assert after[1] == before[1]
    for table in tables:
        assert after[0][table] == before[0][table], table


def test_a_damaged_index_file_is_set_aside_rebuilt_and_said(project: Path) -> None:
    before = recorded(project, 2)
    main, *others = index_files(project)
    main.write_bytes(b"this is not a database, it was overwritten\n" * 100)
    for path in others:
        path.unlink(missing_ok=True)

    done = vestige("ls", "--json", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(r["id"] for r in json.loads(done.stdout)) == sorted(r["id"] for r in before)
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "index" in lines[0] and "rebuilt" in lines[0], lines
    assert (project / ".vestige" / "index.sqlite.damaged").is_file()
    assert vestige("ls", cwd=project).stderr == b""  # said once: the index is whole again


def test_a_stale_index_does_not_make_a_run_reuse_a_sealed_runs_number(project: Path) -> None:
    """An index that lacks sealed runs (an old copy put back, a rebuild racing a run): the
    next run is numbered above every run in the store's refs, not above the index's."""
    before = recorded(project, 3)
    conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
    with conn:
        conn.execute("DELETE FROM runs WHERE seq > 1")
    conn.close()

    ok(vestige("run", "python", "make.py", "fourth", cwd=project))
    ok(vestige("reindex", cwd=project))
    after = runs(project)
    assert [r["id"] for r in after[:3]] == [r["id"] for r in before]
    assert [r["seq"] for r in after] == [1, 2, 3, 4]


def test_a_live_runs_number_is_not_given_again(project: Path) -> None:
    """A run still going has its number in live/<id>/run.json: an index that lost its row
    must not give that number to the next run."""
    recorded(project, 1)
    (project / "wait.py").write_text(WAITER)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "python", "wait.py"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live_seq, live_id = None, None
        deadline = time.monotonic() + 120
        while live_seq is None and time.monotonic() < deadline:
            for info in (project / ".vestige" / "live").glob("*/run.json"):
                try:
                    data = json.loads(info.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(data.get("seq"), int):
                    live_seq, live_id = data["seq"], info.parent.name
            time.sleep(0.02)
        assert live_seq == 2, "the waiting run never got its number"
        conn = sqlite3.connect(project / ".vestige" / "index.sqlite", timeout=60)
        with conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (live_id,))
        conn.close()

        ok(vestige("run", "python", "make.py", "meanwhile", cwd=project))
    finally:
        (project / "go").write_text("")
        waiting.wait(timeout=120)
    ok(vestige("reindex", cwd=project))
    seqs = {r["id"]: r["seq"] for r in runs(project)}
    assert len(seqs) == 3
    assert seqs[live_id] == 2
    assert sorted(seqs.values()) == [1, 2, 3]


def test_reindex_names_a_run_whose_manifest_is_damaged_and_fails(project: Path) -> None:
    before = recorded(project, 2)
    damaged = before[0]
    digest = (project / ".vestige" / "refs" / "runs" / str(damaged["id"])).read_text().strip()
    path = project / ".vestige" / "objects" / digest[:2] / digest[2:]
    path.chmod(0o644)
    path.write_bytes(b'{"id": "cut short')
    path.chmod(0o444)

    done = vestige("reindex", cwd=project)
    assert done.returncode == 1, done.stderr.decode()
    err = done.stderr.decode()
    assert str(damaged["id"]) in err
    assert err.splitlines()[-1].startswith("error: ")
    assert "reindexed 1 run" in done.stdout.decode()
    assert [r["id"] for r in runs(project)] == [before[1]["id"]]
    # a new run still does not take #1 (its manifest is unreadable, but #2 is known)
    ok(vestige("run", "python", "make.py", "third", cwd=project))
    assert [r["seq"] for r in runs(project)] == [2, 3]


# -- item 12: a store that cannot be written ----------------------------------------------


def _mount_works(folder: Path) -> bool:
    """Whether a private mount namespace can bind `folder` read-only here (CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && ! touch "$1/probe"'
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0 and not (folder / "probe").exists()


def _nobody_works(folder: Path) -> bool:
    """Whether commands can run as an unprivileged user (setpriv) that reaches `folder`."""
    if shutil.which("setpriv") is None:
        return False
    done = subprocess.run(
        [*NOBODY, sys.executable, "-c", "import vestige, os, sys; sys.exit(os.getuid() == 0)"],
        cwd=folder,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _chmod_tree(top: Path, writable: bool) -> None:
    """Every folder and file under `top` (itself included) without write bits, or back."""
    for here, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = Path(here) / name
            if not path.is_symlink():
                path.chmod(
                    path.stat().st_mode | 0o200 if writable else path.stat().st_mode & ~0o222
                )
    top.chmod(top.stat().st_mode | 0o200 if writable else top.stat().st_mode & ~0o222)


def _listing(store: Path) -> dict[str, tuple[int, int]]:
    """Every file of the store with its size and mtime: to see that nothing changed."""
    out = {}
    for here, _dirs, files in os.walk(store):
        for name in files:
            st = (Path(here) / name).stat()
            out[str((Path(here) / name).relative_to(store))] = (st.st_size, st.st_mtime_ns)
    return out


ReadOnly = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def read_only(project: Path) -> Iterator[tuple[Path, ReadOnly]]:
    """(the project, a function running `vestige ARGS` there with its store read-only).

    Tests run as root, which ignores file modes: the store is bound read-only in a private
    mount namespace (`unshare -m`) where that works; else the project is copied to a
    folder every user can reach, its store made read-only by mode, and vestige run as
    `nobody` (setpriv); else the test is skipped, saying why."""
    recorded(project, 2)
    ok(vestige("tag", "1", "good", cwd=project))
    probe = Path(tempfile.mkdtemp(prefix="vestige-ro-probe-"))
    try:
        mount = _mount_works(probe)
        probe.chmod(0o755)
        nobody = not mount and _nobody_works(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    env = {**os.environ}
    if mount:
        store = project / ".vestige"
        script = 'd=$1; shift; mount --bind "$d" "$d" && mount -o remount,ro,bind "$d" && exec "$@"'

        def run(*args: str) -> subprocess.CompletedProcess[bytes]:
            command = ["unshare", "-m", "sh", "-c", script, "sh", str(store)]
            return subprocess.run(
                [*command, sys.executable, "-m", "vestige", *args],
                cwd=project, env=env, capture_output=True, timeout=120, check=False,
            )  # fmt: skip

        yield project, run
        return
    if not nobody:
        pytest.skip(
            "no way to make a store read-only for root here: `unshare -m` + a read-only "
            "bind mount needs CAP_SYS_ADMIN, and `setpriv` to run as nobody failed"
        )
    base = Path(tempfile.mkdtemp(prefix="vestige-ro-"))
    base.chmod(0o755)
    copy = base / "proj"
    shutil.copytree(project, copy, symlinks=True)
    for here, dirs, _files in os.walk(copy):
        for name in dirs:
            (Path(here) / name).chmod(0o755)
    for here, _dirs, files in os.walk(copy):
        for name in files:
            path = Path(here) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444)
    _chmod_tree(copy / ".vestige", writable=False)
    env["HOME"] = str(base)

    def run_as_nobody(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*NOBODY, sys.executable, "-m", "vestige", *args],
            cwd=copy, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip

    try:
        yield copy, run_as_nobody
    finally:
        _chmod_tree(base, writable=True)
        shutil.rmtree(base, ignore_errors=True)


def test_a_read_only_store_is_read(read_only: tuple[Path, ReadOnly]) -> None:
    root, ro = read_only
    store = root / ".vestige"
    before = _listing(store)
    listed = json.loads(ok(ro("ls", "--json")))
    assert [r["seq"] for r in listed] == [2, 1]
    assert json.loads(ok(ro("show", "1", "--json")))["tags"] == ["good"]
    assert ok(ro("cat", "2", "out.txt")) == "made by r1\n"
    assert "ok:" in ok(ro("fsck"))
    assert "made by run #2" in ok(ro("which", "out.txt"))
    outside = root.parent / "published.txt"  # bytes that left the project: which would
    shutil.copyfile(root / "out.txt", outside)  # record that, on a store it can write
    assert "made by run #2" in ok(ro("which", str(outside)))
    assert ok(ro("lineage", "out.txt"))
    assert ok(ro("log", "1")) == "made r0\n"
    assert ok(ro("du"))
    assert _listing(store) == before  # nothing written, not even a cache
    assert list(reversed(listed)) == runs(root)  # (now writable again: as it is)


def test_a_read_only_store_refuses_commands_that_write(read_only: tuple[Path, ReadOnly]) -> None:
    root, ro = read_only
    store = root / ".vestige"
    before = _listing(store)
    for args in (["tag", "1", "x"], ["note", "1", "a note"], ["gc", "--keep-last", "1"],
                 ["reindex"], ["pin", "1"]):  # fmt: skip
        done = ro(*args)
        assert done.returncode == 2, (args, done.stderr.decode())
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1, (args, lines)
        assert lines[0].startswith("error: ") and "read-only" in lines[0], (args, lines)
        assert str(store.resolve()) in lines[0] or str(store) in lines[0], (args, lines)
    assert _listing(store) == before


def test_a_read_only_store_with_an_empty_index_is_indexed_in_memory(
    read_only: tuple[Path, ReadOnly],
) -> None:
    root, ro = read_only
    main, *others = index_files(root)  # (this test runs as root: modes do not stop it)
    for path in others:
        path.unlink(missing_ok=True)
    main.write_bytes(b"")
    done = ro("ls", "--json")
    assert done.returncode == 0, done.stderr.decode()
    assert [r["seq"] for r in json.loads(done.stdout)] == [2, 1]
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and "in memory" in lines[0], lines
    assert json.loads(ok(ro("show", "1", "--json")))["tags"] == ["good"]
    assert main.stat().st_size == 0  # nothing written
