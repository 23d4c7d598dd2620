"""A run's files as its seal records them: the outputs (what its processes were seen
writing, then what the folder scan found changed), the inputs (as they were when read),
the project modules imported from outside the tree; each hashed through the stat cache
and kept in the store up to the configured limits."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from pathlib import Path

from vestige.capture.events import RunEvents
from vestige.capture.paths import is_environment_path
from vestige.capture.redact import is_secret_file
from vestige.capture.scan import tree_ignored
from vestige.config import Config
from vestige.fastpath import warn
from vestige.records import FileRecord
from vestige.store.hashing import hash_file
from vestige.store.local import Store
from vestige.store.stat import Stat
from vestige.store.statcache import StatCache

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

    from vestige.capture.dirs import Dirs
    from vestige.capture.trace import Trace


#: The errors of a store with no room (a full disk, a quota, a file size limit).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StoreFull(OSError):
    """A file's bytes did not fit in the store: `digest` their hash, `why` the error."""

    def __init__(self, digest: str, why: str) -> None:
        super().__init__(errno.ENOSPC, why)
        self.digest = digest
        self.why = why


class RunFiles:
    """The files of one run being sealed: `root` its tree, `since_ns` when it started by
    the filesystem's clock, `dirs` the tree's folders (for the ignores: a virtual
    environment is skipped), `live` its live directory (the shim's copies of inputs the
    run rewrote are there)."""

    def __init__(
        self, store: Store, cache: StatCache, config: Config, live: Path, root: Path,
        since_ns: int, dirs: Dirs,
    ) -> None:  # fmt: skip
        self.store = store
        self.cache = cache
        self.config = config
        self.live = live
        self.root = root
        self.since_ns = since_ns
        self.dirs = dirs

    def keep(self, full: Path, st: Stat, limit: int | None) -> tuple[str, bool]:
        """Hash (through the stat cache) and keep a file's bytes unless over `limit`. An
        object of these bytes already there is checked (through the stat cache too) and
        re-made from the file if damaged, even over `limit`: a run names it. A store with
        no room for them (StoreFull) still gets their hash, and the record says why."""
        digest = self.cache.get(str(full), st)
        objects = self.store.objects
        try:
            if limit is not None and st.size > limit:
                if digest is None:
                    digest = hash_file(full, st.size)
                kept = objects.exists(digest)
                if kept:
                    digest, _ = objects.put_file(full, digest, self.cache)
            else:
                digest, _ = objects.put_file(full, digest, self.cache)
                kept = True
        except OSError as e:
            if e.errno not in NO_ROOM:
                raise
            raise StoreFull(digest or hash_file(full, st.size), e.strerror or str(e)) from e
        self.cache.put(str(full), st, digest)
        return digest, kept

    def _no_room(self, kind: str, name: str, full: StoreFull, warnings: list[str]) -> str:
        """The note of a file whose bytes the store had no room for; said on stderr too
        (the run's record would otherwise be the only place it shows)."""
        note = f"not kept: no room in the store ({full.why})"
        warnings.append(f"{kind} {name}: {note}; its hash is recorded")
        warn(f"{kind} {name} was not kept: no room in the store ({full.why}); its hash is "
             "recorded (free space, then `vestige rerun` can re-make it)")  # fmt: skip
        return note

    def outputs(
        self, changed: dict[str, Stat], events: RunEvents, foreign: set[str],
        warnings: list[str], ambiguous: bool = False,
    ) -> list[FileRecord]:  # fmt: skip
        """The files the run's processes were seen writing, in the tree or outside it
        (confirmed); then those the folder scan found created or replaced since the run
        started (`changed`) that no process of it, nor of a concurrent run (`foreign`),
        was seen writing: unconfirmed, and `ambiguous` when another run was going in the
        tree then (the file may be its)."""
        root = self.root
        out: dict[str, FileRecord] = {}
        for path in sorted(events.writes):
            full = Path(path)
            in_tree = full == root or root in full.parents
            if in_tree:
                name = full.relative_to(root).as_posix()
                if self._ignored(name):
                    continue
            elif is_environment_path(path):
                continue
            else:
                name = path
            try:
                st = Stat.of(os.stat(full))  # (through a symlink: its target's bytes)
            except OSError:
                continue  # a temp file removed before the end
            if stat_mod.S_ISREG(st.mode) and name not in out:
                record = self._output(full, name, st, True, warnings)
                if record is not None:
                    out[name] = record
        for name, st in sorted(changed.items()):
            full = root / name
            if name in out or str(full) in foreign:
                continue  # (in `foreign`: seen by the scan, but a concurrent sibling's write)
            record = self._output(full, name, st, False, warnings)
            if record is not None:
                out[name] = record.replace(ambiguous=True) if ambiguous else record
        return list(out.values())

    def _ignored(self, rel: str, inputs: bool = False) -> bool:
        """An in-tree path the scan would not have looked at (default ignores, scan.ignore,
        a virtual environment). For `inputs`, scan.ignore does not count: it bounds the
        scan's cost (a dataset's folder), the files in it are still read."""
        if tree_ignored(rel, () if inputs else self.config.scan_ignore):
            return True
        parts = rel.split("/")
        return any(self.dirs.is_skipped("/".join(parts[:i])) for i in range(1, len(parts)))

    def _output(
        self, full: Path, name: str, st: Stat, confirmed: bool, warnings: list[str]
    ) -> FileRecord | None:
        secret = bool(is_secret_file(name))
        limit = 0 if secret or not self.config.keep_outputs else None
        note = "not kept: the name looks like a credentials file" if secret else None
        try:
            digest, kept = self.keep(full, st, limit)
        except StoreFull as e:
            note = self._no_room("output", name, e, warnings)
            return FileRecord(name, e.digest, st.size, False, st.mode & 0o777, confirmed, note)
        except OSError as e:
            warnings.append(f"output {name}: could not be read ({e.strerror})")
            return None
        kept = kept and not secret
        return FileRecord(name, digest, st.size, kept, st.mode & 0o777, confirmed, note)

    def inputs(
        self, events: RunEvents, warnings: list[str], traced: Trace | None = None
    ) -> list[FileRecord]:
        """The files the run opened for reading as they were before it: hashed (and kept)
        as they were read. A file the run made or changed before reading it is not an
        input: its ctime when first read was at or after the run started (the shim
        records it), or the tracer saw it written before it was read."""
        root = self.root
        out: list[FileRecord] = []
        for path, st_open in sorted(events.reads.items()):
            full = Path(path)
            in_tree = full == root or root in full.parents
            if not in_tree and is_environment_path(path):
                continue
            name = full.relative_to(root).as_posix() if in_tree else path
            if in_tree and self._ignored(name, inputs=True):
                continue  # (.git, caches, a virtual environment: never the run's data)
            try:
                now = Stat.of(os.stat(full))
            except OSError:
                continue
            if not stat_mod.S_ISREG(now.mode):
                continue
            opened = st_open if st_open is not None else None
            secret = bool(is_secret_file(name))
            limit = 0 if secret else self.config.keep_inputs_max_size
            if opened is None and traced is not None and path in traced.reads:
                # a read only the tracer saw: no stat from the moment it was read
                if traced.made_first(path):
                    continue  # made by the run itself, then read back: not an input
                if now.ctime_ns >= self.since_ns and path in traced.writes:
                    # the run rewrote it after reading it: as it was read is unknown
                    out.append(self._changed_input(full, name, events, None, limit, secret))
                    continue
                if now.ctime_ns >= self.since_ns:  # changed meanwhile, by no process of ours
                    note = "changed while the run went on, not by it: recorded as it was at the end"
                    record = self._as_now(full, name, now, limit, secret, note, warnings)
                    if record is not None:
                        out.append(record)
                    continue
            read_ctime = opened[4] if opened is not None and len(opened) > 4 else now.ctime_ns
            if read_ctime >= self.since_ns:
                continue  # made (or changed) by the run itself, then read back: not an input
            if opened is None or (opened[0], opened[1]) == (now.size, now.mtime_ns):
                record = self._as_now(full, name, now, limit, secret, None, warnings)
                if record is not None:
                    out.append(record)
                continue
            out.append(self._changed_input(full, name, events, opened, limit, secret))
        return out

    def _as_now(
        self, full: Path, name: str, now: Stat, limit: int, secret: bool, note: str | None,
        warnings: list[str],
    ) -> FileRecord | None:  # fmt: skip
        """An input as its bytes are now (kept up to `limit`; a credentials file never)."""
        try:
            digest, kept = self.keep(full, now, limit)
        except StoreFull as e:
            note = self._no_room("input", name, e, warnings)
            return FileRecord(name, e.digest, now.size, False, now.mode & 0o777, True, note)
        except OSError as e:
            warnings.append(f"input {name}: could not be read ({e.strerror})")
            return None
        if secret:
            note = "not kept: the name looks like a credentials file"
        elif not kept:
            note = note or f"not kept: larger than keep.inputs_max_size ({limit} bytes)"
        return FileRecord(name, digest, now.size, kept and not secret, now.mode & 0o777, True,
                          note)  # fmt: skip

    def _changed_input(
        self,
        full: Path,
        name: str,
        events: RunEvents,
        opened: tuple[int, ...] | None,
        limit: int,
        secret: bool,
    ) -> FileRecord:
        """An input the run changed after reading it: its bytes as they were read, from the
        shim's copy made just before the rewrite, else from the stat cache's hash of the
        stat it had when read."""
        copy = events.pre.get(str(full))
        if copy is not None and (opened is None or copy[0] is None or copy[0][:2] == opened[:2]):
            copy_path = self.live / "pre" / copy[1]
            try:
                size = copy_path.stat().st_size
                if size <= limit and not secret:
                    digest, _ = self.store.objects.put_file(copy_path)
                    kept = True
                else:
                    digest, kept = hash_file(copy_path, size), False
                note = "changed by the run; recorded as it was when read"
                return FileRecord(name, digest, size, kept, None, True, note)
            except OSError:
                pass
        digest = None
        if opened is not None and len(opened) > 4:  # [size, mtime, ino, dev, ctime] when read
            size_, mtime, ino, dev, ctime = opened[:5]
            digest = self.cache.get(str(full), Stat(dev, ino, size_, mtime, ctime, 0))
        kept = digest is not None and not secret and self.store.objects.exists(digest)
        size = int(opened[0]) if opened else 0
        note = (
            "changed by the run; hash is of the bytes before the run"
            if digest
            else "changed by the run before it could be hashed"
        )
        return FileRecord(name, digest, size, kept, None, True, note)

    def imported_hashes(self, code: dict[str, Any]) -> dict[str, str]:
        """{path: hash} of the project files the run imported, from its snapshot (so the
        index can answer `affected --code` and `debt` without reading trees)."""
        imported = code.get("imported") or []
        if not imported or not code.get("tree"):
            return {}
        entries = _TREE_CACHE.get(code["tree"])
        if entries is None:
            from vestige.store.tree import read_tree

            try:
                entries = {e.path: e.hash for e in read_tree(self.store.objects, code["tree"])}
            except Exception:
                return {}
            if len(_TREE_CACHE) > 64:
                _TREE_CACHE.clear()
            _TREE_CACHE[code["tree"]] = entries
        return {p: entries[p] for p in imported if p in entries}

    def modules(self, root: Path, events: RunEvents) -> tuple[list[dict[str, Any]], list[str]]:
        """Project modules imported from outside the tree (kept), and those inside (listed)."""
        outside: list[dict[str, Any]] = []
        inside: list[str] = []
        own = own_dir()  # vestige itself is not the run's code
        for path in sorted(events.modules):
            if path.startswith(own):
                continue
            full = Path(path)
            if full == root or root in full.parents:
                inside.append(full.relative_to(root).as_posix())
                continue
            try:
                st = Stat.of(os.stat(full))
                digest, kept = self.keep(full, st, self.config.keep_code_max_size)
            except StoreFull as e:
                digest, kept = e.digest, False
            except OSError:
                continue
            outside.append({"path": path, "hash": digest, "size": st.size, "kept": kept})
        return outside, inside


