"""A run's files as its seal records them: the outputs (the tree's before/after scan and
what its Python processes were seen writing), the inputs (as they were when read), the
project modules imported from outside the tree; each hashed through the stat cache and
kept in the store up to the configured limits."""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

from vestige.capture.events import RunEvents
from vestige.capture.paths import is_environment_path
from vestige.capture.redact import is_secret_file
from vestige.capture.scan import changed
from vestige.config import Config
from vestige.records import FileRecord
from vestige.store.hashing import hash_file
from vestige.store.local import Store
from vestige.store.stat import Stat
from vestige.store.statcache import StatCache

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any


class RunFiles:
    """The files of one run being sealed; `live` is its live directory (the shim's copies
    of inputs the run rewrote are there)."""

    def __init__(self, store: Store, cache: StatCache, config: Config, live: Path) -> None:
        self.store = store
        self.cache = cache
        self.config = config
        self.live = live

    def keep(self, full: Path, st: Stat, limit: int | None) -> tuple[str, bool]:
        """Hash (through the stat cache) and keep a file's bytes unless over `limit`."""
        digest = self.cache.get(str(full), st)
        if limit is not None and st.size > limit:
            if digest is None:
                digest = hash_file(full, st.size)
            kept = self.store.objects.exists(digest)
        else:
            digest, _ = self.store.objects.put_file(full, digest)
            kept = True
        self.cache.put(str(full), st, digest)
        return digest, kept

    def outputs(
        self,
        root: Path,
        before: dict[str, Stat],
        after: dict[str, Stat],
        events: RunEvents,
        foreign: set[str],
        warnings: list[str],
    ) -> list[FileRecord]:
        """Files created or changed in the tree (but a concurrent sibling's own writes),
        and files outside it that a Python process of the run wrote (not the machine's)."""
        modified, _deleted = changed(before, after)
        written = set(events.writes)
        out: list[FileRecord] = []
        for rel in modified:
            full = root / rel
            if str(full) not in written and str(full) in foreign:
                continue  # seen by the scan, but a concurrent sibling's own write
            record = self._output(full, rel, after[rel], str(full) in written, warnings)
            if record is not None:
                out.append(record)
        for path in sorted(written):
            full = Path(path)
            if full == root or root in full.parents:
                continue  # in the tree: the scan saw it (or it was ignored on purpose)
            if is_environment_path(path):
                continue
            try:
                st = Stat.of(os.stat(full))
            except OSError:
                continue  # a temp file removed before the end
            if stat_mod.S_ISREG(st.mode):
                record = self._output(full, str(full), st, True, warnings)
                if record is not None:
                    out.append(record)
        return out

    def _output(
        self, full: Path, name: str, st: Stat, confirmed: bool, warnings: list[str]
    ) -> FileRecord | None:
        secret = bool(is_secret_file(name))
        limit = 0 if secret or not self.config.keep_outputs else None
        try:
            digest, kept = self.keep(full, st, limit)
        except OSError as e:
            warnings.append(f"output {name}: could not be read ({e.strerror})")
            return None
        kept = kept and not secret
        note = "not kept: the name looks like a credentials file" if secret else None
        return FileRecord(name, digest, st.size, kept, st.mode & 0o777, confirmed, note)

    def inputs(
        self,
        root: Path,
        before: dict[str, Stat],
        events: RunEvents,
        warnings: list[str],
    ) -> list[FileRecord]:
        """The files the run opened for reading that existed before it, hashed (and kept)
        as they were read; a file the run made and then read back is not an input."""
        out: list[FileRecord] = []
        for path, st_open in sorted(events.reads.items()):
            full = Path(path)
            in_tree = full == root or root in full.parents
            if not in_tree and is_environment_path(path):
                continue
            name = full.relative_to(root).as_posix() if in_tree else path
            if in_tree and name not in before:
                continue  # made by the run itself, then read back: not an input
            try:
                now = Stat.of(os.stat(full))
            except OSError:
                continue
            if not stat_mod.S_ISREG(now.mode):
                continue
            opened = st_open if st_open is not None else None
            same = opened is None or (opened[0], opened[1]) == (now.size, now.mtime_ns)
            secret = bool(is_secret_file(name))
            limit = 0 if secret else self.config.keep_inputs_max_size
            note = "not kept: the name looks like a credentials file" if secret else None
            if same:
                try:
                    digest, kept = self.keep(full, now, limit)
                except OSError as e:
                    warnings.append(f"input {name}: could not be read ({e.strerror})")
                    continue
                if not kept and not secret:
                    note = f"not kept: larger than keep.inputs_max_size ({limit} bytes)"
                kept = kept and not secret
                out.append(FileRecord(name, digest, now.size, kept, now.mode & 0o777, True, note))
                continue
            out.append(self._changed_input(full, name, before, events, opened, limit, secret))
        return out

    def _changed_input(
        self,
        full: Path,
        name: str,
        before: dict[str, Stat],
        events: RunEvents,
        opened: tuple[int, ...] | None,
        limit: int,
        secret: bool,
    ) -> FileRecord:
        """An input the run changed after reading it: its bytes as they were read, from the
        shim's copy made just before the rewrite, else from the stat cache's hash."""
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
        pre = before.get(name)
        digest = self.cache.get(str(full), pre) if pre is not None else None
        kept = digest is not None and not secret and self.store.objects.exists(digest)
        size = pre.size if pre is not None else int(opened[0]) if opened else 0
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
