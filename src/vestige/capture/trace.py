"""The files every program of a run opens, creates, renames and removes, from its syscalls.

Python processes report their files through the shim's audit hook; programs outside
Python (bash, coreutils, R, Julia, compiled tools) and C libraries inside Python do
not. For those, the command runs under `strace -D -f --seccomp-bpf` tracing only the
file syscalls below; `-D` makes strace a grandchild, so the process vestige waits for
and signals is the command itself (its exit status, rusage and signals are untouched),
and `-y` has the kernel resolve each opened path (and each AT_FDCWD: the process's
working directory) to an absolute one. Strings are printed as hex escapes (`-xx`):
every name, non-UTF-8 ones included, comes back byte for byte. strace writes to a file
in the live directory, never a pipe: a tracer can never block the program, and a run
whose vestige died is sealed from what the file holds.

Whether strace can trace here (installed, and ptrace allowed: containers may forbid
it) is tried once per boot and kept in `.vestige/cache/trace`. This module is on the
start path: it imports only `os` (see vestige/fastpath.py).
"""

from __future__ import annotations

import os

from vestige.fastpath import boot_id, which

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterator

#: The syscalls traced: what opens, creates, replaces, renames or removes a file, and what
#: changes a process's directory or program. A leading `?`: not an error on an
#: architecture without it (aarch64 has no open, creat, rename...).
SYSCALLS = ("openat", "?open", "?creat", "?truncate", "?rename", "renameat", "?renameat2",
            "?link", "linkat", "?symlink", "symlinkat", "?unlink", "unlinkat", "?chdir",
            "fchdir", "execve", "?execveat", "?clone", "?clone3", "?fork", "?vfork")  # fmt: skip
#: Reads that are a Python interpreter loading code (the shim reports a run's modules),
#: and paths that are never a run's data.
_CODE = (".py", ".pyc", ".pyw", ".so", ".pth", ".zip", "pyvenv.cfg")
_NOISE = ("/proc/", "/dev/", "/sys/")
#: Parts of a path that mark an installation's or a cache's file, never a run's data.
_INSTALLED = ("/site-packages/", "/dist-packages/", "/__pycache__/")
LOG = "trace"  # the file in the live directory
CACHE = ("cache", "trace")
#: Flags of an open that may change the file.
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def command(strace: str, argv: list[str], log: str) -> list[str]:
    """The argv that runs `argv` under the tracer, writing to `log`."""
    return [
        strace, "-D", "-f", "--seccomp-bpf", "-q", "-xx", "-y", "-s", "65535",
        "-e", "trace=" + ",".join(SYSCALLS), "-o", log, "--", *argv,
    ]  # fmt: skip


def tracer(store: str) -> tuple[str | None, str | None, bool]:
    """(strace's path or None, why not, whether this was just found out). Whether strace
    can trace here is tried once per boot and kept in the store's cache; the caller tells
    the user when it was just found out (once, not on every run)."""
    path = which("strace")
    mtime = 0
    if path is not None:
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            path = None
    key = f"{boot_id()}\t{path or '-'}\t{mtime}"
    cache = os.path.join(store, *CACHE)
    try:
        with open(cache, encoding="utf-8") as f:
            saved_key, _sep, verdict = f.read().rstrip("\n").rpartition("\t")
        if saved_key == key:
            return (path, None, False) if verdict == "ok" else (None, verdict, False)
    except (OSError, ValueError):
        pass
    if path is None:
        why: str | None = "strace is not installed (Debian, Ubuntu: apt-get install strace)"
    else:
        why = _probe(path)
    try:
        from vestige.fastpath import write_file

        os.makedirs(os.path.dirname(cache), exist_ok=True)
        write_file(cache, f"{key}\t{why or 'ok'}\n")
    except OSError:
        pass
    return (path, None, True) if why is None else (None, why, True)


def _probe(path: str) -> str | None:
    """Trace `true` as a run would; None if that works, else strace's complaint."""
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        argv = command(path, ["true"], os.devnull)
        try:
            pid = os.posix_spawn(path, argv, dict(os.environ), file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                (os.POSIX_SPAWN_DUP2, w, 2)])  # fmt: skip
        except OSError as e:
            return f"strace could not start ({e.strerror})"
        os.close(w)
        w = -1
        chunks = []
        while chunk := os.read(r, 4096):
            chunks.append(chunk)
        _pid, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
        os.close(null)
        if w >= 0:
            os.close(w)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    said = b"".join(chunks).decode("utf-8", "replace").strip().splitlines()
    return f"strace cannot trace here ({said[-1] if said else 'it failed'})"


def is_python(program: str) -> bool:
    """Whether a program is a Python interpreter or a script run by one (a console
    script, an executable .py): its files are known from the audit hook already."""
    name = os.path.basename(program)
    if name.startswith("python") or name.startswith("pypy"):
        return True
    try:
        with open(program, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]


