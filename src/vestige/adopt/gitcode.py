"""The code of an adopted run, as a snapshot: from the project's git at the commit the
foreign tool recorded, else from the code files the tool saved (W&B's `code/`).

A snapshot taken from git is the same tree object `vestige run` would have made from a
clean checkout of that commit, so `restore`, `diff` and `rerun` work on adopted runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from vestige.capture.redact import is_secret_file
from vestige.store.hashing import hash_bytes, hash_file
from vestige.store.objects import ObjectStore
from vestige.store.tree import TreeEntry, write_tree

#: git's modes of the blobs a snapshot keeps (regular and executable files; no links)
_FILE_MODES = {"100644": 0o100644, "100755": 0o100755}


def full_commit(root: Path, commit: str) -> str | None:
    """The full hash of `commit` (a full or short hash) in the git repository at `root`,
    or None when it holds no such commit (one `git rev-parse --verify`)."""
    if not commit or not all(c in "0123456789abcdefABCDEF" for c in commit):
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "-q", "--verify", f"{commit}^{{commit}}"],
                              cwd=root, capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    full = done.stdout.strip() if done.returncode == 0 else ""
    return full or None


def snapshot_commit(
    root: Path, commit: str, objects: ObjectStore, max_size: int, warnings: list[str]
) -> dict[str, Any] | None:
    """Store the files of `commit` and return the run's `code` record (tree, files, size,
    git), or None when git does not have the commit or cannot give it (said in
    `warnings`). Files above `max_size` and secret files are recorded by hash only
    (`kept: false`), as `vestige run` does; a file whose bytes this git lacks (a partial
    clone) is left out, said in `warnings`."""
    full = full_commit(root, commit)
    if full is None:
        return None
    try:
        return _snapshot(root, full, objects, max_size, warnings)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        warnings.append(f"the code of commit {commit[:12]} could not be read from git ({e})")
        return None


def _snapshot(
    root: Path, full: str, objects: ObjectStore, max_size: int, warnings: list[str]
) -> dict[str, Any]:
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", "-l", "--full-tree", full],
                             cwd=root, capture_output=True, check=True).stdout  # fmt: skip
    blobs: list[tuple[str, int, int, str]] = []  # (path, mode, size, blob id)
    for item in listing.split(b"\0"):
        if not item:
            continue
        meta, _, path = item.partition(b"\t")
        mode, kind, blob, size = meta.split()
        if kind != b"blob" or mode.decode() not in _FILE_MODES:
            continue
        name = path.decode("utf-8", "surrogateescape")
        blobs.append((name, _FILE_MODES[mode.decode()], blob.decode()))
    entries = []
    total = 0
    lacking: list[str] = []
    with subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as cat:  # fmt: skip
        assert cat.stdin is not None and cat.stdout is not None
        for name, mode, blob in blobs:
            cat.stdin.write(blob.encode() + b"\n")
            cat.stdin.flush()
            header = cat.stdout.readline().split()
            if len(header) != 3:  # `<blob> missing`: this git lacks the bytes
                lacking.append(name)
                continue
            size = int(header[2])
            data = cat.stdout.read(size)
            cat.stdout.read(1)  # the newline after each object
            keep = size <= max_size and not is_secret_file(name)
            digest = objects.put_bytes(data, sync=False) if keep else hash_bytes(data)
            entries.append(TreeEntry(name, mode, size, digest, keep))
            total += size
        cat.stdin.close()
    if lacking:
        warnings.append(f"the code snapshot of commit {full[:12]} lacks {len(lacking)} "
                        f"file(s) this git does not hold: {', '.join(lacking[:5])}")  # fmt: skip
    return {
        "tree": write_tree(objects, entries),
        "files": len(entries),
        "size": total,
        "git": {"commit": full, "branch": None, "dirty": False},
    }


def snapshot_files(files: list[tuple[str, str]], objects: ObjectStore, max_size: int
                   ) -> dict[str, Any]:  # fmt: skip
    """Store saved code files, (name in the snapshot, local file) pairs, as a snapshot."""
    entries = []
    total = 0
    for name, source in files:
        path = Path(source)
        st = path.stat()
        keep = st.st_size <= max_size and not is_secret_file(name)
        digest = objects.put_file(path)[0] if keep else hash_file(str(path), st.st_size)
        entries.append(TreeEntry(name, 0o100755 if st.st_mode & 0o111 else 0o100644,
                                 st.st_size, digest, keep))  # fmt: skip
        total += st.st_size
    return {"tree": write_tree(objects, entries), "files": len(entries), "size": total,
            "git": None}  # fmt: skip
