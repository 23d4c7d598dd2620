"""Large files are hashed and copied at the same time: the result must be exactly what
the one-after-the-other path gives, and a file already stored must leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blake3 import blake3

from vestige.store import objects as objects_mod
from vestige.store.objects import ObjectStore


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects_mod, "PARALLEL_THRESHOLD", 1 << 20)
    monkeypatch.setattr(objects_mod, "COPY_CHUNK", 1 << 18)  # several chunks, stop checks


def test_large_file_stored_under_its_hash(tmp_path: Path, small_threshold: None) -> None:
    data = os.urandom(5 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    store = ObjectStore(tmp_path / "store")
    digest, size = store.put_file(src)
    assert digest == blake3(data).hexdigest()
    assert size == len(data)
    assert store.path(digest).read_bytes() == data
    assert os.stat(store.path(digest)).st_mode & 0o777 == 0o444
    assert os.listdir(store.tmp) == []


def test_large_file_already_stored_leaves_no_copy(tmp_path: Path, small_threshold: None) -> None:
    data = os.urandom(3 << 20)
    store = ObjectStore(tmp_path / "store")
    first = tmp_path / "a.bin"
    first.write_bytes(data)
    digest, _ = store.put_file(first)
    before = os.stat(store.path(digest))
    second = tmp_path / "copy-elsewhere.bin"
    second.write_bytes(data)
    assert store.put_file(second) == (digest, len(data))
    after = os.stat(store.path(digest))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.listdir(store.tmp) == []
    assert sorted(store) == [digest]


def test_large_file_that_vanishes_fails_cleanly(tmp_path: Path, small_threshold: None) -> None:
    store = ObjectStore(tmp_path / "store")
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "missing.bin")
    assert not store.tmp.exists() or os.listdir(store.tmp) == []
