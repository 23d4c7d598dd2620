"""The `vestige` command: thin shells over Repo, one module per command.

`vestige run` is parsed without click (measured: importing click costs ~25 ms, and the
run path must add near zero to the user's command); every other command goes through
the click app. Any VestigeError becomes `error: <message>` and its exit code here, and
only here.
"""

from __future__ import annotations

import os  # (loaded by the interpreter's start already)
import sys


def _raw_names() -> None:
    """A file name that is not UTF-8 is held with lone surrogates (surrogateescape): print
    it as its bytes, as `ls` does, rather than fail on it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="surrogateescape")
            except (ValueError, OSError):
                pass


def _bytecode_cache() -> None:
    """With PYTHONDONTWRITEBYTECODE (common in containers), an editable install compiles
    every module of vestige at every start (254 ms measured on a slow machine, where a
    cached start is ~20). Keep vestige's own bytecode outside the source tree instead, in
    the user's cache folder: the setting's purpose (no .pyc beside the sources) holds, and
    the user's own programs, which inherit the variable, are not touched."""
    if not sys.flags.dont_write_bytecode or sys.pycache_prefix is not None:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    sys.pycache_prefix = os.path.join(base, "vestige", "pycache")
    sys.dont_write_bytecode = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m vestige`."""
    _bytecode_cache()
    try:
        return _main(argv)
    except EOFError as e:
        path = _truncated_bytecode(e)
        if path is None:
            raise
        print(f"error: removed a truncated bytecode file of vestige ({path}, written while the"
              " disk was full); run the command again", file=sys.stderr)  # fmt: skip
        return 2


def _truncated_bytecode(error: EOFError) -> str | None:
    """A .pyc written while the disk was full (or past RLIMIT_FSIZE) is cut short, and
    CPython then fails every import of it ("marshal data too short") instead of compiling
    the source again, for good: remove it (and, in vestige's own bytecode cache, every
    other one cut short), and say which it was."""
    tb = error.__traceback__
    path = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "get_code":  # importlib's SourceLoader
            path = tb.tb_frame.f_locals.get("bytecode_path") or path
        tb = tb.tb_next
    if not isinstance(path, str):
        return None
    try:
        os.unlink(path)
    except OSError:
        return None
    prefix = sys.pycache_prefix
    if prefix and path.startswith(prefix + os.sep) and os.sep + "vestige" + os.sep in prefix:
        import marshal

        for top, _dirs, files in os.walk(prefix):
            for name in files:
                try:
                    with open(os.path.join(top, name), "rb") as f:
                        marshal.loads(f.read()[16:])  # (after the 16-byte header)
                except (EOFError, ValueError, TypeError):
                    os.unlink(os.path.join(top, name))
                except OSError:
                    pass
    return path


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from vestige.errors import VestigeError

    try:
        if args and args[0] == "run":
            from vestige.cli._run import fast_run

            code = fast_run(args[1:])
            if code is not None:
                if argv is None:
                    _exit_now(code)
                return code
        _raw_names()
        from vestige.cli._app import app

        return app.main(args, prog_name="vestige", standalone_mode=False) or 0
    except VestigeError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as e:  # click's own usage errors
        import click

        if isinstance(e, click.exceptions.Exit):
            return e.exit_code
        if isinstance(e, click.UsageError):
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            print(f"error: {e.format_message()}{hint}", file=sys.stderr)
            return 2
        if isinstance(e, click.ClickException):
            print(f"error: {e.format_message()}", file=sys.stderr)
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            return 1
        raise


def _exit_now(code: int) -> None:
    """Leave at once after a run is sealed: everything is written and closed, and the
    interpreter's teardown of the ~100 modules the capture loaded costs ~5 ms for
    nothing (measured, docs/benchmarks.md)."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def _silence_stdout() -> None:
    """After a closed pipe (`vestige ls | head`), keep Python from complaining at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
