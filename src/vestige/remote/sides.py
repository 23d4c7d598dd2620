"""The two ends of a transfer: a store folder on this machine (`LocalSide`: the project's
store, or a file:// remote) and a store on an fsspec filesystem (`FsspecSide`). Both
hold the same layout (docs/format.md); each answers what it has with one listing per
folder (never a request per object) and moves objects in batches, fsspec's bounded
concurrency (`jobs` at a time).
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.errors import CorruptObject, StoreError, UnknownFormat
from vestige.remote.failures import failure
from vestige.store import layout
from vestige.store.hashing import hash_bytes, hash_file, is_hash
from vestige.store.incoming import adopt, copy_in, temp_file
from vestige.store.objects import ObjectStore
from vestige.store.refs import Refs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

FORMAT_BYTES = b'{"format": %d, "kind": "vestige-store"}\n' % layout.FORMAT


def parse_format(data: bytes, label: str) -> None:
    """Refuse a store of a newer format (or bytes that are not a store's format file)."""
    try:
        version = int(data.decode().split('"format":', 1)[1].split(",", 1)[0].strip(" }\n"))
    except (IndexError, ValueError, UnicodeDecodeError):
        raise UnknownFormat(
            f"{label}: its format file is damaged; is it a vestige store?"
        ) from None
    if version > layout.FORMAT:
        raise UnknownFormat(
            f"{label} is a store of format {version}, newer than this "
            f"vestige understands ({layout.FORMAT}); upgrade vestige"
        )


class LocalSide:
    """A store folder on this machine."""

    local = True

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self.objects = ObjectStore(path)

    def exists(self) -> bool:
        """Whether a store is there (its format file)."""
        if not layout.exists(str(self.path)):
            return False
        parse_format((self.path / "format").read_bytes(), self.label)
        return True

    def create(self) -> None:
        """Lay out an empty store if none is there (a first push into a folder)."""
        try:
            layout.create(str(self.path))
        except OSError as e:
            raise StoreError(f"{self.label}: cannot make a store there ({e.strerror})") from None
        self.exists()

    def ref_names(self, kind: str) -> set[str]:
        """The names in refs/<kind>/ (one listing)."""
        try:
            return {n for n in os.listdir(self.path / "refs" / kind) if not n.startswith(".")}
        except FileNotFoundError:
            return set()

    def read_refs(self, kind: str, names: Iterable[str]) -> dict[str, bytes]:
        """The bytes of refs/<kind>/<name> for each name that is there."""
        out: dict[str, bytes] = {}
        for name in names:
            try:
                out[name] = (self.path / "refs" / kind / name).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                pass
        return out

    def object_names(self) -> set[str]:
        """Every object's name (one listing of each fan-out folder, no stat)."""
        out: set[str] = set()
        try:
            fans = list(os.scandir(self.objects.dir))
        except FileNotFoundError:
            return out
        for fan in fans:
            if len(fan.name) == 2 and fan.is_dir():
                out.update(n for n in (fan.name + e for e in os.listdir(fan.path)) if is_hash(n))
        return out

    def sizes(self, digests: Iterable[str]) -> dict[str, int]:
        """{hash: size} of the objects present among `digests`."""
        out: dict[str, int] = {}
        for digest in digests:
            try:
                out[digest] = os.stat(self.objects.path(digest)).st_size
            except FileNotFoundError:
                pass
        return out

    def read_objects(self, digests: Iterable[str]) -> dict[str, bytes]:
        """Small objects (manifests, trees), each checked against its name."""
        return {d: self.objects.read_bytes(d, verify=True) for d in digests}

    def write_refs(self, kind: str, refs: dict[str, bytes]) -> None:
        """Write refs (each atomically), then one durability barrier."""
        if not refs:
            return
        folder = self.path / "refs" / kind
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "runs":
            run_refs = Refs(self.path)
            for name, data in refs.items():
                run_refs.set(name, data.decode().strip(), sync=False)
        else:
            for name, data in refs.items():
                layout.write_atomic(str(self.path), str(folder / name), data)
        layout.sync_filesystem(str(self.path))

    def put_record(self, record: dict[str, Any]) -> str:
        """Store a JSON record made here (a merged annotations record); its hash."""
        return self.objects.put_json(record)

    def receive(
        self, source: Side, digests: list[str], jobs: int, known: dict[str, bytes] | None = None
    ) -> None:
        """Bring objects from `source` into this store, each verified before it lands;
        `known`: bytes already read from it (manifests, trees: not fetched again)."""
        if isinstance(source, LocalSide):
            for digest in digests:
                copy_in(self.objects, source.objects.path(digest), digest, source.label)
            return
        known = known or {}
        temps = [temp_file(self.objects) for _ in digests]
        try:
            fetch = [(d, t) for d, t in zip(digests, temps, strict=True) if d not in known]
            for digest, tmp in zip(digests, temps, strict=True):
                if digest in known:
                    tmp.write_bytes(known[digest])
            if fetch:
                source.download([d for d, _ in fetch], [t for _, t in fetch], jobs)
            for digest, tmp in zip(digests, temps, strict=True):
                adopt(self.objects, tmp, digest, source.label, sync=False)
        finally:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
        layout.sync_filesystem(str(self.path))


class FsspecSide:
    """A store on an fsspec filesystem, under `root` (a bucket and prefix, a folder)."""

    local = False

    def __init__(self, fs: Any, root: str, label: str, atomic: bool = True) -> None:
        self.fs = fs
        self.root = root
        self.label = label
        #: writes land whole or not at all (object stores); else a temp name and a move
        self.atomic = atomic
        self._sizes: dict[str, int] | None = None
        fs.invalidate_cache()  # (listings cached by an earlier instance are stale now)

    def _p(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _do(self, doing: str, call: Callable[[], Any]) -> Any:
        """Run a backend call; its failure becomes one line naming this remote."""
        try:
            return call()
        except (CorruptObject, StoreError):
            raise
        except Exception as e:
            raise failure(self.label, doing, e) from None

    def exists(self) -> bool:
        """Whether a store is there (its format file); a missing bucket is said so."""
        bucketed = set(_protocols(self.fs)) & {"s3", "s3a", "gs", "gcs"}
        if bucketed:
            bucket = self.root.split("/", 1)[0]
            try:
                self.fs.info(bucket)
            except FileNotFoundError:
                raise StoreError(
                    f"{self.label}: the bucket {bucket!r} does not exist; create it first"
                ) from None
            except Exception as e:
                raise failure(self.label, "looking for the bucket", e) from None
        try:
            data = self.fs.cat_file(self._p("format"))
        except FileNotFoundError:
            return False
        except Exception as e:
            raise failure(self.label, "reading its format", e) from None
        parse_format(data, self.label)
        return True

    def create(self) -> None:
        """Write the format file (the rest of the layout needs no folders here)."""
        if not self.exists():
            self._put_bytes({"format": FORMAT_BYTES}, "writing its format")

    def _find(self, rel: str) -> dict[str, dict[str, Any]]:
        """{path: info} under a folder, in one (paginated) listing; {} when absent."""
        try:
            found = self.fs.find(self._p(rel), detail=True)
        except FileNotFoundError:
            return {}
        except Exception as e:
            raise failure(self.label, f"listing {rel}/", e) from None
        return found if isinstance(found, dict) else {}

    def ref_names(self, kind: str) -> set[str]:
        return {p.rsplit("/", 1)[-1] for p in self._find(f"refs/{kind}")}

    def read_refs(self, kind: str, names: Iterable[str]) -> dict[str, bytes]:
        got = self._cat([f"refs/{kind}/{n}" for n in names])
        return {rel.rsplit("/", 1)[-1]: data for rel, data in got.items()}

    def _cat(self, rels: list[str]) -> dict[str, bytes]:
        """{rel: bytes} of the files there among `rels` (batched)."""
        if not rels:
            return {}
        paths = [self._p(r) for r in rels]
        got = self._do("reading", lambda: self.fs.cat(paths, on_error="return"))
        out: dict[str, bytes] = {}
        for rel, path in zip(rels, paths, strict=True):
            data = got.get(path) if isinstance(got, dict) else None
            if isinstance(data, bytes):
                out[rel] = data
            elif isinstance(data, BaseException) and not isinstance(data, FileNotFoundError):
                raise failure(self.label, f"reading {rel}", data)
        return out

    def object_names(self) -> set[str]:
        return set(self._object_sizes())

    def _object_sizes(self) -> dict[str, int]:
        if self._sizes is None:
            prefix = len(self._p("objects")) + 1
            sizes: dict[str, int] = {}
            for path, info in self._find("objects").items():
                name = path[prefix:].replace("/", "")
                if is_hash(name):
                    sizes[name] = int(info.get("size") or 0)
            self._sizes = sizes
        return self._sizes

    def sizes(self, digests: Iterable[str]) -> dict[str, int]:
        known = self._object_sizes()
        return {d: known[d] for d in digests if d in known}

    def read_objects(self, digests: Iterable[str]) -> dict[str, bytes]:
        rels = {f"objects/{d[:2]}/{d[2:]}": d for d in digests}
        got = self._cat(list(rels))
        out: dict[str, bytes] = {}
        for rel, digest in rels.items():
            if rel not in got:
                raise CorruptObject(f"object {digest} is missing from {self.label}")
            if hash_bytes(got[rel]) != digest:
                raise CorruptObject(f"object {digest} from {self.label} is corrupt; refused")
            out[digest] = got[rel]
        return out

    def download(self, digests: list[str], temps: list[Path], jobs: int) -> None:
        """Objects into local temp files (not verified here: the receiver does that)."""
        paths = [self._p(f"objects/{d[:2]}/{d[2:]}") for d in digests]
        locals_ = [str(t) for t in temps]
        try:
            self.fs.get(paths, locals_, batch_size=jobs)
        except FileNotFoundError as e:
            raise CorruptObject(
                f"an object is missing from {self.label} ({e}); its runs "
                "cannot be pulled whole: run `vestige fsck` where they were "
                "made and push them again"
            ) from None
        except Exception as e:
            raise failure(self.label, "downloading objects", e) from None

    def receive(
        self, source: Side, digests: list[str], jobs: int, known: dict[str, bytes] | None = None
    ) -> None:
        """Upload objects from a local store, each verified first (nothing bad lands)."""
        if not isinstance(source, LocalSide):
            raise StoreError("a transfer needs this machine at one end")
        files = []
        for digest in digests:
            path = source.objects.path(digest)
            if hash_file(path) != digest:
                raise CorruptObject(
                    f"object {digest} of {source.label} is corrupt; not sent (run `vestige fsck`)"
                )
            files.append(str(path))
        self._put_files(files, [f"objects/{d[:2]}/{d[2:]}" for d in digests], jobs)
        if self._sizes is not None:
            self._sizes.update(source.sizes(digests))

    def _put_files(self, files: list[str], rels: list[str], jobs: int) -> None:
        if self.atomic:
            targets = [self._p(r) for r in rels]
            self._do("uploading objects", lambda: self.fs.put(files, targets, batch_size=jobs))
            return
        stage = [self._p(f"tmp/up-{os.getpid()}-{os.urandom(6).hex()}") for _ in rels]
        self._do("uploading objects", lambda: self.fs.put(files, stage, batch_size=jobs))
        for tmp, rel in zip(stage, rels, strict=True):
            self._do("moving an upload into place", lambda t=tmp, r=rel: self._move(t, r))

    def _move(self, tmp: str, rel: str) -> None:
        self.fs.makedirs(self._p(rel).rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(tmp, self._p(rel))

    def _put_bytes(self, files: dict[str, bytes], doing: str) -> None:
        if self.atomic:
            self._do(doing, lambda: self.fs.pipe({self._p(r): b for r, b in files.items()}))
            return
        for rel, data in files.items():
            tmp = self._p(f"tmp/up-{os.getpid()}-{os.urandom(6).hex()}")
            self._do(doing, lambda t=tmp, d=data: self.fs.pipe_file(t, d))
            self._do(doing, lambda t=tmp, r=rel: self._move(t, r))

    def write_refs(self, kind: str, refs: dict[str, bytes]) -> None:
        if refs:
            self._put_bytes({f"refs/{kind}/{n}": b for n, b in refs.items()}, "writing refs")

    def put_record(self, record: dict[str, Any]) -> str:
        """Store a JSON record made here (a merged annotations record); its hash."""
        from vestige.store.objects import canonical_json

        data = canonical_json(record)
        digest = hash_bytes(data)
        self._put_bytes({f"objects/{digest[:2]}/{digest[2:]}": data}, "writing a record")
        if self._sizes is not None:
            self._sizes[digest] = len(data)
        return digest


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


Side = LocalSide | FsspecSide
