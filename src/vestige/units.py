"""Sizes and durations as people read them (`12.1 KiB`, `3m07s`): one spelling for the CLI,
the UI and the verdicts of `diff` and `rerun`."""

from __future__ import annotations


def size(n: int | None) -> str:
    """Bytes as 12 B, 12.1 KiB, 3.4 MiB ... TiB; "-" for none."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def duration(seconds: float | None) -> str:
    """1.5s, 42s, 3m07s, 2h05m; "-" for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
