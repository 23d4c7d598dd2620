"""Objects: immutable blobs named by the BLAKE3 of their bytes, written atomically.

Every object is written to `tmp/`, fsynced, made read-only, renamed into
`objects/ab/cdef...`, and the directory is fsynced: a crash leaves either no object or a
whole one (docs/format.md, invariant O1). Nothing here deletes; only gc may.

A write whose object is already there skips the copy only if that object is intact
(`intact`): one damaged on disk would otherwise poison every later run that makes the
same bytes. It is trusted without reading while its stat is the one recorded when it was
written or last verified; else re-hashed, and replaced from the bytes in hand if wrong.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vestige.errors import CorruptObject
from vestige.store.elsewhere import elsewhere_dir
from vestige.store.hashing import hash_bytes, hash_file, is_hash, object_relpath
from vestige.store.layout import fsync_dir, make_temp
from vestige.store.stat import Stat

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

#: Files at least this large are hashed and copied at the same time (two threads: both
#: release the GIL): first store ~ max(hash, copy + fsync) instead of their sum.
PARALLEL_THRESHOLD = 64 * 1024 * 1024
COPY_CHUNK = 64 * 1024 * 1024
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (btrfs, xfs, overlay on them)


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding of a JSON record: sorted keys, no spaces, UTF-8. A path that
    is not valid UTF-8 comes in with each undecodable byte as a lone surrogate (Python's
    surrogateescape); those alone are written as \\uDCxx escapes (valid JSON, read back
    to the same string), so every name is kept byte for byte (docs/format.md)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "vestige.escape")


def escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written as a \\uDCxx escape (for JSON or SQLite,
    which take only valid UTF-8): the form a non-UTF-8 name takes outside a manifest."""
    if (
        text.isascii()
    ):  # (the common case, ~3x faster than encoding: reindex calls it 300,000 times)
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "vestige.escape").decode("utf-8")


