"""The IPython extension: `%load_ext vestige` makes this kernel session a run, cell by cell.

Loading it attaches to `vestige run`'s run (a headless `vestige run x.ipynb`) or starts a
run of this process (Jupyter, IPython: vestige/recording/inprocess.py), then records every cell
the user executes, in execution order, into `live/<run-id>/cells/<pid>.jsonl`
(vestige/store/cells.py): the raw source as typed (magics included), the execution
count, start and end times, ok or error (type, message, traceback), what the cell
printed, its rich outputs (text/plain kept; PNG, JPEG and SVG images kept as artefacts
named `cell-<n>/output-<k>`), and the files it read, wrote and removed.

Files per cell come from an audit hook of our own (the shim's journal has no times, and
records each file once per run): while a cell runs, `open`, `os.rename` and `os.remove`
events are kept when they come from the cell's code (a frame running in the user
namespace is on the stack; code the cell calls counts) or from another thread that is
not vestige's; imports, tracebacks and vestige's own files are not the cell's. Files a
child process touches are the run's (the shim sees them) but no cell's.

The notebook file is found from `JPY_SESSION_NAME` (set by jupyter-server),
`__session__` (ipykernel's copy of it) or `__vsc_ipynb_file__` (VS Code); it is kept as
an artefact `<name>.at-start.ipynb` when recording starts and `<name>.at-end.ipynb`
when the session ends. Without it, the cell history alone is the code.

Nothing here raises into the user's session: vestige's own failures become one warning.
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys
import time

from vestige.store.cells import OUTPUT_TEXT_MAX, SOURCE_MAX, STREAM_MAX, TRACEBACK_MAX, clip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.store.cells import Journal

_IO_EVENTS = frozenset(("open", "os.rename", "os.remove"))
_WMASK = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
#: Reads of these by these modules are code being loaded or shown, not data.
_CODE_SUFFIXES = (".py", ".pyc", ".pyw", ".pyi", ".so", ".pth")
_CODE_READERS = ("importlib", "zipimport", "linecache", "tokenize", "inspect", "traceback",
                 "stack_data", "IPython", "pkgutil", "runpy")  # fmt: skip
_IMAGES = (("image/png", "png"), ("image/jpeg", "jpg"), ("image/svg+xml", "svg"))

_RECORDER: CellRecorder | None = None
_AUDIT_INSTALLED = False


def load_ipython_extension(shell: Any) -> None:
    """`%load_ext vestige`: start recording this session's cells into a run."""
    global _RECORDER
    if _RECORDER is not None and _RECORDER.shell is shell:
        return  # already recording (a second %load_ext, or vestige.start() after it)
    recorder = CellRecorder(shell)
    _RECORDER = recorder  # first: starting the run loads this extension again (a no-op)
    try:
        recorder.install()
    except Exception as e:
        _RECORDER = None
        recorder.uninstall()
        _warn(f"cells are not recorded ({type(e).__name__}: {e})")


def unload_ipython_extension(shell: Any) -> None:
    """`%unload_ext vestige`: stop recording and seal the session's run now."""
    global _RECORDER
    recorder = _RECORDER
    if recorder is None or recorder.shell is not shell:
        return
    _RECORDER = None
    recorder.finish_cell()  # this very cell (`%unload_ext vestige`) is the last recorded
    recorder.uninstall()
    recorder.end_session()
    from vestige.api.calls import finish

    finish()


def _warn(message: str) -> None:
    try:
        sys.__stderr__.write(f"vestige: warning: {message}\n")  # type: ignore[union-attr]
        sys.__stderr__.flush()  # type: ignore[union-attr]
    except Exception:
        pass


class _Cell:
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
        text = "".join(self.streams[name])
        dropped = self.sizes[name] - self.kept[name]
        if dropped > 0:
            text += f"\n[... {dropped} more characters not kept]"
        return text


