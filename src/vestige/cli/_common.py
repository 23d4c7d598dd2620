"""Small helpers shared by the commands: opening the repo, formatting times and sizes."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from vestige.errors import StoreReadOnly
from vestige.repo import Repo
from vestige.store.elsewhere import any_elsewhere

#: click settings for commands taking a run reference: `-1` is a run, not an option.
RUN_ARG_SETTINGS = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
#: The commands that must write to the store: on one that cannot be written they fail.
#: (`vestige run` opens no repo here: it runs its command unrecorded, with a warning.)
WRITERS = frozenset({"rerun", "gc", "tag", "note", "pin", "unpin", "publish", "reindex", "adopt"})


def open_repo() -> Repo:
    """The repo for the current directory, runs a killed vestige left behind sealed
    first; a missing store is a usage error (exit 2). A store that cannot be written is
    opened read-only (nothing sealed, nothing written), and a command that must write
    to it fails at once (exit 2)."""
    import click

    from vestige.recording.recover import recover

    repo = Repo.open()
    ctx = click.get_current_context(silent=True)
    name = ctx.info_name if ctx is not None else None
    if repo.readonly and name in WRITERS:
        repo.close()
        raise StoreReadOnly(
            f"the store {repo.store.path} is read-only (a read-only mount, or files this "
            f"user may not write): `vestige {name}` must write to it"
        )
    recover(repo)
    if any_elsewhere(repo.store.path):  # objects `pull --metadata-only` left remote
        from vestige.remote.lazy import install

        install(repo)
    return repo


def print_json(obj: Any) -> None:
    """Stable JSON on stdout (a name that is not UTF-8 as \\uDCxx escapes: still JSON)."""
    from vestige.store.objects import escape_surrogates

    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write(escape_surrogates(text) + "\n")


def when(ts: float | None) -> str:
    """A local timestamp, short: today as HH:MM:SS, else YYYY-MM-DD HH:MM."""
    if ts is None:
        return "-"
    local = time.localtime(ts)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def status_style(status: str) -> str:
    return {"ok": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}.get(
        status, ""
    )


def fmt_number(x: Any) -> str:
    """A metric value, short: 6 significant digits; NaN/inf (or their JSON strings) as words."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, float):
        if x != x:
            return "nan"
        if x in (float("inf"), float("-inf")):
            return "inf" if x > 0 else "-inf"
        if x == int(x) and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.6g}"
    return str(x)
