"""`vestige run`: launch a command under capture, tee its output live, seal the run.

The user's program is sacred: whatever fails inside vestige becomes one warning line on
stderr, the command still runs (uncaptured if need be), and vestige exits with the
command's own exit code, or dies of the same signal.

Start-up matters (goal: <= 60 ms added to a no-op script), so the path from here to the
command's start imports builtin modules only (see fastpath.py): find the store, write
the live directory's first record, scan the tree's stats, spawn. Everything else
(redaction, the index and its sequence number, the code snapshot, the environment)
happens in a background thread while the command runs; sealing happens after it exits.
"""

from __future__ import annotations

import _signal
import _thread
import os
import sys
import time

from vestige.capture.trace import LOG, is_python, tracer
from vestige.capture.trace import command as trace_command
from vestige.errors import UsageError
from vestige.fastpath import boot_id, dumps, hostname, proc_start, timing, warn, write_file
from vestige.recording.process import (
    SHIM_DIR,
    SIGHUP,
    SIGINT,
    SIGTERM,
    classify,
    describe,
    heartbeat,
    make_reserve,
    pty_for,
    recorded_command,
    resolve_command,
    resources,
    restore_handlers,
    run_uncaptured,
    spawn,
    tail_line,
    terminal_sent_to_group,
    wait4,
    write_result,
)
from vestige.recording.tee import start as start_tee

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms here
if TYPE_CHECKING:
    from typing import Any

    from vestige.recording.background import BackgroundCapture
    from vestige.recording.tee import TeeProcess


#: The warning of a run whose tee process was killed before the command ended.
LOST_END = "vestige's tee process died while the command ran: how the command ended is unknown"


class RunOptions:
    """What `vestige run` was asked besides the command."""

    __slots__ = ("commit", "cwd", "environ", "foreign_writes", "on_live", "on_spawn", "params",
                 "parent", "repo", "rerun_of", "reuse", "root", "store", "terminal",
                 "trace")  # fmt: skip

    def __init__(
        self, params: dict[str, Any] | None = None, cwd: str | None = None,
        rerun_of: str | None = None, store: str | None = None, root: str | None = None,
        trace: str | None = None,
    ) -> None:  # fmt: skip
        self.params = params or {}
        #: trace the command's syscalls: "always", "never", "auto" (programs outside
        #: Python); None: as configured (capture.trace), else auto
        self.trace = trace
        self.cwd = cwd
        self.rerun_of = rerun_of
        self.store = store  # with root: record into this store, for this tree (a rerun)
        self.root = root
        # A child launched from a thread of a sweep (vestige/sweep/local.py): its own
        # environment and parent, no terminal (no signal handlers, no ptys, output to the
        # logs only), an index connection it may reuse.
        self.environ: dict[str, str] | None = None
        self.parent: str | None = None
        self.terminal = True
        self.on_spawn: Any = None
        #: (live directory) -> None, once it exists and before the command starts: a sweep
        #: reads a running sibling's journal from there (its writes, for the others' seals)
        self.on_live: Any = None
        self.repo: Any = None
        self.foreign_writes: Any = None  # () -> paths concurrent siblings were seen writing
        #: what consecutive launches from one sweep worker share: its stat cache and its
        #: redactor of the (same) environment, so each child does not pay for them again
        self.reuse: dict[str, Any] | None = None
        #: (run, live) -> None: takes the run once its objects are stored and its record
        #: built, to commit it with others (seal.commit_batch); None seals it here
        self.commit: Any = None