class _Tee:
    """A stream that hands what is written to the recorder, then to the real stream (for
    streams whose `write` cannot be replaced on the instance: a terminal's)."""

    def __init__(self, inner: Any, name: str, recorder: CellRecorder) -> None:
        self._inner = inner
        self._name = name
        self._recorder = recorder

    def write(self, text: Any) -> Any:
        self._recorder.captured(self._name, text)
        return self._inner.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CellRecorder:
    """The hooks of one IPython shell: cells, streams, displays, files."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.pid = os.getpid()
        self.main_thread = _thread.get_ident()
        self.live: str | None = None
        self.journal: Journal | None = None
        self.cell: _Cell | None = None
        self.n = 0
        self.notebook: str | None = None
        self.busy = False  # vestige's own reads and writes: not the cell's
        self.active = False
        self.warned = False
        self.undo: list[Any] = []
        self.tees: list[tuple[str, _Tee]] = []
        self.stream_patches: list[tuple[Any, Any, Any, bool]] = []
        self.store_prefix = ""

    # -- install --------------------------------------------------------------------------

    def install(self) -> None:
        from vestige.api.session import live_dir

        live = live_dir()
        if live is None:  # recording is off (VESTIGE_DISABLE) or failed (warned already)
            return
        shell = self.shell
        self.notebook = notebook_path(shell)
        self._target(live)
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        self.undo.append(lambda: _unregister(shell, "pre_run_cell", self.pre_run_cell))
        self.undo.append(lambda: _unregister(shell, "post_run_cell", self.post_run_cell))
        self._patch(shell.display_pub, "publish", self._publish)
        self._patch(shell.displayhook, "write_format_data", self._display_result)
        _install_audit()
        self.active = True
        if _in_user_code(shell.user_ns):  # `%load_ext vestige` or vestige.start() in a cell
            self.n += 1
            self.cell = _Cell(self.n, time.time(), pending=True)

    def _target(self, live: str) -> None:
        """Record into this live directory (at install, and when a new run started)."""
        from vestige.store.cells import Journal

        if self.journal is not None:
            self.journal.close()
        self.live = live
        self.store_prefix = os.path.dirname(os.path.dirname(os.path.abspath(live))) + os.sep
        self.journal = Journal(live)
        source = self._snapshot("at-start")
        self._write("kernel", t=time.time(), python=".".join(map(str, sys.version_info[:3])),
                    ipython=_version("IPython"), ipykernel=_version("ipykernel"),
                    notebook=self.notebook, source=source)  # fmt: skip
        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)  # after the run's own: atexit runs this one first

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

    def uninstall(self) -> None:
        self.active = False
        self._untee()
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception:
                pass
        self.undo.clear()

    # -- cells ------------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        if not self.active or os.getpid() != self.pid:
            return
        try:
            self.cell = None
            if not self._ensure_live():
                return
            shell = self.shell
            self.n += 1
            cell = _Cell(self.n, time.time())
            store = getattr(info, "store_history", True)
            cell.count = shell.execution_count - 1 if store else shell.execution_count
            cell.id = getattr(info, "cell_id", None)
            cell.source = clip(str(getattr(info, "raw_cell", "") or ""), SOURCE_MAX)
            self._write("start", i=cell.i, t=cell.started, count=cell.count, id=cell.id,
                        source=cell.source)  # fmt: skip
            self.cell = cell
            self._tee()
        except Exception as e:
            self._failed(e)

    def finish_cell(self) -> None:
        """End the running cell now, as ok (the session stops inside it)."""
        if self.cell is not None and not self.cell.pending:
            self.post_run_cell(None)

    def post_run_cell(self, result: Any) -> None:
        cell, self.cell = self.cell, None
        self._untee()
        if cell is None or not self.active or os.getpid() != self.pid:
            return
        try:
            ended = time.time()
            info = getattr(result, "info", None)
            if cell.pending:
                raw = str(getattr(info, "raw_cell", "") or "")
                if not raw.strip():
                    return
                cell.source = clip(raw, SOURCE_MAX)
                cell.id = getattr(info, "cell_id", None)
            count = getattr(result, "execution_count", None)
            if isinstance(count, int):
                cell.count = count
            error = getattr(result, "error_before_exec", None)
            if error is None:
                error = getattr(result, "error_in_exec", None)
            status = "ok"
            if error is not None:
                status = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            self._write(
                "cell", i=cell.i, t=ended, started=cell.started, count=cell.count, id=cell.id,
                source=cell.source, status=status, error=_error(error),
                stdout=cell.text("stdout"), stderr=cell.text("stderr"), outputs=cell.outputs,
                reads=sorted(cell.reads - cell.writes), writes=sorted(cell.writes),
                removed=sorted(cell.removed),
            )  # fmt: skip
        except Exception as e:
            self._failed(e)

    def _ensure_live(self) -> bool:
        """The run to record into: the current one, or a new one after vestige.finish()."""
        from vestige.api.session import live_dir

        live = live_dir()
        if live is None:
            return False
        if live != self.live:
            self._target(live)
        return True

    def _tee(self) -> None:
        """Capture stdout and stderr for this cell: wrap the stream's `write` on the
        instance (ipykernel's OutStream; IPython 9 wraps it the same way around each
        cell, so ours goes on per cell, inside theirs), else swap in a _Tee."""
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
                tee = _Tee(stream, name, self)
                setattr(sys, name, tee)
                self.tees.append((name, tee))

    def _writer(self, name: str, original: Any) -> Any:
        def write(text: Any, *args: Any, **kwargs: Any) -> Any:
            self.captured(name, text)
            return original(text, *args, **kwargs)

        write._vestige = True  # type: ignore[attr-defined]
        return write

    def _untee(self) -> None:
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

    # -- what a cell prints and displays --------------------------------------------------

    def captured(self, name: str, text: Any) -> None:
        """Text written to stdout or stderr while a cell runs (the first STREAM_MAX kept)."""
        cell = self.cell
        if cell is None or not isinstance(text, str) or os.getpid() != self.pid:
            return
        kept = cell.kept[name]
        if kept < STREAM_MAX:
            piece = text[: STREAM_MAX - kept]
            cell.streams[name].append(piece)
            cell.kept[name] = kept + len(piece)
        cell.sizes[name] += len(text)

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
        cell = self.cell
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
            self._failed(e)

    def _keep_images(self, cell: _Cell, k: int, data: dict[str, Any]) -> list[str]:
        """Store the images of one output as the artefact `cell-<n>/output-<k>`."""
        payloads = []
        label = cell.count if cell.count is not None else f"step{cell.i}"
        name = f"cell-{label}/output-{k}"
        for mime, ext in _IMAGES:
            raw = data.get(mime)
            blob = _image_bytes(raw, mime)
            if blob:
                payloads.append((f"{name}.{ext}", blob))
        if not payloads or self.live is None:
            return []
        from vestige.api import keeping

        item = keeping.Item(name, "image")
        item.payloads = payloads
        record = self._keep(item)
        return [f["path"] for f in record["files"]]

    def _keep(self, item: Any) -> dict[str, Any]:
        """Store a prepared artefact into the live run (our own file writes are not the
        cell's: `busy`) and journal it as `vestige.keep` does."""
        from vestige.api import keeping
        from vestige.api.session import event

        assert self.live is not None
        self.busy = True
        try:
            record = keeping.store(item, self.live)
        finally:
            self.busy = False
        event("keep", **record)
        return record

    # -- files --------------------------------------------------------------------------------

    def file_event(self, event: str, args: tuple[Any, ...]) -> None:
        """One audited file operation; kept for the running cell when it is the cell's."""
        cell = self.cell
        if cell is None or self.busy or os.getpid() != self.pid:
            return
        ident = _thread.get_ident()
        shim = sys.modules.get("_vestige_shim")
        if shim is not None and ident in getattr(shim, "_IGNORED_THREADS", ()):
            return
        if event == "open":
            path, mode = args[0], args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else 0
            if mode is None:
                write = bool(flags & _WMASK) if isinstance(flags, int) else False
            else:
                write = any(c in str(mode) for c in "wax+")
            p = _absolute(path)
            if p is None or (p in (cell.writes if write else cell.reads)) or self._ignored(p):
                return
            code = p.endswith(_CODE_SUFFIXES)
            if not self._by_cell(ident, code):
                return
            if write:
                cell.writes.add(p)
            elif not os.path.isdir(p):
                cell.reads.add(p)
        elif event == "os.rename":
            dst = _absolute(args[1]) if len(args) > 1 else None
            if dst is not None and not self._ignored(dst) and self._by_cell(ident, False):
                cell.writes.add(dst)
        elif event == "os.remove":
            p = _absolute(args[0]) if args else None
            if p is not None and not self._ignored(p) and self._by_cell(ident, False):
                cell.removed.add(p)
                cell.writes.discard(p)

    def _ignored(self, p: str) -> bool:
        if self.store_prefix and p.startswith(self.store_prefix):
            return True
        if p.startswith(("/dev/", "/proc/", "/sys/")):
            return True
        shim = sys.modules.get("_vestige_shim")
        ignored = getattr(shim, "_ignored", None) if shim is not None else None
        if ignored is not None:
            return bool(ignored(p))
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
        if any(p.startswith(x.rstrip(os.sep) + os.sep) for x in prefixes if x and x != os.sep):
            return True
        return "/site-packages/" in p or "/dist-packages/" in p

    def _by_cell(self, ident: int, code: bool) -> bool:
        """Whether the cell's code caused this event: on the main thread, a frame of the
        user namespace is on the stack; code files must not be read by the import system
        or a traceback. Other threads count (a loader thread started by the cell)."""
        user_ns = self.shell.user_ns
        f = sys._getframe(2)
        found = ident != self.main_thread
        while f is not None:
            g = f.f_globals
            if g is user_ns:
                found = True
                if not code:
                    return True
            elif code:
                module = str(g.get("__name__") or "")
                if f.f_code.co_filename.startswith("<frozen") or module.startswith(_CODE_READERS):
                    return False
            f = f.f_back
        return found

    # -- the end --------------------------------------------------------------------------

    def _at_exit(self) -> None:
        if self.active and os.getpid() == self.pid:
            self.end_session()

    def end_session(self) -> None:
        """The session ends (kernel shutdown, %unload_ext): keep the notebook as saved."""
        if self.journal is None or os.getpid() != self.pid:
            return
        try:
            saved = self._snapshot("at-end")
            self._write("end", t=time.time(), saved=saved)
        except Exception as e:
            self._failed(e)
        self.journal.close()
        self.journal = None
        self.live = None

    def _snapshot(self, when: str) -> dict[str, Any] | None:
        """Keep the notebook file as an artefact `<name>.<when>.ipynb` (read through the
        capture hook, so it is also one of the run's inputs, or outputs)."""
        path = self.notebook
        if path is None or self.live is None or not os.path.isfile(path):
            return None
        from vestige.api import keeping

        stem = os.path.basename(path)[: -len(".ipynb")] or "notebook"
        try:
            record = self._keep(keeping.prepare(path, f"{stem}.{when}.ipynb"))
        except (OSError, ValueError) as e:
            self._failed(e)
            return None
        files = record.get("files") or [{}]
        return {"artefact": record["name"], "path": path, "hash": files[0].get("hash"),
                "size": files[0].get("size")}  # fmt: skip

    def _write(self, kind: str, **fields: Any) -> None:
        if self.journal is None:
            return
        try:
            self.journal.append(kind, **fields)
        except OSError as e:
            self._failed(e)

    def _failed(self, e: BaseException) -> None:
        if not self.warned:
            self.warned = True
            _warn(f"a cell could not be recorded ({type(e).__name__}: {e})")


# -- helpers ------------------------------------------------------------------------------------


def notebook_path(shell: Any) -> str | None:
    """The .ipynb file this kernel runs, when the frontend says (no network is asked)."""
    ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (ns.get("__vsc_ipynb_file__"), os.environ.get("JPY_SESSION_NAME"),
                      ns.get("__session__")):  # fmt: skip
        if not isinstance(candidate, str) or not candidate.endswith(".ipynb"):
            continue
        for path in (candidate, os.path.join(os.getcwd(), os.path.basename(candidate))):
            full = os.path.abspath(path)
            if os.path.isfile(full):
                return full
    return None


def _in_user_code(user_ns: Any) -> bool:
    f = sys._getframe(1)
    while f is not None:
        if f.f_globals is user_ns:
            return True
        f = f.f_back
    return False


def _unregister(shell: Any, event: str, callback: Any) -> None:
    try:
        shell.events.unregister(event, callback)
    except ValueError:
        pass


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    version = getattr(mod, "__version__", None) if mod is not None else None
    return str(version) if version else None


def _absolute(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    return os.path.normpath(os.path.join(os.getcwd(), p)) if p else None


def _error(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    import traceback

    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        text = "".join(traceback.format_exception(error))
    except Exception:
        text = ""
    return {"type": name, "message": clip(str(error), 4000), "traceback": clip(text, TRACEBACK_MAX)}


def _image_bytes(raw: Any, mime: str) -> bytes | None:
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


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _IO_EVENTS:
        return
    recorder = _RECORDER
    if recorder is None or recorder.cell is None:
        return
    try:
        recorder.file_event(event, args)
    except Exception:  # an audit hook must never raise into the program
        pass


def _install_audit() -> None:
    """One audit hook per process (they cannot be removed; it idles without a recorder)."""
    global _AUDIT_INSTALLED
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_INSTALLED = True