# -- reading the log ---------------------------------------------------------------------------


def wait_for_exit(log: str, pid: int, timeout: float = 2.0) -> bool:
    """Wait until the log holds the end of process `pid` (strace writes it after the
    process is gone, a moment after vestige saw it end); False at the timeout. strace
    pads a pid to five columns (`2143  +++ exited`), so the line is matched loosely."""
    import re
    import time

    deadline = time.monotonic() + timeout
    marker = re.compile(rb"(?m)^%d +\+\+\+ " % pid)
    while True:
        try:
            with open(log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
                if marker.search(f.read()):
                    return True
        except OSError:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


class Trace:
    """What a run's traced processes did to files: absolute paths, in the order seen."""

    def __init__(self) -> None:
        #: path -> position of the first read / first write (creation, rename onto it)
        self.reads: dict[str, int] = {}
        self.writes: dict[str, int] = {}
        self.removed: set[str] = set()
        #: (pid, program, argv) of each program a process became (execve), in order
        self.programs: list[tuple[int, str, list[str]]] = []
        self.exited: set[int] = set()  # processes whose end is in the log
        self.lines = 0
        self.python: dict[int, bool] = {}  # pid -> whether it runs a Python interpreter
        self.prefixes: dict[int, tuple[str, ...]] = {}  # pid -> its Python's installation
        self.skip: tuple[str, ...] = _NOISE
        self.complete = False  # the log holds the command's end (set by the caller)

    def made_first(self, path: str) -> bool:
        """Whether the run wrote `path` before it first read it (its own file)."""
        first_write = self.writes.get(path)
        return first_write is not None and first_write < self.reads.get(path, first_write + 1)


def read(path: str, cwd: str, skip: tuple[str, ...] = ()) -> Trace:
    """Parse a strace log (`cwd`: the command's working directory, for the few syscalls
    that name a relative path without a directory fd; `skip`: folders whose files are
    vestige's own, e.g. the store). Torn or unknown lines are skipped: the log of a run
    whose vestige died may end mid-line. A Python process's reads of code are left out
    (the shim reports the modules a run ran), its other reads and its writes are kept."""
    out = Trace()
    out.skip = tuple(s.rstrip("/") + "/" for s in skip) + _NOISE
    cwds: dict[int, str] = {}
    pending: dict[int, str] = {}  # pid -> the start of an unfinished syscall
    try:
        f = open(path, "rb")  # noqa: SIM115 (read to the end below)
    except OSError:
        return out
    with f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # the tracer is still writing this line (or died mid-line)
            line = raw.decode("ascii", "replace").rstrip("\n")
            out.lines += 1
            pid_text, _sep, rest = line.partition(" ")
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            rest = rest.lstrip(" ")
            if rest.startswith("+++ "):
                out.exited.add(pid)
                continue
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
                continue
            if rest.startswith("<... "):
                start = pending.pop(pid, None)
                if start is None:
                    continue
                rest = start + rest.split(" resumed>", 1)[-1]
            _apply(out, pid, rest, cwds, cwd)
    out.reads = {p: i for p, i in out.reads.items() if not _skipped(out, p)}
    out.writes = {p: i for p, i in out.writes.items() if not _skipped(out, p)}
    out.removed = {p for p in out.removed if not _skipped(out, p)}
    return out


def _skipped(out: Trace, path: str) -> bool:
    """vestige's own files, the machine's pseudo-files, and installed packages' and
    caches' files (a pip install or a .pyc write is not the run's data)."""
    return (
        path.startswith(out.skip)
        or path.endswith((".pyc", ".pyo"))
        or any(part in path for part in _INSTALLED)
    )


def _apply(out: Trace, pid: int, call: str, cwds: dict[int, str], cwd: str) -> None:
    name, _sep, args = call.partition("(")
    if not _sep or name not in _CALLS:
        return
    end = args.rfind(" = ")  # (strings are hex-escaped: a literal " = " is strace's)
    head = args[:end].rstrip(" ")
    if end < 0 or not head.endswith(")"):
        return
    args, result = head[:-1], args[end + 3 :]
    if result.startswith("-"):
        return  # failed (or unknown): nothing happened to the file
    here = _dirs(args)
    if here and here[0][0] == "AT_FDCWD":
        cwds[pid] = here[0][1]
    base = cwds.get(pid, cwd)
    strings = _strings(args)
    order = out.lines
    if name in ("clone", "clone3", "fork", "vfork"):
        child = int(result.split(" ", 1)[0]) if result.split(" ", 1)[0].isdigit() else 0
        if child:  # a new process: its parent's directory and program, until it changes
            cwds[child] = base
            out.python[child] = out.python.get(pid, False)
            out.prefixes[child] = out.prefixes.get(pid, ())
        return
    if name in ("openat", "open", "creat"):
        ret = _decoration(result)
        given = _join(here[0][1] if here else base, strings[:1])
        target = ret if ret is not None else given
        if ret is not None and given is not None and given != ret and _names(given, ret):
            target = given  # through a link: the name the program used, as the shim has it
        if target is None or target.startswith(out.skip):
            return
        write = name == "creat" or any(flag in args for flag in _WRITE_FLAGS)
        if "O_PATH" in args or "O_DIRECTORY" in args:
            return
        if not write and (".so." in target or target.endswith(".so")):
            return  # a shared library being loaded: code, not data
        if (
            not write
            and out.python.get(pid)
            and (target.endswith(_CODE) or target.startswith(out.prefixes.get(pid, ())))
        ):
            return  # a Python interpreter starting, or importing a module
        (out.writes if write else out.reads).setdefault(target, order)
    elif name == "truncate":
        target = _join(base, strings[:1])
        if target is not None:
            out.writes.setdefault(target, order)
    elif name in ("rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat"):
        if len(strings) < 2:
            return
        if name in ("renameat", "renameat2", "linkat"):
            src_dir = here[0][1] if here else base
            dst_dir = here[1][1] if len(here) > 1 else src_dir
        elif name == "symlinkat":
            src_dir, dst_dir = base, here[0][1] if here else base
        else:
            src_dir = dst_dir = base
        src, dst = _join(src_dir, strings[:1]), _join(dst_dir, strings[1:2])
        if dst is not None:
            out.writes[dst] = order  # (a new file under that name: written now)
            out.removed.discard(dst)
        if src is not None and name.startswith("rename"):
            out.removed.add(src)
    elif name in ("unlink", "unlinkat"):
        if "AT_REMOVEDIR" in args:
            return
        target = _join(here[0][1] if here else base, strings[:1])
        if target is not None:
            out.removed.add(target)
    elif name in ("chdir", "fchdir"):
        target = here[0][1] if here else _join(base, strings[:1])
        if target is not None:
            cwds[pid] = target
    elif name in ("execve", "execveat"):
        argv = _strings(args.partition("[")[2].partition("]")[0])
        program = _join(base, strings[:1]) or "?"
        out.programs.append((pid, program, [_text(a) for a in argv]))
        out.python[pid] = _python(program)
        if out.python[pid]:  # its installation: what the interpreter reads to start
            out.prefixes[pid] = _prefixes(program)


_CALLS = frozenset(s.lstrip("?") for s in SYSCALLS)
_PYTHON: dict[str, bool] = {}


def _prefixes(program: str) -> tuple[str, ...]:
    """The folders of a Python interpreter's installation (a venv's and its base's): the
    parents of the folder of the program, as given and with links resolved."""
    out = {os.path.dirname(os.path.dirname(program))}
    try:
        out.add(os.path.dirname(os.path.dirname(os.path.realpath(program))))
    except OSError:
        pass
    return tuple(sorted(p.rstrip("/") + "/" for p in out if p not in ("", "/")))


def _python(program: str) -> bool:
    """is_python, once per program."""
    known = _PYTHON.get(program)
    if known is None:
        known = _PYTHON[program] = is_python(program)
    return known


def _names(given: str, real: str) -> bool:
    """Whether the path a program opened names the file the kernel resolved (a symbolic
    link on the way: `out/link`, `data -> /scratch/x`), not one since replaced."""
    try:
        return os.path.realpath(given) == real
    except OSError:
        return False


def _strings(args: str) -> list[bytes]:
    """The quoted strings of the arguments, decoded from `-xx`'s \\xHH escapes."""
    out = []
    for part in args.split('"')[1::2]:
        out.append(_unhex(part))
    return out


def _dirs(args: str) -> list[tuple[str, str]]:
    """(fd or AT_FDCWD, the directory it names) for each decorated directory argument."""
    out = []
    for chunk in _decorated(args):
        out.append(chunk)
    return out


def _decorated(text: str) -> Iterator[tuple[str, str]]:
    """`AT_FDCWD<\\x2f...>` or `3<\\x2f...>`: (what, the decoded path)."""
    i = 0
    while True:
        j = text.find("<\\x", i)
        if j < 0:
            return
        k = text.find(">", j)
        if k < 0:
            return
        start = j
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
        yield text[start:j], os.fsdecode(_unhex(text[j + 1 : k]))
        i = k + 1


def _decoration(result: str) -> str | None:
    """The path strace shows after a returned fd (`3</abs/path>`), else None."""
    for _what, path in _decorated(result):
        return path
    return None


def _join(base: str, strings: list[bytes]) -> str | None:
    if not strings:
        return None
    name = os.fsdecode(strings[0])
    return os.path.normpath(os.path.join(base, name)) if name else None


def _unhex(part: str) -> bytes:
    try:
        return bytes.fromhex(part.replace("\\x", ""))
    except ValueError:
        return part.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
