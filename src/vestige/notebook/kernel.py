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
not vestige's; tracebacks, bytecode caches and vestige's own files are not the cell's,
and an import reads the source of a project module (`from helper import g` after
`%%writefile helper.py`), not of the libraries installed. Files a child process touches
are the run's (the shim sees them) but no cell's.

The notebook file is found from `JPY_SESSION_NAME` (set by jupyter-server),
`__session__` (ipykernel's copy of it) or `__vsc_ipynb_file__` (VS Code); it is kept as
an artefact `<name>.at-start.ipynb` when recording starts and `<name>.at-end.ipynb`
when the session ends. Without it, the cell history alone is the code.

Where the pieces live: here the entry points and `CellRecorder`, the lifecycle of the
session and of each cell; what a cell is (vestige/notebook/cell.py), its prints
(streams.py), its displays and images (outputs.py), its files (fileio.py), and the journal
and artefacts of the run (sessionlog.py) each have a module of their own.

Nothing here raises into the user's session: vestige's own failures become one warning.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

from vestige.notebook.cell import Cell
from vestige.notebook.fileio import IO_EVENTS, FileTracker
from vestige.notebook.outputs import OutputCapture
from vestige.notebook.sessionlog import SessionLog, warn
from vestige.notebook.streams import StreamCapture
from vestige.store.cells import SOURCE_MAX, TRACEBACK_MAX, clip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        warn(f"cells are not recorded ({type(e).__name__}: {e})")


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


class CellRecorder:
    """The hooks of one IPython shell and the lifecycle of its cells; what a cell prints,
    displays and touches is captured by the helpers it composes."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.pid = os.getpid()
        self.cell: Cell | None = None
        self.n = 0
        self.notebook: str | None = None
        self.active = False
        self.undo: list[Any] = []
        self.log = SessionLog()
        self.streams = StreamCapture(lambda: self.cell)
        self.outputs = OutputCapture(self.log, lambda: self.cell)
        self.files = FileTracker(shell, self.log, lambda: self.cell)

    # -- install --------------------------------------------------------------------------

    def install(self) -> None:
        """Start recording: journal into the live run, hook the shell's cell events."""
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
        self.outputs.install(shell)
        _install_audit()
        self.active = True
        if _in_user_code(shell.user_ns):  # `%load_ext vestige` or vestige.start() in a cell
            self.n += 1
            self.cell = Cell(self.n, time.time(), pending=True)

    def _target(self, live: str) -> None:
        """Record into this live directory (at install, and when a new run started)."""
        self.log.open(live)
        source = self.log.snapshot(self.notebook, "at-start")
        self.log.write("kernel", t=time.time(), python=".".join(map(str, sys.version_info[:3])),
                       ipython=_version("IPython"), ipykernel=_version("ipykernel"),
                       notebook=self.notebook, source=source)  # fmt: skip
        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)  # after the run's own: atexit runs this one first

    def uninstall(self) -> None:
        """Stop recording: put the streams, the display hooks and the events back."""
        self.active = False
        self.streams.stop()
        self.outputs.uninstall()
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception:
                pass
        self.undo.clear()

    # -- cells ------------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """IPython's `pre_run_cell`: a cell starts; journal it and capture its streams."""
        if not self.active or os.getpid() != self.pid:
            return
        try:
            self.cell = None
            if not self._ensure_live():
                return
            shell = self.shell
            self.n += 1
            cell = Cell(self.n, time.time())
            store = getattr(info, "store_history", True)
            cell.count = shell.execution_count - 1 if store else shell.execution_count
            cell.id = getattr(info, "cell_id", None)
            cell.source = clip(str(getattr(info, "raw_cell", "") or ""), SOURCE_MAX)
            self.log.write("start", i=cell.i, t=cell.started, count=cell.count, id=cell.id,
                           source=cell.source)  # fmt: skip
            self.cell = cell
            self.streams.start()
        except Exception as e:
            self.log.failed(e)

    def finish_cell(self) -> None:
        """End the running cell now, as ok (the session stops inside it)."""
        if self.cell is not None and not self.cell.pending:
            self.post_run_cell(None)

    def post_run_cell(self, result: Any) -> None:
        """IPython's `post_run_cell`: the cell ended; journal all it did."""
        cell, self.cell = self.cell, None
        self.streams.stop()
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
            self.log.write(
                "cell", i=cell.i, t=ended, started=cell.started, count=cell.count, id=cell.id,
                source=cell.source, status=status, error=_error(error),
                stdout=cell.text("stdout"), stderr=cell.text("stderr"), outputs=cell.outputs,
                reads=sorted(cell.reads - cell.writes), writes=sorted(cell.writes),
                removed=sorted(cell.removed),
            )  # fmt: skip
        except Exception as e:
            self.log.failed(e)

    def _ensure_live(self) -> bool:
        """The run to record into: the current one, or a new one after vestige.finish()."""
        from vestige.api.session import live_dir

        live = live_dir()
        if live is None:
            return False
        if live != self.log.live:
            self._target(live)
        return True

    # -- the end --------------------------------------------------------------------------

    def _at_exit(self) -> None:
        if self.active and os.getpid() == self.pid:
            self.end_session()

    def end_session(self) -> None:
        """The session ends (kernel shutdown, %unload_ext): keep the notebook as saved."""
        if self.log.journal is None or os.getpid() != self.pid:
            return
        try:
            saved = self.log.snapshot(self.notebook, "at-end")
            self.log.write("end", t=time.time(), saved=saved)
        except Exception as e:
            self.log.failed(e)
        self.log.close()


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


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in IO_EVENTS:
        return
    recorder = _RECORDER
    if recorder is None or recorder.cell is None:
        return
    try:
        recorder.files.file_event(event, args)
    except Exception:  # an audit hook must never raise into the program
        pass


def _install_audit() -> None:
    """One audit hook per process (they cannot be removed; it idles without a recorder)."""
    global _AUDIT_INSTALLED
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_INSTALLED = True
