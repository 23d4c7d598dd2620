"""How the pages show times, durations, sizes and numbers (Jinja2 filters), and where
plotly's own script is: the installed package's file, never a CDN or a copy of ours."""

from __future__ import annotations

import importlib.util
import math
import os
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from vestige.units import duration, size  # (the pages' templates use them from here)


def plotly_js() -> str | None:
    """The path of `plotly.min.js` inside the installed plotly package (found without
    importing plotly, whose import costs ~0.5 s), or None."""
    spec = importlib.util.find_spec("plotly")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "package_data", "plotly.min.js")
        if os.path.isfile(path):
            return path
    return None


def _plotly_version() -> str:
    try:
        return version("plotly")
    except PackageNotFoundError:
        return "0"


#: The URL the pages load plotly from (versioned, so a browser may cache it for good).
PLOTLY_URL = f"/assets/plotly-{_plotly_version()}.min.js"


def when(ts: float | None) -> str:
    """A local date and time to the second, or "-"."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def number(x: Any) -> str:
    """A metric or param value, short: 6 significant digits, nan/inf as words."""
    if x is None:
        return ""
    if isinstance(x, bool) or not isinstance(x, float | int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == int(x) and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.6g}"
    return str(x)


FILTERS = {"when": when, "duration": duration, "size": size, "number": number}
