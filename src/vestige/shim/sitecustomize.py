"""vestige capture shim (loader part).

The vestige runner puts this directory on PYTHONPATH, so every Python process the
user's command starts imports this module at start-up (through ``site``). It:

1. on Python >= 3.8 (``sys.addaudithook`` present), imports ``_vestige_shim``, which
   installs the capture (audit hook, argparse/click hooks, atexit, fork handler) when
   VESTIGE_LIVE and VESTIGE_RUN_ID are set; any failure there is swallowed;
2. chain-loads the next ``sitecustomize`` found on sys.path after this directory (the one
   vestige shadows: Debian's, conda's, the user's), executes it and makes
   ``sys.modules["sitecustomize"]`` that module. An exception raised by the chained module
   propagates, so ``site`` reports it exactly as it would without vestige
   ("Error in sitecustomize; set PYTHONVERBOSE for traceback").

Bytecode: compiling these two files costs ~1.5 ms and ~5 ms at start-up, loading their
.pyc ~0.3 ms. Under PYTHONDONTWRITEBYTECODE, on 3.8+, the .pyc files of these two modules
(and only them) are still written to this directory's __pycache__ (when it is writable),
so only the first process pays.

This file must stay valid Python 2.7 *and* 3.x syntax: interpreters of any version may see
it on PYTHONPATH. Chain-loading works on all of them; capture only on 3.8+.
"""

import sys


def _vestige_start():
    if sys.version_info < (3, 8) or not hasattr(sys, "addaudithook"):
        return
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        try:
            import _vestige_shim  # noqa: F401  (installs itself on import)
        except Exception:
            pass
        if dont_write:
            import os

            spec = globals().get("__spec__")
            cached = getattr(spec, "cached", None)
            if cached and not os.path.exists(cached):
                spec.loader.get_code(spec.name)  # writes the .pyc of this module
    except Exception:
        pass
    finally:
        sys.dont_write_bytecode = dont_write


def _vestige_chain():
    """Find, execute and install the next sitecustomize on sys.path (if any)."""
    try:
        import os

        mine = set()
        for path in (os.path.dirname(os.path.abspath(__file__)), os.environ.get("VESTIGE_SHIM")):
            if path:
                try:
                    st = os.stat(path)
                    mine.add((st.st_dev, st.st_ino))
                except OSError:
                    pass
        rest = []
        found = False
        for entry in list(sys.path):
            if not isinstance(entry, str):
                continue
            try:
                st = os.stat(entry or os.curdir)
                ours = (st.st_dev, st.st_ino) in mine
            except (OSError, ValueError):
                ours = False
            if ours:
                found = True
            elif found:
                rest.append(entry)
        if not rest:
            return None
        if sys.version_info[0] >= 3:
            import _frozen_importlib
            import _frozen_importlib_external as external

            # PathFinder over all of `rest` would list every folder (site-packages: ~0.2 ms
            # per process); a few stats per folder find the one that may hold it first.
            names = ["sitecustomize", "sitecustomize.py", "sitecustomize.pyc"]
            names += ["sitecustomize" + suffix for suffix in external.EXTENSION_SUFFIXES]
            spec = None
            for entry in rest:
                folder = entry or os.curdir
                if os.path.isdir(folder):
                    if not [n for n in names if os.path.exists(os.path.join(folder, n))]:
                        continue
                elif not os.path.exists(folder):
                    continue  # (a zip file is asked, as the import system would)
                spec = external.PathFinder.find_spec("sitecustomize", [entry])
                if spec is not None and spec.loader is not None:
                    break  # (a namespace portion: a module further on comes first)
                spec = None
            if spec is None:
                return None
            module = _frozen_importlib.module_from_spec(spec)
            run = (spec.loader.exec_module, module)
        else:
            import imp

            found_mod = imp.find_module("sitecustomize", rest)
            run = None
    except Exception:
        return None
    # Executing the chained module: its errors propagate (site reports them).
    if run is not None:
        sys.modules["sitecustomize"] = run[1]
        run[0](run[1])
        return run[1]
    handle, pathname, desc = found_mod
    try:
        del sys.modules["sitecustomize"]  # else imp.load_module would reuse this module
        return imp.load_module("sitecustomize", handle, pathname, desc)
    finally:
        if handle is not None:
            handle.close()


_vestige_start()
_vestige_chain()
