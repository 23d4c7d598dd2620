"""How `vestige run x.ipynb [-p k=v]...` becomes a command: the notebook executor
(vestige/notebook/execute.py, run as `python -m vestige.notebook.execute`) with its
arguments parsed and checked here first, so bad input is exit 2 before any run starts."""

from __future__ import annotations

import os
import sys

from vestige.errors import PathMissing, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

USAGE = (
    "vestige run NOTEBOOK.ipynb [-p NAME=VALUE]... [-o OUT.ipynb] [--kernel NAME] "
    "[--timeout S] [--allow-errors]"
)
EXTRA_HINT = "pip install 'vestige[notebook]'"
_EXTRAS = ("nbclient", "nbformat", "ipykernel")


class Options:
    """What follows the notebook on the command line."""

    def __init__(self, notebook: str) -> None:
        self.notebook = notebook
        self.params: dict[str, Any] = {}
        self.output: str | None = None
        self.kernel: str | None = None
        self.timeout: int | None = None
        #: a failing cell is said, and the notebook goes on (nbconvert's --allow-errors)
        self.allow_errors = False


def parse_args(argv: list[str]) -> Options:
    """`x.ipynb [-p NAME=VALUE | -p NAME VALUE]... [-o OUT] [--kernel K] [--timeout S]
    [--allow-errors]`."""
    if not argv or not argv[0].endswith(".ipynb"):
        raise UsageError(f"no notebook given; usage: {USAGE}")
    opts = Options(argv[0])
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name == "--allow-errors" and not eq:
            opts.allow_errors = True
            i += 1
            continue
        if name not in ("-p", "--param", "-o", "--output", "--kernel", "--timeout"):
            raise UsageError(f"{arg!r}: not an option of a notebook run; usage: {USAGE}")
        if eq:
            value = inline
        elif i + 1 < len(args):
            i += 1
            value = args[i]
        else:
            raise UsageError(f"{arg} needs a value; usage: {USAGE}")
        if name in ("-p", "--param"):
            if "=" not in value and i + 1 < len(args) and not eq:  # papermill's `-p name value`
                i += 1
                value = f"{value}={args[i]}"
            key, parsed = parse_param(value)
            opts.params[key] = parsed
        elif name in ("-o", "--output"):
            opts.output = value
        elif name == "--kernel":
            opts.kernel = value
        else:
            try:
                opts.timeout = int(value)
            except ValueError:
                raise UsageError(f"--timeout {value!r}: expected whole seconds") from None
            if opts.timeout < 1:
                raise UsageError(f"--timeout {value!r}: expected 1 or more seconds")
        i += 1
    return opts


def parse_param(text: str) -> tuple[str, Any]:
    """`lr=0.1` -> ("lr", 0.1): typed like papermill (int, float, bool, None), then JSON
    (`[1,2]`, `{"a":1}`, `"007"`), else the text itself. The name must be a Python name:
    it is assigned in the notebook."""
    name, eq, raw = text.partition("=")
    name = name.strip()
    if not eq or not name:
        raise UsageError(f"-p {text!r} is not NAME=VALUE; write e.g. -p lr=0.1")
    import keyword

    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-p {text!r}: {name!r} is not a Python variable name")
    return name, typed(raw)


def typed(raw: str) -> Any:
    """The value of a `-p` (see parse_param)."""
    import json
    import re

    if raw in ("True", "true"):
        return True
    if raw in ("False", "false"):
        return False
    if raw in ("None", "none", "null"):
        return None
    if re.fullmatch(r"[-+]?\d+", raw):
        return int(raw)
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", raw):
        return float(raw)
    if raw[:1] in ("[", "{", '"'):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def launch_argv(argv: list[str], python: str) -> tuple[str, list[str]]:
    """(program, argv) running the notebook executor on the notebook with `python`. Bad
    input (no such notebook, not a notebook, a bad -p, a missing extra) raises before any
    run."""
    opts = parse_args(argv)
    data = check_notebook(opts)
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        missing_extras()  # (another interpreter reports its own, in the run)
        spec = data.get("metadata", {}).get("kernelspec") if isinstance(data, dict) else None
        kernel = opts.kernel or (spec.get("name") if isinstance(spec, dict) else None)
        check_kernel(kernel or "python3")
    return python, [python, "-m", "vestige.notebook.execute", *argv]


def check_kernel(kernel: str) -> None:
    """A kernel that is not installed is bad input (exit 2 before any run), not a failed
    run."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise UsageError(
            f"no Jupyter kernel named {kernel!r} (see `jupyter kernelspec list`; "
            "--kernel NAME chooses one)"
        ) from None


def check_notebook(opts: Options) -> Any:
    """The notebook's JSON, once it is known to be a notebook; bad input raises."""
    if not os.path.isfile(opts.notebook):
        raise PathMissing(f"notebook not found: {opts.notebook}")
    import json

    try:
        with open(opts.notebook, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"{opts.notebook} is not a notebook (not JSON: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise UsageError(f"{opts.notebook} is not a notebook (no cells)")
    if opts.output is not None:
        if not opts.output.endswith(".ipynb"):
            raise UsageError(f"-o {opts.output!r}: the executed notebook is written as .ipynb")
        if os.path.abspath(opts.output) == os.path.abspath(opts.notebook):
            raise UsageError("-o names the notebook itself; vestige never overwrites it")
    return data


def missing_extras() -> None:
    """Raise when a package of the `notebook` extra is not installed."""
    from importlib.util import find_spec

    for name in _EXTRAS:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"running notebooks needs {name}: {EXTRA_HINT}")
