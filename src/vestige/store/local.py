"""A store on the local filesystem: its objects, refs, live runs, index file and key.

Finding and creating the directory is store/layout.py's job (it is on the start-up
path and imports only `os`); this class is what the rest of the library works with.
"""

from __future__ import annotations

import os
from pathlib import Path

from vestige.store import layout
from vestige.store.objects import ObjectStore
from vestige.store.refs import Refs

FORMAT = layout.FORMAT
STORE_NAME = layout.STORE_NAME


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
        store, root, created = layout.open_store(str(cwd) if cwd else None, create)
        return cls(Path(store), Path(root)), created

    @classmethod
    def at(cls, store: str, root: str) -> Store:
        """A store already located (and checked) by layout.open_store."""
        return cls(Path(store), Path(root))

    def secret_key(self) -> bytes:
        """The key of redaction markers (the user's own: read_secret_key); never pushed,
        never printed."""
        return read_secret_key(str(self.path))

    def live_dir(self, run_id: str) -> Path:
        return self.live / run_id


def read_secret_key(store: str) -> bytes:
    """The 32-byte key of redaction markers: the user's own, outside every store
    (`$XDG_CONFIG_HOME/vestige/secret.key`, mode 0600), so that who can read a shared
    store cannot test a guessed password against its markers (docs/security.md). Made on
    first use; the first of racing creators wins. Where the user has no config folder
    that can be written, the store's own `secret.key` (as before 2026-12-05)."""
    try:
        return _user_key()
    except OSError:
        pass
    key_path = os.path.join(store, "secret.key")
    try:
        with open(key_path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    layout.write_atomic(store, key_path, os.urandom(32), exclusive=True, mode=0o600)
    with open(key_path, "rb") as f:
        return f.read()


def user_key_path() -> str:
    """Where the user's redaction key lives."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "vestige", "secret.key")


def _user_key() -> bytes:
    path = user_key_path()
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) == 32:
            return key
        raise OSError(f"{path}: not a 32-byte key")  # (damaged: the store's key serves)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # the first creator wins; the others read its key
        except FileExistsError:
            pass
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != 32:
        raise OSError(f"{path}: not a 32-byte key")
    return key
