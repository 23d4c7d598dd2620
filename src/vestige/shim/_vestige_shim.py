# ruff: noqa
"""vestige capture shim: records what a Python process reads, writes, spawns and parses.

Imported by the ``sitecustomize`` next to this file (Python 3.8+ only), in every Python
process of a ``vestige run``. Written in Python 3.8 syntax, imports nothing of vestige,
does nothing unless VESTIGE_LIVE and VESTIGE_RUN_ID are set. It appends JSON lines to
``$VESTIGE_LIVE/events/<pid>.jsonl`` (one ``os.write`` per line on an O_APPEND fd) and is
read back by ``vestige.capture.events``. Events: hello, open, pre, rename, remove, spawn,
params, savefig, figure, modules, exit (see DESIGN.md and the reader for the fields).
Figures the shim keeps go to ``$VESTIGE_LIVE/figures/<pid>-<n>.png`` and ``.svg``.

Decisions and measured behaviour
--------------------------------
* sys.argv: already set when sitecustomize runs on 3.8 .. 3.13 (checked 3.8.18, 3.9.18,
  3.10.13, 3.11.7, 3.12.1, 3.13.0), so ``hello`` carries it (plus ``orig_argv`` on 3.10+).
  For ``-m mod`` / ``-c`` it is ``['-m', ...]`` / ``['-c', ...]`` at that time (runpy fixes
  argv[0] later), so the ``exit`` event repeats ``argv`` when it changed since ``hello``.
  sys.path at that time does not contain the script directory yet.
* io.open_code: with no open_code hook installed it raises the same ``open`` audit event as
  io.open, with identical arguments ``(path, 'r', O_RDONLY|O_CLOEXEC)``: imports cannot be
  told from reads by their arguments. So a read of a ``*.py``/``*.pyw`` file whose nearest
  Python caller is the import system (``<frozen importlib._bootstrap_external>``,
  zipimport, runpy, tokenize/linecache for tracebacks; their ``.py`` twins when frozen
  modules are off) or that has no Python caller at all (the interpreter opening the main
  script) is not an input: project code is reported by the ``modules`` event instead. The
  frame is only inspected for ``.py`` reads that survived the other filters, so it is cheap.
  Other files read through ``loader.get_data`` (``pkgutil.get_data``) are still inputs.
* Ignored paths: VESTIGE_STORE, VESTIGE_LIVE (journals), this directory, /dev /proc /sys,
  ``*.pyc`` and anything in a ``__pycache__`` (importlib writes ``x.pyc.<id>`` then renames
  it), any ``site-packages``/``dist-packages`` component, and sys.prefix,
  base_prefix, exec_prefix, base_exec_prefix (never ``/``). When VESTIGE_ROOT lies inside
  one of those prefixes (a project under /usr/src with a system Python), paths inside
  VESTIGE_ROOT are not ignored because of that prefix. Directories opened for reading are
  ignored. Paths are made absolute (cwd at that moment, or /proc/self/fd/<dir_fd> for the
  rename/remove events which carry dir_fd) and normalised, not resolved through symlinks.
  ``os.open(..., dir_fd=)`` does not pass dir_fd to the audit event: such relative paths are
  resolved against the cwd (wrong, rare: shutil.rmtree's internals).
* A read's ``st`` is [size, mtime_ns, ino, dev, ctime_ns] when the file is first read (the
  seal tells a file the run made or changed before reading it by that ctime); a read
  whose stat fails (file absent) is still recorded, with ``"st": null``.
* Spawns: subprocess.Popen, os.system, os.exec, os.posix_spawn, os.spawn. On 3.13
  subprocess may also use os.posix_spawn for the same child: a posix_spawn whose argv
  equals the preceding Popen's is not recorded twice.
* Fork: os.register_at_fork(after_in_child=...) resets the pid and seen-set; the child's
  own journal is opened, and its hello (ppid set, ``t`` = fork time) written, at its first
  event, so a fork that only execs (subprocess with preexec_fn runs at-fork callbacks)
  leaves nothing. Forked multiprocessing workers end with os._exit, which skips atexit, so
  in forked children only, os._exit is wrapped to write ``modules``/``exit`` first. A fork
  from C (no Python callbacks) is noticed by a getpid() check on each interesting event.
  Spawn/forkserver children are new interpreters and load the shim through PYTHONPATH.
* The journal directory: VESTIGE_LIVE must exist (the runner makes it); the shim only
  creates ``events/`` in it. A missing VESTIGE_LIVE (e.g. a daemon outliving its run)
  disables capture with the one-line warning rather than recreating the tree.
* The journal fd is checked with fstat before each write (one syscall per recorded event):
  a program that closes all its fds (daemonising) and reuses the number never gets
  journal lines written into its own file; the journal is reopened instead.
* ``hello`` also carries ``run`` (VESTIGE_RUN_ID) and, on 3.10+, ``orig_argv``.
* params: argparse.ArgumentParser.parse_known_args and parse_known_intermixed_args (the
  outermost call per thread: subparsers and 3.8-3.12 intermixed parsing nest calls) record
  after a successful parse; click.core.Command.invoke records ctx.params before running the
  command. The patches are installed by a sys.meta_path finder that wraps the real loader's
  exec_module when ``argparse`` / ``click.core`` are imported (module.__loader__ and
  __spec__.loader are restored to the real loader), or at once if they already are.
* Figures (matplotlib 3.11.2 checked; none of this is installed when VESTIGE_FIGURES=0):
  the finder also watches ``matplotlib.figure`` and ``matplotlib.pyplot``.
  ``Figure.savefig`` is wrapped: the original runs first (its exceptions propagate
  untouched), then a ``savefig`` event names the file matplotlib wrote, which is not always
  the name given. print_figure appends "." + ``canvas.get_default_filetype()``
  (rcParams["savefig.format"]) only when no ``format`` was passed and a str (or str
  path-like) name has no extension (``"fig."`` becomes ``fig.png``); with ``format=`` the
  name is used as given (``savefig("acc", format="pdf")`` writes ``acc``, not ``acc.pdf``),
  and so is a bytes name. A file object gives its str ``.name``; else ``path`` is null
  (BytesIO, PdfPages).
  ``fig.stale`` cannot tell which figures are on disk unchanged: it is True right after
  every savefig (Agg, svg, pdf; tight bbox, transparent, dpi=..., constrained layout all
  checked), since print_figure sets and restores the layout engine (and dpi and colours
  when given) through setters that mark the figure stale, and every draw marks ticks and
  axes stale while it runs. So ``Figure.stale``'s setter is wrapped to forget the figure
  (stale=True reaches the figure on every artist change, already stale or not; animated
  artists excepted), ``Figure.draw`` puts back the mark a draw removed, and a savefig to a
  path or a keep sets the mark (id -> weakref, dropped when the figure dies). A savefig
  without a path does not count: those bytes are no file of the run. Cost ~75 ns per
  artist change (40k property sets: 70 -> 73 ms).
  pyplot: an atexit handler is registered when it is imported. atexit is LIFO and
  ``Gcf.destroy_all`` was registered before (by ``_pylab_helpers``, which pyplot imports),
  so ours runs while the figures still exist, and before our modules/exit events.
  ``pyplot.show`` first keeps the open figures when the backend is non-interactive:
  ``backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)`` on 3.9+ (agg, cairo,
  pdf, pgf, ps, svg, template), ``rcsetup.non_interactive_bk`` before, that list as the
  fallback; the backend is read without resolving an automatic one. Keeping renders PNG at
  the figure's own dpi and SVG through the original savefig (no savefig event), writes
  them (temp file + rename) and emits ``figure`` (why "show" or "exit"); empty figures (no
  axes, no artists) and figures on disk unchanged are skipped. A forked child counts the
  figures open at the fork as on disk (the parent keeps them); its os._exit path keeps
  none. A rendering or write failure disables capture as below; at exit the modules/exit
  events are written first. Not covered: a ``show`` imported by name before the shim was
  installed (in-process API), GUI and inline backends' show.
  ``python -c "import matplotlib.pyplot"`` (median of 21-31 runs, loaded 2-core machine):
  the import itself 361 vs 364 ms with figures off/on, process exit 79.1 vs 79.0 ms; whole
  process 442-515 vs 451-526 ms across runs, i.e. within noise. Measured in process, the
  two patches cost 31 us and the exit handler with no open figure 19 us.
* Failures: any exception inside the shim disables capture in that process, after one line
  ``vestige: capture disabled in this process: <reason>`` on stderr. A per-event OSError
  while normalising a path (cwd deleted) only drops that event. KeyboardInterrupt raised
  by a signal while the hook runs is not swallowed (Ctrl-C must keep working).
* Speed: JSON strings are written with a pure-Python fast path (printable ASCII without
  quote/backslash), falling back to ``_json.encode_basestring_ascii`` (loaded lazily);
  ``json`` is imported only to write params. The audit hook returns after one dict
  membership test for uninteresting events.

  Measured on this machine, median wall time of 300 runs of ``python -c pass`` each, .pyc
  files present (see sitecustomize.py for PYTHONDONTWRITEBYTECODE):

  ===============  =======  ============  =============
  interpreter      plain    shim, no env  shim, capture
  ===============  =======  ============  =============
  3.11.7 (venv)    12.0 ms  12.7 ms       13.2 ms
  3.8.18           12.6 ms  13.1 ms       13.9 ms
  3.12.1           13.0 ms  13.8 ms       14.7 ms
  3.13.0           14.6 ms  15.3 ms       16.2 ms
  ===============  =======  ============  =============

  i.e. +0.5..0.8 ms without VESTIGE_* variables, +1.2..1.6 ms capturing (start-up plus
  the hello/modules/exit events). ``python -X importtime`` (3.11): sitecustomize 0.75 ms
  cumulative with capture (_vestige_shim 0.5 ms of it), 0.54 ms without the variables.
  Without .pyc files (first run under PYTHONDONTWRITEBYTECODE) compiling costs ~7 ms.
"""

