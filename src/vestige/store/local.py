"""A store on the local filesystem: where it is, how it is created, what it holds.

Discovery is like git's: `VESTIGE_DIR`, else the nearest ancestor holding `.vestige/`,
else the git work-tree root, else the current directory (docs/format.md, "Layout").
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vestige.errors import NoStore, UnknownFormat
from vestige.store.objects import ObjectStore, fsync_dir
from vestige.store.refs import Refs

FORMAT = 1
STORE_NAME = ".vestige"


def find_git_root(start: Path) -> Path | None:
    """The nearest ancestor holding `.git` (a directory, or a file for worktrees)."""
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


@dataclass(frozen=True)
class Location:
    """Where a store is (or would be created) and which project tree it tracks."""

    store: Path
    root: Path


def locate(cwd: Path | None = None) -> Location:
    """Find the store for `cwd` (it may not exist yet)."""
    cwd = (cwd or Path.cwd()).resolve()
    env = os.environ.get("VESTIGE_DIR")
    if env:
        store = Path(env).expanduser().resolve()
        if store.name == STORE_NAME and (cwd == store.parent or store.parent in cwd.parents):
            return Location(store, store.parent)
        return Location(store, find_git_root(cwd) or cwd)
    for d in (cwd, *cwd.parents):
        if (d / STORE_NAME).is_dir():
            return Location(d / STORE_NAME, d)
    root = find_git_root(cwd) or cwd
    return Location(root / STORE_NAME, root)


class Store:
    """One store directory: objects, refs, live runs, the index file, the secret key."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self.objects = ObjectStore(path)
        self.refs = Refs(path)
        self.live = path / "live"
        self.index_path = path / "index.sqlite"

    @classmethod
    def open(cls, cwd: Path | None = None, create: bool = False) -> tuple[Store, bool]:
        """Open the store for `cwd`; with `create`, make it if missing. Returns (store, created)."""
        loc = locate(cwd)
        created = False
        if not (loc.store / "format").exists():
            if not create:
                raise NoStore(
                    f"no vestige store here (looked for {loc.store}); "
                    "run a command with `vestige run` first, or set VESTIGE_DIR"
                )
            created = cls._create(loc.store)
        store = cls(loc.store, loc.root)
        store._check_format()
        return store, created

    @staticmethod
    def _create(path: Path) -> bool:
        """Lay out a new store; safe when several processes do it at once."""
        for sub in ("objects", "refs/runs", "live", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        ignore = path / ".gitignore"
        if not ignore.exists():
            _write_atomic(path, ignore, b"*\n")
        fmt = path / "format"
        if fmt.exists():
            return False
        body = json.dumps({"format": FORMAT, "kind": "vestige-store"}).encode() + b"\n"
        return _write_atomic(path, fmt, body, exclusive=True)

    def _check_format(self) -> None:
        try:
            version = json.loads((self.path / "format").read_text())["format"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UnknownFormat(
                f"{self.path / 'format'} is unreadable; is this a vestige store?"
            ) from None
        if not isinstance(version, int) or version > FORMAT:
            raise UnknownFormat(
                f"store format {version} is newer than this vestige understands ({FORMAT}); "
                "upgrade vestige"
            )

    def secret_key(self) -> bytes:
        """The per-store HMAC key for redaction markers; never pushed, never printed."""
        key_path = self.path / "secret.key"
        try:
            return key_path.read_bytes()
        except FileNotFoundError:
            pass
        _write_atomic(self.path, key_path, secrets.token_bytes(32), exclusive=True, mode=0o600)
        return key_path.read_bytes()

    def live_dir(self, run_id: str) -> Path:
        return self.live / run_id


def _write_atomic(
    store: Path, target: Path, data: bytes, exclusive: bool = False, mode: int = 0o644
) -> bool:
    """Write temp, fsync, then rename (or link, when `exclusive`: first writer wins)."""
    tmpdir = store / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="w-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)
