"""`vestige run x.ipynb -p k=v`: execute a notebook headless, parameterised, recorded.

`vestige run` turns a command whose first word ends in `.ipynb` into
`python -m vestige.notebook.execute x.ipynb ...` (vestige/recording/notebooks.py, before
anything starts, so a missing notebook or a bad `-p` is exit 2 with no run), and the
rest is an ordinary recorded run: sweeps and rerun work unchanged.

This module, in that process: reads the notebook, injects the `-p` values as a new cell
after the cell tagged `parameters` (papermill's convention: `metadata.tags`), or first
when none is tagged; records them as the run's params; starts a real kernel through
nbclient (it inherits the capture's environment, so it reports to the same run) with
`--ext=vestige`, so every cell is recorded (vestige/notebook/kernel.py); runs the cells in
order; keeps the executed notebook, outputs filled in, as the artefact
`<name>.executed.ipynb` (also when a cell failed: as far as it got); writes it to disk
only when asked (`-o`). The user's notebook is never written.

A failing cell stops the notebook: one stderr line names the cell (its 1-based position
in the user's notebook) and the error, and the exit code is 1.
"""

from __future__ import annotations

import os
import sys

from vestige.errors import UsageError
from vestige.recording.notebooks import EXTRA_HINT, Options, check_notebook, parse_args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -- in the run -------------------------------------------------------------------------------


