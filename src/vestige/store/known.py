"""The stores this user has made or recorded into: a per-user list, so that `vestige which`
asked outside any project can search them all (docs/format.md, "The user's list of stores").

`$XDG_DATA_HOME/vestige/stores` (else `~/.local/share/vestige/stores`): one store path a
line. A store is appended when it is created or opened for a run, only if it is not listed
yet (so the list holds each store once, however many runs), by one `O_APPEND` write under
a flock. Reading it drops stores that no longer exist and duplicates, rewriting the file
(temp file, rename) under the same lock when that changed it: the list never grows beyond
the stores that exist. `os` only (and fcntl when writing): it is on `vestige run`'s start
path, where the usual cost is one read of a small file.
"""

from __future__ import annotations

import os

#: The list's file name under the user's data folder.
LIST_NAME = "stores"


def list_path() -> str:
    """Where the user's list of stores lives (XDG base directory spec: data, not config)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "vestige", LIST_NAME)


def _read(path: str) -> list[str]:
    """The list's lines (paths), empty when there is no list yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [os.fsdecode(line) for line in data.split(b"\n") if line.strip()]


def remember(store: str) -> None:
    """Add `store` to the user's list unless it is there. Never raises: the list is a
    convenience of `which`, and a run is never stopped by it (a read-only home, a full
    disk)."""
    store = os.path.abspath(store)
    if "\n" in store:
        return  # (a path with a newline cannot be one line of the list)
    path = list_path()
    try:
        if store in _read(path):
            return  # the usual case: one read, no lock, no write
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _locked_append(path, store)
    except (OSError, ValueError):
        pass


def _locked_append(path: str, store: str) -> None:
    """Append one line under the list's flock, unless a racing process listed it first."""
    import fcntl

    line = os.fsencode(store) + b"\n"
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue  # a reader compacted the list meanwhile: append to the new file
            if store not in _read(path):
                os.write(fd, line)  # one write of one line with O_APPEND: never interleaved
            return
        finally:
            os.close(fd)  # (releases the lock)


def _gone(store: str) -> bool:
    """Whether a listed store no longer exists (its `format` file is missing); a store
    that cannot be looked at now (permissions, an unmounted disk's folder) is kept."""
    try:
        os.stat(os.path.join(store, "format"))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def known_stores() -> list[str]:
    """The user's stores that still exist, each once, in the order they were first listed.
    Drops the others from the file (best effort: a list that cannot be rewritten is only
    filtered)."""
    path = list_path()
    try:
        lines = _read(path)
    except OSError:
        return []
    kept = _compact(lines)
    if kept != lines:
        try:
            kept = _locked_rewrite(path)
        except OSError:
            pass
    return kept


def _compact(lines: list[str]) -> list[str]:
    """Each existing store once, first listing first."""
    seen: set[str] = set()
    out = []
    for store in lines:
        if store not in seen and os.path.isabs(store) and not _gone(store):
            seen.add(store)
            out.append(store)
    return out


def _locked_rewrite(path: str) -> list[str]:
    """Rewrite the list without gone or repeated stores, under its flock (so that no append
    made meanwhile is lost: an appender holding the old file re-opens it); the new list."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue  # another reader rewrote it meanwhile: lock the file there now
            kept = _compact(_read(path))
            tmp = f"{path}.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(b"".join(os.fsencode(s) + b"\n" for s in kept))
            os.replace(tmp, path)
            return kept
        finally:
            os.close(fd)
