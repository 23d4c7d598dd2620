"""The tee process, what outlives vestige: forked by `vestige run` when the run is prepared,
it spawns the command (it is the command's parent), copies its stdout and stderr to
vestige's own and to the live logs as they come, and tells vestige how the command ended.
When vestige dies (kill -9, the OOM killer) the command's output still has a reader, so
the command runs to its end as it would have without vestige; the tee then writes that
end into the live directory's result.json, for the next vestige command to seal
(recording/recover.py).

Forked, not spawned: a fork costs ~0.1 ms, a new interpreter ~15 ms. What a fork costs
later is paid in page faults: each page of the ~5 MB that vestige and the tee shared and
that one of them writes is copied (~2.5 us each on the 2-core CI machine). So the fork
comes as late as it can, once the run is prepared (forked before, the preparation ran
~1.5 ms slower), and vestige's background capture starts while the tee spawns the
command. The tee leaves with os._exit: vestige's buffers and at-exit handlers are not
its own.
On `vestige run`'s start path: builtin modules only (see vestige/fastpath.py).
"""

from __future__ import annotations

import _signal
import _thread
import os
import time

from vestige.recording.process import (
    DRAIN_GRACE_S,
    SIGHUP,
    SIGINT,
    SIGQUIT,
    SIGTERM,
    classify,
    close_quietly,
    resources,
    spawn,
    tee,
    wait4,
    write_result,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms here
if TYPE_CHECKING:
    from typing import Any

SIGPIPE, SIGXFSZ, SIGWINCH = 13, 25, 28


class TeeProcess:
    """vestige's handle on its tee: its pid, the command's pid once spawned, the pipe the
    tee reports on, and the lifeline: a pipe that nobody writes, held open by vestige
    alone, whose closing tells the tee that vestige is gone."""

    def __init__(self, pid: int, report: int, lifeline: int) -> None:
        self.pid = pid
        self.child = 0
        self._report = report
        self._lifeline = lifeline
        self._buffer = b""
        #: {"stdout" | "stderr": why} for a log the tee could not write whole (a full disk)
        self.cut: dict[str, str] = {}

    def started(self) -> int:
        """The command's pid, once the tee spawned it; the OSError posix_spawn raised in
        the tee if it could not."""
        kind, _sep, value = self._line().partition(" ")
        if kind == "P":
            self.child = int(value)
            return self.child
        self.close()
        code = int(value) if kind == "E" and value.isdigit() else 5  # EIO: the tee died
        raise OSError(code, os.strerror(code))

    def ended(self) -> tuple[int, float, dict[str, float | int]] | None:
        """(the command's wait status as os.waitstatus_to_exitcode gives it, when it ended,
        its resources) once the tee saw it end and drained its output; None when the tee
        died before saying (the command's end is then unknown). `cut` then names the logs
        that could not be kept whole."""
        line = self._line()
        while line.startswith("C "):
            _c, name, why = line.split(" ", 2)
            self.cut[name] = why
            line = self._line()
        parts = line.split()
        if len(parts) != 7 or parts[0] != "R":
            return None
        _r, code, ended, user, system, rss, _drained = parts
        usage = {"cpu_user_s": round(float(user), 6), "cpu_system_s": round(float(system), 6),
                 "max_rss_bytes": int(rss)}  # fmt: skip
        return int(code), float(ended), usage

    def close(self) -> None:
        """Let the tee go (one still copying a background process's output stops) and
        collect its exit."""
        if self._lifeline < 0:
            return
        close_quietly(self._lifeline)
        close_quietly(self._report)
        self._lifeline = self._report = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def _line(self) -> str:
        """The tee's next report line ("" when it closed the pipe: it died)."""
        while b"\n" not in self._buffer:
            try:
                data = os.read(self._report, 256)
            except OSError:
                data = b""
            if not data:
                return ""
            self._buffer += data
        line, _sep, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


def start(
    path: str, argv: list[str], env: dict[str, str], outputs: list[tuple[int, int]],
    ptys: list[tuple[int, int]], logs: list[str], live: str, ignored: list[int] | None = None,
) -> TeeProcess:  # fmt: skip
    """Fork the tee, which spawns the command with the write ends of `outputs` (stdout's
    and stderr's (read end, write end): pipes, or ptys whose masters `ptys` pairs with the
    fd they stand for) as its stdout and stderr, and copies each read end to our fd 1 or 2
    and to its log. Our own fds of `outputs` are closed once the tee has them: ours would
    keep them open. OSError if the fork failed (they are then left open)."""
    sigdef = signal_defaults(ignored or [])
    report_r, report_w = os.pipe()
    life_r, life_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (report_r, report_w, life_r, life_w):
            os.close(fd)
        raise
    if pid == 0:  # the tee
        status = 1
        try:
            os.close(report_r)
            os.close(life_w)
            serve(path, argv, env, outputs, ptys, logs, live, sigdef, report_w, life_r)
            status = 0
        finally:
            os._exit(status)
    os.close(report_w)
    os.close(life_r)
    for r, w in outputs:
        os.close(r)
        os.close(w)
    return TeeProcess(pid, report_r, life_w)


def signal_defaults(ignored: list[int]) -> tuple[int, ...]:
    """The signals the command starts with at their default action, as when vestige spawned
    it itself: those vestige catches (INT, TERM, HUP) unless vestige was started with them
    `ignored`, PIPE and XFSZ (which Python ignores), and QUIT unless ignored as well (the
    tee ignores them all; the command inherits every other disposition of vestige's)."""
    sigs = [sig for sig in (SIGINT, SIGTERM, SIGHUP) if sig not in ignored]
    if _signal.getsignal(SIGQUIT) == _signal.SIG_DFL:
        sigs.append(SIGQUIT)
    return (*sigs, SIGPIPE, SIGXFSZ)


class _Runner:
    """What the tee knows of vestige: whether it died while the command was still running
    (then the command's end is the tee's to record), and whether it is gone."""

    __slots__ = ("gone", "lock", "orphaned")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.orphaned = False
        self.gone = _thread.allocate_lock()
        self.gone.acquire()


def serve(
    path: str, argv: list[str], env: dict[str, str], outputs: list[tuple[int, int]],
    ptys: list[tuple[int, int]], logs: list[str], live: str, sigdef: tuple[int, ...],
    report: int, lifeline: int,
) -> None:  # fmt: skip
    """The tee's life: spawn the command, copy its output, wait for it, and report its end
    to vestige, or into the live directory when vestige died under it."""
    for sig in (SIGINT, SIGTERM, SIGHUP, SIGQUIT):
        _signal.signal(sig, _signal.SIG_IGN)  # the command's to handle; its tee copies its
        # last words (a traceback after Ctrl-C) and outlives a vestige killed by SIGQUIT
    _signal.signal(SIGWINCH, _resizer(ptys) if ptys else _signal.SIG_DFL)
    try:
        child = spawn(path, argv, env, outputs[0][1], outputs[1][1], sigdef)
    except OSError as e:
        _send(report, f"E {e.errno or 0}\n")
        return
    for _r, w in outputs:
        os.close(w)
    _send(report, f"P {child}\n")
    copied = []
    cuts: list[list[str]] = [[], []]  # where a log could not be written on (a full disk)
    for (r, _w), dst, log, cut in zip(outputs, (1, 2), logs, cuts, strict=True):
        done = _thread.allocate_lock()
        done.acquire()
        _thread.start_new_thread(tee, (r, dst, log, done, cut))
        copied.append(done)
    runner = _Runner()
    _thread.start_new_thread(_watch, (lifeline, child, runner))
    _pid, status, usage = wait4(child)
    ended = time.time()
    deadline = time.monotonic() + DRAIN_GRACE_S
    drained = all(done.acquire(timeout=max(0.0, deadline - time.monotonic())) for done in copied)
    code = os.waitstatus_to_exitcode(status)
    with runner.lock:
        orphaned = runner.orphaned
    cut = {name: c[0] for name, c in zip(("stdout", "stderr"), cuts, strict=True) if c}
    if orphaned:
        _record(live, code, ended, usage, cut)
        return
    for name, why in cut.items():
        _send(report, f"C {name} {why}\n")
    _send(report, f"R {code} {ended!r} {usage.ru_utime!r} {usage.ru_stime!r} "
                  f"{int(usage.ru_maxrss) * 1024} {int(drained)}\n")  # fmt: skip
    if not drained:  # a background process still holds the output: copy it until vestige
        runner.gone.acquire()  # is done with the run (as its own threads once did)


def _resizer(ptys: list[tuple[int, int]]) -> Any:
    """A SIGWINCH handler: each pty takes the size of the terminal it stands for."""

    def resize(_signum: int, _frame: Any) -> None:
        try:
            import fcntl  # (imported already: process.pty_for)
            import termios

            for fd, master in ptys:
                size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except Exception:
            pass

    return resize


def _watch(lifeline: int, child: int, runner: _Runner) -> None:
    """Wait for vestige's end (its lifeline closes); if the command was still running then,
    vestige died under it and the command's end is the tee's to record. (The end of a
    command that ended first was vestige's to record, as before: a vestige that died
    after that leaves it `interrupted`, tests/test_crash.py.)"""
    try:
        while os.read(lifeline, 1):
            pass
    except OSError:
        pass
    with runner.lock:
        try:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT  # (a peek: wait4 still reaps it)
            runner.orphaned = os.waitid(os.P_PID, child, flags) is None
        except ChildProcessError:
            runner.orphaned = False  # reaped already: it ended first
    runner.gone.release()


def _record(live: str, code: int, ended: float, usage: object, cut: dict[str, str]) -> None:
    """How the command ended, into the live directory's result.json, marked as written
    after vestige died; nothing if the run was sealed meanwhile (its directory is gone)."""
    status, exit_code, sig_name = classify(code, None)
    result = {"status": status, "exit_code": exit_code, "signal": sig_name, "ended": ended,
              "resources": resources(usage), "runner_died": True}  # fmt: skip
    if cut:
        result["cut"] = cut
    write_result(live, result)


def _send(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode())
    except OSError:
        pass  # vestige is gone
