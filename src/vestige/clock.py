"""The one clock of the ledger commands (debt, gc) and the parsing of sizes and durations.

`now()` honours VESTIGE_NOW (epoch seconds or an ISO date/time) so that tests and the
benchmarks can place a command at any point of a simulated history; everything else
takes `now` as a parameter.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

from vestige.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_time(text: str, what: str = "time") -> float:
    """Epoch seconds, or an ISO date / date-time (UTC when no zone is given)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"bad {what} {text!r}: give epoch seconds or an ISO date like 2026-01-31"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def now() -> float:
    """The current time, or VESTIGE_NOW when set (a simulated clock)."""
    fixed = os.environ.get("VESTIGE_NOW")
    if fixed:
        return parse_time(fixed, "VESTIGE_NOW")
    return time.time()


def parse_duration(text: str, option: str = "duration") -> float:
    """'90d', '12w', '36h', '15m', '30s' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(
            f"bad {option} {text!r}: give a number and a unit, like 90d, 12w, 36h, 15m"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def parse_since(text: str, now_s: float, option: str = "--since") -> float:
    """A window start: a duration back from `now_s` ('90d') or a date ('2026-01-01')."""
    if _DURATION.match(text):
        return now_s - parse_duration(text, option)
    try:
        return parse_time(text, option)
    except UsageError:
        raise UsageError(
            f"bad {option} {text!r}: give a duration back from now (90d, 12w, 36h) or a date "
            "like 2026-01-31"
        ) from None


def parse_size(text: str, option: str = "size") -> int:
    """'50GB', '500MiB', '1e9', '4k' -> bytes (KB/MB/GB are powers of 1000, KiB... of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"bad {option} {text!r}: give bytes or a unit, like 50GB, 500MiB, 1e9")
    number = float(match.group(1))
    unit = (match.group(2) or "").lower()
    binary = "i" in unit
    prefix = unit.rstrip("b").rstrip("i")
    if prefix not in _SIZE_POWERS or (binary and not prefix):
        raise UsageError(f"bad {option} {text!r}: give bytes or a unit, like 50GB, 500MiB, 1e9")
    return int(number * (1024 if binary else 1000) ** _SIZE_POWERS[prefix])
