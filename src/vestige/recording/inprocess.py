"""A run of the current process: what the first API call starts outside `vestige run`.

The same capture as `vestige run`, done from inside: the store and the live directory,
the tree's before-scan, the shim's audit hook installed in this interpreter (and its
environment variables set, so child processes report to the same run), stdout and
stderr teed at the file-descriptor level (a pty when they are terminals), and the
background capture (git, redaction, the index row, the code snapshot). The run is sealed
by `vestige.finish()` or at interpreter exit, with the exit status pieced together from
sys.exit, sys.excepthook and how the script's outermost frame ended (`_ExitWatch`). A run
gives back what it opened (pipes, the index connection) when it ends: a process may
make any number of runs.

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
    close_quietly,
    describe,
    pty_for,
    resources,
    tee,
)
from vestige.recording.runner import Launch, RunOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, ModuleType
    from typing import Any, ClassVar

#: Files modified this soon after the process started are taken as older than it.
STARTUP_MARGIN_S = 0.05
#: A run needs about this many file descriptors at once (pipes, journals, the index):
#: with fewer left, a failure is blamed on the shortage.
FD_MARGIN = 16
#: Python 3.11 lists the whole heap to find a SystemExit the collector made old (rare):
#: not when it holds more memory blocks than this (~50 ms at exit).
OLD_SCAN_BLOCKS = 2_500_000
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


#: The run's note when the program left through a SystemExit whose code was not seen.
UNSEEN_EXIT = (
    "the program exited through SystemExit with a code vestige could not see (a `raise "
    "SystemExit(n)` under `python -m` or `-c`, or an `exit` imported from sys before vestige "
    "started): recorded as failed, exit code unknown; sys.exit(n) is always seen"
)


class _ExitWatch:
    """How the interpreter exits, for the run's status. Atexit handlers are not told the
    exit code, so it is pieced together: the code given to sys.exit (and the exit/quit
    builtins), the exception sys.excepthook got (sys.last_value), and at exit how the main
    thread's outermost frame ended. A frame that returned means exit 0, whatever sys.exit
    calls were caught on the way; one that raised means an uncaught exception, else a
    SystemExit, which `python script.py` lets us read as it leaves (`_leaving`)."""

    code: Any = 0
    exited = False  # sys.exit was called (in the main thread: elsewhere it ends a thread)
    exception: type[BaseException] | None = None
    installed = False
    main_ident = 0
    bottom: FrameType | None = None  # the main thread's outermost frame, for a script
    last_value: Any = None  # sys.last_value when installed (a new one is this exit's)
    leaving: BaseException | None = None  # the exception seen leaving `bottom`
    scanned = False  # (looked for it: once)

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return
        cls.installed = True
        cls.last_value = getattr(sys, "last_value", None)
        cls._find_bottom()
        atexit.register(cls._keep_sigint_exit)  # (first registered: it runs last)
        real_exit = sys.exit
        real_hook = sys.excepthook

        def exit(code: Any = None) -> Any:
            cls.record(code)
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
        if cls.bottom is not None and cls.bottom.f_code.co_name == "<module>":
            for stream in (sys.stderr, sys.stdout):
                _watch_flush(stream, cls._leaving)

    @classmethod
    def record(cls, code: Any) -> None:
        """sys.exit(code) was called: in the main thread, the process's exit (if not caught)."""
        if _thread.get_ident() == cls.main_ident:
            cls.code, cls.exited = code, True

    @classmethod
    def _find_bottom(cls) -> None:
        """The outermost frame of the main thread, in a script (not an interactive session,
        whose frames are each statement's): `<module>` of `python script.py` or `-c`,
        runpy's for `-m`. Its last instruction tells, at exit, how the program ended."""
        import threading

        cls.main_ident = threading.main_thread().ident or 0
        if not _tee_wanted():
            return
        if _thread.get_ident() == cls.main_ident:
            frame = sys._getframe()
        else:
            frame = sys._current_frames().get(cls.main_ident)
        while frame is not None and frame.f_back is not None:
            frame = frame.f_back
        if frame is not None and frame.f_code.co_name in ("<module>", "_run_module_as_main"):
            cls.bottom = frame

    @classmethod
    def _ended(cls) -> str | None:
        """How `bottom` ended: "returned", "raised", or None (no such frame)."""
        frame = cls.bottom
        if frame is None or frame.f_lasti < 0:
            return None
        from opcode import opname

        op = opname[frame.f_code.co_code[frame.f_lasti]]
        return "returned" if op in ("RETURN_VALUE", "RETURN_CONST") else "raised"

    @classmethod
    def _leaving(cls) -> None:
        """Called by the streams' flush with no Python frame below it, in the main thread:
        `python script.py` flushes them after the script's frame ended and before the
        interpreter handles the exception that ended it (and runs atexit): that exception
        is then alive, referenced only from C, and found through the garbage collector."""
        if cls.scanned or _thread.get_ident() != cls.main_ident:
            return
        if cls._ended() != "raised":
            return
        cls.scanned = True
        import gc

        frame = cls.bottom
        found: list[BaseException] = []
        other = False  # an uncaught-looking exception besides SystemExits (3.11)
        for generation in (0, 1):  # (young: it was made a moment ago)
            for obj in gc.get_objects(generation):
                if isinstance(obj, BaseException):
                    tb = obj.__traceback__
                    # 3.12+: an exception carries its traceback, down to `frame`; 3.11
                    # gives it one only when caught: an uncaught one has none yet
                    if tb is not None:
                        if tb.tb_frame is frame:
                            found.append(obj)
                    elif isinstance(obj, SystemExit):
                        found.append(obj)
                    else:
                        other = True
        if not found:  # another thread's allocations made collections meanwhile
            found = _older_leaving(frame, other)
        if len(found) == 1:  # (several: cannot tell which; the other clues decide)
            cls.leaving = found[0]

    @classmethod
    def _keep_sigint_exit(cls) -> None:
        """After an uncaught KeyboardInterrupt the interpreter kills itself with SIGINT as
        it exits, unless code compiled from a string ran since (a namedtuple, a dataclass:
        sealing does), which clears its flag and makes the exit 1. Set it again: one more
        KeyboardInterrupt leaving code compiled from a string, caught here."""
        last = getattr(sys, "last_value", None)
        if type(last) is not KeyboardInterrupt or last is cls.last_value:
            return
        if cls._ended() != "raised":
            return
        try:
            exec("raise KeyboardInterrupt")
        except KeyboardInterrupt:
            pass

    @classmethod
    def status(cls, at_exit: bool = False) -> tuple[str, int | None, str | None]:
        """(status, exit code, a note when the code is unknown), as the process ends
        (`at_exit`) or so far (vestige.finish() in the middle of a script)."""
        ended = cls._ended() if at_exit else None
        if ended == "returned":
            return "ok", 0, None
        last = getattr(sys, "last_value", None)
        if ended == "raised" and last is not None and last is not cls.last_value:
            return _exception_status(type(last))  # uncaught: the interpreter printed it
        if ended == "raised" and cls.leaving is not None:
            if isinstance(cls.leaving, SystemExit):
                return _code_status(cls.leaving.code)
            return _exception_status(type(cls.leaving))
        if cls.exception is not None:
            return _exception_status(cls.exception)
        if ended == "raised" and not cls.exited:
            return "failed", None, UNSEEN_EXIT
        return _code_status(cls.code)