import os
import sys
from _thread import get_ident as _get_ident

_env = os.environ
_RUN_ID = _env.get("VESTIGE_RUN_ID")
_LIVE_ENV = _env.get("VESTIGE_LIVE")

_H = {}  # audit event name -> handler; cleared to disable capture
_SEEN = set()
_CODE = set()  # .py files read by the import system / interpreter (see _on_open)
_STATE = {
    "pid": 0,
    "fd_pid": -1,
    "fd": -1,
    "fd_id": None,
    "warned": False,
    "exited": False,
    "argv": None,
}
_LAST_POPEN = [None]
# A file this process read, then opens for writing, is copied first (up to this size) so
# the run's input is kept as it was read; see _precopy.
try:
    _PRECOPY_MAX = int(_env.get("VESTIGE_PRECOPY_MAX") or 64 * 1024 * 1024)
except ValueError:
    _PRECOPY_MAX = 64 * 1024 * 1024
_PRE = [0]
_enc_slow = None
_SEP = os.sep
_getpid = os.getpid
_normpath = os.path.normpath
_stat = os.stat
_write = os.write

_WMASK = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Code objects of the import system (frozen, or the .py files with -X frozen_modules=off)
_IMPORTER_FROZEN = frozenset(
    (
        "<frozen importlib._bootstrap_external>",
        "<frozen importlib._bootstrap>",
        "<frozen zipimport>",
        "<frozen runpy>",
    )
)
_IMPORTER_FILES = (
    "/importlib/_bootstrap_external.py",
    "/importlib/_bootstrap.py",
    "/zipimport.py",
    "/runpy.py",
    "/tokenize.py",
    "/linecache.py",
)
_MYFILE = ""  # set below to this module's code filename
_PARSE_SKIP = ("argparse", "click", "typer", "_vestige_shim")


