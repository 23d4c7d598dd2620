"""vestige: keep every artefact research code makes, tied to what made it.

The in-code API (nothing requires it; `vestige run` captures unmodified code):

    vestige.param(lr=0.1)               vestige.params(vars(args))
    vestige.log(step=i, loss=x)         vestige.keep(fig, "loss-curve")
    vestige.tag("baseline")             vestige.note("LR too high?")
    vestige.start() / vestige.finish()  with vestige.run(): ...
    %load_ext vestige                   (IPython, Jupyter: the session, cell by cell)

Reading what was recorded (docs/api.md):

    vestige.runs(where="status = 'ok'", cols=["params.lr", "metrics.loss"])  # a DataFrame
    vestige.Run(42).outputs["fig.png"]  vestige.Run("baseline").metrics["loss"].values

`import vestige` runs inside users' scripts, so it loads nothing but this module: the API
functions are resolved on first use (PEP 562), and `log` then is the hot function itself,
with no wrapper in between. tests/test_imports.py pins what `import vestige` loads.
"""

from vestige._version import __version__

__all__ = [
    "Run",
    "__version__",
    "finish",
    "flush",
    "keep",
    "log",
    "note",
    "param",
    "params",
    "run",
    "run_id",
    "runs",
    "start",
    "tag",
]

_API = {
    "Run": "vestige.api.query",
    "runs": "vestige.api.query",
    "log": "vestige.api.log",
    "finish": "vestige.api.calls",
    "flush": "vestige.api.calls",
    "keep": "vestige.api.calls",
    "note": "vestige.api.calls",
    "param": "vestige.api.calls",
    "params": "vestige.api.calls",
    "run": "vestige.api.calls",
    "run_id": "vestige.api.calls",
    "start": "vestige.api.calls",
    "tag": "vestige.api.calls",
}


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'vestige' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext vestige` in IPython or Jupyter: record the session, cell by cell."""
    from vestige.notebook.kernel import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """`%unload_ext vestige`: stop recording cells and seal the session's run now."""
    from vestige.notebook.kernel import unload_ipython_extension as unload

    unload(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