def _escape(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler behind canonical_json and escape_surrogates."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(f"\\u{ord(c):04x}" for c in bad), error.end


codecs.register_error("vestige.escape", _escape)


def copy_into(src: BinaryIO, dst: BinaryIO, stop: Any = None) -> bool:
    """Copy a whole file: reflink if the filesystem can, else copy_file_range, else
    read/write. `stop` (an Event) ends it early between chunks; returns False then."""
    sfd, dfd = src.fileno(), dst.fileno()
    with contextlib.suppress(OSError):
        import fcntl

        fcntl.ioctl(dfd, _FICLONE, sfd)
        return True
    try:
        while os.copy_file_range(sfd, dfd, COPY_CHUNK) > 0:
            if stop is not None and stop.is_set():
                return False
        return True
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    src.seek(0)
    dst.seek(0)
    dst.truncate()
    while chunk := src.read(1 << 20):
        dst.write(chunk)
    return True


class ObjectStore:
    """The objects of one store; `root` is the store directory (`.vestige`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "objects"
        self._dir = str(self.dir)
        self.tmp = root / "tmp"
        #: digest -> the stat key of its object when this process wrote or verified it
        self._trusted: dict[str, tuple[int, int, int, int, int]] = {}
        #: Brings an object a remote holds for this store (refs/elsewhere: `pull
        #: --metadata-only`) into it: True if it did, False if no remote holds it. Set by
        #: the shells (remote/lazy.py), so that every reader below fetches on demand.
        self.fetch: Callable[[str], bool] | None = None

    def path(self, digest: str) -> Path:
        """Where an object lives (whether or not it exists)."""
        return self.dir / object_relpath(digest)

    def exists(self, digest: str) -> bool:
        """Whether the object is there (not whether its bytes are right: see `intact`)."""
        return os.path.exists(f"{self._dir}/{digest[:2]}/{digest[2:]}")

    def available(self, digest: str) -> bool:
        """Whether the object can be read: it is here, or a remote holds it for this store
        (reading it fetches it). For the readers' "is it kept?" tests; writers ask exists."""
        if self.exists(digest):
            return True
        return self.fetch is not None and (elsewhere_dir(self.root) / digest).exists()

    def _fetched(self, digest: str) -> bool:
        """After a miss: whether the object was brought here from a remote just now."""
        return self.fetch is not None and self.fetch(digest)

    def intact(self, digest: str, cache: Any = None) -> bool:
        """Whether the object is there with bytes that hash to its name, so that a write of
        those bytes may be skipped. Objects are written once and made read-only, so any
        later write (or chmod) changes their ctime: one whose stat (dev, inode, size, mtime,
        ctime) is the one recorded when it was written or last verified, by this process or
        in `cache` (a store.statcache.StatCache), is trusted unread. Otherwise it is
        re-hashed, and the stat recorded when it is right."""
        path = f"{self._dir}/{digest[:2]}/{digest[2:]}"
        try:
            st = os.stat(path)
        except OSError:
            return False
        stat = Stat.of(st)
        if self._trusted.get(digest) == stat.key():
            return True
        if cache is not None and cache.get(f"object:{digest}", stat, racy_ns=0) == digest:
            self._trusted[digest] = stat.key()
            return True
        try:
            if hash_file(path, st.st_size) != digest:
                return False
        except OSError:
            return False
        self._trust(digest, stat, cache)
        return True

    def _trust(self, digest: str, stat: Stat, cache: Any) -> None:
        """Record that the object at `stat` has the bytes of its name (just written from
        them, or just verified). In the stat cache its key is `object:<hash>`, not its
        path: a preload of the project's folder (the store is in it) does not load them."""
        self._trusted[digest] = stat.key()
        if cache is not None:
            cache.put(f"object:{digest}", stat, digest)

    def put_bytes(self, data: bytes, sync: bool = True) -> str:
        """Store `data`; return its hash. Storing bytes already present costs one stat and
        a read to compare them (a damaged object is replaced), one stat if this process
        wrote or verified the object since. `sync=False` skips the fsyncs: the caller makes
        a batch durable at once (layout.sync_filesystem) before anything names these
        objects."""
        digest = hash_bytes(data)
        if not self._holds(digest, data):
            self._write(digest, lambda f: f.write(data), sync)
        return digest

    def _holds(self, digest: str, data: bytes) -> bool:
        """Whether the object `digest` is there with exactly `data` (put_bytes' dedup)."""
        path = f"{self._dir}/{digest[:2]}/{digest[2:]}"
        try:
            with open(path, "rb") as f:
                stat = Stat.of(os.fstat(f.fileno()))
                if self._trusted.get(digest) == stat.key():
                    return True
                same = stat.size == len(data) and f.read() == data
        except OSError:
            return False
        if same:
            self._trusted[digest] = stat.key()
        return same

    def put_json(self, obj: Any, sync: bool = True) -> str:
        """Store a record as canonical JSON; equal records get equal hashes."""
        return self.put_bytes(canonical_json(obj), sync)

    def put_file(self, path: Path, digest: str | None = None, cache: Any = None) -> tuple[str, int]:
        """Store a file's bytes; return (hash, size).

        `digest` is a hash the caller already trusts (from the stat cache): if that
        object is intact (`intact`, through `cache`: a StatCache that remembers objects
        verified) the file is not read. Otherwise the file is hashed first (so bytes
        already stored intact are never copied), then copied, replacing a damaged object;
        if it changed during the copy, the copy is hashed again and stored under the
        hash of what was copied.
        """
        st = os.stat(path)
        if digest is not None and self.intact(digest, cache):
            return digest, st.st_size
        if st.st_size >= PARALLEL_THRESHOLD:
            return self._put_large(path, st, cache, digest)
        hashed = hash_file(path, st.st_size)
        if hashed != digest and self.intact(hashed, cache):  # (if equal: known not intact)
            return hashed, st.st_size
        digest = hashed
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = make_temp(self.tmp, "obj-")
        tmp = Path(tmp_name)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                copy_into(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            after = os.stat(path)
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                digest = hash_file(tmp)
            self._install(tmp, digest, cache=cache)
        finally:
            tmp.unlink(missing_ok=True)
        return digest, os.stat(self.path(digest)).st_size

    def _put_large(
        self, path: Path, st: os.stat_result, cache: Any = None, not_intact: str | None = None
    ) -> tuple[str, int]:
        """put_file for a large file: copy (and fsync) in a thread while hashing here; if
        the hash shows the bytes are already stored intact, the copy is stopped and
        dropped. `not_intact`: a hash already found not intact (not checked again)."""
        import threading

        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = make_temp(self.tmp, "obj-")
        tmp = Path(tmp_name)
        stop = threading.Event()
        failed: list[BaseException] = []

        def copy() -> None:
            try:
                with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                    if copy_into(src, dst, stop):
                        dst.flush()
                        os.fsync(dst.fileno())
            except BaseException as e:
                failed.append(e)

        worker = threading.Thread(target=copy, name="vestige-copy", daemon=True)
        worker.start()
        try:
            digest = hash_file(path, st.st_size)
            if digest != not_intact and self.intact(digest, cache):
                stop.set()
                return digest, st.st_size
            worker.join()
            if failed:
                raise failed[0]
            after = os.stat(path)
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                digest = hash_file(tmp)  # changed while read: store what was copied
            self._install(tmp, digest, cache=cache)
        finally:
            stop.set()
            worker.join()
            tmp.unlink(missing_ok=True)
        return digest, os.stat(self.path(digest)).st_size

    def _write(self, digest: str, fill: Any, sync: bool = True) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = make_temp(self.tmp, "obj-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            self._install(tmp, digest, sync)
        finally:
            tmp.unlink(missing_ok=True)

    def _install(self, tmp: Path, digest: str, sync: bool = True, cache: Any = None) -> None:
        """Rename a complete, synced temp file into place as a read-only object (over a
        damaged one, atomically), and record its stat as intact."""
        os.chmod(tmp, 0o444)
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # a concurrent writer of the same bytes is harmless
        if sync:
            fsync_dir(final.parent)
        with contextlib.suppress(OSError):
            self._trust(digest, Stat.of(os.stat(final)), cache)

    def read_bytes(self, digest: str, verify: bool = False) -> bytes:
        """An object's bytes; `verify` re-hashes them (CorruptObject on mismatch)."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            if self._fetched(digest):
                return self.read_bytes(digest, verify)
            raise CorruptObject(
                f"object {digest[:12]} is missing from the store; run `vestige fsck`"
            ) from None
        if verify and hash_bytes(data) != digest:
            raise CorruptObject(f"object {digest[:12]} does not match its hash; run `vestige fsck`")
        return data

    def verify(self, digest: str) -> None:
        """Raise CorruptObject unless the object's bytes hash to its name."""
        try:
            actual = hash_file(self.path(digest))
        except FileNotFoundError:
            if self._fetched(digest):
                return self.verify(digest)
            raise CorruptObject(
                f"object {digest[:12]} is missing from the store; run `vestige fsck`"
            ) from None
        if actual != digest:
            raise CorruptObject(f"object {digest[:12]} does not match its hash; run `vestige fsck`")

    def read_json(self, digest: str) -> Any:
        """A JSON record, checked against its hash (records are small)."""
        try:
            return json.loads(self.read_bytes(digest, verify=True))
        except ValueError:
            raise CorruptObject(f"object {digest[:12]} is not valid JSON") from None

    def open(self, digest: str) -> BinaryIO:
        """A binary reader over an object (not verified: use fsck for that)."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            if self._fetched(digest):
                return self.open(digest)
            raise CorruptObject(
                f"object {digest[:12]} is missing from the store; run `vestige fsck`"
            ) from None

    def copy_to(self, digest: str, dest: Path, mode: int | None = None) -> None:
        """Write an object's bytes to `dest` (verified first; temp file and rename, so a
        reader never sees half a file), with `mode` when given."""
        self.verify(digest)  # never hand out bytes that are not what was kept
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.vestige-{os.getpid()}")
        try:
            with self.open(digest) as src, open(tmp, "wb") as out:
                copy_into(src, out)
            if mode is not None:
                os.chmod(tmp, mode & 0o777)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        """Every object name in the store."""
        if not self.dir.is_dir():
            return
        for fan in sorted(os.scandir(self.dir), key=lambda e: e.name):
            if not fan.is_dir() or len(fan.name) != 2:
                continue
            for entry in os.scandir(fan.path):
                name = fan.name + entry.name
                if is_hash(name):
                    yield name