def _older_leaving(frame: FrameType | None, other: bool) -> list[BaseException]:
    """The exception leaving `frame` when it is no longer young. 3.12+: through its
    traceback, whose first entry is `frame`'s (two walks of the heap, in C). 3.11: every
    SystemExit without a traceback, unless an uncaught-looking exception of another kind
    was found young (the usual failure: no need to look), or the heap is too large to
    list at exit (then the exit code is not known, and the run says so)."""
    import gc

    if sys.version_info >= (3, 12):
        from types import TracebackType

        tbs = [r for r in gc.get_referrers(frame) if type(r) is TracebackType]
        return [e for tb in tbs if tb.tb_frame is frame for e in gc.get_referrers(tb)
                if isinstance(e, BaseException) and e.__traceback__ is tb]  # fmt: skip
    if other or sys.getallocatedblocks() > OLD_SCAN_BLOCKS:
        return []
    return [o for o in gc.get_objects(2) if isinstance(o, SystemExit) and o.__traceback__ is None]


def _exception_status(kind: type[BaseException]) -> tuple[str, int, None]:
    """An uncaught exception: the interpreter prints it and exits 1; KeyboardInterrupt
    kills the process with SIGINT (130, as a shell reports it)."""
    if issubclass(kind, KeyboardInterrupt):
        return "interrupted", 130, None
    return "failed", 1, None


