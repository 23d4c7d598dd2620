"""What a notebook cell displays: its rich outputs, and their images kept as artefacts.

The kernel extension (vestige/notebook/kernel.py) installs an `OutputCapture` on the shell's
display publisher and display hook; each output goes to the running cell (text/plain kept,
PNG, JPEG and SVG images stored as the artefact `cell-<n>/output-<k>`).
"""

from __future__ import annotations

import os

from vestige.store.cells import OUTPUT_TEXT_MAX, clip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from vestige.notebook.cell import Cell
    from vestige.notebook.sessionlog import SessionLog

IMAGES = (("image/png", "png"), ("image/jpeg", "jpg"), ("image/svg+xml", "svg"))


class OutputCapture:
    """Wraps the shell's display publisher and display hook to note each output a cell
    shows into the running cell, and keep its images."""

    def __init__(self, log: SessionLog, current: Callable[[], Cell | None]) -> None:
        self.log = log
        self.current = current  # the running cell, or None
        self.pid = os.getpid()
        self.undo: list[Any] = []

    def install(self, shell: Any) -> None:
        """Wrap `display_pub.publish` and `displayhook.write_format_data` of this shell."""
        self._patch(shell.display_pub, "publish", self._publish)
        self._patch(shell.displayhook, "write_format_data", self._display_result)

    def uninstall(self) -> None:
        """Undo what `install` wrapped, last first."""
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception:
                pass
        self.undo.clear()

    def _patch(self, obj: Any, name: str, make: Any) -> None:
        """Wrap `obj.name` on the instance (undone by uninstall)."""
        if obj is None:
            return
        original = getattr(obj, name)
        had = name in getattr(obj, "__dict__", {})
        try:
            setattr(obj, name, make(original))
        except (AttributeError, TypeError):
            return

        def undo() -> None:
            if had:
                setattr(obj, name, original)
            else:
                try:
                    delattr(obj, name)
                except AttributeError:
                    pass

        self.undo.append(undo)

    def _publish(self, original: Any) -> Any:
        def publish(*args: Any, **kwargs: Any) -> Any:
            data = kwargs.get("data", args[0] if args else None)
            self._output("display_data", data)
            return original(*args, **kwargs)

        return publish

    def _display_result(self, original: Any) -> Any:
        def write_format_data(format_dict: Any, *args: Any, **kwargs: Any) -> Any:
            self._output("execute_result", format_dict)
            return original(format_dict, *args, **kwargs)

        return write_format_data

    def _output(self, kind: str, data: Any) -> None:
        cell = self.current()
        if cell is None or not isinstance(data, dict) or os.getpid() != self.pid:
            return
        try:
            record: dict[str, Any] = {"type": kind, "mime": sorted(str(k) for k in data)}
            text = data.get("text/plain")
            if isinstance(text, str):
                record["text"] = clip(text, OUTPUT_TEXT_MAX)
            files = self._keep_images(cell, len(cell.outputs) + 1, data)
            if files:
                record["files"] = files
            cell.outputs.append(record)
        except Exception as e:
            self.log.failed(e)

    def _keep_images(self, cell: Cell, k: int, data: dict[str, Any]) -> list[str]:
        """Store the images of one output as the artefact `cell-<n>/output-<k>`."""
        payloads = []
        label = cell.count if cell.count is not None else f"step{cell.i}"
        name = f"cell-{label}/output-{k}"
        for mime, ext in IMAGES:
            raw = data.get(mime)
            blob = image_bytes(raw, mime)
            if blob:
                payloads.append((f"{name}.{ext}", blob))
        if not payloads or self.log.live is None:
            return []
        from vestige.api import keeping

        item = keeping.Item(name, "image")
        item.payloads = payloads
        record = self.log.keep(item)
        return [f["path"] for f in record["files"]]


def image_bytes(raw: Any, mime: str) -> bytes | None:
    """An image as displayed: bytes, base64 text (PNG/JPEG over the wire) or SVG text."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if not isinstance(raw, str) or not raw:
        return None
    if mime == "image/svg+xml":
        return raw.encode("utf-8")
    import base64
    import binascii

    try:
        return base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError):
        return None
