"""A run of the current process: what the first API call starts outside `vestige run`.

The same capture as `vestige run`, done from inside: the store and the live directory,
the tree's before-scan, the shim's audit hook installed in this interpreter (and its
environment variables set, so child processes report to the same run), stdout and
stderr teed at the file-descriptor level (a pty when they are terminals), and the
background capture (git, redaction, the index row, the code snapshot). The run is sealed
by `vestige.finish()` or at interpreter exit, with the exit status learnt from
`sys.exit` and `sys.excepthook`.

What happened before the first call is partly known: files in the tree modified since
the process started count as outputs, the command line gives params; reads made before
it were not seen (call `vestige.start()` first, or use `vestige run`, to see them).
A process killed outright leaves its live directory, which the next vestige command
seals as `interrupted`, like any orphan.
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys
import time

from vestige.fastpath import block_signals, dumps, proc_start, warn, write_file
from vestige.recording.process import (
    DRAIN_GRACE_S,
    SHIM_DIR,
    describe,
    pty_for,
    resources,
    tee,
)
from vestige.recording.runner import Launch, RunOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any, ClassVar

#: Files modified this soon after the process started are taken as older than it.
STARTUP_MARGIN_S = 0.05
_ENV_KEYS = (
    "VESTIGE_RUN_ID", "VESTIGE_LIVE", "VESTIGE_ROOT", "VESTIGE_STORE", "VESTIGE_SHIM",
    "VESTIGE_PRECOPY_MAX", "VESTIGE_FIGURES", "PYTHONPATH",
)  # fmt: skip


def process_started() -> float:
    """When this process started (epoch seconds, to ~10 ms): now minus its age, the age
    from /proc (uptime and the start in clock ticks; btime alone is whole seconds)."""
    try:
        ticks = int(proc_start(os.getpid()) or "")
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        now = time.time()
        return now - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return time.time()


def command_line() -> list[str]:
    """How this process was started, as argv."""
    orig = getattr(sys, "orig_argv", None)
    if orig:
        return list(orig)
    return [sys.executable, *sys.argv]


class _ExitWatch:
    """The exit status of the interpreter, learnt from sys.exit and sys.excepthook."""

    code: Any = 0
    exception: type[BaseException] | None = None
    installed = False

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return
        cls.installed = True
        real_exit = sys.exit
        real_hook = sys.excepthook

        def exit(code: Any = None) -> Any:
            cls.code = code
            return real_exit(code)

        def excepthook(kind: Any, value: Any, tb: Any) -> Any:
            cls.exception = kind
            return real_hook(kind, value, tb)

        exit.__wrapped__ = real_exit  # type: ignore[attr-defined]
        sys.exit = exit
        sys.excepthook = excepthook
        import builtins

        for name in ("exit", "quit"):  # site's Quitter objects: `exit(5)` in a script
            quitter = getattr(builtins, name, None)
            if quitter is not None and callable(quitter):
                setattr(builtins, name, _Quitter(quitter, cls))

    @classmethod
    def status(cls) -> tuple[str, int]:
        if cls.exception is not None:
            if issubclass(cls.exception, KeyboardInterrupt):
                return "interrupted", 130
            return "failed", 1
        code = cls.code
        if code is None or code == 0:
            return "ok", 0
        if isinstance(code, int):
            return "failed", code & 0xFF
        return "failed", 1


class _Quitter:
    """builtins.exit/quit, recording the code before raising SystemExit as they do."""

    def __init__(self, real: Any, watch: type[_ExitWatch]) -> None:
        self._real = real
        self._watch = watch

    def __repr__(self) -> str:
        return repr(self._real)

    def __call__(self, code: Any = None) -> Any:
        self._watch.code = code
        return self._real(code)


class InProcessRun(Launch):
    """A Launch whose command is this very process."""

    _first_of: ClassVar[dict[int, bool]] = {}  # pid -> no run of it has started yet

    def __init__(self, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(command_line(), RunOptions(trace="never"))  # (this very process)
        self.on_exit = on_exit  # at interpreter exit, if not ended before (vestige.finish)
        self.capture.warnings.clear()  # made now: this thread and the capture's both use it
        self.tees: list[tuple[int, int, Any]] = []  # (fd, saved copy, done lock)
        self.saved_env: dict[str, str | None] = {}
        self.shim: ModuleType | None = None
        self.bg_done: Any = None
        self.ended = False

    @classmethod
    def begin(cls, on_exit: Callable[[], None] | None = None) -> InProcessRun:
        """Start recording this process (raises if the run cannot start); `on_exit` ends
        it at interpreter exit (else it is sealed as it stands)."""
        run = cls(on_exit)
        run._prepare()
        run._start()
        return run

    # -- start ------------------------------------------------------------------------------

    def _start(self) -> None:
        pid = os.getpid()
        self.child = pid
        first = InProcessRun._first_of.get(pid, True)
        InProcessRun._first_of[pid] = False
        if first:
            self._backdate()
        self.info.update(
            started=self.started, runner_pid=pid, runner_start=proc_start(pid), inprocess=True
        )
        if not _tee_wanted():  # IPython, a kernel: their command line is not the user's params
            self.info["argv_params"] = False

        write_file(os.path.join(self.live, "run.json"), dumps(self.info))
        _ExitWatch.install()
        atexit.register(self._at_exit)  # before the shim's: atexit runs it after the shim's
        for key, value in self._child_env().items():
            if key in _ENV_KEYS:
                self.saved_env[key] = os.environ.get(key)
                os.environ[key] = value
        self._attach_shim()
        if _tee_wanted():
            for fd, name in ((1, "stdout"), (2, "stderr")):
                self._tee(fd, os.path.join(self.live, name))
        self.bg_done = _thread.allocate_lock()
        self.bg_done.acquire()
        _thread.start_new_thread(self._background_ignored, (self.argv, self.bg_done))

    def _backdate(self) -> None:
        """The process's first run starts when the process did: files it wrote before the
        first API call are outputs. The margin covers the start time's 10 ms ticks and the
        interpreter's own start-up (a file written just before `python script.py` started
        is not the run's). No process watched those writes, and one in place leaves its
        folder unchanged: such a run's seal looks at every file of the tree (`full_scan`)."""
        started = process_started()
        self.since_ns = int((started + STARTUP_MARGIN_S) * 1e9)
        self.info.update(since_ns=self.since_ns, full_scan=True)
        self.started = started

    def _background_ignored(self, argv: list[str], done: Any) -> None:
        """The background capture, its file reads hidden from this process's audit hook."""
        block_signals()
        if self.shim is not None:
            ignore = getattr(self.shim, "ignore_thread", None)
            if ignore is not None:
                ignore(_thread.get_ident())
        self.capture.run(argv, done)

    def _attach_shim(self) -> None:
        """Install the audit hook here (once per process; re-targeted for later runs)."""
        try:
            shim = sys.modules.get("_vestige_shim")
            if shim is None:
                import importlib.util

                path = os.path.join(SHIM_DIR, "_vestige_shim.py")
                spec = importlib.util.spec_from_file_location("_vestige_shim", path)
                assert spec is not None and spec.loader is not None
                shim = importlib.util.module_from_spec(spec)
                sys.modules["_vestige_shim"] = shim
                spec.loader.exec_module(shim)  # installs itself from the environment
            else:
                shim.attach(self.live, self.run_id)
            self.shim = shim
        except Exception as e:
            self.capture.warnings.append(f"file capture is off in this process ({describe(e)})")

    def _tee(self, fd: int, log_path: str) -> None:
        """Send `fd` through a pipe (a pty for a terminal) copied to the log and the original."""
        try:
            saved = os.dup(fd)
            pair = pty_for(fd)
            r, w = pair if pair is not None else os.pipe()
            stream = sys.stdout if fd == 1 else sys.stderr
            if stream is not None:
                stream.flush()
            os.dup2(w, fd)
            os.close(w)
            done = _thread.allocate_lock()
            done.acquire()
            _thread.start_new_thread(_quiet_tee, (r, saved, log_path, done))
            self.tees.append((fd, saved, done))
        except OSError as e:
            self.capture.warnings.append(f"fd {fd} is not recorded ({e.strerror})")

    # -- end --------------------------------------------------------------------------------

    def _at_exit(self) -> None:
        if not self.ended:
            if self.on_exit is not None:
                self.on_exit()
            else:
                self.end()

    def end(self, status: str | None = None) -> None:
        """Seal the run (once): `status` from a with-block, else from how the process exits."""
        if self.ended:
            return
        self.ended = True
        try:
            self._end(status)
        except Exception as e:
            warn(f"this run was not sealed now ({describe(e)}); the next vestige command "
                 "will seal it")  # fmt: skip

    def _end(self, status: str | None) -> None:
        ended = time.time()
        if self.shim is not None:
            detach = getattr(self.shim, "detach", None)
            if detach is not None:
                detach()
        for fd, saved, _done in self.tees:
            for stream in (sys.stdout, sys.stderr):
                try:
                    if stream is not None:
                        stream.flush()
                except Exception:
                    pass
            os.dup2(saved, fd)
        deadline = time.monotonic() + DRAIN_GRACE_S
        for _fd, saved, done in self.tees:
            done.acquire(timeout=max(0.0, deadline - time.monotonic()))
            os.close(saved)
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if status is None:
            status, code = _ExitWatch.status()
        else:
            code = {"ok": 0, "interrupted": 130}.get(status, 1)
        result = {
            "status": status,
            "exit_code": code,
            "signal": None,
            "ended": ended,
            "resources": _own_resources(),
        }
        write_file(os.path.join(self.live, "result.json"), dumps(result))
        if self.bg_done is not None:
            self.bg_done.acquire()
        self._seal(result)


def _quiet_tee(r: int, saved: int, log_path: str, done: Any) -> None:
    block_signals()
    tee(r, saved, log_path, done)


def _tee_wanted() -> bool:
    """Tee the fds of scripts; not of interactive sessions (IPython, -i), whose terminal
    handling a pty in between would disturb."""
    if sys.flags.interactive or hasattr(sys, "ps1"):
        return False
    return "IPython" not in sys.modules and "ipykernel" not in sys.modules


def _own_resources() -> dict[str, Any]:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = resources(me)
    out["cpu_user_s"] = round(me.ru_utime + kids.ru_utime, 6)
    out["cpu_system_s"] = round(me.ru_stime + kids.ru_stime, 6)
    out["max_rss_bytes"] = max(me.ru_maxrss, kids.ru_maxrss) * 1024
    return out