# ---------------------------------------------------------------------------- output


def _js(s):
    """JSON string literal (ASCII) for s."""
    if type(s) is not str:
        s = str(s)
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    global _enc_slow
    if _enc_slow is None:
        try:
            from _json import encode_basestring_ascii as enc
        except ImportError:  # pragma: no cover - no C accelerator
            from json.encoder import py_encode_basestring_ascii as enc
        _enc_slow = enc
    return _enc_slow(s)


def _jl(items):
    return "[" + ",".join([_js(x) for x in items]) + "]"


def _warn(reason):
    if _STATE["warned"]:
        return
    _STATE["warned"] = True
    try:
        msg = "vestige: capture disabled in this process: %s\n" % (
            str(reason).replace("\n", " ").replace("\r", " "),
        )
        err = sys.stderr
        if err is not None:
            err.write(msg)
            err.flush()
    except Exception:
        pass


def _disable(exc):
    _H.clear()
    if isinstance(exc, BaseException):
        reason = "%s: %s" % (type(exc).__name__, exc)
    else:
        reason = exc
    _warn(reason)


def _open_journal():
    _STATE["fd_pid"] = _STATE["pid"]
    d = _LIVE + _SEP + "events"
    try:
        os.mkdir(d)
    except FileExistsError:
        pass
    fd = os.open(
        d + _SEP + "%d.jsonl" % _STATE["pid"],
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
        0o666,
    )
    st = os.fstat(fd)
    _STATE["fd"] = fd
    _STATE["fd_id"] = (st.st_dev, st.st_ino)


def _fd_is_ours(fd):
    """False when the program closed our fd (daemonising closerange) and maybe reused it."""
    if fd < 0:
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == _STATE["fd_id"]


def _emit(line):
    if _STATE["fd_pid"] != _STATE["pid"]:
        _reopen_journal()  # first write in a forked child
    elif not _fd_is_ours(_STATE["fd"]):
        _open_journal()  # never write into, nor close, an fd that is now the program's
    data = (line + "\n").encode("utf-8", "surrogateescape")
    n = _write(_STATE["fd"], data)
    if n != len(data):
        raise OSError("short write to the journal (disk full?)")


def _hello(t=None):
    import time

    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    argv = list(getattr(sys, "argv", None) or [])
    _STATE["argv"] = argv
    vi = sys.version_info
    parts = [
        '{"e":"hello","pid":%d,"ppid":%d,"t":%r' % (_STATE["pid"], os.getppid(), t or time.time()),
        ',"run":' + _js(_RUN_ID),
        ',"exe":' + _js(sys.executable or ""),
        ',"version":"%d.%d.%d"' % (vi[0], vi[1], vi[2]),
        ',"impl":' + _js(sys.implementation.name),
        ',"argv":' + _jl(argv),
    ]
    orig = getattr(sys, "orig_argv", None)
    if orig is not None:
        parts.append(',"orig_argv":' + _jl(orig))
    parts.append(',"prefix":' + _js(sys.prefix))
    parts.append(',"base_prefix":' + _js(sys.base_prefix))
    parts.append(',"path":' + _jl(sys.path))
    parts.append(',"cwd":' + ("null" if cwd is None else _js(cwd)))
    parts.append("}")
    _emit("".join(parts))


# ---------------------------------------------------------------------------- paths


def _to_str(path):
    t = type(path)
    if t is str:
        return path
    if t is bytes:
        return os.fsdecode(path)
    if t is int or path is None:
        return None
    if isinstance(path, (str, bytes)):
        return os.fsdecode(path)
    if not hasattr(path, "__fspath__"):
        return None
    p = os.fspath(path)
    return os.fsdecode(p) if isinstance(p, bytes) else p


def _abs(path, dir_fd=None):
    """Absolute normalised str path, or None (fds, unknown types, unknown cwd)."""
    p = _to_str(path)
    if not p:
        return None
    if p[0] != _SEP:
        if type(dir_fd) is int and dir_fd >= 0:
            try:
                base = os.readlink("/proc/self/fd/%d" % dir_fd)
            except OSError:
                base = os.getcwd()
        else:
            base = os.getcwd()
        p = base + _SEP + p
    return _normpath(p)


def _ignored(p):
    if p.startswith(_SKIP) or p in _SKIP_EXACT:
        return True
    if _OUTER and p.startswith(_OUTER) and not (p.startswith(_ROOT_SEP) or p == _ROOT):
        return True
    if "-packages" in p:
        for comp in p.split(_SEP):
            if comp == "site-packages" or comp == "dist-packages":
                return True
    return p.endswith(".pyc") or "/__pycache__/" in p  # also importlib's .pyc.<id> temp files


def _caller_is_importer():
    """True when the nearest non-shim Python frame is the import system (or absent)."""
    try:
        f = sys._getframe(1)
    except ValueError:
        return True
    while f is not None and f.f_code.co_filename == _MYFILE:
        f = f.f_back
    if f is None:
        return True
    name = f.f_code.co_filename
    if name in _IMPORTER_FROZEN:
        return True
    return name.endswith(_IMPORTER_FILES) and not name.startswith(_ROOT_SEP)


# ---------------------------------------------------------------------------- audit


