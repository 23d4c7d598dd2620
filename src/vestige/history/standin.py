"""The stand-in for vestige's in-code API that an export ships (history/export.py).

An exported program that calls `vestige.param`, `vestige.log` or `vestige.keep` must run
where vestige is not installed: the export carries a small wheel named `vestige` whose
module takes every call of the API and records nothing (as under `VESTIGE_DISABLE=1`),
and its requirements.txt installs it. It is written here, byte for byte the same each
time (fixed zip dates), so two exports of one run are identical.
"""

from __future__ import annotations

import re
from pathlib import Path

from vestige._version import __version__

#: The version the stand-in's distribution has: this vestige's, marked as a stand-in.
VERSION = f"{__version__}+standin"
#: The wheel's file name (pip reads name, version and tags from it).
WHEEL = f"vestige-{VERSION}-py3-none-any.whl"

#: A line of code that loads vestige: `import vestige`, `import os, vestige`, `from
#: vestige import log`, `%load_ext vestige` (also inside a notebook's JSON strings).
_USES = re.compile(
    rb"""(?m)^[ \t"']*(?:import[ \t]+(?:[\w.]+[ \t]*,[ \t]*)*vestige\b|from[ \t]+vestige\b"""
    rb"""|%load_ext[ \t]+vestige\b)"""
)

SOURCE = '''\
"""A stand-in for vestige's in-code API, written by `vestige export`.

The program this came with calls vestige (vestige.param, vestige.log, vestige.keep...).
Here every call records nothing and returns what vestige returns when it is not
recording (None), so the program runs without vestige. To record its runs again,
install vestige itself in place of this package.
"""

__version__ = "{version}"
__all__ = [
    "Run",
    "__version__",
    "finish",
    "flush",
    "keep",
    "log",
    "note",
    "param",
    "params",
    "run",
    "run_id",
    "runs",
    "start",
    "tag",
]


def param(**values):
    """Records nothing."""


def params(values):
    """Records nothing."""


def log(values=None, step=None, **metrics):
    """Records nothing."""


def keep(obj, name=None, *, allow_pickle=False):
    """Keeps nothing; None, as vestige when it is not recording."""
    return None


def tag(*tags):
    """Records nothing."""


def note(text):
    """Records nothing."""


def flush():
    """Nothing to write."""


def start():
    """No run is recorded: None."""
    return None


def finish(status=None):
    """No run to seal."""


def run_id():
    """No run is recorded: None."""
    return None


class run:
    """`with vestige.run(): ...` runs the block; `.id` is None."""

    def __init__(self):
        self.id = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return None


def runs(where=None, cols=None, *, limit=None, store=None):
    """Reading runs needs vestige itself: this stand-in holds none."""
    raise RuntimeError(_NO_STORE.format("vestige.runs()"))


class Run:
    """Reading a run needs vestige itself: this stand-in holds none."""

    def __init__(self, ref="@last", *, store=None):
        raise RuntimeError(_NO_STORE.format("vestige.Run()"))


_NO_STORE = (
    "{} reads runs from a vestige store; this is the stand-in that `vestige export` "
    "ships, which records and holds nothing: install vestige itself to read runs"
)


def load_ipython_extension(ipython):
    """`%load_ext vestige`: records nothing."""


def unload_ipython_extension(ipython):
    """`%unload_ext vestige`: nothing to stop."""
'''


def uses_api(code: bytes) -> bool:
    """Whether this source (a .py file, or a notebook's JSON) loads vestige."""
    return _USES.search(code) is not None


def write_wheel(folder: Path) -> Path:
    """Write the stand-in's wheel into `folder`; return its path. A wheel, not a folder to
    put on sys.path: `pip install -r requirements.txt` installs it, offline, into the
    venv, so the program finds it from any folder and in every process it starts."""
    import base64
    import hashlib
    import zipfile

    dist = f"vestige-{VERSION}.dist-info"
    files = {
        "vestige/__init__.py": SOURCE.replace("{version}", VERSION).encode(),
        f"{dist}/METADATA": (
            "Metadata-Version: 2.1\nName: vestige\n"
            f"Version: {VERSION}\nSummary: A no-op stand-in for vestige's in-code API, "
            "written by vestige export\n"
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: vestige export\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / WHEEL
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return path