class Launch:
    """One command under capture: prepare, spawn, tee, wait, seal."""

    def __init__(self, argv: list[str], options: RunOptions) -> None:
        self.argv = argv
        self.options = options
        self.cwd = os.path.realpath(options.cwd or os.getcwd())
        self.received: int | None = None
        self.child: int | None = None
        self.program = ""  # the program path, once resolved (execute)
        self._capture: BackgroundCapture | None = None
        self.sealed: Any = None  # the Run, once sealed
        self.tail = ""  # a sweep child's last output line (_run_to_logs)
        #: held until the command's pid is known (`child`), when its tee spawns it
        self.spawned: Any = None

    @property
    def capture(self) -> BackgroundCapture:
        """What is captured while the command runs; made on first use, which for `vestige
        run` is in the thread that runs it (its import is then off the start path)."""
        if self._capture is None:
            from vestige.recording.background import BackgroundCapture

            self._capture = BackgroundCapture(self)
        return self._capture

    def _capture_in_background(self, argv: list[str], done: Any) -> None:
        self.capture.run(argv, done)

    @property
    def environ(self) -> Any:
        """The environment the command runs with (ours, unless a sweep gave one)."""
        return os.environ if self.options.environ is None else self.options.environ

    def execute(self) -> int:
        path, argv = resolve_command(self.argv)  # usage errors surface before anything runs
        self.resolved = argv
        self.recorded = recorded_command(self.argv, argv)  # (`x.py` as typed)
        self.program = path
        if not self.options.terminal:
            self._prepare()  # a sweep's thread: its executor reports the failure
            return self._run_to_logs(path, argv)
        try:
            self._prepare()
        except UsageError:
            raise  # bad input (a config typo): exit 2 before anything runs, as documented
        except Exception as e:  # never block the user's run
            warn(f"not recording this run ({describe(e)})")
            return run_uncaptured(path, argv)
        return self._run(path, argv)

    # -- before the command -------------------------------------------------------------

    def _prepare(self) -> None:
        from vestige.ids import new_run_id
        from vestige.store.layout import open_store

        if self.options.store and self.options.root:
            self.store, self.root, created = self.options.store, self.options.root, False
        else:
            self.store, self.root, created = open_store(self.cwd, create_missing=True)
        if created:
            sys.stderr.write(f"vestige: created a store at {self.store}\n")
        self.ignore, self.inputs_max, self.figures, trace = _start_config(self.store, self.root)
        self.run_id = new_run_id()
        self.started = time.time()
        self.live = os.path.join(self.store, "live", self.run_id)
        events = os.path.join(self.live, "events")
        os.makedirs(events)
        try:
            self._describe(events, trace)
        except BaseException:  # (a full disk at start): no live directory left behind
            _rmtree(self.live)
            raise

    def _describe(self, events: str, trace: str) -> None:
        """The live directory's run.json: what recovery needs to seal this run if we die."""
        self.since_ns = since_ns(events, self.root, self.started)
        self.info: dict[str, Any] = {
            "id": self.run_id,
            "started": self.started,
            "since_ns": self.since_ns,
            "root": self.root,
            "cwd": os.path.relpath(self.cwd, self.root),
            "host": hostname(),
            "runner_pid": os.getpid(),
            "runner_start": proc_start(os.getpid()),
            "boot_id": boot_id(),
            "parent": self.options.parent or self.environ.get("VESTIGE_RUN_ID") or None,
            "rerun_of": self.options.rerun_of,
        }
        if getattr(self, "resolved", [])[1:3] == ["-m", "vestige.notebook.execute"]:
            self.info["argv_params"] = False  # its params are its -p and defaults, not argv
        self.strace = self._tracer(self.options.trace or trace)
        if self.environ.get("VESTIGE_NOW"):  # a simulated clock (tests, benchmarks)
            from vestige.clock import parse_time

            try:
                simulated = parse_time(self.environ["VESTIGE_NOW"], "VESTIGE_NOW")
            except UsageError as e:  # a bad clock never stops the command: it runs unrecorded
                raise RuntimeError(e.message) from None
            self.info["clock_shift"] = simulated - self.started
        if self.options.reuse is not None:
            # A sweep's child: its command is in run.json before it starts, so a sweep
            # killed at any moment leaves a child that recovery can seal right (the
            # redactor is the worker's, known from its first child: no cost at start).
            self.capture.redact(self.recorded)
        write_file(os.path.join(self.live, "run.json"), dumps(self.info))
        make_reserve(self.live)
        if self.options.on_live is not None:
            self.options.on_live(self.live)
        report = self.environ.get("VESTIGE_ID_OUT")
        if report:  # a sweep (vestige/sweep/child.py) learns which run this child is
            try:
                write_file(report, self.run_id)
            except OSError:
                pass

    def _tracer(self, mode: str) -> str | None:
        """strace's path when this command's files are to be traced (capture/trace.py): by
        default (`auto`) for a program outside Python, whose files no audit hook sees."""
        if mode == "never" or (mode == "auto" and is_python(self.program)):
            return None
        strace, why, new = tracer(self.store)
        if strace is None:
            note = f"files of programs outside Python are found by the folder scan only: {why}"
            self.info["trace_off"] = note
            if new:  # (once per boot and store; each such run's record says it too)
                warn(note)
        else:
            self.info["trace"] = os.path.join(self.live, LOG)
        return strace

    def _command(self, path: str, argv: list[str]) -> tuple[str, list[str]]:
        """The program and argv to spawn: the command, under the tracer when traced."""
        if self.strace is None:
            return path, argv
        return self.strace, trace_command(self.strace, argv, self.info["trace"])

    def _child_env(self) -> dict[str, str]:
        env = dict(self.environ)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = SHIM_DIR + (os.pathsep + old if old else "")
        env["VESTIGE_RUN_ID"] = self.run_id
        env["VESTIGE_LIVE"] = self.live
        env["VESTIGE_ROOT"] = self.root
        env["VESTIGE_STORE"] = self.store
        env["VESTIGE_SHIM"] = SHIM_DIR
        env["VESTIGE_PRECOPY_MAX"] = str(self.inputs_max)
        off = not self.figures or self.environ.get("VESTIGE_FIGURES") == "0"
        env["VESTIGE_FIGURES"] = "0" if off else "1"
        return env

    # -- while it runs ------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received = signum
        if self.child is not None:
            self._forward(self.child, signum)

    def _child_known(self, pid: int) -> int:
        """Note the command's pid; a signal that reached us before we knew it (the command
        can print, and be signalled for it, before its tee tells us its pid) is passed on
        now, not lost."""
        self.child = pid
        if self.received is not None:
            self._forward(pid, self.received)
        return pid

    @staticmethod
    def _forward(pid: int, signum: int) -> None:
        if signum == SIGINT and terminal_sent_to_group():
            return  # Ctrl-C: the terminal already signalled the command's process group
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    def _run(self, path: str, argv: list[str]) -> int:
        """Run the command under its tee process (recording/tee.py: the command's parent,
        which copies its output and outlives us), capture meanwhile, seal."""
        outs = [pty_for(1), pty_for(2)]
        ptys = [(fd, pair[0]) for fd, pair in zip((1, 2), outs, strict=True) if pair]
        pipes = [pair if pair is not None else os.pipe() for pair in outs]
        logs = [os.path.join(self.live, name) for name in ("stdout", "stderr")]
        handlers: dict[int, Any] = {}
        ignored = []  # started with it ignored (a background job of a script, nohup): the
        for sig in (SIGINT, SIGTERM, SIGHUP):  # command inherits that, as run bare
            if _signal.getsignal(sig) == _signal.SIG_IGN:
                ignored.append(sig)
            else:
                handlers[sig] = _signal.signal(sig, self._on_signal)
        try:
            tee = start_tee(*self._command(path, argv), self._child_env(), pipes, ptys, logs,
                            self.live, ignored)  # fmt: skip
        except OSError as e:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            restore_handlers(handlers)
            warn(f"not recording this run ({describe(e)})")
            _rmtree(self.live)
            return run_uncaptured(path, argv)
        try:
            return self._run_under(tee, argv)
        finally:
            tee.close()
            restore_handlers(handlers)

    def _run_under(self, tee: TeeProcess, argv: list[str]) -> int:
        """While the tee spawns the command, the background capture starts (it waits for
        the command's pid only to insert the index row); then wait for the end, seal."""
        self.spawned = _thread.allocate_lock()
        self.spawned.acquire()
        bg_done = _thread.allocate_lock()
        bg_done.acquire()
        _thread.start_new_thread(self._capture_in_background, (self.recorded, bg_done))
        try:
            self._child_known(tee.started())
        except OSError as e:
            self.spawned.release()  # (the capture sees no command, and stops)
            bg_done.acquire()
            _rmtree(self.live)
            sys.stderr.write(f"vestige: cannot start {argv[0]}: {e.strerror}\n")
            return 127
        self.spawned.release()
        if self.options.on_spawn is not None:
            self.options.on_spawn(self.child)
        beat = _thread.allocate_lock()
        beat.acquire()
        _thread.start_new_thread(heartbeat, (os.path.join(self.live, "run.json"), beat))

        timing("command started")
        end = tee.ended()
        beat.release()
        timing("command ended")
        if end is None:
            result, code = self._lost_end()
        else:
            code, ended, usage = end
            result = self._result(code, ended, usage, tee.cut)
        bg_done.acquire()
        if end is None:
            self.capture.warnings.append(LOST_END)
        self._seal(result)
        timing("sealed")
        return code

    def _lost_end(self) -> tuple[dict[str, Any], int]:
        """The tee died before telling how the command ended (someone killed it): wait for
        the command, whose end is then unknown; (result, our exit code)."""
        assert self.child is not None
        warn(LOST_END)
        while _alive(self.child):
            time.sleep(0.05)
        result = {"status": "interrupted", "exit_code": None, "signal": None,
                  "ended": time.time(), "resources": {}}  # fmt: skip
        write_result(self.live, result)
        return result, 1

    def _run_to_logs(self, path: str, argv: list[str]) -> int:
        """A sweep's child: its stdout and stderr go straight to the live logs (no pipes, no
        tee threads; whoever wants its last line reads the log's tail, `tail_line`)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        logs = [os.open(os.path.join(self.live, n), flags, 0o600) for n in ("stdout", "stderr")]
        try:
            self._child_known(
                spawn(*self._command(path, argv), self._child_env(), logs[0], logs[1])
            )
        except OSError as e:
            _rmtree(self.live)
            self.tail = f"cannot start {argv[0]}: {e.strerror}"
            return 127
        finally:
            for fd in logs:
                os.close(fd)
        if self.options.on_spawn is not None:
            self.options.on_spawn(self.child)
        self.capture.run(self.recorded)  # in this thread: it has nothing else to do meanwhile
        _pid, status, usage = wait4(self.child)
        code = os.waitstatus_to_exitcode(status)
        result = self._result(code, time.time(), resources(usage))
        self.tail = tail_line(self.live, prefer_stderr=code != 0)
        self._seal(result)
        return code

    def _result(
        self, code: int, ended: float, usage: dict[str, Any], cut: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """How the command ended, also written to the live directory (result.json); `cut`:
        the output logs that could not be kept whole (a full disk), said now as well."""
        status_name, exit_code, sig_name = classify(code, self.received)
        result = {"status": status_name, "exit_code": exit_code, "signal": sig_name,
                  "ended": ended, "resources": usage}  # fmt: skip
        if cut:
            result["cut"] = cut
            for name, why in cut.items():
                warn(f"the run's {name} log was {why}: the rest was shown, not kept")
        write_result(self.live, result)
        return result

    # -- after it ended -----------------------------------------------------------------

    def _seal(self, result: dict[str, Any]) -> None:
        capture = self.capture
        if capture.error is not None or capture.repo is None or capture.redactor is None:
            why = describe(capture.error) if capture.error else "capture did not finish"
            warn(f"this run was not sealed now ({why}); the next vestige command will seal it")
            return
        try:
            from vestige.recording.seal import Sealer, SealInput
            from vestige.store.live import LiveRun

            seal_input = SealInput.from_result(result, list(capture.warnings))
            repo = capture.repo
            assert capture.cache is not None
            sealer = Sealer(repo.store, repo.index, capture.cache, repo.config,
                            capture.redactor, self.environ)  # fmt: skip
            sealer.foreign_of = self.options.foreign_writes
            sealer.info, sealer.dirs = self.info, capture.dirs
            sealer.trace_pid = (self.child or 0) if self.strace else 0
            live = LiveRun(_path(self.live))
            if self.options.commit is None:
                self.sealed = sealer.seal(live, seal_input, capture.code)
            else:
                self.sealed = sealer.build(live, seal_input, capture.code)
                self.options.commit(self.sealed, live)
        except Exception as e:  # the run happened; only its record failed
            write_result(self.live, {**result, "unsealed": describe(e)})  # (for recovery)
            seq = self.info.get("seq", "?")
            warn(f"run #{seq} could not be sealed ({describe(e)}); the next vestige "
                 "command will try again")  # fmt: skip
        for line in capture.tell:
            _tell(line)


def _tell(line: str) -> None:
    """A note for the user (not a warning: nothing went wrong), one line on stderr."""
    try:
        sys.stderr.write(f"vestige: {line}\n")
        sys.stderr.flush()
    except Exception:
        pass


def since_ns(mark: str, root: str, started: float) -> int:
    """When the run starts by the filesystem's own clock: a file the command changes gets
    a ctime at or after it, one changed before a ctime before it. `mark` is a folder just
    made in the store; its ctime is read, then changed again until the clock has moved
    past that first reading. Filesystems stamp with a coarse clock (one tick, 1 to 10 ms,
    for every change within it; with multigrain timestamps a change to an inode whose time
    was read gets a finer one at once): without the wait, a file changed just before the
    run and one the command changes just after can share a stamp. When the store is on
    another filesystem than the project (another clock: a network share), the wall
    clock, one second early."""
    try:
        if os.stat(mark).st_dev != os.stat(root).st_dev:
            return int(started * 1e9) - 1_000_000_000
        first = os.stat(mark).st_ctime_ns
        deadline = time.monotonic() + 0.05
        while True:
            os.utime(mark)
            now = os.stat(mark).st_ctime_ns
            if now > first or time.monotonic() > deadline:
                return now
    except OSError:
        return int(started * 1e9) - 1_000_000_000


def _alive(pid: int) -> bool:
    """Whether a process of that pid still runs (not ours to wait for: the tee's child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _path(p: str) -> Any:
    from pathlib import Path

    return Path(p)


def _start_config(store: str, root: str) -> tuple[tuple[str, ...], int, bool, str]:
    """(`scan.ignore`, `keep.inputs_max_size`, `capture.figures`, `capture.trace`): what
    the start needs of the config, reading config files only when they exist (tomllib
    and the config module cost ~5 ms)."""
    if not os.path.exists(os.path.join(store, "config.toml")) and not os.path.exists(
        os.path.join(root, "pyproject.toml")
    ):
        return (), 64 * 1024 * 1024, True, "auto"
    from vestige.config import load_config

    c = load_config(_path(store), _path(root))
    return c.scan_ignore, c.keep_inputs_max_size, c.capture_figures, c.capture_trace


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
