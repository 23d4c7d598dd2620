"""Metric series: read the per-process journals, seal them into one columnar object.

Journals (written by `vestige.api.log`): `live/<run>/metrics/<pid>.keys` (a JSON header line,
then one JSON string per key; the line number after the header is the key id) and
`<pid>.bin` (records of four little-endian float64: key id, step, wall time, value). A
journal cut short by a crash is read up to its last whole record.

The sealed object (docs/format.md, "Metrics object"):

    b"VESTIGE-METRICS 1\\n"
    one JSON line: {"type": "metrics", "format": 1, "byteorder": "little",
                    "dtype": "float64", "columns": ["step", "time", "value"],
                    "keys": [{"name": ..., "count": n}, ...]}
    for each key in that order: n steps, n wall times, n values (float64, little-endian)

Points of one key are in the order they were logged (merged across processes by wall
time, stably). NaN and inf are kept as they are. One key's series is read with one seek.
"""

from __future__ import annotations

import json
import math
import os
import sys
from array import array
from pathlib import Path

from vestige.records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, BinaryIO

    from vestige.store.objects import ObjectStore

MAGIC = b"VESTIGE-METRICS 1\n"
FORMAT = 1
RECORD_BYTES = 32


class Series(Record):
    """One key's points, in logged order."""

    name: str
    steps: array
    times: array
    values: array

    def __len__(self) -> int:
        return len(self.values)


# -- journals ------------------------------------------------------------------------------


def read_journals(live: Path) -> dict[str, Series]:
    """Every key's series from a live run's journals (empty when nothing was logged)."""
    d = Path(live) / "metrics"
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return {}
    parts: dict[str, list[tuple[array, array, array]]] = {}
    for name in names:
        if not name.endswith(".keys"):
            continue
        stem = name[: -len(".keys")]
        keys = _read_keys(d / name)
        data = _read_records(d / f"{stem}.bin")
        for key_id, cols in _split_by_key(data, len(keys)).items():
            parts.setdefault(keys[key_id], []).append(cols)
    return {name: _merge(name, chunks) for name, chunks in parts.items()}


def key_names(live: Path) -> list[str]:
    """The names of the keys a live run's processes logged (not their points)."""
    d = Path(live) / "metrics"
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".keys"))
    except OSError:
        return []
    return [key for name in names for key in _read_keys(d / name)]


def _read_keys(path: Path) -> list[str]:
    keys: list[str] = []
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return keys
    for raw in lines[1:]:  # the first line is the header
        if not raw:
            continue
        try:
            key = json.loads(raw)
        except ValueError:
            break  # a line cut short by a crash: the points using it were not written
        keys.append(str(key))
    return keys


def _read_records(path: Path) -> array:
    data = array("d")
    try:
        raw = path.read_bytes()
    except OSError:
        return data
    whole = len(raw) - len(raw) % RECORD_BYTES
    data.frombytes(raw[:whole])
    if sys.byteorder != "little":
        data.byteswap()
    return data


def _split_by_key(data: array, nkeys: int) -> dict[int, tuple[array, array, array]]:
    """{key id: (steps, times, values)} for the records of one process, in record order."""
    kids, steps, times, values = data[0::4], data[1::4], data[2::4], data[3::4]
    if not kids:
        return {}
    first = kids[0]
    if kids.count(first) == len(kids):  # one key: no per-point work
        return {int(first): (steps, times, values)} if int(first) < nkeys else {}
    out: dict[int, tuple[array, array, array]] = {}
    for kid, s, t, v in zip(kids, steps, times, values, strict=True):
        cols = out.get(kid)  # type: ignore[call-overload]
        if cols is None:
            if int(kid) >= nkeys:
                continue  # its key line was lost: cannot be named
            cols = out[kid] = (array("d"), array("d"), array("d"))  # type: ignore[index]
        cols[0].append(s)
        cols[1].append(t)
        cols[2].append(v)
    return {int(k): c for k, c in out.items()}


def _merge(name: str, chunks: list[tuple[array, array, array]]) -> Series:
    if len(chunks) == 1:
        s, t, v = chunks[0]
        return Series(name, s, t, v)
    steps, times, values = array("d"), array("d"), array("d")
    for s, t, v in chunks:
        steps.extend(s)
        times.extend(t)
        values.extend(v)
    order = sorted(range(len(times)), key=times.__getitem__)  # stable: ties keep process order
    return Series(
        name,
        array("d", (steps[i] for i in order)),
        array("d", (times[i] for i in order)),
        array("d", (values[i] for i in order)),
    )


