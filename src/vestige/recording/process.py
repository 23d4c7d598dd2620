"""The command as a process: which program runs, spawning it with the shim, copying its
output as it comes, signals, waiting, and how it ended; shared by the runner, the
in-process run and the sweeps.

On `vestige run`'s start path: builtin modules only (see vestige/fastpath.py).
"""

from __future__ import annotations

import _signal
import os
import sys
import time

from vestige.errors import PathMissing, VestigeError
from vestige.fastpath import dumps, which, write_file

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms here
if TYPE_CHECKING:
    from typing import Any

#: The folder put first on PYTHONPATH of every command: its sitecustomize loads the shim.
SHIM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shim")
#: After the command exits, how long its output pipes may stay open (a background
#: grandchild holding them) before the run is sealed without waiting for them.
DRAIN_GRACE_S = 1.0

SIGINT, SIGTERM, SIGHUP, SIGQUIT = _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, 3
INTERRUPT_SIGNALS = frozenset({SIGINT, SIGTERM, SIGHUP, SIGQUIT})
_SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS",
                 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM",
                 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ"}  # fmt: skip


def resolve_command(argv: list[str]) -> tuple[str, list[str]]:
    """(program path, argv): `x.py ...` runs with the current Python; a missing one is exit 2."""
    if not argv:
        raise PathMissing("no command given; usage: vestige run [OPTIONS] COMMAND [ARGS]...")
    first = argv[0]
    if first.endswith(".ipynb"):  # run headless by vestige/notebook/execute.py
        from vestige.recording.notebooks import launch_argv

        return launch_argv(argv, current_python())
    if first.endswith(".py"):
        if not os.path.isfile(first):
            raise PathMissing(f"script not found: {first}")
        python = current_python()
        return python, [python, *argv]
    path = which(first)
    if path is None:
        if os.sep in first:
            raise PathMissing(f"command not found or not executable: {first}")
        raise PathMissing(f"command not found: {first} (is it on PATH?)")
    script = python_script(argv)
    if script is not None and not os.path.isfile(script):
        raise PathMissing(f"script not found: {script}")
    return path, list(argv)


def recorded_command(typed: list[str], resolved: list[str]) -> list[str]:
    """The command a run records: as typed for the `x.py ...` shortcut, not with this
    machine's interpreter in front (runs in two venvs would differ in their command; the
    interpreter is in the environment record, and rerun resolves `x.py` again); else the
    command as it runs."""
    if typed and typed[0].endswith(".py") and resolved[1:] == typed:
        return list(typed)
    return resolved


def python_script(argv: list[str]) -> str | None:
    """The script `python [options] SCRIPT ...` runs, or None (not Python, -c, -m, -,
    or no script: an interactive interpreter). Short options may be grouped (-uW ignore)."""
    if not os.path.basename(argv[0]).startswith("python"):
        return None
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            return argv[i] if i < len(argv) else None
        if arg == "-" or not arg.startswith("-"):
            return None if arg == "-" else arg
        if arg.startswith("--"):
            if arg == "--check-hash-based-pycs":
                i += 1
            continue
        for j, letter in enumerate(arg[1:]):
            if letter in "cm":
                return None  # the program is a command or a module, not a file
            if letter in "WX":
                if j == len(arg) - 2:
                    i += 1  # its value is the next argument (else the rest of this one)
                break
    return None


def heartbeat_interval() -> float:
    """While a command runs, its run.json is touched this often (VESTIGE_HEARTBEAT_S for
    tests): if vestige dies with it, recovery dates the end by that, not by its last
    output (a silent computation killed after hours would have "taken" a second)."""
    try:
        return max(0.05, float(os.environ.get("VESTIGE_HEARTBEAT_S") or 5.0))
    except ValueError:
        return 5.0


def heartbeat(path: str, stop: Any) -> None:
    """Touch `path` every heartbeat_interval() until `stop` (a held lock) is released."""
    every = heartbeat_interval()
    while not stop.acquire(timeout=every):
        try:
            os.utime(path)
        except OSError:
            return


def current_python() -> str:
    """The interpreter of the user's active environment, else the one running vestige."""
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = os.environ.get(var)
        if prefix:
            candidate = os.path.join(prefix, "bin", "python")
            if os.path.exists(candidate):
                return candidate
    return sys.executable


def tee(src: int, dst: int, log_path: str, done: Any, cut: list[str] | None = None) -> None:
    """Copy a child's output stream to our own (unless dst is -1) and to the live log, as
    it comes. A log that cannot be written on (a full disk) stops there; `cut` then gets
    one line saying where and why (the program's output still reaches our own)."""
    try:
        log: int | None
        try:
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as e:
            log = None
            if cut is not None:
                cut.append(f"not kept at all ({e.strerror})")
        logged = 0
        to_terminal = dst >= 0
        while True:
            try:
                data = os.read(src, 65536)
            except InterruptedError:
                continue
            except OSError:
                break  # EIO: the pty's last writer closed
            if not data:
                break
            if to_terminal:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(dst, view) :]
                except OSError:
                    to_terminal = False  # our stdout went away (`| head`): keep logging
            if log is not None:
                try:
                    view = memoryview(data)
                    while view:  # (a disk filling up takes part of a write, then fails)
                        written = os.write(log, view)
                        logged += written
                        view = view[written:]
                except OSError as e:
                    close_quietly(log)
                    log = None
                    if cut is not None:
                        cut.append(f"cut after {logged} bytes ({e.strerror})")
        if log is not None:
            os.close(log)
    finally:
        done.release()


