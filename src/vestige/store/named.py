"""Small records named by what they are about: one JSON file per hash or run id in a
folder of `refs/` (freed and elsewhere objects by hash; arrivals and pins by run id).
One reader for all of them, so each kind only says what makes its record valid."""

from __future__ import annotations

import json
import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def read_named(
    path: Path, key: str, valid: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The record in `path` when it is a JSON object whose `key` is the file's own name and
    that `valid` accepts; else None (a damaged or foreign file: fsck says so)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get(key) != path.name or not valid(data):
        return None
    return data


def records_in(
    folder: Path, read: Callable[[Path], dict[str, Any] | None], named: Callable[[str], bool]
) -> dict[str, dict[str, Any]]:
    """{name: record} of every file of `folder` whose name `named` accepts and whose record
    `read` accepts; {} for a folder that does not exist."""
    out: dict[str, dict[str, Any]] = {}
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for entry in entries:
        if named(entry.name):
            record = read(Path(entry.path))
            if record is not None:
                out[entry.name] = record
    return out
