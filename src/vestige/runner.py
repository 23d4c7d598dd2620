"""`vestige run`: launch a command under capture, tee its output live, seal the run.

The user's program is sacred: whatever fails inside vestige becomes one warning line on
stderr, the command still runs (uncaptured if need be), and vestige exits with the
command's own exit code, or dies of the same signal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vestige.errors import PathMissing, VestigeError

SHIM_DIR = Path(__file__).parent / "shim"
#: After the command exits, how long its output pipes may stay open (a background
#: grandchild holding them) before the run is sealed without waiting for them.
DRAIN_GRACE_S = 1.0
INTERRUPT_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


def warn(message: str, stream: TextIO | None = None) -> None:
    """The one way vestige talks during a user's run: a line on stderr, never an exception."""
    with contextlib.suppress(Exception):
        print(f"vestige: warning: {message}", file=stream or sys.stderr, flush=True)


def resolve_command(argv: list[str]) -> list[str]:
    """`x.py ...` runs with the current interpreter; a missing program is a usage error."""
    if not argv:
        raise PathMissing("no command given; usage: vestige run [OPTIONS] COMMAND [ARGS]...")
    first = argv[0]
    if first.endswith(".py"):
        if not Path(first).is_file():
            raise PathMissing(f"script not found: {first}")
        return [current_python(), *argv]
    if os.sep in first:
        if not (Path(first).is_file() and os.access(first, os.X_OK)):
            raise PathMissing(f"command not found or not executable: {first}")
    elif shutil.which(first) is None:
        raise PathMissing(f"command not found: {first} (is it on PATH?)")
    return list(argv)


def current_python() -> str:
    """The interpreter of the user's active environment, else the one running vestige."""
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = os.environ.get(var)
        if prefix:
            candidate = Path(prefix) / "bin" / "python"
            if candidate.exists():
                return str(candidate)
    return sys.executable


@dataclass
class RunOptions:
    """What `vestige run` was asked besides the command."""

    params: dict[str, Any] = field(default_factory=dict)
    cwd: Path | None = None
    rerun_of: str | None = None


class _Tee(threading.Thread):
    """Copy a child's output stream to our own and to the live log, as it comes."""

    def __init__(self, src: int, dst: int, log: Path) -> None:
        super().__init__(daemon=True)
        self.src, self.dst, self.log = src, dst, log

    def run(self) -> None:
        log: Any = None
        with contextlib.suppress(OSError):
            log = open(self.log, "ab", buffering=0)  # noqa: SIM115 - closed below
        to_terminal = True
        while True:
            try:
                data = os.read(self.src, 65536)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                break  # EIO: the pty's last writer closed
            if not data:
                break
            if to_terminal:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self.dst, view) :]
                except OSError:
                    to_terminal = False  # our stdout went away (`| head`): keep logging
            if log is not None:
                try:
                    log.write(data)
                except OSError:
                    log = None
        if log is not None:
            log.close()


