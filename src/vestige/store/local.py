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
        """The per-store key of redaction markers; never pushed, never printed."""
        return read_secret_key(str(self.path))

    def live_dir(self, run_id: str) -> Path:
        return self.live / run_id


def read_secret_key(store: str) -> bytes:
    """Read (creating on first use) the 32-byte key; the first of racing creators wins."""
    key_path = os.path.join(store, "secret.key")
    try:
        with open(key_path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    layout.write_atomic(store, key_path, os.urandom(32), exclusive=True, mode=0o600)
    with open(key_path, "rb") as f:
        return f.read()