def _on_open(args):
    path = args[0]
    if type(path) is str and path.startswith(_SKIP) and "/.." not in path:
        return
    mode = args[1] if len(args) > 1 else None
    if mode is None:
        flags = args[2] if len(args) > 2 else 0
        write = bool(flags & _WMASK) if type(flags) is int else False
    elif mode == "r" or mode == "rb":
        write = False
    else:
        write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
    try:
        p = _abs(path)
    except Exception:  # cwd gone, odd __fspath__: drop this event only
        return
    if p is None:
        return
    key = (p, write)
    if key in _SEEN:
        return
    if _ignored(p):
        _SEEN.add(key)
        return
    if write:
        _SEEN.add(key)
        if (p, False) in _SEEN:
            _precopy(p)
        _emit('{"e":"open","pid":%d,"path":%s,"mode":"w","st":null}' % (_STATE["pid"], _js(p)))
        return
    if (p.endswith(".py") or p.endswith(".pyw")) and _caller_is_importer():
        _CODE.add(p)  # reported with the modules (the main script is only seen here)
        return
    _SEEN.add(key)
    try:
        st = _stat(p)
    except (OSError, ValueError):
        sts = "null"
    else:
        if (st.st_mode & 0o170000) == 0o040000:  # a directory
            return
        sts = "[%d,%d,%d,%d,%d]" % (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev,
                                    st.st_ctime_ns)
    _emit('{"e":"open","pid":%d,"path":%s,"mode":"r","st":%s}' % (_STATE["pid"], _js(p), sts))


