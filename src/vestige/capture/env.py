"""The environment record of a run: interpreter, platform, hardware, packages, env vars.

It is stored as a JSON object, so it holds JSON types only, in a fixed key order, and the
same inputs give the same record. It is taken on every run, so it must be cheap: measured
1.2 ms (2.7 ms on a process's first call, which compiles the redaction regexes) for 116
distributions and 86 env vars with gpu=False, on this project's dev VM; nvidia-smi, when
present, adds its own start-up time. Hence no importlib.metadata (it opens every METADATA
file), no platform module (~7 ms to import with what it pulls in; os.uname() says the same),
no shutil; distributions come from directory names alone.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)

if TYPE_CHECKING:
    from typing import Any

    from vestige.capture.redact import Redactor

#: Seconds nvidia-smi may take before the GPU list is given up (it hangs on broken drivers).
NVIDIA_SMI_TIMEOUT = 3.0
#: Env vars that are vestige's own plumbing (run ids, pipes), not part of the user's env.
OWN_ENV_PREFIX = "VESTIGE_"
#: Keys of the python dict, in record order; the runner's shim reports the same ones.
PYTHON_KEYS = ("version", "executable", "implementation", "prefix", "base_prefix", "path")

_NAME_SEPARATORS = re.compile(r"[-_.]+")
_EGG_PYVER = re.compile(r"py\d")


def python_info_of_current() -> dict[str, Any]:
    """The python dict of the running interpreter (vestige itself is the run's Python)."""
    return {
        "version": sys.version.split()[0],
        "executable": sys.executable,
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "path": list(sys.path),
    }


def capture_environment(
    python: dict[str, Any] | None,
    environ: Mapping[str, str],
    redactor: Redactor,
    *,
    gpu: bool = True,
) -> dict[str, Any]:
    """The environment record of a run; `python` is None for a command that is not Python.

    `environ` is the run's environment as it was (redacted here, VESTIGE_* dropped). The
    python dict goes through the redactor too: sys.path comes from PYTHONPATH, which may
    hold what the env vars hold. Distributions are read from the unredacted sys.path.
    """
    env_vars = redactor.redact_env(
        {k: v for k, v in environ.items() if not k.startswith(OWN_ENV_PREFIX)}
    )
    conda = None
    if environ.get("CONDA_PREFIX"):  # values from env_vars: they are redacted
        conda = {"env": env_vars.get("CONDA_DEFAULT_ENV"), "prefix": env_vars.get("CONDA_PREFIX")}
    uname = os.uname()
    return {
        "type": "env",
        "python": None if python is None else redactor.scrub_value(_python_record(python)),
        "platform": {
            "system": uname.sysname,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
            "libc": _libc(),
        },
        "host": uname.nodename,
        "cpu": {"count": os.cpu_count(), "model": _cpu_model()},
        "memory_bytes": _memory_bytes(),
        "gpus": gpus() if gpu else [],
        "distributions": [] if python is None else distributions(python.get("path") or []),
        "conda": conda,
        "env_vars": dict(sorted(env_vars.items())),
    }


def _python_record(python: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's python dict in a fixed key order (known keys first, always present)."""
    record = {key: python.get(key) for key in PYTHON_KEYS}
    record["path"] = [str(p) for p in python.get("path") or []]
    for key in sorted(set(python) - set(PYTHON_KEYS)):
        record[key] = python[key]
    return record


# -- distributions -------------------------------------------------------------------------


def distributions(path: Iterable[str]) -> list[list[str | None]]:
    """Sorted [name, version] of the distributions installed on a sys.path.

    Read from ``*.dist-info`` and ``*.egg-info`` entry names only (no metadata file is
    opened). Names are normalised per PEP 503; the first one on the path wins, as at
    import time; within one directory the first in sorted order (a stale leftover of an
    interrupted upgrade is the only way to have two). Relative entries ("" = the script's
    directory) are skipped: they meant another process's cwd. Version is None when the
    entry name has none (a development egg-info).
    """
    found: dict[str, str | None] = {}
    scanned: set[str] = set()
    for entry in path:
        if not entry or not os.path.isabs(entry) or entry in scanned:
            continue
        scanned.add(entry)
        try:
            names = os.listdir(entry)
        except OSError:  # missing, a zip file, not readable
            continue
        for name in sorted(names):
            parsed = parse_distribution_entry(name)
            if parsed is not None and parsed[0] not in found:
                found[parsed[0]] = parsed[1]
    return [[name, found[name]] for name in sorted(found)]


def parse_distribution_entry(entry: str) -> tuple[str, str | None] | None:
    """(normalised name, version) from ``numpy-1.26.4.dist-info`` or
    ``foo-1.0-py3.11.egg-info``; None for anything else."""
    if entry.endswith(".dist-info"):
        stem = entry[: -len(".dist-info")]
        name, sep, version = stem.rpartition("-")  # the version is escaped, never has "-"
        if not sep:
            name, version = stem, ""
    elif entry.endswith(".egg-info"):
        parts = entry[: -len(".egg-info")].split("-")  # name-version[-pyX.Y[-platform]]
        name = parts[0]
        has_version = len(parts) > 1 and not _EGG_PYVER.match(parts[1])
        version = parts[1].replace("_", "-") if has_version else ""
    else:
        return None
    if not name:
        return None
    return normalize_name(name), version or None


def normalize_name(name: str) -> str:
    """PEP 503 name: lowercase, runs of - _ . become one -."""
    return _NAME_SEPARATORS.sub("-", name).lower()


# -- the machine ---------------------------------------------------------------------------


def _libc() -> str | None:
    """'glibc 2.36' where the C library says so; None elsewhere (musl, macOS)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_model() -> str | None:
    """The first "model name" of /proc/cpuinfo; None where there is none (ARM, macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip() or None
    except OSError:
        pass
    return None


def _memory_bytes() -> int | None:
    """Total RAM: pages x page size, else MemTotal of /proc/meminfo, else None."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return pages * size
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs as {"name", "memory_mib", "driver"}; [] without nvidia-smi or on any
    failure (timeout, broken driver, odd output): the environment record never fails."""
    try:
        exe = _find_executable("nvidia-smi")
        if exe is None:
            return []
        import subprocess

        proc = subprocess.run(
            [
                exe,
                "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            return []
        return parse_nvidia_smi(proc.stdout)
    except Exception:
        return []


def parse_nvidia_smi(output: str) -> list[dict[str, Any]]:
    """Rows of ``name, memory.total, driver_version`` (csv, noheader, nounits)."""
    found: list[dict[str, Any]] = []
    for line in output.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[0]:
            continue
        name, memory, driver = parts
        found.append(
            {
                "name": name,
                "memory_mib": int(memory) if memory.isdigit() else None,
                "driver": driver or None,
            }
        )
    return found


def _find_executable(name: str) -> str | None:
    """shutil.which(name) on this process's PATH, without importing shutil (~3 ms)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not directory:  # an empty PATH entry means the cwd: never run a binary from there
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