# -- the sealed object ---------------------------------------------------------------------


def encode(series: Iterable[Series]) -> bytes:
    """The columnar object for a run's series (keys in name order)."""
    items = sorted(series, key=lambda s: s.name)
    header = {
        "type": "metrics",
        "format": FORMAT,
        "byteorder": "little",
        "dtype": "float64",
        "columns": ["step", "time", "value"],
        "keys": [{"name": s.name, "count": len(s)} for s in items],
    }
    out = [MAGIC, json.dumps(header, separators=(",", ":")).encode() + b"\n"]
    for s in items:
        for col in (s.steps, s.times, s.values):
            if sys.byteorder != "little":
                col = array("d", col)
                col.byteswap()
            out.append(col.tobytes())
    return b"".join(out)


class MetricsObject:
    """Reads a sealed metrics object: the key list at once, a series on demand."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a vestige metrics object")
        self.header = json.loads(f.readline())
        if self.header.get("format") != FORMAT:
            raise ValueError(f"metrics object format {self.header.get('format')} is unknown")
        self.start = f.tell()
        self.offsets: dict[str, tuple[int, int]] = {}
        pos = self.start
        for k in self.header["keys"]:
            n = int(k["count"])
            self.offsets[k["name"]] = (pos, n)
            pos += 3 * 8 * n

    @property
    def keys(self) -> list[str]:
        return list(self.offsets)

    def series(self, name: str) -> Series:
        pos, n = self.offsets[name]
        self.f.seek(pos)
        cols = []
        for _ in range(3):
            col = array("d")
            col.frombytes(self.f.read(8 * n))
            if sys.byteorder != "little":
                col.byteswap()
            cols.append(col)
        return Series(name, *cols)

    def all(self) -> dict[str, Series]:
        return {name: self.series(name) for name in self.offsets}


# -- summaries -----------------------------------------------------------------------------


def summarize(s: Series) -> dict[str, Any]:
    """count, last (value and step), min and max ignoring NaN, first and last wall time."""
    finite = [v for v in s.values if v == v]
    n = len(s.values)
    return {
        "count": n,
        "last": s.values[-1] if n else None,
        "last_step": int_if_whole(s.steps[-1]) if n else None,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "first_time": s.times[0] if n else None,
        "last_time": s.times[-1] if n else None,
    }


def summary_json(s: Series) -> dict[str, Any]:
    """summarize() for JSON: NaN and infinities of last/min/max as strings."""
    return {k: to_json_number(v) if k in ("last", "min", "max") else v
            for k, v in summarize(s).items()}  # fmt: skip


def int_if_whole(x: float) -> float | int:
    """A step as people write it: 3, not 3.0 (non-integral and non-finite stay floats)."""
    return int(x) if math.isfinite(x) and x == int(x) else x


def to_json_number(x: float | None) -> float | str | None:
    """Numbers for JSON: NaN and infinities as the strings "nan", "inf", "-inf"."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if x != x else ("inf" if x > 0 else "-inf")


def from_json_number(x: Any) -> float | None:
    if isinstance(x, str):
        return float(x)
    return None if x is None else float(x)


def seal(
    live: Path, objects: ObjectStore, scrub: Callable[[str], str] | None = None
) -> dict[str, Any] | None:
    """Store a live run's metrics as one object; the manifest's `metrics` record, or None.
    `scrub` (the run's redaction) is applied to the key names, in the object and the record."""
    series = read_journals(live)
    if not series:
        return None
    if scrub is not None:
        named: dict[str, Series] = {}
        for name, s in series.items():
            clean = scrub(name)
            while clean in named:  # two names scrubbed to one (a secret in both): keep both
                clean += "'"
            named[clean] = Series(clean, s.steps, s.times, s.values)
        series = named
    digest = objects.put_bytes(encode(series.values()))
    keys = {name: summary_json(series[name]) for name in sorted(series)}
    return {
        "object": digest,
        "points": sum(len(s) for s in series.values()),
        "keys": keys,
    }