def _code_status(code: Any) -> tuple[str, int, None]:
    """A SystemExit's code as the interpreter turns it into an exit status: None is 0, an
    int its low byte, anything else (a message, printed) 1."""
    if code is None or code == 0:
        return "ok", 0, None
    if isinstance(code, int):
        return ("ok" if code & 0xFF == 0 else "failed"), code & 0xFF, None
    return "failed", 1, None


def _watch_flush(stream: Any, seen: Callable[[], None]) -> None:
    """Have `stream.flush()` call `seen` when the interpreter itself calls it, with no Python
    frame below (an attribute of this stream object only: nothing else changes)."""
    import io

    if type(stream) is not io.TextIOWrapper or "flush" in vars(stream):
        return
    real = stream.flush

    def flush() -> Any:
        try:
            return real()
        finally:
            if sys._getframe().f_back is None:
                try:
                    seen()
                except Exception:
                    pass

    try:
        stream.flush = flush
    except (AttributeError, TypeError):
        pass


class _Quitter:
    """builtins.exit/quit, recording the code before raising SystemExit as they do."""

    def __init__(self, real: Any, watch: type[_ExitWatch]) -> None:
        self._real = real
        self._watch = watch

    def __repr__(self) -> str:
        return repr(self._real)

    def __call__(self, code: Any = None) -> Any:
        self._watch.record(code)
        return self._real(code)