def figure_label(figure: dict[str, Any]) -> str:
    """'figure 1 "loss curve"' from the shim's {num, label, title}."""
    num = figure.get("num")
    text = figure.get("label") or figure.get("title") or ""
    label = f"figure {num}" if num is not None else "figure"
    return f'{label} "{text}"' if text else label


def link_figures(outputs: list[FileRecord], root: Path, events: RunEvents) -> list[FileRecord]:
    """Mark outputs that a savefig wrote with the figure they came from."""
    if not events.savefigs:
        return outputs
    saved: dict[str, str] = {}
    for e in events.savefigs:
        path = e.get("path")
        if isinstance(path, str):
            figure = e.get("figure") if isinstance(e.get("figure"), dict) else {}
            saved[path] = figure_label(figure)
    out = []
    for f in outputs:
        full = f.path if f.path.startswith("/") else str(root / f.path)
        label = saved.get(full)
        out.append(f.replace(figure=label) if label else f)
    return out


def own_dir(cache: list[str] = []) -> str:  # noqa: B006 (the cache)
    """vestige's own folder (the package, not this module's), resolved once per process
    (a sweep seals many runs): its modules are never the run's code."""
    if not cache:
        cache.append(str(Path(__file__).resolve().parents[1]) + os.sep)
    return cache[0]


#: {path: hash} of tree objects read in this process (objects never change): a sweep's
#: children share one snapshot.
_TREE_CACHE: dict[str, dict[str, str]] = {}
