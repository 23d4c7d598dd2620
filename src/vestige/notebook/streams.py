"""What a notebook cell prints: stdout and stderr captured while the cell runs.

The kernel extension (vestige/notebook/kernel.py) starts a `StreamCapture` before each cell
and stops it after; what is written goes to the running cell, then on to the real stream.
"""

from __future__ import annotations

import os
import sys

from vestige.store.cells import STREAM_MAX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.notebook.cell import Cell


class Tee:
    """A stream that hands what is written to the capture, then to the real stream (for
    streams whose `write` cannot be replaced on the instance: a terminal's)."""

    def __init__(self, inner: Any, name: str, capture: StreamCapture) -> None:
        self._inner = inner
        self._name = name
        self._capture = capture

    def write(self, text: Any) -> Any:
        """Capture `text`, then write it to the real stream."""
        self._capture.captured(self._name, text)
        return self._inner.write(text)

    def writelines(self, lines: Any) -> None:
        """Write each line through `write` (so each is captured)."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class StreamCapture:
    """Captures sys.stdout and sys.stderr into the running cell, between `start` and `stop`."""

    def __init__(self, current: Callable[[], Cell | None]) -> None:
        self.current = current  # the running cell, or None
        self.pid = os.getpid()
        self.tees: list[tuple[str, Tee]] = []
        self.stream_patches: list[tuple[Any, Any, Any, bool]] = []

    def start(self) -> None:
        """Capture stdout and stderr for this cell: wrap the stream's `write` on the
        instance (ipykernel's OutStream; IPython 9 wraps it the same way around each
        cell, so ours goes on per cell, inside theirs), else swap in a Tee."""
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            current = getattr(stream, "write", None)
            if stream is None or current is None or getattr(current, "_vestige", False):
                continue
            had = "write" in getattr(stream, "__dict__", {})
            wrapper = self._writer(name, current)
            try:
                stream.write = wrapper
                self.stream_patches.append((stream, wrapper, current, had))
            except (AttributeError, TypeError):  # io.TextIOWrapper (a terminal)
                tee = Tee(stream, name, self)
                setattr(sys, name, tee)
                self.tees.append((name, tee))

    def _writer(self, name: str, original: Any) -> Any:
        def write(text: Any, *args: Any, **kwargs: Any) -> Any:
            self.captured(name, text)
            return original(text, *args, **kwargs)

        write._vestige = True  # type: ignore[attr-defined]
        return write

    def stop(self) -> None:
        """Put the streams back as they were before `start`."""
        for stream, wrapper, original, had in reversed(self.stream_patches):
            if getattr(stream, "__dict__", {}).get("write") is wrapper:
                try:
                    if had:
                        stream.write = original
                    else:
                        del stream.write
                except (AttributeError, TypeError):
                    pass
        self.stream_patches.clear()
        for name, tee in self.tees:
            if getattr(sys, name) is tee:
                setattr(sys, name, tee._inner)
        self.tees.clear()

    def captured(self, name: str, text: Any) -> None:
        """Text written to stdout or stderr while a cell runs (the first STREAM_MAX kept)."""
        cell = self.current()
        if cell is None or not isinstance(text, str) or os.getpid() != self.pid:
            return
        kept = cell.kept[name]
        if kept < STREAM_MAX:
            piece = text[: STREAM_MAX - kept]
            cell.streams[name].append(piece)
            cell.kept[name] = kept + len(piece)
        cell.sizes[name] += len(text)