class InProcessRun(Launch):
    """A Launch whose command is this very process."""

    _first_of: ClassVar[dict[int, bool]] = {}  # pid -> no run of it has started yet

    def __init__(self, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(command_line(), RunOptions(trace="never"))  # (this very process)
        self.on_exit = on_exit  # at interpreter exit, if not ended before (vestige.finish)
        self.capture.warnings.clear()  # made now: this thread and the capture's both use it
        self.tees: list[_Tee] = []
        self.saved_env: dict[str, str | None] = {}
        self.shim: ModuleType | None = None
        self.bg_done: Any = None
        self.ended = False
        self.exiting = False

    @classmethod
    def begin(cls, on_exit: Callable[[], None] | None = None) -> InProcessRun:
        """Start recording this process (raises if the run cannot start); `on_exit` ends
        it at interpreter exit (else it is sealed as it stands)."""
        run = cls(on_exit)
        run._prepare()
        try:
            run._start()
        except BaseException:
            run._abort()
            raise
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
        done = _thread.allocate_lock()
        done.acquire()
        _thread.start_new_thread(self._background_ignored, (self.argv, done))
        self.bg_done = done  # (once the thread is there to release it)

    def _abort(self) -> None:
        """The start failed half-way: undo it (the program goes on, not recorded)."""
        self.ended = True
        atexit.unregister(self._at_exit)
        if self.shim is not None:
            detach = getattr(self.shim, "detach", None)
            if detach is not None:
                try:
                    detach(keep_figures=False)
                except Exception:
                    pass
        self._release()
        import shutil

        shutil.rmtree(self.live, ignore_errors=True)

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
        except OSError as e:
            self.capture.warnings.append(f"fd {fd} is not recorded ({e.strerror})")
            return
        try:
            pair = pty_for(fd)
            r, w = pair if pair is not None else os.pipe()
        except OSError as e:
            close_quietly(saved)
            self.capture.warnings.append(f"fd {fd} is not recorded ({e.strerror})")
            return
        stream = sys.stdout if fd == 1 else sys.stderr
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
        try:
            os.dup2(w, fd)
        except OSError as e:
            for end in (r, w, saved):
                close_quietly(end)
            self.capture.warnings.append(f"fd {fd} is not recorded ({e.strerror})")
            return
        close_quietly(w)
        copy = _Tee(fd, saved, r, log_path)
        _thread.start_new_thread(copy.run, ())
        self.tees.append(copy)

    # -- end --------------------------------------------------------------------------------

    def _at_exit(self) -> None:
        if not self.ended:
            self.exiting = True  # (the status is then how the interpreter exits)
            if self.on_exit is not None:
                self.on_exit()
            else:
                self.end()

    def end(self, status: str | None = None) -> None:
        """Seal the run (once): `status` from a with-block, else from how the process exits."""
        if self.ended:
            return
        self.ended = True
        atexit.unregister(self._at_exit)  # (it holds this run: a loop of runs keeps none)
        try:
            self._end(status)
        except Exception as e:
            warn(f"this run was not sealed now ({why(e)}); the next vestige command "
                 "will seal it")  # fmt: skip
        finally:
            self._release()

    def _seal(self, result: dict[str, Any]) -> None:
        """Seal as `vestige run` does; out of file descriptors, say so (and leave the live
        run to the next vestige command) rather than blame what could not be opened."""
        short = fd_shortage()
        if short is None and self.capture.error is not None:
            short = why(self.capture.error)
        if short is not None:
            warn(f"this run was not sealed now ({short}); the next vestige command will "
                 "seal it")  # fmt: skip
            return
        super()._seal(result)

    def _release(self) -> None:
        """Give back what the run took, whatever failed before: a process making run after
        run keeps the same number of fds (and grows no list of runs)."""
        self._restore()
        repo = self.capture.repo
        if repo is not None:  # (the index connection the capture opened)
            try:
                repo.close()
            except Exception:
                pass

    def _restore(self) -> None:
        """The process as it was before the run (its fds, its environment), once the
        capture is done. Each step is done once."""
        self._untee()
        if self.bg_done is not None:  # (the capture reads os.environ, and uses the repo)
            self.bg_done.acquire()
            self.bg_done = None
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env.clear()

    def _untee(self) -> None:
        """Put stdout and stderr back, and let the copies drain (up to DRAIN_GRACE_S)."""
        for copy in self.tees:
            for stream in (sys.stdout, sys.stderr):
                try:
                    if stream is not None:
                        stream.flush()
                except Exception:
                    pass
            try:
                os.dup2(copy.saved, copy.fd)
            except OSError:
                pass
        deadline = time.monotonic() + DRAIN_GRACE_S
        for copy in self.tees:
            copy.release(max(0.0, deadline - time.monotonic()))
        self.tees.clear()

    def _end(self, status: str | None) -> None:
        ended = time.time()
        if self.shim is not None:
            detach = getattr(self.shim, "detach", None)
            if detach is not None:
                detach()
        self._restore()
        code: int | None
        if status is None:
            status, code, note = _ExitWatch.status(at_exit=self.exiting)
            if note:
                self.capture.warnings.append(note)
        else:
            code = {"ok": 0, "interrupted": 130}.get(status, 1)
        dies_of_sigint = self.exiting and status == "interrupted"  # (_keep_sigint_exit)
        result = {
            "status": status,
            "exit_code": code,
            "signal": "SIGINT" if dies_of_sigint else None,
            "ended": ended,
            "resources": _own_resources(),
        }
        write_file(os.path.join(self.live, "result.json"), dumps(result))
        self._seal(result)


def why(e: BaseException | None) -> str:
    """What went wrong, for a warning: when this process is out of file descriptors, that
    (the error itself blames what was being opened: "format is unreadable")."""
    return fd_shortage() or describe(e)


def fd_shortage() -> str | None:
    """A sentence when this process has (nearly) no file descriptor left, else None."""
    import errno

    try:
        used = len(os.listdir("/proc/self/fd")) - 1  # (less listdir's own)
    except OSError as e:
        if e.errno == errno.EMFILE:
            return "this process has run out of file descriptors (`ulimit -n`)"
        if e.errno == errno.ENFILE:
            return "the system has run out of file descriptors"
        return None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except Exception:
        return None
    if soft == resource.RLIM_INFINITY or used < soft - FD_MARGIN:
        return None
    return (f"this process has run out of file descriptors: {used} open, the limit "
            f"(`ulimit -n`) is {soft}")  # fmt: skip


class _Tee:
    """One teed fd: the pipe's read end, copied by a thread to the saved original and the
    log. Its fds are closed when the copy ends; the saved one by the run's end, or by the
    thread when the end stopped waiting (a child process still holds the pipe)."""

    def __init__(self, fd: int, saved: int, read: int, log_path: str) -> None:
        self.fd, self.saved, self.read, self.log_path = fd, saved, read, log_path
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.lock = _thread.allocate_lock()
        self.copying = True
        self.abandoned = False

    def run(self) -> None:
        """The thread: copy until the last writer closes the pipe, then close its ends."""
        block_signals()
        try:
            tee(self.read, self.saved, self.log_path, self.done)
        finally:
            close_quietly(self.read)
            with self.lock:
                self.copying = False
                if self.abandoned:
                    close_quietly(self.saved)

    def release(self, timeout: float) -> None:
        """The run ends: wait up to `timeout` for the copy to drain, then let go of `saved`
        (closed now, or by the thread when it finishes: never while it may write to it)."""
        self.done.acquire(timeout=timeout)
        with self.lock:
            if self.copying:
                self.abandoned = True
            else:
                close_quietly(self.saved)


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