def _precopy(p):
    """`p` was read by this process and is about to be opened for writing (the audit hook
    runs before the open truncates it): copy its bytes to $VESTIGE_LIVE/pre/ so the run's
    input is kept as it was read. Costs nothing unless a run rewrites what it read."""
    try:
        st = _stat(p)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_size > _PRECOPY_MAX:
            return
        d = _LIVE + _SEP + "pre"
        try:
            os.mkdir(d)
        except OSError:
            pass
        _PRE[0] += 1
        name = "%d-%d" % (_STATE["pid"], _PRE[0])
        src = os.open(p, os.O_RDONLY)
        try:
            dst = os.open(d + _SEP + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                while True:
                    chunk = os.read(src, 1 << 20)
                    if not chunk:
                        break
                    while chunk:
                        chunk = chunk[_write(dst, chunk):]
            finally:
                os.close(dst)
        finally:
            os.close(src)
        sts = "[%d,%d,%d,%d]" % (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        _emit('{"e":"pre","pid":%d,"path":%s,"st":%s,"copy":%s}'
              % (_STATE["pid"], _js(p), sts, _js(name)))
    except Exception:
        pass


def _on_rename(args):
    try:
        src = _abs(args[0], args[2] if len(args) > 2 else None)
        dst = _abs(args[1], args[3] if len(args) > 3 else None)
    except Exception:
        return
    if src is None or dst is None or (_ignored(src) and _ignored(dst)):
        return
    _SEEN.discard((dst, False))
    _emit('{"e":"rename","pid":%d,"src":%s,"dst":%s}' % (_STATE["pid"], _js(src), _js(dst)))


def _on_remove(args):
    try:
        p = _abs(args[0], args[1] if len(args) > 1 else None)
    except Exception:
        return
    if p is None or _ignored(p):
        return
    _SEEN.discard((p, True))
    _SEEN.discard((p, False))
    _emit('{"e":"remove","pid":%d,"path":%s}' % (_STATE["pid"], _js(p)))


def _argstr(a):
    try:
        s = _to_str(a)
    except Exception:
        s = None
    return str(a) if s is None else s


def _arglist(args):
    if args is None:
        return []
    if isinstance(args, (str, bytes)) or hasattr(args, "__fspath__"):
        return [_argstr(args)]
    try:
        return [_argstr(a) for a in args]
    except TypeError:
        return [_argstr(args)]


def _spawn(exe, argv):
    _emit('{"e":"spawn","pid":%d,"exe":%s,"argv":%s}' % (_STATE["pid"], _js(exe), _jl(argv)))


def _on_popen(args):
    argv = _arglist(args[1] if len(args) > 1 else None)
    exe = _argstr(args[0]) if args and args[0] is not None else (argv[0] if argv else "")
    _LAST_POPEN[0] = argv
    _spawn(exe, argv)


def _on_posix_spawn(args):
    argv = _arglist(args[1] if len(args) > 1 else None)
    if _LAST_POPEN[0] is not None and _LAST_POPEN[0] == argv:
        _LAST_POPEN[0] = None
        return
    _spawn(_argstr(args[0]), argv)


def _on_exec(args):
    _spawn(_argstr(args[0]), _arglist(args[1] if len(args) > 1 else None))


def _on_spawnv(args):  # os.spawn: (mode, path, args, env)
    _spawn(_argstr(args[1]), _arglist(args[2] if len(args) > 2 else None))


def _on_system(args):
    cmd = _argstr(args[0]) if args else ""
    _spawn("/bin/sh", ["/bin/sh", "-c", cmd])


def _on_truncate(args):
    _on_open((args[0], None, os.O_WRONLY))


def _hook(event, args, _h=_H):
    if event in _h:
        if _IGNORED_THREADS and _get_ident() in _IGNORED_THREADS:
            return  # vestige's own work in this process (an in-process run's capture)
        try:
            if _getpid() != _STATE["pid"]:
                _child_reset()  # forked from C: the at-fork callbacks did not run
            _h[event](args)
        except Exception as exc:
            try:
                _disable(exc)
            except Exception:
                _h.clear()


# ---------------------------------------------------------------------------- exit


def _module_files():
    files = []
    mtype = type(sys)
    cwd0 = _START_CWD
    for mod in list(sys.modules.values()):
        if type(mod) is not mtype and not isinstance(mod, mtype):
            continue
        try:
            f = object.__getattribute__(mod, "__dict__").get("__file__")
        except Exception:
            continue
        if type(f) is not str or not f:
            continue
        if f[0] != _SEP:
            if cwd0 is None:
                continue
            f = cwd0 + _SEP + f
        f = _normpath(f)
        if not _ignored_module(f):
            files.append(f)
    files.extend(_CODE)
    return sorted(set(files))


def _ignored_module(f):
    if f.startswith(_SKIP) or (_OUTER and f.startswith(_OUTER) and not f.startswith(_ROOT_SEP)):
        return True
    if "-packages" in f:
        for comp in f.split(_SEP):
            if comp == "site-packages" or comp == "dist-packages":
                return True
    return False


def _finish():
    """atexit (and os._exit in forked children): the modules and exit events."""
    if not _H:
        return
    try:
        import time

        if _getpid() != _STATE["pid"]:
            _child_reset()  # forked from C
        if _STATE["exited"]:
            return
        _STATE["exited"] = True
        _emit('{"e":"modules","pid":%d,"files":%s}' % (_STATE["pid"], _jl(_module_files())))
        line = '{"e":"exit","pid":%d,"t":%r' % (_STATE["pid"], time.time())
        argv = list(getattr(sys, "argv", None) or [])
        if argv != _STATE["argv"]:
            line += ',"argv":' + _jl(argv)
        _emit(line + "}")
    except Exception as exc:
        _disable(exc)


_real_exit = os._exit


def _exit_after_fork(*args, **kwargs):
    try:
        _finish()
    except BaseException:
        pass
    return _real_exit(*args, **kwargs)


def _child_reset():
    """Now in a forked child: forget the parent's seen-set; the journal is reopened lazily
    by _emit, so a fork that immediately execs (subprocess with preexec_fn runs the at-fork
    callbacks too) leaves no trace."""
    import time

    _STATE["pid"] = _getpid()
    _STATE["fork_t"] = time.time()
    _STATE["exited"] = False
    _SEEN.clear()
    _LAST_POPEN[0] = None
    if _FIGURES:
        _fig_after_fork()


def _reopen_journal():
    fd = _STATE["fd"]
    _STATE["fd"] = -1
    if _fd_is_ours(fd):
        try:
            os.close(fd)  # the parent's journal, inherited
        except OSError:
            pass
    _open_journal()
    _hello(_STATE.pop("fork_t", None))


def _after_fork_child():
    if not _H:
        return
    try:
        _child_reset()
        if os._exit is _real_exit:
            os._exit = _exit_after_fork
    except Exception as exc:
        _disable(exc)


# ---------------------------------------------------------------------------- params


def _safe(v, depth=0):
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    if depth > 20:
        return _short_repr(v)
    if t is list or t is tuple or t is set or t is frozenset:
        return [_safe(x, depth + 1) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            out[k if type(k) is str else _short_repr(k)] = _safe(x, depth + 1)
        return out
    if hasattr(t, "__fspath__"):
        try:
            p = os.fspath(v)
            return os.fsdecode(p) if isinstance(p, bytes) else p
        except Exception:
            pass
    return _short_repr(v)


def _short_repr(v):
    try:
        r = repr(v)
    except Exception:
        r = "<unrepresentable %s>" % type(v).__name__
    return r if len(r) <= 1000 else r[:1000] + "..."


def _caller():
    try:
        f = sys._getframe(1)
    except ValueError:
        return None
    while f is not None:
        name = f.f_globals.get("__name__")
        if not isinstance(name, str):
            return None
        if name.partition(".")[0] not in _PARSE_SKIP:
            return name
        f = f.f_back
    return None


#: Command-line parsers of these packages parse their own options (IPython's magics,
#: `%matplotlib inline`; the kernel's launcher; Hydra's `--multirun`, `--cfg` and raw
#: overrides, whose app's params are its composed config: capture/hydra.py), never the
#: user's params.
_TOOL_PARSERS = ("IPython", "ipykernel", "matplotlib_inline", "jupyter_client", "traitlets",
                 "hydra")  # fmt: skip


def _emit_params(source, values, command=None):
    import json

    caller = _caller()
    if isinstance(caller, str) and caller.partition(".")[0] in _TOOL_PARSERS:
        return
    d = {"e": "params", "pid": _STATE["pid"], "source": source, "caller": caller}
    if command is not None:
        d["command"] = _safe(command)
    d["values"] = _safe(values)
    _emit(json.dumps(d, ensure_ascii=True, separators=(",", ":"), allow_nan=False))


def _copy_meta(wrapper, orig):
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attr, getattr(orig, attr))
        except Exception:
            pass
    wrapper.__wrapped__ = orig
    wrapper._vestige_wrapped = True
    return wrapper


_DEPTH = {}


def _wrap_parse(orig):
    import _thread

    get_ident = _thread.get_ident

    def wrapper(self, *args, **kwargs):
        tid = get_ident()
        depth = _DEPTH.get(tid, 0)
        _DEPTH[tid] = depth + 1
        try:
            result = orig(self, *args, **kwargs)
        finally:
            if depth:
                _DEPTH[tid] = depth
            else:
                _DEPTH.pop(tid, None)
        if depth == 0 and _H:
            try:
                ns = result[0] if type(result) is tuple else result
                values = getattr(ns, "__dict__", None)
                if isinstance(values, dict):
                    _emit_params("argparse", dict(values))
            except Exception as exc:
                _disable(exc)
        return result

    return _copy_meta(wrapper, orig)


def _wrap_invoke(orig):
    def invoke(self, *args, **kwargs):
        if _H:
            try:
                ctx = args[0] if args else kwargs.get("ctx")
                _emit_params("click", dict(getattr(ctx, "params", None) or {}), ctx.info_name or "")
            except Exception as exc:
                _disable(exc)
        return orig(self, *args, **kwargs)

    return _copy_meta(invoke, orig)


def _patch_method(cls, name, wrap):
    orig = cls.__dict__.get(name)
    if orig is None or getattr(orig, "_vestige_wrapped", False):
        return
    setattr(cls, name, wrap(orig))


# ---------------------------------------------------------------------------- figures

# id(fig) -> weakref of a figure whose current state is already on disk (saved by the
# program to a path, or kept by us) and unchanged since: see _wrap_stale.
_FIG_CLEAN = {}
_FIG = {"savefig": None, "count": None, "atexit": False, "nonint": None}
_NONINTERACTIVE = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")


def _fig_clean(fig):
    ref = _FIG_CLEAN.get(id(fig))
    return ref is not None and ref() is fig


def _fig_mark_clean(fig):
    import weakref

    key = id(fig)

    def gone(ref, key=key):
        if _FIG_CLEAN.get(key) is ref:
            del _FIG_CLEAN[key]

    _FIG_CLEAN[key] = weakref.ref(fig, gone)


def _fig_info(fig):
    """The figure's ``{"num","label","title"}`` as JSON; a field that cannot be read is
    null / "" rather than a failure."""
    try:
        num = fig.number  # AttributeError for a figure pyplot does not manage (3.10+)
    except Exception:
        num = None
    try:
        label = fig.get_label() or ""
    except Exception:
        label = ""
    title = ""
    try:
        sup = fig.get_suptitle() if hasattr(fig, "get_suptitle") else None
        if sup is None:
            sup = getattr(fig, "_suptitle", None)
            sup = sup.get_text() if sup is not None else ""
        title = sup or ""
        if not title:
            for ax in fig.axes:
                for loc in ("center", "left", "right"):
                    title = ax.get_title(loc)
                    if title:
                        break
                if title:
                    break
    except Exception:
        pass
    return '{"num":%s,"label":%s,"title":%s}' % (
        "%d" % num if type(num) is int else "null",
        _js(label),
        _js(title or ""),
    )


def _savefig_path(fig, fname, fmt):
    """The file matplotlib wrote (absolute, normalised), or None. Mirrors
    FigureCanvasBase.print_figure: without a ``format`` a str name without extension gets
    "." + the canvas's default filetype (rcParams["savefig.format"]); with a ``format``,
    or for a bytes name, the name is used as given. A file object: its str/bytes .name."""
    if hasattr(fname, "__fspath__"):
        fname = os.fspath(fname)
    elif not isinstance(fname, (str, bytes)):
        fname = getattr(fname, "name", None)  # an open file; BytesIO has none
        if not isinstance(fname, (str, bytes)):
            return None
        fmt = ""  # a file object's name is never extended
    if fmt is None and isinstance(fname, str) and not os.path.splitext(fname)[1][1:]:
        fname = fname.rstrip(".") + "." + fig.canvas.get_default_filetype()
    try:
        return _abs(fname)
    except OSError:  # cwd gone
        return None


def _on_savefig(fig, fname, fmt):
    import time

    if _getpid() != _STATE["pid"]:
        _child_reset()  # forked from C
    path = _savefig_path(fig, fname, fmt)
    if path is not None:
        _fig_mark_clean(fig)  # on disk now: not kept again at exit unless it changes
    _emit(
        '{"e":"savefig","pid":%d,"t":%r,"path":%s,"format":%s,"figure":%s}'
        % (
            _STATE["pid"],
            time.time(),
            "null" if path is None else _js(path),
            _js(fmt) if isinstance(fmt, str) else "null",
            _fig_info(fig),
        )
    )


def _wrap_savefig(orig):
    _FIG["savefig"] = orig

    def savefig(self, *args, **kwargs):
        result = orig(self, *args, **kwargs)  # the program's errors propagate unchanged
        if _H:
            try:
                fname = args[0] if args else kwargs.get("fname")
                _on_savefig(self, fname, kwargs.get("format"))
            except Exception as exc:
                _disable(exc)
        return result

    return _copy_meta(savefig, orig)


class _StaleProperty(property):
    """Figure.stale with a setter that also forgets that the figure is on disk."""


def _wrap_stale(prop):
    fset = prop.fset

    def set_stale(self, val):
        if val and _FIG_CLEAN:
            _FIG_CLEAN.pop(id(self), None)
        fset(self, val)

    return _StaleProperty(prop.fget, set_stale, prop.fdel, prop.__doc__)


def _wrap_draw(orig):
    """A draw is no change: artists mark themselves stale while drawing (tick positions,
    apply_aspect), so a figure on disk before a draw still is after it."""

    def draw(self, *args, **kwargs):
        ref = _FIG_CLEAN.get(id(self)) if _FIG_CLEAN else None
        try:
            return orig(self, *args, **kwargs)
        finally:
            if ref is not None and ref() is self:
                _FIG_CLEAN[id(self)] = ref

    try:
        draw.__dict__.update(orig.__dict__)  # _supports_rasterization and the like
    except Exception:
        pass
    return _copy_meta(draw, orig)


def _fig_empty(fig):
    if fig.axes:
        return False
    patch = getattr(fig, "patch", None)
    return all(child is patch for child in fig.get_children())


def _write_file(path, data):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            n = _write(fd, view)
            if n <= 0:
                raise OSError("short write (disk full?)")
            view = view[n:]
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.rename(tmp, path)


def _keep_figure(fig, why):
    """Write fig as PNG (its own dpi) and SVG to $VESTIGE_LIVE/figures/ and emit a figure
    event, unless it is empty or already on disk unchanged."""
    import io
    import itertools
    import time

    if _fig_clean(fig) or _fig_empty(fig):
        return
    save = _FIG["savefig"]  # the original: no savefig event
    if save is None:
        save = type(fig).savefig
        if getattr(save, "_vestige_wrapped", False):
            save = save.__wrapped__
    blobs = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        # the same figure gives the same bytes: no date in the metadata, and SVG's ids
        # from a fixed salt, not random (a rerun's figures would "differ" otherwise)
        with sys.modules["matplotlib"].rc_context({"svg.hashsalt": "vestige"}):
            save(fig, buf, format=fmt, dpi="figure", metadata={"Date": None} if fmt == "svg"
                 else None)
        blobs.append((fmt, buf.getvalue()))
    d = _LIVE + _SEP + "figures"
    try:
        os.mkdir(d)
    except FileExistsError:
        pass
    if _FIG["count"] is None:
        _FIG["count"] = itertools.count(1)
    n = next(_FIG["count"])
    names = []
    for fmt, data in blobs:
        name = "%d-%d.%s" % (_STATE["pid"], n, fmt)
        _write_file(d + _SEP + name, data)
        names.append(name)
    _fig_mark_clean(fig)
    _emit(
        '{"e":"figure","pid":%d,"t":%r,"why":%s,"figure":%s,"files":%s}'
        % (_STATE["pid"], time.time(), _js(why), _fig_info(fig), _jl(names))
    )


def _open_figures():
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    gcf = getattr(helpers, "Gcf", None)
    if gcf is None:
        return []
    managers = list(gcf.get_all_fig_managers())
    try:
        managers.sort(key=lambda m: m.num)
    except Exception:
        pass
    figs = []
    for manager in managers:
        fig = getattr(getattr(manager, "canvas", None), "figure", None)
        if fig is not None:
            figs.append(fig)
    return figs


def _keep_open_figures(why):
    if _getpid() != _STATE["pid"]:
        _child_reset()  # forked from C: the open figures are the parent's
    for fig in _open_figures():
        if not _H:
            return
        _keep_figure(fig, why)


def _keep_at_exit():
    """atexit, registered when pyplot is imported: after pyplot's Gcf.destroy_all was
    registered, so it runs first (LIFO) while the figures still exist."""
    if not _H or _STATE["exited"]:
        return
    try:
        _keep_open_figures("exit")
    except Exception as exc:
        try:
            _finish()  # the modules and exit events still go out before capture stops
        except Exception:
            pass
        _disable(exc)


def _backend_name(mpl):
    """The current backend's name, lower-cased, without resolving an automatic one (None
    then: pyplot resolves the backend before it makes its first figure)."""
    try:
        name = mpl.get_backend(auto_select=False)  # 3.10+
    except TypeError:
        get = getattr(mpl.rcParams, "_get", None)
        name = get("backend") if get is not None else dict.get(mpl.rcParams, "backend")
    return name.lower() if isinstance(name, str) else None


def _non_interactive():
    names = _FIG["nonint"]
    if names is None:
        try:
            from matplotlib.backends import BackendFilter, backend_registry  # 3.9+

            names = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
        except ImportError:
            from matplotlib import rcsetup

            names = getattr(rcsetup, "non_interactive_bk", None) or _NONINTERACTIVE
        names = _FIG["nonint"] = frozenset(n.lower() for n in names)
    name = _backend_name(sys.modules["matplotlib"])
    return name is not None and name in names


def _wrap_show(orig):
    def show(*args, **kwargs):
        if _H:
            try:
                if _non_interactive():
                    _keep_open_figures("show")
            except Exception as exc:
                _disable(exc)
        return orig(*args, **kwargs)

    return _copy_meta(show, orig)


def _fig_after_fork():
    """In a forked child: the figures it inherited are the parent's to keep; they count as
    on disk unless the child changes them."""
    _FIG["count"] = None
    for fig in _open_figures():
        _fig_mark_clean(fig)


def _patch_figure(module):
    cls = getattr(module, "Figure", None)
    if cls is None:
        return
    _patch_method(cls, "savefig", _wrap_savefig)
    _patch_method(cls, "draw", _wrap_draw)
    saved = cls.__dict__.get("savefig")
    if getattr(saved, "_vestige_wrapped", False):
        _FIG["savefig"] = saved.__wrapped__
    prop = getattr(cls, "stale", None)
    if isinstance(prop, property) and not isinstance(prop, _StaleProperty) and prop.fset:
        cls.stale = _wrap_stale(prop)


def _patch_pyplot(module):
    if not _FIG["atexit"]:
        import atexit

        _FIG["atexit"] = True
        atexit.register(_keep_at_exit)
    orig = getattr(module, "show", None)
    if orig is not None and not getattr(orig, "_vestige_wrapped", False):
        module.show = _wrap_show(orig)


def _patch_module(name, module):
    try:
        if name == "argparse":
            cls = getattr(module, "ArgumentParser", None)
            if cls is not None:
                _patch_method(cls, "parse_known_args", _wrap_parse)
                _patch_method(cls, "parse_known_intermixed_args", _wrap_parse)
        elif name == "click.core":
            cls = getattr(module, "Command", None)
            if cls is not None:
                _patch_method(cls, "invoke", _wrap_invoke)
        elif name == "matplotlib.figure":
            _patch_figure(module)
        elif name == "matplotlib.pyplot":
            _patch_pyplot(module)
    except Exception as exc:
        _disable(exc)


class _Loader(object):
    """Delegating loader: runs the real exec_module, then patches the module."""

    def __init__(self, loader, name):
        self._vestige_loader = loader
        self._vestige_name = name

    def create_module(self, spec):
        create = getattr(self._vestige_loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module):
        real = self._vestige_loader
        try:
            module.__loader__ = real
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = real
        except Exception:
            pass
        real.exec_module(module)
        _patch_module(self._vestige_name, module)

    def __getattr__(self, attr):
        return getattr(self.__dict__["_vestige_loader"], attr)


class _Finder(object):
    """sys.meta_path entry that only acts on the modules in _WATCH."""

    _busy = set()

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in _WATCH or name in cls._busy or not _H:
            return None
        cls._busy.add(name)
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is cls:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            spec.loader = _Loader(spec.loader, name)
            return spec
        except Exception:
            return None
        finally:
            cls._busy.discard(name)

    @classmethod
    def invalidate_caches(cls):
        pass


# VESTIGE_FIGURES=0 (config capture.figures = false): matplotlib is left alone entirely.
_FIGURES = _env.get("VESTIGE_FIGURES") != "0"
_WATCH = frozenset(
    ("argparse", "click.core")
    + (("matplotlib.figure", "matplotlib.pyplot") if _FIGURES else ())
)


# ---------------------------------------------------------------------------- start


def _dirs(*paths):
    out = []
    for p in paths:
        if p:
            p = _normpath(os.path.abspath(p))
            if p != _SEP:
                out.append(p)
    return out


def _configure():
    """Where to journal and which paths to ignore, from the environment (or attach())."""
    global _LIVE, _SKIP, _SKIP_EXACT, _OUTER, _ROOT, _ROOT_SEP, _START_CWD, _MYFILE
    _LIVE = _normpath(os.path.abspath(_LIVE_ENV))
    _STATE["pid"] = _getpid()
    _MYFILE = _install.__code__.co_filename
    root = _env.get("VESTIGE_ROOT")
    _ROOT = _normpath(os.path.abspath(root)) if root else "\0"
    _ROOT_SEP = _ROOT.rstrip(_SEP) + _SEP
    here = os.path.dirname(os.path.abspath(__file__))
    always = _dirs(_env.get("VESTIGE_STORE"), _LIVE, here, _env.get("VESTIGE_SHIM"))
    package = os.path.dirname(here)
    if os.path.basename(package) == "vestige" and os.path.isfile(package + "/api/log.py"):
        always.append(package)  # vestige's own modules (an editable install) are not the run's
    always += ["/dev", "/proc", "/sys"]
    outer = []
    for prefix in _dirs(sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        if _ROOT.startswith(prefix + _SEP):
            outer.append(prefix)  # the project is inside this prefix
        else:
            always.append(prefix)
    _SKIP = tuple(sorted(set(d + _SEP for d in always)))
    _SKIP_EXACT = frozenset(always)
    _OUTER = tuple(sorted(set(d + _SEP for d in outer)))
    try:
        _START_CWD = os.getcwd()
    except OSError:
        _START_CWD = None


def _handlers():
    return {
        "open": _on_open,
        "os.rename": _on_rename,
        "os.remove": _on_remove,
        "os.truncate": _on_truncate,
        "subprocess.Popen": _on_popen,
        "os.system": _on_system,
        "os.exec": _on_exec,
        "os.posix_spawn": _on_posix_spawn,
        "os.spawn": _on_spawnv,
    }


def _main_script():
    """The file of a running main script, when the shim is loaded after it started (an
    in-process run: the interpreter drops __main__.__file__ when the script ends, before
    the run's modules are reported, and the script's own open was never seen)."""
    try:
        f = getattr(sys.modules.get("__main__"), "__file__", None)
        if type(f) is str and f.endswith(".py"):
            f = _normpath(os.path.abspath(f))
            if not _ignored_module(f):
                _CODE.add(f)
    except Exception:
        pass


def _install():
    _configure()
    _main_script()
    _open_journal()
    _H.update(_handlers())
    _hello()
    _STATE["installed"] = True
    import atexit

    atexit.register(_finish)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_child)
    sys.meta_path.insert(0, _Finder)
    for name in _WATCH:
        mod = sys.modules.get(name)
        if mod is not None:
            _patch_module(name, mod)
    sys.addaudithook(_hook)


# ---------------------------------------------------------------------------- in-process runs
#
# vestige.inprocess records the process that calls the API outside `vestige run`: it
# loads this module in that process (the environment set first, so _install runs), and
# for a later run in the same process calls attach(); detach() ends a run's capture.
# Its own threads (the capture thread hashing the tree) are not the program's reads.

_IGNORED_THREADS = set()


def ignore_thread(ident):
    """Events raised by this thread are vestige's own, not the run's."""
    _IGNORED_THREADS.add(ident)


def attach(live, run_id):
    """Capture into another run's live directory (in-process runs, after a detach)."""
    global _LIVE_ENV, _RUN_ID
    _LIVE_ENV, _RUN_ID = live, run_id
    if not _STATE.get("installed"):
        _install()
        return
    _STATE.update(exited=False, warned=False, fd=-1, fd_pid=-1, fd_id=None)
    _STATE["pid"] = _getpid()
    _SEEN.clear()
    _CODE.clear()
    _configure()
    _main_script()
    _open_journal()
    _H.update(_handlers())
    _hello()


def detach(keep_figures=True):
    """End this process's part in the current run: keep its open figures (as at exit),
    write the modules and exit events, stop capturing, close the journal."""
    try:
        if keep_figures and _H and _FIG.get("atexit"):
            _keep_open_figures("exit")
        _finish()
    except Exception as exc:
        _disable(exc)
    _H.clear()
    fd = _STATE["fd"]
    _STATE["fd"] = -1
    if _fd_is_ours(fd):
        try:
            os.close(fd)
        except OSError:
            pass


def mark_kept(fig):
    """vestige.keep(fig) stored this figure: do not keep it again unless it changes."""
    try:
        _fig_mark_clean(fig)
    except Exception:
        pass


_LIVE = ""
_SKIP = ()
_SKIP_EXACT = frozenset()
_OUTER = ()
_ROOT = "\0"
_ROOT_SEP = "\0"
_START_CWD = None

if _LIVE_ENV and _RUN_ID and hasattr(sys, "addaudithook"):
    try:
        _install()
    except Exception as _exc:
        _disable(_exc)
