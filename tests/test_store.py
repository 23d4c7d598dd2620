"""The store (docs/format.md) at library level, on real files and a real SQLite index:
objects, trees, refs, the stat cache, discovery, the index, run references, reindex,
fsck and config. Where a behaviour is the CLI's, the real `vestige` runs in a subprocess."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from conftest import git, vestige

from vestige.errors import AmbiguousRun, CorruptObject, NoStore, RunNotFound, UnknownFormat
from vestige.ids import new_run_id
from vestige.index.db import Index
from vestige.index.schema import SCHEMA_VERSION
from vestige.records import FileRecord, Run
from vestige.repo import Repo
from vestige.store import objects as objects_mod
from vestige.store import statcache as statcache_mod
from vestige.store.hashing import MMAP_THRESHOLD
from vestige.store.layout import locate
from vestige.store.local import Store
from vestige.store.objects import ObjectStore, canonical_json
from vestige.store.refs import Refs
from vestige.store.stat import Stat
from vestige.store.statcache import RACY_NS, StatCache
from vestige.store.tree import TreeEntry, read_tree, write_tree

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024


def b3(data: bytes) -> str:
    """The reference BLAKE3 (single-threaded, straight from the library)."""
    return blake3.blake3(data).hexdigest()


def flip_byte(path: Path, offset: int = 0) -> None:
    """Corrupt a read-only object in place (as bit rot or a careless tool would)."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    """stdout of a CLI call that must succeed."""
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def ls_json(cwd: Path) -> Any:
    return json.loads(ok(vestige("ls", "--json", cwd=cwd)))


def show_json(cwd: Path, ref: str) -> Any:
    return json.loads(ok(vestige("show", ref, "--json", cwd=cwd)))


def write_script(root: Path, name: str, body: str) -> None:
    (root / name).write_text(body)


@pytest.fixture
def objects(tmp_path: Path) -> ObjectStore:
    store = tmp_path / "store" / ".vestige"
    store.mkdir(parents=True)
    return ObjectStore(store)


@pytest.fixture
def repo_of() -> Iterator[Callable[[Path], Repo]]:
    """Open Repos on demand and close them at the end of the test."""
    opened: list[Repo] = []

    def open_(cwd: Path) -> Repo:
        repo = Repo.open(cwd)
        opened.append(repo)
        return repo

    yield open_
    for repo in opened:
        repo.close()


# -- objects ----------------------------------------------------------------------------


def test_put_bytes_and_json_are_named_by_blake3(objects: ObjectStore) -> None:
    data = b"some bytes\x00\xff"
    digest = objects.put_bytes(data)
    assert digest == b3(data)
    path = objects.dir / digest[:2] / digest[2:]
    assert objects.path(digest) == path
    assert path.read_bytes() == data
    assert objects.read_bytes(digest, verify=True) == data

    record = {"b": [1, 2], "a": "é"}
    jdigest = objects.put_json(record)
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(record) == canonical.encode()
    assert jdigest == b3(canonical.encode())
    assert objects.read_json(jdigest) == record
    # equal records, whatever their key order, are one object
    assert objects.put_json({"a": "é", "b": [1, 2]}) == jdigest


def test_objects_are_read_only(objects: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"file content")
    names = [objects.put_bytes(b"x"), objects.put_json({"k": 1}), objects.put_file(src)[0]]
    for digest in names:
        assert stat.S_IMODE(objects.path(digest).stat().st_mode) == 0o444


def test_storing_the_same_bytes_again_writes_nothing(objects: ObjectStore, tmp_path: Path) -> None:
    data = b"twice"
    digest = objects.put_bytes(data)
    path = objects.path(digest)
    first = path.stat()
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns - 10**9))  # any rewrite would show
    first = path.stat()
    assert objects.put_bytes(data) == digest
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    assert objects.put_file(src) == (digest, len(data))
    assert objects.put_file(src, digest) == (digest, len(data))
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns, again.st_ctime_ns) == (
        first.st_ino,
        first.st_mtime_ns,
        first.st_ctime_ns,
    )
    assert os.listdir(objects.tmp) == []


@pytest.mark.parametrize("size", [3 * 1024, 5 * MiB + 17], ids=["small", "large-mmap"])
def test_put_file(objects: ObjectStore, tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert (size >= MMAP_THRESHOLD) == (size > 4 * MiB)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    digest, stored_size = objects.put_file(src)
    assert digest == b3(data)
    assert stored_size == size
    assert objects.path(digest).read_bytes() == data
    assert stat.S_IMODE(objects.path(digest).stat().st_mode) == 0o444
    assert src.read_bytes() == data  # the source is untouched
    assert os.listdir(objects.tmp) == []


def test_put_file_with_a_wrong_hint_stores_under_the_right_hash(
    objects: ObjectStore, tmp_path: Path
) -> None:
    src = tmp_path / "hinted.txt"
    src.write_bytes(b"the real content")
    wrong = b3(b"something else entirely")
    digest, size = objects.put_file(src, wrong)
    assert digest == b3(b"the real content")
    assert size == len(b"the real content")
    assert objects.path(digest).read_bytes() == b"the real content"
    assert not objects.exists(wrong)
    assert list(objects) == [digest]
    assert os.listdir(objects.tmp) == []


def test_put_file_failures_leave_no_temp_file(
    objects: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects.put_bytes(b"something first, so tmp/ exists")
    missing = tmp_path / "never-there.bin"
    with pytest.raises(FileNotFoundError):
        objects.put_file(missing)
    assert os.listdir(objects.tmp) == []

    # the source vanishes between its hashing and its copy (after the temp file exists)
    src = tmp_path / "vanishing.bin"
    src.write_bytes(b"here, then gone")
    real_hash_file = objects_mod.hash_file

    def hash_then_delete(path: Path, size: int | None = None) -> str:
        digest = real_hash_file(path, size)
        Path(path).unlink()
        return digest

    monkeypatch.setattr(objects_mod, "hash_file", hash_then_delete)
    with pytest.raises(FileNotFoundError):
        objects.put_file(src)
    assert os.listdir(objects.tmp) == []
    assert not objects.exists(b3(b"here, then gone"))

    # the copy itself fails half-way
    monkeypatch.setattr(objects_mod, "hash_file", real_hash_file)
    src.write_bytes(b"copy fails")

    def broken_copy(src_f: Any, dst_f: Any) -> None:
        dst_f.write(b"half")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(objects_mod, "copy_into", broken_copy)
    with pytest.raises(OSError):
        objects.put_file(src)
    assert os.listdir(objects.tmp) == []
    assert not objects.exists(b3(b"copy fails"))


def test_read_bytes_verify_detects_a_flipped_byte(objects: ObjectStore) -> None:
    data = b"precious result " * 10
    digest = objects.put_bytes(data)
    flip_byte(objects.path(digest), 5)
    with pytest.raises(CorruptObject) as e:
        objects.read_bytes(digest, verify=True)
    assert digest[:12] in str(e.value)
    assert objects.read_bytes(digest) != data  # unverified reads return what is there
    jdigest = objects.put_json({"a": 1})
    flip_byte(objects.path(jdigest), 1)
    with pytest.raises(CorruptObject):
        objects.read_json(jdigest)
    with pytest.raises(CorruptObject):
        objects.read_bytes(b3(b"never stored"))


def test_iteration_lists_every_object(objects: ObjectStore) -> None:
    assert list(objects) == []
    names = {objects.put_bytes(f"object {i}".encode()) for i in range(40)}
    names.add(objects.put_json({"type": "x"}))
    stray = objects.dir / "ab" / "not-an-object"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"")
    listed = list(objects)
    assert len(listed) == len(set(listed))
    assert set(listed) == names


# -- trees ------------------------------------------------------------------------------


def test_trees(objects: ObjectStore) -> None:
    a = TreeEntry("src/a.py", 0o100644, 3, b3(b"aaa"), True)
    b = TreeEntry("README.md", 0o100644, 5, b3(b"bbbbb"), True)
    c = TreeEntry("data/huge.bin", 0o100755, 10**9, b3(b"not kept"), False)
    first = write_tree(objects, [a, b, c])
    assert write_tree(objects, [c, a, b]) == first
    assert write_tree(objects, reversed([c, a, b])) == first
    entries = read_tree(objects, first)
    assert entries == sorted([a, b, c], key=lambda e: e.path)
    assert [e.kept for e in entries] == [True, False, True]
    record = objects.read_json(first)
    assert record["type"] == "tree"
    assert record["entries"][1] == ["data/huge.bin", 0o100755, 10**9, b3(b"not kept"), 0]
    assert write_tree(objects, [a, b]) != first
    not_a_tree = objects.put_json({"type": "run"})
    with pytest.raises(CorruptObject):
        read_tree(objects, not_a_tree)


# -- refs -------------------------------------------------------------------------------


def test_refs(tmp_path: Path) -> None:
    root = tmp_path / ".vestige"
    refs = Refs(root)
    assert list(refs) == []
    ids = sorted(new_run_id(now_ms=1_700_000_000_000 + i) for i in range(3))
    digests = [b3(f"manifest {i}".encode()) for i in range(3)]
    for run_id, digest in zip(reversed(ids), reversed(digests), strict=True):
        refs.set(run_id, digest)
    assert list(refs) == ids
    for run_id, digest in zip(ids, digests, strict=True):
        assert refs.get(run_id) == digest
        assert (root / "refs" / "runs" / run_id).read_text() == digest + "\n"
        assert refs.raw(run_id) == digest + "\n"
    assert refs.get(new_run_id()) is None
    assert os.listdir(root / "tmp") == []


@pytest.mark.parametrize(
    "text",
    ["", "\n", "not a hash\n", "ABCDEF" * 10 + "ABCD\n", "0" * 63 + "\n", "0" * 65 + "\n"],
)
def test_malformed_ref_reads_as_none(tmp_path: Path, text: str) -> None:
    refs = Refs(tmp_path / ".vestige")
    run_id = new_run_id()
    refs.set(run_id, b3(b"x"))
    (refs.dir / run_id).write_text(text)
    assert refs.get(run_id) is None


# -- the stat cache ---------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    idx, _fresh = Index.open(tmp_path / "index.sqlite")
    yield idx
    idx.close()


def put_hashed_at(
    cache: StatCache, monkeypatch: pytest.MonkeyPatch, path: str, st: Stat, digest: str, ns: int
) -> None:
    """cache.put as if the hash had been computed at wall-clock time `ns`."""
    with monkeypatch.context() as m:
        m.setattr(statcache_mod.time, "time_ns", lambda: ns)
        cache.put(path, st, digest)


def changed(st: Stat, **fields: int) -> Stat:
    """A copy of `st` with some fields changed."""
    names = ("dev", "inode", "size", "mtime_ns", "ctime_ns", "mode")
    return Stat(**{**{n: getattr(st, n) for n in names}, **fields})


def last_change(st: Stat) -> int:
    return max(st.mtime_ns, st.ctime_ns)


def test_statcache_hit_needs_the_identical_stat(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    st = Stat.of(os.stat(f))
    digest = b3(f.read_bytes())
    writer = StatCache(index.conn)
    put_hashed_at(writer, monkeypatch, str(f), st, digest, last_change(st) + 10 * RACY_NS)
    writer.flush()

    assert StatCache(index.conn).get(str(f), st) == digest
    assert StatCache(index.conn).get(str(f), Stat.of(os.stat(f))) == digest
    for field in ("dev", "inode", "size", "mtime_ns", "ctime_ns"):
        other = changed(st, **{field: getattr(st, field) + 1})
        assert StatCache(index.conn).get(str(f), other) is None, field
    assert StatCache(index.conn).get(str(tmp_path / "other.csv"), st) is None

    # a real rewrite: same size, new bytes -> new mtime/ctime -> not a hit
    time.sleep(0.01)
    f.write_text("a,b\n3,4\n")
    assert StatCache(index.conn).get(str(f), Stat.of(os.stat(f))) is None
    # a replacement under the same name: another inode
    g = tmp_path / "data.new"
    g.write_text("a,b\n1,2\n")
    os.replace(g, f)
    assert StatCache(index.conn).get(str(f), Stat.of(os.stat(f))) is None


def test_statcache_entry_hashed_within_racy_window_is_not_trusted(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "model.pt"
    f.write_bytes(b"weights")
    st = Stat.of(os.stat(f))
    digest = b3(b"weights")
    path = str(f)

    racy = StatCache(index.conn)
    put_hashed_at(racy, monkeypatch, path, st, digest, last_change(st) + RACY_NS - 1)
    racy.flush()
    assert StatCache(index.conn).get(path, st) is None

    trusted = StatCache(index.conn)
    put_hashed_at(trusted, monkeypatch, path, st, digest, last_change(st) + RACY_NS)
    trusted.flush()
    assert StatCache(index.conn).get(path, st) == digest

    # Setting the mtime far in the past does not make a fresh entry trustworthy: utime
    # itself changes the ctime, and the ctime counts as a change (docs/format.md).
    old = time.time_ns() - 3600 * 10**9
    os.utime(f, ns=(old, old))
    st_old = Stat.of(os.stat(f))
    assert st_old.mtime_ns == old
    fresh = StatCache(index.conn)
    fresh.put(path, st_old, digest)  # hashed now: within 2 s of the ctime
    fresh.flush()
    assert StatCache(index.conn).get(path, st_old) is None


def test_statcache_flush_persists_across_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "index.sqlite"
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}.txt"
        f.write_text(f"content {i}")
        files.append((str(f), Stat.of(os.stat(f)), b3(f"content {i}".encode())))
    first, _ = Index.open(db)
    cache = StatCache(first.conn)
    for path, st, digest in files:
        put_hashed_at(cache, monkeypatch, path, st, digest, last_change(st) + 5 * RACY_NS)
    # not flushed yet: another connection sees nothing
    second, _ = Index.open(db)
    assert StatCache(second.conn).get(files[0][0], files[0][1]) is None
    second.close()
    cache.flush()
    first.close()

    third, fresh = Index.open(db)
    assert not fresh
    try:
        reader = StatCache(third.conn)
        for path, st, digest in files:
            assert reader.get(path, st) == digest
        (count,) = third.conn.execute("SELECT COUNT(*) FROM statcache").fetchone()
        assert count == 3
    finally:
        third.close()
    # a cache without a database never hits and never fails
    assert StatCache(None).get(files[0][0], files[0][1]) is None
    StatCache(None).flush()


def test_statcache_preload_by_prefix(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "p"
    inside = [base / "a" / "x.txt", base / "a" / "sub" / "y.txt"]
    outside = [base / "ab" / "z.txt", base / "a0.txt", base / "other.txt"]
    entries = {}
    writer = StatCache(index.conn)
    for f in inside + outside:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f.name)
        st = Stat.of(os.stat(f))
        entries[str(f)] = (st, b3(f.name.encode()))
        put_hashed_at(
            writer, monkeypatch, str(f), st, entries[str(f)][1], last_change(st) + RACY_NS
        )
    writer.flush()

    cache = StatCache(index.conn)
    cache.preload(str(base / "a"))
    index.conn.execute("DELETE FROM statcache")  # from now on only preloaded entries can hit
    for f in inside:
        st, digest = entries[str(f)]
        assert cache.get(str(f), st) == digest, f
    for f in outside:
        st, _digest = entries[str(f)]
        assert cache.get(str(f), st) is None, f
    # a trailing slash means the same directory
    again = StatCache(index.conn)
    writer2 = StatCache(index.conn)
    for f in inside:
        st, digest = entries[str(f)]
        put_hashed_at(writer2, monkeypatch, str(f), st, digest, last_change(st) + RACY_NS)
    writer2.flush()
    again.preload(str(base / "a") + "/")
    index.conn.execute("DELETE FROM statcache")
    for f in inside:
        st, digest = entries[str(f)]
        assert again.get(str(f), st) == digest


# -- store discovery and creation -------------------------------------------------------


def where(cwd: Path) -> tuple[Path, Path]:
    """(store, project root) that discovery picks for `cwd`."""
    store, root = locate(str(cwd))
    return Path(store), Path(root)


def test_locate_prefers_vestige_dir(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".vestige").mkdir()
    elsewhere = tmp_path / "elsewhere" / ".vestige"
    monkeypatch.setenv("VESTIGE_DIR", str(elsewhere))
    # not under the store's parent: the project root is still the git root
    assert where(project) == (elsewhere, project)
    # a VESTIGE_DIR whose parent holds the cwd makes that parent the project root
    sub = project / "sub"
    sub.mkdir()
    monkeypatch.setenv("VESTIGE_DIR", str(project / ".vestige"))
    assert where(sub) == (project / ".vestige", project)
    monkeypatch.delenv("VESTIGE_DIR")
    store, created = Store.open(tmp_path / "elsewhere", create=True)
    assert created
    monkeypatch.setenv("VESTIGE_DIR", str(elsewhere))
    store, created = Store.open(sub)
    assert (store.path, created) == (elsewhere, False)


def test_locate_nearest_ancestor_then_git_root_then_cwd(project: Path, plain_dir: Path) -> None:
    deep = project / "a" / "b" / "c"
    deep.mkdir(parents=True)
    # no store anywhere: the git work-tree root
    assert where(deep) == (project / ".vestige", project)
    # a store below the git root is nearer
    (project / "a" / ".vestige").mkdir()
    assert where(deep) == (project / "a" / ".vestige", project / "a")
    (project / "a" / "b" / ".vestige").mkdir()
    assert where(deep) == (project / "a" / "b" / ".vestige", project / "a" / "b")
    # a file named .vestige is not a store
    (project / "a" / "b" / "c" / ".vestige").write_text("")
    assert where(deep)[0] == project / "a" / "b" / ".vestige"
    # without git nor store: the current directory
    inner = plain_dir / "x" / "y"
    inner.mkdir(parents=True)
    assert where(inner) == (inner / ".vestige", inner)
    (plain_dir / ".vestige").mkdir()
    assert where(inner) == (plain_dir / ".vestige", plain_dir)


def test_store_creation_layout(project: Path) -> None:
    sub = project / "sub"
    sub.mkdir()
    with pytest.raises(NoStore):
        Store.open(sub)
    assert not (project / ".vestige").exists()
    store, created = Store.open(sub, create=True)
    assert created
    assert store.path == project / ".vestige"
    assert store.root == project
    assert (store.path / ".gitignore").read_text().strip() == "*"
    assert json.loads((store.path / "format").read_text()) == {
        "format": 1,
        "kind": "vestige-store",
    }
    for d in ("objects", "refs/runs", "live", "tmp"):
        assert (store.path / d).is_dir(), d
    assert os.listdir(store.path / "tmp") == []
    git(project, "add", "-A")
    assert git(project, "status", "--porcelain") == ""  # git never sees the store
    again, created = Store.open(project, create=True)
    assert not created
    assert again.path == store.path


def test_no_store_and_newer_format(project: Path, plain_dir: Path) -> None:
    done = vestige("ls", cwd=plain_dir)
    assert done.returncode == 2
    assert b"no vestige store" in done.stderr
    assert not (plain_dir / ".vestige").exists()

    Store.open(project, create=True)
    (project / ".vestige" / "format").write_text('{"format": 2, "kind": "vestige-store"}\n')
    with pytest.raises(UnknownFormat):
        Store.open(project)
    with pytest.raises(UnknownFormat):
        Store.open(project, create=True)
    done = vestige("ls", cwd=project)
    assert done.returncode == 2
    assert b"newer" in done.stderr
    (project / ".vestige" / "format").write_text("garbage")
    with pytest.raises(UnknownFormat):
        Store.open(project)


def test_secret_key(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key of redaction markers is the user's, outside the store: who can read a
    shared store cannot test a guessed password against its markers (issue 22). Where
    the user has no config folder that can be written, the store's own key serves."""
    store, _ = Store.open(project, create=True)
    key = store.secret_key()
    path = tmp_path / "home" / ".config" / "vestige" / "secret.key"
    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not (store.path / "secret.key").exists()
    again, _ = Store.open(project)
    assert again.secret_key() == key
    assert Store.open(project, create=True)[0].secret_key() == key
    assert os.listdir(store.path / "tmp") == [] and os.listdir(path.parent) == ["secret.key"]
    # XDG_CONFIG_HOME is honoured; a config folder that cannot be made: the store's key
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    other = store.secret_key()
    assert other != key and (tmp_path / "cfg" / "vestige" / "secret.key").read_bytes() == other
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "blocked"))
    fallback = store.secret_key()
    assert len(fallback) == 32 and (store.path / "secret.key").read_bytes() == fallback
    assert stat.S_IMODE((store.path / "secret.key").stat().st_mode) == 0o600


