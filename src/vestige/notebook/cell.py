"""What one executing notebook cell has done so far: the record the kernel extension
(vestige/notebook/kernel.py) fills while the cell runs and journals when it ends."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Cell:
    """What one executing cell has done so far."""

    def __init__(self, i: int, started: float, pending: bool = False) -> None:
        self.i = i
        self.started = started
        self.pending = pending  # the cell that loaded us: its source comes at its end
        self.count: int | None = None
        self.id: str | None = None
        self.source = ""
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}  # written
        self.kept = {"stdout": 0, "stderr": 0}  # kept
        self.outputs: list[dict[str, Any]] = []
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.removed: set[str] = set()

    def text(self, name: str) -> str:
        """What the cell wrote to `name` (stdout or stderr), with a note of what was cut."""
        text = "".join(self.streams[name])
        dropped = self.sizes[name] - self.kept[name]
        if dropped > 0:
            text += f"\n[... {dropped} more characters not kept]"
        return text
