"""Run ids: ULIDs (time-sortable, unique without coordination), in Crockford base32."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid_time(run_id: str) -> float:
    """The creation time (epoch seconds) encoded in a ULID."""
    value = 0
    for c in run_id[:10]:
        value = value * 32 + _ALPHABET.index(c)
    return value / 1000.0


def looks_like_ulid(text: str) -> bool:
    return 1 <= len(text) <= 26 and all(c in _ALPHABET for c in text.upper())