def _pty_for(fd: int) -> tuple[int, int] | None:
    """A pty pair mirroring the terminal on `fd` (no \\n -> \\r\\n rewriting), or None."""
    try:
        if not os.isatty(fd):
            return None
        import fcntl
        import termios

        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        return master, slave
    except OSError:
        return None


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, Any]:
    """Wait for the child with wait4, to get its (and its waited-for children's) rusage."""
    while True:
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
            break
        except ChildProcessError:
            return proc.wait(), None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def run_uncaptured(argv: list[str], cwd: Path | None = None) -> int:
    """Run the command plainly (vestige could not capture it): same I/O, same exit code."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd)
    except OSError as e:
        print(f"vestige: cannot start {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


class Launch:
    """One command under capture: prepare, spawn, tee, wait, seal."""

    def __init__(self, argv: list[str], options: RunOptions) -> None:
        self.argv = argv
        self.options = options
        self.cwd = (options.cwd or Path.cwd()).resolve()
        self.received: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def execute(self) -> int:
        argv = resolve_command(self.argv)  # usage errors surface before anything runs
        try:
            prepared = self._prepare(argv)
        except (VestigeError, OSError, Exception) as e:  # never block the user's run
            warn(f"not recording this run ({_describe(e)})")
            return _exit_like(run_uncaptured(argv, self.cwd))
        return self._run(argv, *prepared)

    # -- before -----------------------------------------------------------------------

    def _prepare(self, argv: list[str]) -> tuple[Any, ...]:
        from vestige.capture.redact import Redactor
        from vestige.capture.scan import Scanner
        from vestige.ids import new_run_id
        from vestige.live import LiveRun
        from vestige.records import Run
        from vestige.repo import Repo
        from vestige.store.statcache import StatCache

        repo = Repo.open(self.cwd, create=True, notice=True)
        store, config = repo.store, repo.config
        index = repo.index
        redactor = Redactor(store.secret_key())
        environ = redactor.redact_env(os.environ)  # first: it teaches the redactor the secrets
        command = redactor.scrub_argv(argv)
        run_id = new_run_id()
        started = time.time()
        parent = os.environ.get("VESTIGE_RUN_ID") or None
        cwd_rel = os.path.relpath(self.cwd, store.root)
        run = Run(
            id=run_id,
            seq=0,
            status="running",
            command=command,
            cwd=cwd_rel,
            root=str(store.root),
            started=started,
            pid=os.getpid(),
            parent=parent,
            rerun_of=self.options.rerun_of,
        )
        seq = index.begin_run(run)
        live = LiveRun(store.live_dir(run_id))
        live.create(
            {
                "id": run_id,
                "seq": seq,
                "command": command,
                "cwd": cwd_rel,
                "root": str(store.root),
                "started": started,
                "parent": parent,
                "rerun_of": self.options.rerun_of,
                "params_override": self.options.params,
                "environ": environ,
            }
        )
        before = Scanner(store.root, config.scan_ignore).scan()
        cache = StatCache(index.conn)
        return repo, redactor, live, before, cache, seq

    # -- during -------------------------------------------------------------------------

    def _child_env(self, repo: Any, live: Any) -> dict[str, str]:
        env = dict(os.environ)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(SHIM_DIR) + (os.pathsep + old if old else "")
        env["VESTIGE_RUN_ID"] = live.id
        env["VESTIGE_LIVE"] = str(live.path)
        env["VESTIGE_ROOT"] = str(repo.store.root)
        env["VESTIGE_STORE"] = str(repo.store.path)
        env["VESTIGE_SHIM"] = str(SHIM_DIR)
        return env

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received = signum
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if signum == signal.SIGINT and _terminal_sent_to_group():
            return  # Ctrl-C: the terminal already signalled the command's process group
        with contextlib.suppress(OSError):
            proc.send_signal(signum)

    def _run(self, argv: list[str], repo: Any, redactor: Any, live: Any, before: Any,
             cache: Any, seq: int) -> int:  # fmt: skip
        from vestige.seal import SealInput, Sealer

        background = _Capture(repo, redactor, live, before, cache)
        outs = [_pty_for(1), _pty_for(2)]
        pipes: list[tuple[int, int]] = []
        for pair in outs:
            pipes.append(pair if pair is not None else os.pipe())
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
            with contextlib.suppress(ValueError, OSError):
                handlers[sig] = signal.signal(
                    sig, self._on_winch if sig == signal.SIGWINCH else self._on_signal
                )
        self._ptys = [p for p in outs if p is not None]
        usage_before = _children_usage()
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self._child_env(repo, live),
                stdout=pipes[0][1],
                stderr=pipes[1][1],
                close_fds=True,
            )
        except OSError as e:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            self._restore(handlers)
            live.remove()
            repo.forget_running(live.id)
            print(f"vestige: cannot start {argv[0]}: {e.strerror}", file=sys.stderr)
            return 127
        for _r, w in pipes:
            os.close(w)
        live.update_info(child_pid=self.proc.pid)
        tees = [
            _Tee(pipes[0][0], 1, live.path / "stdout"),
            _Tee(pipes[1][0], 2, live.path / "stderr"),
        ]
        for tee in tees:
            tee.start()
        background.start()
        code, usage = _wait(self.proc)
        ended = time.time()
        deadline = time.monotonic() + DRAIN_GRACE_S
        for tee in tees:
            tee.join(max(0.0, deadline - time.monotonic()))
        for r, _w in pipes:
            if not any(t.is_alive() for t in tees):
                with contextlib.suppress(OSError):
                    os.close(r)
        status, exit_code, sig_name = _classify(code, self.received)
        result = SealInput(
            status=status,
            exit_code=exit_code,
            signal=sig_name,
            ended=ended,
            resources=_resources(usage, usage_before),
        )
        try:
            live.save_result(result.__dict__)
        except OSError:
            pass
        background.join()
        result.warnings.extend(background.warnings)
        result.env_hash = background.env_hash
        try:
            sealer = Sealer(repo.store, repo.index, cache, repo.config, redactor)
            sealer.environ = os.environ
            sealer.seal(live, result, background.code)
        except Exception as e:  # the run happened; only its record failed
            warn(
                f"run #{seq} could not be sealed ({_describe(e)}); "
                "the next vestige command will try again"
            )
        self._restore(handlers)
        return code

    def _on_winch(self, _signum: int, _frame: Any) -> None:
        with contextlib.suppress(Exception):
            import fcntl
            import termios

            for fd, (_master, slave) in zip((1, 2), getattr(self, "_ptys", []), strict=False):
                size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, size)

    @staticmethod
    def _restore(handlers: dict[int, Any]) -> None:
        for sig, handler in handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)


class _Capture(threading.Thread):
    """What is captured while the command runs: the code snapshot and the environment."""

    def __init__(self, repo: Any, redactor: Any, live: Any, before: Any, cache: Any) -> None:
        super().__init__(daemon=True)
        self.repo, self.redactor, self.live = repo, redactor, live
        self.before, self.cache = before, cache
        self.code: dict[str, Any] | None = None
        self.env_hash: str | None = None
        self.warnings: list[str] = []

    def run(self) -> None:
        from vestige.capture.code import snapshot

        store, config = self.repo.store, self.repo.config
        try:
            self.live.save_before(self.before)
        except OSError as e:
            self.warnings.append(f"could not save the pre-run scan ({e.strerror})")
        try:
            snap = snapshot(
                store.root, store.objects, self.cache, self.before, config.keep_code_max_size
            )
            self.code = snap.to_dict()
            self.warnings.extend(snap.warnings)
            self.live.save_code(self.code)
        except Exception as e:
            self.warnings.append(f"code snapshot failed ({_describe(e)})")


def _terminal_sent_to_group() -> bool:
    """True when we are in the terminal's foreground group (Ctrl-C reached the child too)."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
    return False


