"""Integrity (issue 20): a damaged object is re-made by the next write of its bytes, not
trusted by dedup; and a recorded path that would climb out of the folder it is written
under is refused by every writer and reported by fsck (real runs, real subprocesses)."""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3
from conftest import git, vestige

from vestige.store import objects as objects_mod
from vestige.store.local import Store
from vestige.store.objects import ObjectStore
from vestige.store.statcache import DDL, StatCache

pytestmark = pytest.mark.timeout(300)


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout.decode(), done.stderr.decode())
    return done.stdout.decode()


def script(root: Path, name: str, code: str) -> None:
    (root / name).write_text(textwrap.dedent(code))
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"add {name}")


def flip(path: Path, offset: int = 0) -> None:
    """Damage a read-only object in place, keeping its size (a careless tool). Its mtime
    is set a second on: a write in the very timestamp tick vestige recorded the object's
    stat would go unseen on a kernel with coarse timestamps (docs/format.md, the stat
    cache), and a test may damage it within milliseconds of writing it."""
    st = path.stat()
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def object_path(root: Path, digest: str) -> Path:
    return root / ".vestige" / "objects" / digest[:2] / digest[2:]


def manifest(root: Path, seq: str = "1") -> dict[str, Any]:
    return json.loads(ok("show", seq, "--json", cwd=root))


def fsck(root: Path) -> tuple[int, str]:
    done = vestige("fsck", cwd=root)
    return done.returncode, (done.stdout + done.stderr).decode()


# -- item 5: a damaged object poisons dedup ------------------------------------------------

MAKE = """
    text = open("data.csv").read()
    open("out.txt", "w").write(text.upper())
"""


def test_a_run_that_makes_the_same_bytes_repairs_their_damaged_objects(project: Path) -> None:
    """A damaged input and output are re-made by the next run that reads and writes the same
    bytes (their stats changed when they were damaged: re-hashed, found wrong, replaced)."""
    (project / "data.csv").write_text("a,b\n1,2\n")
    script(project, "make.py", MAKE)
    ok("run", "python", "make.py", cwd=project)
    m = manifest(project)
    (inp,) = [f for f in m["inputs"] if f["path"] == "data.csv"]
    (out,) = m["outputs"]
    for f in (inp, out):
        flip(object_path(project, f["hash"]), 2)
    code, text = fsck(project)
    assert code == 1 and inp["hash"] in text and out["hash"] in text, text
    ok("run", "python", "make.py", cwd=project)
    code, text = fsck(project)
    assert code == 0, text
    assert ok("cat", "1", "out.txt", cwd=project) == "A,B\n1,2\n"
    assert ok("cat", "2", "data.csv", cwd=project) == "a,b\n1,2\n"


