"""Opening a remote: its settings from config (`[remote.NAME]`), its fsspec filesystem,
and errors said in one line that never carries a secret (issue 17).

Credentials are never vestige's: s3fs (through botocore) reads the standard variables
and profiles itself (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL...), and nothing
here writes or prints them. fsspec and the backends are imported only when a remote is
opened (`vestige run` never loads them: tests/test_imports.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from vestige.errors import UsageError
from vestige.remote.failures import scrub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.config import Config
    from vestige.remote.sides import Side

#: Backends whose writes are atomic per object (a PUT lands whole or not at all), so an
#: object may be written at its final name; others get a temp name and a move.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
#: The extra that brings each backend: a hint instead of a traceback.
EXTRAS = {"s3": "s3", "s3a": "s3"}
_BUCKETED = frozenset({"s3", "s3a", "gs", "gcs"})


def configured(config: Config, name: str | None) -> tuple[str, dict[str, Any]]:
    """(name, settings) of a remote: `name`, or the only one there is."""
    remotes = config.remotes
    if name is None:
        if len(remotes) == 1:
            name = next(iter(remotes))
        elif not remotes:
            raise UsageError("no remote yet; add one: vestige remote add origin s3://bucket/path")
        else:
            names = ", ".join(sorted(remotes))
            raise UsageError(f"several remotes ({names}): name the one to use")
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none yet"
        raise UsageError(f"no remote {name!r} (remotes: {known}); see `vestige remote add`")
    return name, remotes[name]


def check_url(url: str) -> str:
    """The URL if vestige can use it: a scheme fsspec knows (or a plain path), and no
    password inside it (it would be written into config.toml)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is not None or (parts.username and parts.scheme in OBJECT_STORES):
        raise UsageError(
            f"remote URL {scrub(url)!r} holds credentials; keep them out of the "
            "URL (use the standard variables or a profile)"
        )
    scheme = parts.scheme
    if not scheme or scheme == "file" or (len(scheme) == 1 and url[1:3] == ":\\"):
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise UsageError(f"remote URL {url!r}: write file:///absolute/path")
        return url
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise UsageError(f"remote URL {url!r}: cannot read its scheme; e.g. s3://bucket/path")
    from fsspec.registry import known_implementations, registry

    if scheme not in known_implementations and scheme not in registry:
        raise UsageError(
            f"remote URL {url!r}: unknown scheme {scheme}://; use s3://, gs://, "
            "az://, sftp:// or file:// (any fsspec protocol)"
        )
    if not parts.netloc and scheme in _BUCKETED:
        raise UsageError(f"remote URL {url!r} names no bucket; e.g. {scheme}://bucket/path")
    return url


def open_side(config: Config, name: str | None, store_path: Path) -> tuple[str, Side]:
    """(name, side) of a remote: a LocalSide for a folder (file://, a path), else an
    FsspecSide over the backend's filesystem."""
    name, settings = configured(config, name)
    return name, side_at(name, settings, store_path.parent)


def shipped(config: Config, name: str | None, store_path: Path) -> dict[str, Any]:
    """A remote as a plain dict another process can open with `side_at` (a sweep's child on
    a Dask worker or a Slurm node): its name and settings, a folder's path made absolute.
    Settings hold no secret (config refuses them); each worker uses its own credentials."""
    name, settings = configured(config, name)
    url = absolute_url(check_url(str(settings["url"])), store_path.parent)
    return {"name": name, "settings": {**settings, "url": url}}


def absolute_url(url: str, base: Path) -> str:
    """`url` with a folder's path made absolute (relative to `base`, the project root);
    other URLs as they are. Checks nothing (check_url does)."""
    if url.split("://", 1)[0] == "file" or "://" not in url:
        path = Path(url[len("file://") :] if url.startswith("file://") else url)
        url = "file://" + str(path if path.is_absolute() else (base / path).resolve())
    return url


def side_at(name: str, settings: dict[str, Any], base: Path) -> Side:
    """The side of the remote `name` with these settings; a relative folder is relative to
    `base` (the project root)."""
    from vestige.remote.sides import FsspecSide, LocalSide

    url = check_url(str(settings["url"]))
    label = f"remote {name} ({scrub(url)})"
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme == "file":
        path = Path(url[len("file://") :] if url.startswith("file://") else url)
        if not path.is_absolute():
            path = (base / path).resolve()  # (relative to the project root)
        return LocalSide(path, label)
    options = storage_options(scheme, settings)
    try:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(url, **options)
    except ImportError as e:
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'vestige[{extra}]'" if extra else f"install fsspec's {scheme} backend"
        raise UsageError(
            f"{label} needs a package that is not installed ({e.name}); {hint}"
        ) from None
    except (ValueError, TypeError) as e:
        raise UsageError(f"{label}: {scrub(str(e))}") from None
    return FsspecSide(fs, str(root).rstrip("/"), label, atomic=scheme in OBJECT_STORES)


def storage_options(scheme: str, settings: dict[str, Any]) -> dict[str, Any]:
    """fsspec's options from a remote's settings: endpoint_url, profile and region as the
    S3 backend names them; every other key passed as it is."""
    options = {k: v for k, v in settings.items() if k not in ("url", "region")}
    if scheme in ("s3", "s3a"):
        if settings.get("region"):
            options["client_kwargs"] = {"region_name": settings["region"]}
    elif settings.get("region"):
        options["region"] = settings["region"]
    return options
