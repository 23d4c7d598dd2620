"""Metric series made small enough to draw: at most `MAX_POINTS` points per series,
chosen on the server.

tsdownsample's MinMaxLTTB (a Rust library made for this: min/max preselection, then
largest-triangle-three-buckets) when it is installed (the `ui` extra asks for it), else
`minmax`, a plain reducer that keeps the smallest and the largest point of each bucket:
every spike stays visible, the line's shape between them is coarser.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

from vestige.records import Run
from vestige.repo import Repo
from vestige.store.metrics import Series

MAX_POINTS = 2000


def minmax(values: Sequence[float], n_out: int) -> list[int]:
    """Indices (ascending) of the smallest and largest value of each of n_out/2 equal
    buckets of `values` (NaN never chosen), first and last point always kept."""
    n = len(values)
    if n <= n_out:
        return list(range(n))
    buckets = max(1, (n_out - 2) // 2)
    keep = {0, n - 1}
    for b in range(buckets):
        lo, hi = 1 + (n - 2) * b // buckets, 1 + (n - 2) * (b + 1) // buckets
        best_lo = best_hi = -1
        for i in range(lo, hi):
            v = values[i]
            if v != v:  # NaN
                continue
            if best_lo < 0 or v < values[best_lo]:
                best_lo = i
            if best_hi < 0 or v > values[best_hi]:
                best_hi = i
        keep.update(i for i in (best_lo, best_hi) if i >= 0)
    return sorted(keep)


def _lttb(steps: Sequence[float], values: Sequence[float], n_out: int) -> list[int] | None:
    """tsdownsample's MinMaxLTTB indices, or None when it is not installed. x is the step
    when steps only grow (several processes may interleave them: then the point's rank)."""
    try:
        import numpy as np
        from tsdownsample import MinMaxLTTBDownsampler
    except ImportError:
        return None
    y = np.frombuffer(memoryview(values), dtype=np.float64) if _is_array(values) else (
        np.asarray(values, dtype=np.float64))  # fmt: skip
    finite = np.isfinite(y)
    where = np.flatnonzero(finite)
    if len(where) <= n_out:
        return [int(i) for i in where]
    yf = y[where]
    x = np.asarray(steps, dtype=np.float64)[where]
    increasing = bool(np.all(np.diff(x) > 0))
    picked = MinMaxLTTBDownsampler().downsample(x, yf, n_out=n_out) if increasing else (
        MinMaxLTTBDownsampler().downsample(yf, n_out=n_out))  # fmt: skip
    return [int(i) for i in where[picked]]


def _is_array(values: Sequence[float]) -> bool:
    return type(values).__name__ == "array" and getattr(values, "typecode", "") == "d"


def series_json(series: Series, n_out: int = MAX_POINTS) -> dict[str, Any]:
    """A series as the chart script draws it: x (steps), y (values; NaN and infinities
    as null, a gap), how many points it has and how they were chosen."""
    count = len(series)
    index = _lttb(series.steps, series.values, n_out) if count > n_out else None
    method = "MinMaxLTTB (tsdownsample)" if index is not None else "minmax"
    if index is None:
        index = minmax(series.values, n_out) if count > n_out else list(range(count))
    if count <= n_out:
        method = "all points"
    steps, values = series.steps, series.values
    return {
        "key": series.name,
        "count": count,
        "shown": len(index),
        "method": method,
        "x": [_whole(steps[i]) for i in index],
        "y": [values[i] if math.isfinite(values[i]) else None for i in index],
    }


def in_range(series: Series, start: float | None, end: float | None) -> Series:
    """The points of a series whose step is within [start, end] (either bound may be
    None), at full resolution: a chart zoomed in asks for them. Steps that only grow
    (one process's log) are cut by bisection; otherwise every point is tested."""
    import bisect

    if start is None and end is None:
        return series
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    steps = series.steps
    if _increasing(steps):
        i, j = bisect.bisect_left(steps, lo), bisect.bisect_right(steps, hi)
        return Series(series.name, steps[i:j], series.times[i:j], series.values[i:j])
    keep = [k for k, x in enumerate(steps) if lo <= x <= hi]
    return Series(series.name, *(array("d", (col[k] for k in keep))
                                 for col in (steps, series.times, series.values)))  # fmt: skip


def _increasing(steps: Sequence[float]) -> bool:
    """Whether the steps never go down (numpy when it is there: ~1 ms for 10^6 points)."""
    try:
        import numpy as np
    except ImportError:
        from itertools import pairwise

        return all(a <= b for a, b in pairwise(steps))
    x = np.frombuffer(memoryview(steps), dtype=np.float64) if _is_array(steps) else (
        np.asarray(steps, dtype=np.float64))  # fmt: skip
    return bool(np.all(x[1:] >= x[:-1]))


def one_series(repo: Repo, run: Run, key: str) -> Series | None:
    """One metric series of a run, or None: of a sealed run only that key's columns are
    read from its object (one seek), not every key's."""
    if run.status == "running":
        return repo.metrics(run).get(key)
    from vestige.store.metrics import MetricsObject

    digest = (run.metrics or {}).get("object")
    if not digest:
        return None
    repo.store.objects.verify(digest)
    with repo.store.objects.open(digest) as f:
        obj = MetricsObject(f)
        return obj.series(key) if key in obj.offsets else None


def _whole(x: float) -> float | int:
    return int(x) if x == x and x.is_integer() else x
