"""Run ids: ULIDs (time-sortable, unique without coordination), in Crockford base32."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return ulid(ms, os.urandom(10))


def ulid(ms: int, entropy: bytes) -> str:
    """The ULID of a time in milliseconds and 10 bytes: `new_run_id`'s, and an adopted
    run's, whose 10 bytes come from its tool and foreign id (adopt/write.py)."""
    value = (ms << 80) | int.from_bytes(entropy[:10], "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