def test_a_rerun_that_makes_the_recorded_bytes_repairs_the_original(
    project: Path, tmp_path: Path
) -> None:
    """Same hash as recorded: a genuine reproduction; the rerun's seal re-makes the damaged
    object, and the verdict says the stored copy was damaged and is re-made."""
    (project / "data.csv").write_text("x\n")
    script(project, "make.py", MAKE)
    ok("run", "python", "make.py", cwd=project)
    (out,) = manifest(project)["outputs"]
    flip(object_path(project, out["hash"]))
    done = vestige("rerun", "1", "--json", "--dir", str(tmp_path / "rr"), cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    (verdict,) = result["verdicts"]
    assert result["reproduced"] is True and verdict["verdict"] == "identical", verdict
    assert "damaged: re-made from the rerun's bytes" in verdict["summary"], verdict
    code, text = fsck(project)
    assert code == 0, text
    assert ok("cat", "1", "out.txt", cwd=project) == "X\n"


def test_a_rerun_with_other_bytes_than_a_damaged_original_differs(
    project: Path, tmp_path: Path
) -> None:
    """The original's stored copy cannot be compared by content: the verdict is `differs`,
    saying why, and the rerun is not reproduced (exit 1), not a crash."""
    script(project, "rand.py", """
        import os
        open("r.txt", "w").write(os.urandom(8).hex())
    """)  # fmt: skip
    ok("run", "python", "rand.py", cwd=project)
    (out,) = manifest(project)["outputs"]
    flip(object_path(project, out["hash"]))
    done = vestige("rerun", "1", "--dir", str(tmp_path / "rr"), cwd=project)
    text = done.stdout.decode()
    assert done.returncode == 1, (text, done.stderr.decode())
    assert "differs" in text and "stored copy is damaged" in text, text
    assert "NOT reproduced" in text, text


@pytest.mark.parametrize("large", [False, True])
def test_put_repairs_a_damaged_object_and_records_the_stat_it_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    """put_file records the object's stat in the stat cache as it writes it (so a later put
    of the same bytes trusts it unread while that stat holds); an object whose stat
    changed is re-hashed, and replaced when wrong; put_bytes compares and replaces too."""
    if large:  # the copy-while-hashing path, at a size a test can afford
        monkeypatch.setattr(objects_mod, "PARALLEL_THRESHOLD", 1 << 20)
    store = tmp_path / ".vestige"
    store.mkdir()
    conn = sqlite3.connect(tmp_path / "index.sqlite")
    conn.execute(DDL)
    data = os.urandom(3 << 20 if large else 100_000)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    cache = StatCache(conn)
    digest, _ = ObjectStore(store).put_file(src, None, cache)
    cache.flush()
    obj = ObjectStore(store).path(digest)
    st = obj.stat()
    row = conn.execute("SELECT inode, size, mtime_ns, ctime_ns, hash FROM statcache"
                       " WHERE path = ?", (f"object:{digest}",)).fetchone()  # fmt: skip
    assert row == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
    assert ObjectStore(store).intact(digest, StatCache(conn))
    flip(obj, len(data) // 2)
    fresh = ObjectStore(store)  # another process: nothing trusted in memory
    assert not fresh.intact(digest, StatCache(conn))
    assert fresh.put_file(src, digest, StatCache(conn))[0] == digest  # a trusted hint
    assert blake3(obj.read_bytes()).hexdigest() == digest and obj.stat().st_mode & 0o777 == 0o444
    flip(obj)
    assert ObjectStore(store).put_file(src)[0] == digest  # no hint, no cache
    assert obj.read_bytes() == data
    record = ObjectStore(store).put_bytes(b'{"a":1}')
    flip(ObjectStore(store).path(record))
    assert ObjectStore(store).put_bytes(b'{"a":1}') == record
    assert ObjectStore(store).path(record).read_bytes() == b'{"a":1}'


# -- item 14: recorded paths are trusted ---------------------------------------------------


@pytest.fixture
def deep(tmp_path: Path) -> Path:
    """A project two folders below tmp_path, so that a path climbing out of it (or out of
    a folder next to it) lands inside tmp_path, where the test can look for it."""
    root = tmp_path / "w1" / "w2" / "proj"
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "data.csv").write_text("1,2\n")
    script(root, "make.py", MAKE)
    ok("run", "python", "make.py", cwd=root)
    return root


def craft(root: Path, change: Callable[[dict[str, Any], Store], None]) -> str:
    """Rewrite run 1's manifest (as a tampered or shared store, or a program writing into
    .vestige/, could): a new manifest object, the ref pointed at it, the index rebuilt."""
    store, _ = Store.open(root)
    run_id = manifest(root)["id"]
    record = store.objects.read_json(store.refs.get(run_id))  # type: ignore[arg-type]
    change(record, store)
    store.refs.set(run_id, store.objects.put_json(record))
    ok("reindex", cwd=root)
    return run_id


def snapshot(tmp_path: Path) -> set[str]:
    """Every file and folder under tmp_path but the store and HOME (vestige's own)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        dirnames[:] = [d for d in dirnames if d not in (".vestige", "home")]
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def refused(args: list[str], root: Path, tmp_path: Path, path: str) -> None:
    """The command fails with one `error:` line naming run #1 and the path, exit 2, and
    writes nothing (no file or folder appears outside the store)."""
    before = snapshot(tmp_path)
    done = vestige(*args, cwd=root)
    err = done.stderr.decode()
    lines = err.strip().splitlines()
    assert done.returncode == 2, (args, done.returncode, done.stdout.decode(), err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "#1" in err and repr(path) in err, err
    assert snapshot(tmp_path) == before, sorted(snapshot(tmp_path) - before)


BAD = ["../../escaped", "a/../../escaped", "", ".", "esc\x00aped", "out.txt/../../escaped"]


@pytest.mark.parametrize("bad", [*BAD, "/../../escaped"])
def test_an_output_path_that_climbs_out_is_refused_and_reported(
    deep: Path, tmp_path: Path, bad: str
) -> None:
    def change(m: dict[str, Any], _store: Store) -> None:
        m["outputs"][0]["path"] = bad

    run_id = craft(deep, change)
    code, text = fsck(deep)
    assert code == 1 and "M3" in text and run_id in text and repr(bad) in text, text
    if not bad.startswith("/"):  # (an absolute path goes back where it was, as before)
        refused(["restore", "1", "--outputs"], deep, tmp_path, bad)
    to = str(tmp_path / "w1" / "w2" / "to")
    refused(["restore", "1", "--outputs", "--to", to], deep, tmp_path, bad)
    refused(["restore", "1", "--all", "--to", to, "--dry-run"], deep, tmp_path, bad)
    refused(["export", "1", "--to", to], deep, tmp_path, bad)


@pytest.mark.parametrize("bad", ["../../escaped", "ABSOLUTE"])
def test_a_code_tree_entry_that_climbs_out_is_refused_and_reported(
    deep: Path, tmp_path: Path, bad: str
) -> None:
    """Tree entries are project paths: relative only (fsck); the writers refuse any that
    would climb out of their folder (a rerun's folder: an absolute one too)."""
    if bad == "ABSOLUTE":
        bad = str(tmp_path / "w1" / "escaped")

    def change(m: dict[str, Any], store: Store) -> None:
        tree = store.objects.read_json(m["code"]["tree"])
        entry = list(tree["entries"][0])
        tree["entries"].append([bad, *entry[1:]])
        m["code"]["tree"] = store.objects.put_json(tree)

    craft(deep, change)
    code, text = fsck(deep)
    assert code == 1 and "M3" in text and repr(bad) in text, text
    if bad.startswith(".."):
        refused(["restore", "1"], deep, tmp_path, bad)
        refused(["export", "1", "--to", str(tmp_path / "w1" / "w2" / "to")], deep, tmp_path, bad)
    refused(["rerun", "1", "--dir", str(tmp_path / "w1" / "w2" / "rr")], deep, tmp_path, bad)


@pytest.mark.parametrize("bad", BAD)
def test_a_rerun_refuses_to_stage_an_input_outside_its_folder(
    deep: Path, tmp_path: Path, bad: str
) -> None:
    def change(m: dict[str, Any], _store: Store) -> None:
        (f,) = [f for f in m["inputs"] if f["path"] == "data.csv"]
        f["path"] = bad

    craft(deep, change)
    refused(["rerun", "1", "--dir", str(tmp_path / "w1" / "w2" / "rr")], deep, tmp_path, bad)
    refused(["restore", "1", "--inputs"], deep, tmp_path, bad)


def test_a_rerun_refuses_a_working_directory_outside_its_folder(deep: Path, tmp_path: Path) -> None:
    def change(m: dict[str, Any], _store: Store) -> None:
        m["cwd"] = "../../escaped"

    craft(deep, change)
    refused(["rerun", "1", "--dir", str(tmp_path / "w1" / "w2" / "rr")], deep, tmp_path,
            "../../escaped")  # fmt: skip


def test_files_outside_the_project_are_still_recorded_restored_and_exported(
    project: Path, tmp_path: Path
) -> None:
    """Absolute paths are legitimate (files written outside the project): fsck accepts
    them, and restore --to and export put them under DIR/outside/."""
    target = tmp_path / "elsewhere" / "note.txt"
    target.parent.mkdir()
    script(project, "far.py", f"open({str(target)!r}, 'w').write('far')\n")
    ok("run", "python", "far.py", cwd=project)
    assert [f["path"] for f in manifest(project)["outputs"]] == [str(target)]
    code, text = fsck(project)
    assert code == 0, text
    ok("restore", "1", "--outputs", "--to", str(tmp_path / "to"), cwd=project)
    assert (tmp_path / "to" / "outside" / str(target).lstrip("/")).read_text() == "far"
    ok("export", "1", "--to", str(tmp_path / "ex"), cwd=project)
    assert (tmp_path / "ex" / "outputs" / str(target).lstrip("/")).read_text() == "far"