def _classify(code: int, received: int | None) -> tuple[str, int, str | None]:
    """(status, exit code as a shell reports it, signal name) for how the command ended."""
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        status = "interrupted" if sig in INTERRUPT_SIGNALS or received else "failed"
        return status, 128 + sig, name
    if received is not None and code != 0:
        return "interrupted", code, None
    return ("ok" if code == 0 else "failed"), code, None


def _children_usage() -> Any:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN)


def _resources(usage: Any, before: Any) -> dict[str, Any]:
    if usage is None:
        import resource

        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_user, cpu_sys = now.ru_utime - before.ru_utime, now.ru_stime - before.ru_stime
        rss = now.ru_maxrss
    else:
        cpu_user, cpu_sys, rss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    return {
        "cpu_user_s": round(cpu_user, 6),
        "cpu_system_s": round(cpu_sys, 6),
        "max_rss_bytes": int(rss) * 1024,  # Linux reports KiB
    }


def _exit_like(code: int) -> int:
    return code


def _describe(e: BaseException) -> str:
    if isinstance(e, VestigeError):
        return e.message
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    return f"{type(e).__name__}: {e}"


def die_like(code: int) -> int:
    """Exit as the command did: a command killed by signal N kills vestige with N too."""
    if code < 0:
        sig = -code
        sys.stdout.flush()
        sys.stderr.flush()
        with contextlib.suppress(Exception):
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            time.sleep(1)
        return 128 + sig
    return code


def format_command(argv: list[str]) -> str:
    return shlex.join(argv)