def pty_for(fd: int) -> tuple[int, int] | None:
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
    except (OSError, ImportError):
        return None


def spawn(
    path: str, argv: list[str], env: dict[str, str], out: int, err: int,
    sigdef: tuple[int, ...] = (13, 25),
) -> int:  # fmt: skip
    """Start the command with our stdin and the given stdout/stderr (posix_spawn: no fork of
    this process's memory, and no `subprocess` import). SIGPIPE and SIGXFSZ, which Python
    had set to ignored, are reset to their default (as subprocess's restore_signals does),
    and so is every other signal of `sigdef`."""
    return os.posix_spawn(
        path,
        argv,
        env,
        file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
        setsigdef=sigdef,
    )


def run_uncaptured(path: str, argv: list[str]) -> int:
    """Run the command plainly (vestige could not capture it): same I/O, same exit code."""
    try:
        pid = os.posix_spawn(path, argv, dict(os.environ), setsigdef=(13, 25))
    except OSError as e:
        sys.stderr.write(f"vestige: cannot start {argv[0]}: {e.strerror}\n")
        return 127
    old = _signal.signal(SIGINT, _signal.SIG_IGN)  # Ctrl-C reaches the command itself
    try:
        _pid, status = os.waitpid(pid, 0)
    finally:
        _signal.signal(SIGINT, old)
    return os.waitstatus_to_exitcode(status)


def tail_line(live: str, prefer_stderr: bool) -> str:
    """The last non-empty line a child wrote to its live logs (stderr first when it failed)."""
    order = ("stderr", "stdout") if prefer_stderr else ("stdout", "stderr")
    for name in order:
        try:
            with open(os.path.join(live, name), "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 4096))
                data = f.read()
        except OSError:
            continue
        for raw in reversed(data.split(b"\n")):
            text = raw.decode("utf-8", "replace").rstrip("\r").split("\r")[-1]
            if text.strip():
                return text
    return ""


def wait4(pid: int) -> tuple[int, int, Any]:
    """Wait for the child with wait4, to get its (and its waited-for children's) rusage."""
    while True:
        try:
            return os.wait4(pid, 0)
        except InterruptedError:
            continue


#: A live directory's reserve: room set aside at the start for result.json, freed to
#: write it when the store's disk has filled up meanwhile (so how the command ended is
#: kept, not recorded later as `interrupted`).
RESERVE = "reserve"
RESERVE_BYTES = 64 * 1024


def make_reserve(live: str) -> None:
    """Set the reserve aside (allocated, not written: ~10 us); nothing if it cannot be."""
    try:
        fd = os.open(os.path.join(live, RESERVE), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_result(live: str, result: dict[str, Any]) -> bool:
    """Write how the command ended (result.json); on a full disk, free the reserve and try
    again. Whether it was written."""
    path = os.path.join(live, "result.json")
    for _attempt in range(2):
        try:
            write_file(path, dumps(result))
            return True
        except OSError as e:
            if e.errno not in (28, 122) or not _unlink(os.path.join(live, RESERVE)):
                return False  # (not ENOSPC/EDQUOT, or no reserve left to free)
    return False


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def restore_handlers(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        try:
            _signal.signal(sig, handler)
        except (ValueError, OSError, TypeError):
            pass


def terminal_sent_to_group() -> bool:
    """True when we are in the terminal's foreground group (Ctrl-C reached the child too)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def classify(code: int, received: int | None) -> tuple[str, int, str | None]:
    """(status, exit code as a shell reports it, signal name) for how the command ended."""
    if code < 0:
        sig = -code
        status = "interrupted" if sig in INTERRUPT_SIGNALS or received else "failed"
        return status, 128 + sig, _SIGNAL_NAMES.get(sig, f"signal {sig}")
    if received is not None and code != 0:
        return "interrupted", code, None
    return ("ok" if code == 0 else "failed"), code, None


def resources(usage: Any) -> dict[str, Any]:
    return {
        "cpu_user_s": round(usage.ru_utime, 6),
        "cpu_system_s": round(usage.ru_stime, 6),
        "max_rss_bytes": int(usage.ru_maxrss) * 1024,  # Linux reports KiB
    }


def describe(e: BaseException | None) -> str:
    if e is None:
        return "unknown error"
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
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _signal.signal(sig, _signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except Exception:
            pass
        return 128 + sig
    return code
