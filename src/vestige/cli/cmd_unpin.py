"""`vestige unpin RUN...`: the command lives with `vestige pin` (cmd_pin.py)."""

from __future__ import annotations

from vestige.cli.cmd_pin import unpin as command

__all__ = ["command"]