# -- the index --------------------------------------------------------------------------

TABLES = {"runs", "params", "metrics", "tags", "files", "statcache", "meta"}


def tables_of(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def schema_version(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def running(run_id: str, started: float | None = None) -> Run:
    return Run(
        id=run_id,
        seq=0,
        status="running",
        command=["python", "x.py"],
        cwd=".",
        root="/nowhere",
        started=time.time() if started is None else started,
    )


def test_index_migrates_from_empty(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    idx, fresh = Index.open(db)
    try:
        assert fresh
        assert tables_of(idx.conn) >= TABLES
        assert schema_version(idx.conn) == str(SCHEMA_VERSION)
        assert idx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert idx.runs.ids() == []
    finally:
        idx.close()
    idx, fresh = Index.open(db)
    try:
        assert not fresh
        assert schema_version(idx.conn) == str(SCHEMA_VERSION)
    finally:
        idx.close()


def test_index_newer_schema_is_rebuilt_not_refused(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    idx, _ = Index.open(db)
    idx.record.begin(running(new_run_id()))
    idx.conn.execute("INSERT INTO statcache VALUES ('/f', 1, 2, 3, 4, 5, ?, 6)", (b3(b"f"),))
    idx.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(99),))
    idx.conn.execute("CREATE TABLE from_the_future (x)")
    idx.close()

    idx, fresh = Index.open(db)
    try:
        assert fresh  # the caller must rebuild from the store
        assert schema_version(idx.conn) == str(SCHEMA_VERSION)
        assert idx.runs.ids() == []
        assert "from_the_future" not in tables_of(idx.conn)
        assert tables_of(idx.conn) >= TABLES
        # the stat cache stays valid across a rebuild
        assert idx.conn.execute("SELECT path FROM statcache").fetchall() == [("/f",)]
    finally:
        idx.close()


def test_begin_run_gives_increasing_seqs(index: Index) -> None:
    ids = [new_run_id() for _ in range(5)]
    seqs = [index.record.begin(running(run_id)) for run_id in ids]
    assert seqs == [1, 2, 3, 4, 5]
    assert index.runs.ids() == ids
    assert [index.runs.id_by_seq(s) for s in seqs] == ids
    rows = index.runs.rows()
    assert [r["status"] for r in rows] == ["running"] * 5
    assert [r["seq"] for r in rows] == [5, 4, 3, 2, 1]


def test_index_groups_share_the_connection_and_answer_a_sweeps_children(index: Index) -> None:
    """Each query group of the index (runs, files, debt, marks) runs on the index's one
    connection; a sweep's recovery finds its children and what they surely wrote."""
    assert {g.conn for g in (index.runs, index.files, index.debt, index.marks)} == {index.conn}
    parent = new_run_id()
    written = FileRecord("out/a.csv", b3(b"a"), 1, True)
    scanned = FileRecord("out/b.csv", b3(b"b"), 1, True, confirmed=False)
    children = [
        Run(id=new_run_id(), seq=seq, status=status, command=["python", "x.py", str(seq)],
            cwd=".", root="/proj", started=100.0 + seq, ended=101.0 + seq, exit_code=code,
            parent=parent, outputs=(written, scanned) if seq == 2 else ())
        for seq, status, code in ((2, "ok", 0), (3, "failed", 1))
    ]  # fmt: skip
    index.record.runs([running(new_run_id()), *children])
    assert index.runs.children(parent) == [
        (c.id, c.status, c.exit_code, json.dumps(c.command), c.ended) for c in children
    ]
    assert index.files.children_outputs(parent) == [("/proj", "out/a.csv")]
    assert index.runs.children(new_run_id()) == []


def test_index_first_open_by_concurrent_processes(tmp_path: Path) -> None:
    """Several vestige commands may open a brand-new store's index at the same instant
    (8 `vestige run` started at once): every one of them must get a working index."""
    failures: list[str] = []
    for attempt in range(10):
        db = tmp_path / f"index{attempt}.sqlite"
        barrier = threading.Barrier(8)

        def open_index(db: Path = db, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                idx, _fresh = Index.open(db)
                idx.close()
            except sqlite3.Error as e:
                failures.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=open_index) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        idx, _ = Index.open(db)
        try:
            assert schema_version(idx.conn) == str(SCHEMA_VERSION)
        finally:
            idx.close()
    assert sorted(set(failures)) == []


# -- runs through the CLI ---------------------------------------------------------------

SCRIPT = """\
import argparse, sys
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--name", default="base")
p.add_argument("--fail", type=int, default=0)
a = p.parse_args()
with open(f"out_{a.name}.txt", "w") as f:
    f.write(f"{a.name} {a.lr}\\n")
print("trained", a.name, a.lr)
print("a warning", file=sys.stderr)
sys.exit(a.fail)
"""


def make_runs(project: Path) -> Any:
    """Four runs: ok, failed, ok with --param, ok; return `ls --json` (newest first)."""
    write_script(project, "train.py", SCRIPT)
    for args, code in (
        (["python", "train.py", "--name", "one"], 0),
        (["python", "train.py", "--name", "two", "--lr", "0.01", "--fail", "3"], 3),
        (["--param", "note=baseline", "python", "train.py", "--name", "three"], 0),
        (["python", "train.py", "--name", "four", "--lr", "1e-3"], 0),
    ):
        done = vestige("run", *args, cwd=project)
        assert done.returncode == code, done.stderr
    runs = ls_json(project)
    assert [r["seq"] for r in runs] == [4, 3, 2, 1]
    assert [r["status"] for r in runs] == ["ok", "ok", "failed", "ok"]
    return runs


def common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_resolve_run_references(project: Path, repo_of: Callable[[Path], Repo]) -> None:
    runs = make_runs(project)
    ids = {r["seq"]: r["id"] for r in runs}
    repo = repo_of(project)
    for ref, seq in (("1", 1), ("3", 3), ("#2", 2), ("#4", 4), (" 2 ", 2), ("@last", 4)):
        assert repo.resolve(ref) == ids[seq], ref
    for ref, seq in (("-1", 4), ("-2", 3), ("-4", 1)):
        assert repo.resolve(ref) == ids[seq], ref

    # id prefixes: at least 4 characters, any case
    all_ids = list(ids.values())
    for seq, run_id in ids.items():
        others = [i for i in all_ids if i != run_id]
        n = max(4, max(len(common_prefix(run_id, o)) for o in others) + 1)
        assert repo.resolve(run_id[:n]) == run_id
        assert repo.resolve(run_id[:n].lower()) == run_id
        assert repo.resolve(run_id) == run_id
        assert repo.resolve(run_id.lower()) == run_id
        assert repo.run(run_id[:n]).seq == seq
    shared = all_ids[0]
    for other in all_ids[1:]:
        shared = common_prefix(shared, other)
    assert len(shared) >= 4, "runs made seconds apart share their ULID time prefix"
    with pytest.raises(AmbiguousRun):
        repo.resolve(shared)
    with pytest.raises(AmbiguousRun):
        repo.resolve(shared.lower())
    for ref in ("5", "#42", "-5", "ZZZZZZZZ", "zzzz", all_ids[0][:3], "", "@nothing"):
        with pytest.raises(RunNotFound):
            repo.resolve(ref)
    done = vestige("show", shared, cwd=project)
    assert done.returncode == 2
    done = vestige("show", "42", cwd=project)
    assert done.returncode == 2


def test_resolve_in_an_empty_store(project: Path, repo_of: Callable[[Path], Repo]) -> None:
    Store.open(project, create=True)
    repo = repo_of(project)
    for ref in ("@last", "-1", "1", "0123"):
        with pytest.raises(RunNotFound):
            repo.resolve(ref)


def test_reindex_and_lost_index_give_the_same_listing(project: Path) -> None:
    before = make_runs(project)
    assert before[0]["params"] == {"lr": 0.001, "name": "four", "fail": 0}
    assert before[1]["params"]["note"] == "baseline"
    assert before[2]["exit_code"] == 3
    out = ok(vestige("reindex", cwd=project))
    assert b"4 runs" in out
    assert ls_json(project) == before
    store = project / ".vestige"
    assert not (store / "index.sqlite-wal").exists()  # every command closed it cleanly
    (store / "index.sqlite").unlink()
    assert ls_json(project) == before
    assert (store / "index.sqlite").exists()
    # the rebuilt index also serves the other tables: params for --where, files for which
    assert [r["seq"] for r in json.loads(ok(vestige(
        "ls", "--json", "--where", "params.lr < 0.05", cwd=project
    )))] == [4, 2]  # fmt: skip
    which = json.loads(ok(vestige("which", "out_two.txt", "--json", cwd=project)))
    assert [m["seq"] for m in which["made_by"]] == [2]
    done = vestige("fsck", cwd=project)
    assert done.returncode == 0, done.stderr
    assert b"I1" not in done.stdout + done.stderr


def test_newer_index_schema_is_rebuilt_from_the_store(project: Path) -> None:
    before = make_runs(project)
    conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    assert ls_json(project) == before
    conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
    try:
        assert schema_version(conn) == str(SCHEMA_VERSION)
    finally:
        conn.close()


def test_an_unreadable_index_is_rebuilt_from_the_store(project: Path) -> None:
    """The index is a cache (docs/format.md): garbage in index.sqlite (a disk error, a
    bad copy) must not make the store unusable; it is rebuilt like a missing index."""
    before = make_runs(project)
    (project / ".vestige" / "index.sqlite").write_bytes(b"not an sqlite database\n" * 100)
    done = vestige("ls", "--json", cwd=project)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == before


# -- fsck -------------------------------------------------------------------------------


MAKE = """\
with open("result.txt", "w") as f:
    f.write("unique result 7f3a9c\\n")
print("done")
"""


def one_run(project: Path) -> Any:
    """A run with one output of unique bytes; return its manifest (`show --json`)."""
    write_script(project, "make.py", MAKE)
    ok(vestige("run", "python", "make.py", cwd=project))
    return show_json(project, "@last")


def fsck(project: Path) -> tuple[int, str]:
    done = vestige("fsck", cwd=project)
    return done.returncode, (done.stdout + done.stderr).decode()


def test_fsck_passes_on_a_healthy_store(project: Path) -> None:
    make_runs(project)
    code, text = fsck(project)
    assert code == 0, text
    assert "ok: 4 runs checked" in text
    assert "error" not in text


def test_fsck_finds_a_flipped_byte(project: Path) -> None:
    manifest = one_run(project)
    (output,) = manifest["outputs"]
    assert output["path"] == "result.txt"
    digest = output["hash"]
    assert digest == b3(b"unique result 7f3a9c\n")
    flip_byte(project / ".vestige" / "objects" / digest[:2] / digest[2:], 3)
    code, text = fsck(project)
    assert code == 1, text
    assert "O1" in text
    assert digest in text


def test_fsck_finds_a_missing_object(project: Path) -> None:
    manifest = one_run(project)
    digest = manifest["outputs"][0]["hash"]
    (project / ".vestige" / "objects" / digest[:2] / digest[2:]).unlink()
    code, text = fsck(project)
    assert code == 1, text
    assert "M1" in text
    assert str(manifest["id"]) in text
    assert digest in text


def test_fsck_finds_a_malformed_ref(project: Path) -> None:
    manifest = one_run(project)
    ref = project / ".vestige" / "refs" / "runs" / str(manifest["id"])
    ref.write_text("this is not a hash\n")
    code, text = fsck(project)
    assert code == 1, text
    assert "R1" in text
    assert str(manifest["id"]) in text


def test_fsck_finds_a_ref_to_a_missing_manifest(project: Path) -> None:
    manifest = one_run(project)
    ref = project / ".vestige" / "refs" / "runs" / str(manifest["id"])
    ref.write_text(b3(b"no such manifest") + "\n")
    code, text = fsck(project)
    assert code == 1, text
    assert "R1" in text


def test_fsck_finds_a_manifest_with_another_id(project: Path) -> None:
    manifest = one_run(project)
    run_id = str(manifest["id"])
    store, _ = Store.open(project)
    record = store.objects.read_json(store.refs.get(run_id))  # type: ignore[arg-type]
    assert record["id"] == run_id
    other = new_run_id()
    crafted = {**record, "id": other}
    digest = store.objects.put_json(crafted)
    assert (store.path / "objects" / digest[:2] / digest[2:]).read_bytes() == canonical_json(
        crafted
    )
    store.refs.set(run_id, digest)
    code, text = fsck(project)
    assert code == 1, text
    assert "R2" in text
    assert run_id in text
    assert other in text


def test_fsck_leftover_temp_file_is_only_a_note(project: Path) -> None:
    one_run(project)
    (project / ".vestige" / "tmp" / "obj-leftover").write_bytes(b"half an object")
    code, text = fsck(project)
    assert code == 0, text
    assert "note" in text
    assert "X1" in text
    assert "obj-leftover" in text


# -- config -----------------------------------------------------------------------------

READER = """\
with open("data/big.bin", "rb") as f:
    big = f.read()
with open("data/small.txt") as f:
    small = f.read()
with open("summary.txt", "w") as f:
    f.write(f"{len(big)} {small}")
"""


def test_inputs_over_the_size_limit_are_hashed_not_kept(project: Path) -> None:
    (project / ".gitignore").write_text("data/\n")  # data, not code: not in the snapshot
    (project / "data").mkdir()
    big = random.Random(1).randbytes(2048)
    (project / "data" / "big.bin").write_bytes(big)
    (project / "data" / "small.txt").write_text("tiny")
    write_script(project, "read.py", READER)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "reader")
    (project / ".vestige").mkdir()
    (project / ".vestige" / "config.toml").write_text('[keep]\ninputs_max_size = "1KiB"\n')

    ok(vestige("run", "python", "read.py", cwd=project))
    manifest = show_json(project, "1")
    inputs = {f["path"]: f for f in manifest["inputs"]}
    assert inputs["data/big.bin"]["hash"] == b3(big)
    assert inputs["data/big.bin"]["size"] == 2048
    assert inputs["data/big.bin"]["kept"] is False
    assert inputs["data/small.txt"]["kept"] is True
    assert ok(vestige("cat", "1", "data/small.txt", cwd=project)) == b"tiny"
    done = vestige("cat", "1", "data/big.bin", cwd=project)
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"kept no copy" in done.stderr or b"not kept" in done.stderr
    assert b"data/big.bin" in done.stderr
    code, text = fsck(project)
    assert code == 0, text


def test_unknown_setting_is_an_error_naming_it(project: Path) -> None:
    Store.open(project, create=True)
    (project / ".vestige" / "config.toml").write_text('[keep]\ninputs_max_siez = "1KiB"\n')
    done = vestige("ls", cwd=project)
    assert done.returncode == 2
    assert b"keep.inputs_max_siez" in done.stderr


def test_invalid_toml_is_an_error(project: Path) -> None:
    Store.open(project, create=True)
    (project / ".vestige" / "config.toml").write_text("[keep\ninputs_max_size = \n")
    done = vestige("ls", cwd=project)
    assert done.returncode == 2
    assert b"config.toml" in done.stderr
    assert b"TOML" in done.stderr


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "sync"])
def test_unsynced_writes_then_one_barrier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    """A batch of objects and refs written without fsync (sync=False) is as readable as
    synced ones, and the barrier (syncfs(2), or sync(2) where there is none) returns."""
    from vestige.store import layout

    if not syncfs:
        monkeypatch.setattr(layout, "_SYNCFS", [None])
    store = tmp_path / ".vestige"
    store.mkdir()
    objects, refs = ObjectStore(store), Refs(store)
    digests = [objects.put_json({"n": n}, sync=False) for n in range(20)]
    layout.sync_filesystem(str(store))
    for n, digest in enumerate(digests):
        refs.set(f"run{n}", digest, sync=False)
    layout.sync_filesystem(str(store))
    for n, digest in enumerate(digests):
        assert refs.get(f"run{n}") == digest
        assert objects.read_json(digest) == {"n": n}
        assert stat.S_IMODE(os.stat(objects.path(digest)).st_mode) == 0o444
    assert os.listdir(store / "tmp") == []
    with pytest.raises(OSError):
        layout.sync_filesystem(str(tmp_path / "missing"))


def test_a_live_run_reads_its_code_from_run_json_too(tmp_path: Path) -> None:
    """A sweep's child writes its code snapshot into run.json (one file, not two):
    recovery and gc read it there as from code.json."""
    from vestige.store.live import LiveRun

    live = LiveRun(tmp_path / "01TESTRUN")
    live.path.mkdir()
    live.write_info({"id": live.id, "seq": 3})
    assert live.code is None and not live.has_code()
    live.write_info({"id": live.id, "seq": 3, "code": {"tree": "t1", "files": 1}})
    assert live.code == {"tree": "t1", "files": 1} and live.has_code()
    live.save_code({"tree": "t2"})  # a terminal run's separate file still comes first
    assert live.code == {"tree": "t2"}
