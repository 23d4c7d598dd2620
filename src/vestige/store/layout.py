"""Where a store is and how one is created, with `os` only (it is on the start-up path).

Discovery is like git's: `VESTIGE_DIR`, else the nearest ancestor holding `.vestige/`,
else the git work-tree root, else the current directory (docs/format.md, "Layout").
"""

from __future__ import annotations

import os

from vestige.errors import NoStore, UnknownFormat

FORMAT = 1
STORE_NAME = ".vestige"
SUBDIRS = ("objects", "refs/runs", "live", "tmp")


def _parents(path: str) -> list[str]:
    out = [path]
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def find_git_root(start: str) -> str | None:
    """The nearest ancestor holding `.git` (a directory, or a file for worktrees)."""
    for d in _parents(start):
        if os.path.exists(os.path.join(d, ".git")):
            return d
    return None


def locate(cwd: str | None = None) -> tuple[str, str]:
    """(store directory, project root) for `cwd`; the store may not exist yet."""
    cwd = os.path.realpath(cwd or os.getcwd())
    env = os.environ.get("VESTIGE_DIR")
    if env:
        store = os.path.realpath(os.path.expanduser(env))
        parent = os.path.dirname(store)
        if os.path.basename(store) == STORE_NAME and (
            cwd == parent or cwd.startswith(parent.rstrip("/") + "/")
        ):
            return store, parent
        return store, find_git_root(cwd) or cwd
    for d in _parents(cwd):
        if os.path.isdir(os.path.join(d, STORE_NAME)):
            return os.path.join(d, STORE_NAME), d
    root = find_git_root(cwd) or cwd
    return os.path.join(root, STORE_NAME), root


def exists(store: str) -> bool:
    return os.path.exists(os.path.join(store, "format"))


def create(store: str) -> bool:
    """Lay out a new store; safe when several processes do it at once. True if we made it."""
    for sub in SUBDIRS:
        os.makedirs(os.path.join(store, sub), exist_ok=True)
    ignore = os.path.join(store, ".gitignore")
    if not os.path.exists(ignore):
        write_atomic(store, ignore, b"*\n")
    fmt = os.path.join(store, "format")
    if os.path.exists(fmt):
        return False
    body = b'{"format": %d, "kind": "vestige-store"}\n' % FORMAT
    return write_atomic(store, fmt, body, exclusive=True)


def check_format(store: str) -> None:
    """Refuse a store written by a newer vestige (or something that is not a store)."""
    path = os.path.join(store, "format")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        if e.errno in (23, 24, 12, 5):  # ENFILE, EMFILE, ENOMEM, EIO: not the store's fault
            raise  # (said as it is: "Too many open files", not "is this a vestige store?")
        raise UnknownFormat(f"{path} is unreadable ({e.strerror}); is this a vestige store?"
                            ) from None  # fmt: skip
    try:
        text = data.decode()
        number = text.split('"format":', 1)[1].split(",", 1)[0].split("}", 1)[0].strip()
        version = int(number)
    except (IndexError, ValueError, UnicodeDecodeError):
        raise UnknownFormat(f"{path} is damaged; is this a vestige store?") from None
    if version > FORMAT:
        raise UnknownFormat(
            f"store format {version} is newer than this vestige understands ({FORMAT}); "
            "upgrade vestige"
        )


def open_store(cwd: str | None = None, create_missing: bool = False) -> tuple[str, str, bool]:
    """(store, root, created): find the store, creating it if asked."""
    store, root = locate(cwd)
    created = False
    if not exists(store):
        if not create_missing:
            raise NoStore(
                f"no vestige store here (looked for {store}); "
                "run a command with `vestige run` first, or set VESTIGE_DIR"
            )
        created = create(store)
    check_format(store)
    if create_missing:  # opened to record into: on the user's list of stores (`which`)
        from vestige.store.known import remember

        remember(store)
    return store, root, created


_TEMP_COUNTER = [0]


#: The store's temp files in tmp/: a writer's, named by its pid (`<prefix><pid>-...`).
TEMP_PREFIXES = ("obj-", "ref-", "w-")


def make_temp(folder: str | os.PathLike[str], prefix: str) -> tuple[int, str]:
    """(fd, path) of a new, empty file in `folder` whose name starts with `prefix`, opened
    for writing, created exclusively (what tempfile.mkstemp does, without importing
    tempfile and, through it, random and shutil: ~3 ms on `vestige run`'s path)."""
    from _thread import get_ident

    base = f"{os.fspath(folder)}/{prefix}{os.getpid()}-{get_ident() % 100000}-"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        _TEMP_COUNTER[0] += 1
        path = f"{base}{_TEMP_COUNTER[0]}"
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def fsync_dir(path: str) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCFS: list[object] = []  # [libc.syncfs], or [None] where there is none


def sync_filesystem(path: str) -> None:
    """A durability barrier: everything written so far to the filesystem holding `path` is
    on disk when this returns (syncfs(2) on Linux; sync(2) elsewhere). One call makes a
    batch of writes durable that would otherwise need an fsync per file and directory."""
    if not _SYNCFS:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _SYNCFS.append(getattr(libc, "syncfs", None))
        except (OSError, AttributeError, ImportError):
            _SYNCFS.append(None)
    syncfs = _SYNCFS[0]
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs is None or syncfs(fd) != 0:  # type: ignore[operator]
            os.sync()
    finally:
        os.close(fd)


def write_atomic(
    store: str, target: str, data: bytes, exclusive: bool = False, mode: int = 0o644
) -> bool:
    """Write temp, fsync, then rename (or link, when `exclusive`: the first writer wins)."""
    tmpdir = os.path.join(store, "tmp")
    os.makedirs(tmpdir, exist_ok=True)
    tmp = os.path.join(tmpdir, f"w-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        if exclusive:
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, target)
        fsync_dir(os.path.dirname(target))
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