def inject(nb: Any, params: dict[str, Any], nbformat: Any) -> int:
    """Insert the params cell (after the `parameters` cell, else first); its index."""
    lines = ["# Parameters (injected by vestige run)"]
    lines += [f"{k} = {_python(v)}" for k, v in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    cell.metadata["tags"] = ["injected-parameters"]
    at = 0
    for i, c in enumerate(nb.cells):
        if "parameters" in (c.get("metadata", {}).get("tags") or ()):
            at = i + 1
            break
    nb.cells.insert(at, cell)
    return at


def defaults(nb: Any) -> dict[str, Any]:
    """The params the `parameters` cell sets (papermill's convention): its top-level
    `name = literal` assignments; anything computed is left out (it is not a value one
    could pass with -p)."""
    import ast

    for cell in nb.cells:
        if "parameters" not in (cell.get("metadata", {}).get("tags") or ()):
            continue
        try:
            tree = ast.parse(str(cell.source))
        except SyntaxError:
            return {}
        found: dict[str, Any] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets = [node.target]
            else:
                continue
            value = node.value
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    try:
                        found[target.id] = ast.literal_eval(value)
                    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                        found.pop(target.id, None)
        return found
    return {}


def _python(value: Any) -> str:
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return f"float({str(value)!r})"  # nan, inf: no literal
    return repr(value)


def execute(opts: Options) -> int:
    """Run the notebook; the exit code (0 ok, 1 a cell failed, 130 interrupted)."""
    try:
        import nbclient
        import nbformat
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as e:
        raise UsageError(f"running notebooks needs {e.name or 'nbclient'}: {EXTRA_HINT}") from None
    check_notebook(opts)
    path = os.path.abspath(opts.notebook)
    nb = nbformat.read(path, as_version=4)
    injected = inject(nb, opts.params, nbformat) if opts.params else None
    kernel = opts.kernel or (nb.metadata.get("kernelspec") or {}).get("name") or "python3"
    language, ipykernel = _language(kernel)
    if opts.params and language != "python":
        raise UsageError(f"-p needs a Python kernel; {kernel!r} runs {language}")
    from vestige.api import calls as api
    from vestige.api.session import live_dir

    live = live_dir(start=False)  # the run `vestige run` made (None: not recorded)
    journal = None
    if live is not None:
        from vestige.store.cells import Journal

        journal = Journal(live)
        journal.append("notebook", t=_now(), path=path, params=opts.params,
                       injected=injected, kernel=kernel)  # fmt: skip
        params = {**defaults(nb), **opts.params}  # a default run can be found and compared
        if params:
            api.params(params)
        _declare(params)
    os.environ.pop("JPY_SESSION_NAME", None)  # the kernel runs this notebook, not a session's
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's start-up notice
    where: dict[str, int] = {"index": -1}

    def started(cell: Any, cell_index: int) -> None:
        where["index"] = cell_index

    went_on: list[str] = []  # cells that failed and were gone past (--allow-errors)

    def executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        _echo(cell)
        error = next((o for o in cell.get("outputs") or () if o.get("output_type") == "error"),
                     None)  # fmt: skip
        if error is not None and opts.allow_errors:
            step = _step(nb, cell_index)
            went_on.append(str(step))
            why = f"{error.get('ename')}: {_first_line(error.get('evalue'))}"
            sys.stderr.write(
                f"vestige: {opts.notebook} cell {step} failed: {why} (went on: --allow-errors)\n"
            )
            sys.stderr.flush()

    client = nbclient.NotebookClient(
        nb, timeout=opts.timeout, kernel_name=kernel, allow_errors=opts.allow_errors,
        resources={"metadata": {"path": os.path.dirname(path)}},
        extra_arguments=_kernel_args(live is not None, ipykernel),
        on_cell_execute=started, on_cell_executed=executed,
    )  # fmt: skip
    failure, code = None, 0
    try:
        client.execute()
    except CellExecutionError as e:
        _echo(nb.cells[where["index"]])
        failure, code = f"{e.ename}: {_first_line(e.evalue)}", 1
    except CellTimeoutError:
        failure, code = f"no result within --timeout {opts.timeout}s", 1
    except DeadKernelError:
        failure, code = "the kernel died", 1
    except KeyboardInterrupt:
        failure, code = "interrupted", 130
    finally:
        failed = where["index"] if code else None
        step = _step(nb, where["index"]) if code else None
        _keep_executed(nb, path, opts, journal, failed, step, nbformat)
    if went_on:
        cells = ", ".join(went_on)
        sys.stderr.write(f"vestige: {opts.notebook} ran to its end; failed cells: {cells} "
                         "(numbered as in `vestige cells`)\n")  # fmt: skip
    if failure is not None:
        what = " (the injected parameters)" if where["index"] == injected else ""
        sys.stderr.write(f"error: {opts.notebook} cell {step}{what} failed: {failure} (its "
                         f"number in `vestige cells`)\n")  # fmt: skip
    return code


def _language(kernel: str) -> tuple[str, bool]:
    """(the kernel's language, whether it is ipykernel: it can load the extension)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise UsageError(
            f"no Jupyter kernel named {kernel!r} (see `jupyter kernelspec list`)"
        ) from None
    argv = " ".join(spec.argv or ())
    return str(spec.language or "python").lower(), "ipykernel" in argv


def _kernel_args(recording: bool, ipykernel: bool) -> list[str]:
    """ipykernel's options: load the extension (so cells are recorded); log errors only
    (its notice about unencrypted local TCP is not the notebook's output)."""
    if not ipykernel:
        return []
    args = ["--IPKernelApp.log_level=ERROR"]
    return ["--ext=vestige", *args] if recording else args


def _declare(params: dict[str, Any]) -> None:
    """The run's params are those of its main process's argparse parse (vestige/shim);
    this process has none of its own, so the notebook's params are given as one parse's
    result. Without it the kernel's own command line (traitlets parses it with argparse)
    would be taken for the run's params."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.parse_args([], namespace=argparse.Namespace(**params))


def _step(nb: Any, index: int) -> int:
    """The failing cell's number as `vestige cells`, `show` and `extract --cell` give it:
    its step, the order it ran in (the code cells nbclient executed up to it: empty ones
    are skipped, markdown is not a cell that runs)."""
    cells = nb.cells[: index + 1]
    return sum(1 for c in cells if c.cell_type == "code" and str(c.source).strip()) or 1


def _keep_executed(nb: Any, path: str, opts: Options, journal: Any, failed: int | None,
                   step: int | None, nbformat: Any) -> None:  # fmt: skip
    """The executed notebook: an artefact of the run, and the -o file when asked."""
    data = nbformat.writes(nb).encode("utf-8")
    if opts.output is not None:
        with open(opts.output, "wb") as f:
            f.write(data)
    if journal is None:
        return
    from vestige.api import calls as api

    stem = os.path.basename(path)[: -len(".ipynb")] or "notebook"
    record = api.keep_staged(_redacted(nb, nbformat), f"{stem}.executed.ipynb")  # (stored
    # by the seal, through the run's whole redaction pass)
    if record is not None:
        files = record.get("files") or [{}]
        journal.append("executed", t=_now(), failed_cell=failed, failed_step=step,
                       artefact={"artefact": record["name"], "hash": files[0].get("hash"),
                                 "size": files[0].get("size"),
                                 "staged": files[0].get("staged")})  # fmt: skip


#: The output MIME types that hold text a cell printed or displayed (images are left alone:
#: a pattern could match inside base64 and spoil them).
_TEXT_MIME = ("text/", "application/json", "application/javascript")


def _redacted(nb: Any, nbformat: Any) -> bytes:
    """The executed notebook as the store keeps it: what the cells printed, displayed or
    raised, and their sources, with secrets scrubbed like the run's logs and cells (the
    environment's secret values, the secret options of the command line, the patterns).
    The -o file is the user's own, as they asked for it, and is written unscrubbed."""
    import copy

    from vestige.capture.redact import Redactor
    from vestige.store.local import read_secret_key

    store = os.environ.get("VESTIGE_STORE")
    if not store:
        return nbformat.writes(nb).encode("utf-8")
    redactor = Redactor(read_secret_key(store))
    redactor.redact_env(os.environ)
    redactor.scrub_argv(sys.argv)
    clean = copy.deepcopy(nb)

    def scrub(value: Any) -> Any:
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return redactor.scrub_text(value) if isinstance(value, str) else value

    for cell in clean.cells:
        cell.source = scrub(cell.source)
        for out in cell.get("outputs") or ():
            if "text" in out:
                out["text"] = scrub(out["text"])
            for key in ("evalue", "traceback"):
                if key in out:
                    out[key] = scrub(out[key])
            data = out.get("data") or {}
            for mime in list(data):
                if mime.startswith(_TEXT_MIME):
                    data[mime] = scrub(data[mime]) if not isinstance(data[mime], dict) else (
                        redactor.scrub_value(data[mime]))  # fmt: skip
    return nbformat.writes(clean).encode("utf-8")


def _echo(cell: Any) -> None:
    """What the cell printed, on our stdout/stderr (so `vestige log` has it too)."""
    for out in cell.get("outputs") or ():
        if out.get("output_type") == "stream":
            stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
            stream.write(str(out.get("text") or ""))
            stream.flush()


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def _now() -> float:
    import time

    return time.time()


def main(argv: list[str] | None = None) -> int:
    """`python -m vestige.notebook.execute x.ipynb [-p k=v]...`"""
    args = sys.argv[1:] if argv is None else argv
    try:
        return execute(parse_args(args))
    except UsageError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
