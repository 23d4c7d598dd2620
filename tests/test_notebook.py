"""Notebooks recorded cell by cell: real ipykernel kernels (jupyter_client, nbclient), the
real CLI. A kernel started here is what Jupyter starts: `%load_ext vestige` makes the
session a run; `vestige run x.ipynb` executes a notebook headless as a run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import vestige

nbformat = pytest.importorskip("nbformat")
manager = pytest.importorskip("jupyter_client.manager")


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def as_json(*args: str, cwd: Path) -> Any:
    return json.loads(ok(*args, "--json", cwd=cwd))


def store_state(store: Path) -> dict[str, str]:
    """Every file under the store but the index cache, with digests."""
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and not p.name.startswith("index.sqlite")
    }


def write_notebook(path: Path, sources: list[str], parameters: int | None = None) -> None:
    """A notebook of code cells (cell `parameters` tagged so), a markdown cell first."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    cells = [nbformat.v4.new_markdown_cell("# analysis")]
    for i, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if i == parameters:
            cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    nb.cells = cells
    nbformat.write(nb, str(path))


class Kernel:
    """A real ipykernel kernel, as Jupyter starts one, in the project folder."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.km = manager.KernelManager(kernel_name="python3")
        self.km.shutdown_wait_time = 60.0  # room for the seal at exit on a loaded machine
        full = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", **(env or {})}
        self.km.start_kernel(cwd=str(cwd), env=full,
                             extra_arguments=["--IPKernelApp.log_level=ERROR"])  # fmt: skip
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute one cell; (reply content, iopub messages of it)."""
        messages: list[dict[str, Any]] = []
        reply = self.kc.execute_interactive(code, output_hook=messages.append, timeout=60)
        return reply["content"], messages

    def pid(self) -> int:
        _reply, messages = self.run("import os; print(os.getpid())")
        return int("".join(m["content"].get("text", "") for m in messages).strip())

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@pytest.fixture
def kernels() -> Iterator[list[Kernel]]:
    started: list[Kernel] = []
    yield started
    for k in started:
        if k.km.is_alive():
            k.km.shutdown_kernel(now=True)


# -- a Jupyter session ------------------------------------------------------------------------

SESSION = [
    "%load_ext vestige",
    "x = 1",
    "def f():\n    return x * 2",
    "x = 10  # redefined",
    "print(f())",
    "1 / 0",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3])\nplt.title('line')\nplt.show()",
    "with open('data.txt', 'w') as fh:\n    fh.write('hello')",
    "print(open('data.txt').read())\nlen(open('README.md').read())",
]


def test_a_kernel_session_is_a_run_of_its_cells(project: Path, kernels: list[Kernel]) -> None:
    write_notebook(project / "analysis.ipynb", SESSION[1:])
    kernel = Kernel(project, {"JPY_SESSION_NAME": str(project / "analysis.ipynb")})
    kernels.append(kernel)
    # out of order: the notebook's 2nd cell (f) before its 1st (x = 1), as a user clicks
    order = [SESSION[0], SESSION[2], SESSION[1], *SESSION[3:]]
    statuses = [kernel.run(code)[0]["status"] for code in order]
    assert statuses == ["ok"] * 5 + ["error"] + ["ok"] * 3
    kernel.shutdown()

    runs = as_json("ls", cwd=project)
    assert [r["status"] for r in runs] == ["ok"]  # sealed by the kernel at its exit
    run = as_json("show", "@last", cwd=project)
    assert run["params"] == {}  # not `%matplotlib inline`'s own options (gui, list)
    nb = run["notebook"]
    assert nb["path"] == "analysis.ipynb" and nb["count"] == 9 and nb["errors"] == 1
    assert nb["kernel"]["ipykernel"] and nb["source"]["artefact"] == "analysis.at-start.ipynb"
    assert nb["saved"]["artefact"] == "analysis.at-end.ipynb"

    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert [c["source"] for c in cells] == order  # execution order, raw source (magics)
    assert [c["step"] for c in cells] == list(range(1, 10))
    assert [c["count"] for c in cells] == list(range(1, 10))
    assert cells[4]["stdout"] == "20\n"  # f() saw the redefined x
    error = cells[5]["error"]
    assert cells[5]["status"] == "error" and error["type"] == "ZeroDivisionError"
    assert error["message"] == "division by zero" and "1 / 0" in error["traceback"]
    figure = cells[6]["outputs"]
    assert [o["type"] for o in figure] == ["display_data"] and "image/png" in figure[0]["mime"]
    assert figure[0]["files"] == ["cell-7/output-1.png"]
    assert cells[7]["writes"] == ["data.txt"] and cells[7]["reads"] == []
    assert cells[8]["reads"] == ["README.md", "data.txt"] and cells[8]["writes"] == []
    assert cells[8]["outputs"][0]["type"] == "execute_result"
    assert cells[8]["outputs"][0]["text"] == str(len((project / "README.md").read_text()))
    assert all(c["reads"] == [] and c["writes"] == [] for c in cells[:7])

    png = [a for a in run["artefacts"] if a["name"] == "cell-7/output-1"]
    assert png and png[0]["kind"] == "image"
    data = vestige("cat", "@last", "cell-7/output-1.png", cwd=project).stdout
    assert data.startswith(b"\x89PNG")
    assert "data.txt" in [o["path"] for o in run["outputs"]]
    assert "README.md" in [i["path"] for i in run["inputs"]]

    table = ok("cells", "@last", cwd=project)
    assert "9 cells, 1 error  analysis.ipynb" in table
    assert "error ZeroDivisionError" in table and "%load_ext vestige" in table
    full = ok("cells", "@last", "--cell", "7", cwd=project)
    assert "cell-7/output-1.png" in full and "plt.plot([1, 2, 3])" in full
    script = ok("cells", "@last", "--source", cwd=project)
    assert script.startswith("# %% step 1 [1] ok\n%load_ext vestige\n")
    assert "# %% step 6 [6] error ZeroDivisionError\n1 / 0\n" in script
    shown = ok("show", "@last", cwd=project)
    assert "cell-7/output-1" in shown
    assert "notebook  analysis.ipynb: 9 cells run, 1 error(s) (vestige cells 1)" in shown
    assert "kept      analysis.at-start.ipynb (at start)" in shown


def test_a_killed_kernel_is_sealed_interrupted_with_its_cells(
    project: Path, kernels: list[Kernel]
) -> None:
    kernel = Kernel(project)
    kernels.append(kernel)
    kernel.run("import vestige\nvestige.start()")  # the other way in: the API in a cell
    kernel.run("a = 41")
    pid = kernel.pid()
    kernel.kc.execute("import time\nprint('working', flush=True)\ntime.sleep(120)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the cell has started (it printed)
        msg = kernel.kc.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "stream" and "working" in msg["content"]["text"]:
            break
    os.kill(pid, signal.SIGKILL)
    kernel.kc.stop_channels()
    kernel.km.provisioner.process.wait(timeout=60)  # reaped, as jupyter-server does

    runs = as_json("ls", cwd=project)  # this command seals the orphan
    assert [r["status"] for r in runs] == ["interrupted"]
    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert [c["source"] for c in cells[:3]] == [
        "import vestige\nvestige.start()", "a = 41", "import os; print(os.getpid())"]  # fmt: skip
    assert [c["status"] for c in cells] == ["ok", "ok", "ok", "interrupted"]
    assert cells[3]["source"].startswith("import time") and cells[3]["ended"] is None
    assert "interrupted" in ok("cells", "@last", cwd=project)


def test_unload_ext_seals_the_session_now(project: Path, kernels: list[Kernel]) -> None:
    kernel = Kernel(project)
    kernels.append(kernel)
    kernel.run("import vestige\nrun = vestige.start()")
    kernel.run("print('hi')")
    assert kernel.run("%unload_ext vestige")[0]["status"] == "ok"
    runs = as_json("ls", cwd=project)
    assert [r["status"] for r in runs] == ["ok"]  # sealed while the kernel lives on
    kernel.run("x = 1")  # no longer recorded: no new run
    kernel.shutdown()
    assert len(as_json("ls", cwd=project)) == 1
    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert [c["source"] for c in cells] == ["import vestige\nrun = vestige.start()",
                                            "print('hi')", "%unload_ext vestige"]  # fmt: skip
    assert [c["status"] for c in cells] == ["ok", "ok", "ok"]
    assert cells[1]["stdout"] == "hi\n"


def test_cells_of_a_run_without_cells_is_an_error(project: Path) -> None:
    assert vestige("run", "true", cwd=project).returncode == 0
    done = vestige("cells", "@last", cwd=project)
    assert done.returncode == 2
    err = done.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: run #1 recorded no notebook cells")


# -- vestige run x.ipynb ---------------------------------------------------------------------

ANALYSIS = [
    "model = 'resnet'\nlr = 1.0",
    "import json\nprint(f'training {model} at {lr}')\n"
    "with open(f'result-{model}.json', 'w') as fh:\n    json.dump({'model': model, 'lr': lr}, fh)",
    "lr * 2",
]


def test_vestige_run_a_notebook_with_params(project: Path) -> None:
    write_notebook(project / "nb.ipynb", ANALYSIS, parameters=0)
    before = (project / "nb.ipynb").read_bytes()
    done = vestige("run", "nb.ipynb", "-p", "model=vit", "-p", "lr=0.1", "-p", "tags=[1, 2]",
                   cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert b"training vit at 0.1" in done.stdout
    assert (project / "nb.ipynb").read_bytes() == before  # never written
    assert json.loads((project / "result-vit.json").read_text()) == {"model": "vit", "lr": 0.1}

    run = as_json("show", "@last", cwd=project)
    assert run["status"] == "ok"
    assert run["params"] == {"model": "vit", "lr": 0.1, "tags": [1, 2]}
    assert [o["path"] for o in run["outputs"]] == ["result-vit.json"]
    assert "nb.ipynb" in [i["path"] for i in run["inputs"]]
    nb = run["notebook"]
    assert nb["path"] == "nb.ipynb" and nb["injected"] == 2 and nb["count"] == 4
    assert nb["params"] == {"model": "vit", "lr": 0.1, "tags": [1, 2]}
    executed = json.loads(vestige("cat", "@last", "nb.executed.ipynb", cwd=project).stdout)
    sources = ["".join(c["source"]) for c in executed["cells"]]
    assert sources[2].startswith("# Parameters (injected by vestige run)")
    assert "model = 'vit'\nlr = 0.1\ntags = [1, 2]" in sources[2]
    assert executed["cells"][2]["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(executed["cells"][4]["outputs"][0]["data"]["text/plain"]) == "0.2"

    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert cells[0]["source"] == ANALYSIS[0]
    assert cells[1]["source"].startswith("# Parameters")
    assert cells[2]["writes"] == ["result-vit.json"] and cells[3]["stdout"] == ""

    # -- without a parameters cell the injection goes first; `vestige run -- x.ipynb`
    write_notebook(project / "plain.ipynb", ANALYSIS[1:])
    done = vestige("run", "--", "plain.ipynb", "-p", "model=mlp", "-p", "lr", "3", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    run = as_json("show", "@last", cwd=project)
    assert run["notebook"]["injected"] == 0 and run["params"] == {"model": "mlp", "lr": 3}
    first = as_json("cells", "@last", cwd=project)["cells"][0]["source"]
    assert first.startswith("# Parameters") and "lr = 3" in first

    # -- vestige's own -p before the notebook: the notebook receives them too (a param
    # recorded but never injected would be false provenance; found on real code)
    done = vestige("run", "-p", "model=cnn", "plain.ipynb", "-p", "lr=5", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads((project / "result-cnn.json").read_text()) == {"model": "cnn", "lr": 5}
    assert as_json("show", "@last", cwd=project)["params"] == {"model": "cnn", "lr": 5}


def test_a_failing_cell_fails_the_run_and_keeps_the_partial_notebook(project: Path) -> None:
    write_notebook(project / "bad.ipynb", ["a = 1", "raise ValueError('no data for ' + m)",
                                           "b = 2"], parameters=None)  # fmt: skip
    done = vestige("run", "bad.ipynb", "-p", "m=x", cwd=project)
    assert done.returncode == 1
    errors = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("error:")]
    # one number for the failed cell everywhere: its step in `vestige cells` (here the
    # injected parameters are step 1; the notebook's markdown is no step)
    assert errors == ["error: bad.ipynb cell 3 failed: ValueError: no data for x (its number "
                      "in `vestige cells`)"]  # fmt: skip
    run = as_json("show", "@last", cwd=project)
    assert run["status"] == "failed" and run["exit_code"] == 1
    assert run["notebook"]["failed_step"] == 3 and run["notebook"]["errors"] == 1
    assert run["notebook"]["failed_cell"] == 3  # (its index in the executed notebook)
    shown = vestige("show", "@last", cwd=project).stdout.decode()
    assert f"failed    cell 3 (vestige cells {run['seq']} --cell 3)" in shown
    cell = as_json("cells", "@last", cwd=project)["cells"][2]
    assert cell["step"] == 3 and cell["status"] == "error", cell
    partial = json.loads(vestige("cat", "@last", "bad.executed.ipynb", cwd=project).stdout)
    outputs = [c.get("outputs") for c in partial["cells"] if c["cell_type"] == "code"]
    assert outputs[2][0]["ename"] == "ValueError" and outputs[3] == []  # b = 2 never ran
    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert [c["status"] for c in cells] == ["ok", "ok", "error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ipynb"], "notebook not found: missing.ipynb"),
        (["nb.ipynb", "-p", "lr"], "-p 'lr' is not NAME=VALUE"),
        (["nb.ipynb", "-p", "my-lr=1"], "'my-lr' is not a Python variable name"),
        (["nb.ipynb", "--bogus", "1"], "'--bogus': not an option of a notebook run"),
        (["nb.ipynb", "-o", "nb.ipynb"], "vestige never overwrites it"),
        (["broken.ipynb"], "broken.ipynb is not a notebook"),
        (["nb.ipynb", "--kernel", "nope"], "no Jupyter kernel named 'nope'"),
        (["elsewhere.ipynb"], "no Jupyter kernel named 'conda-env-gone-py'"),
    ],
)
def test_bad_notebook_runs_are_usage_errors(project: Path, args: list[str], message: str) -> None:
    write_notebook(project / "nb.ipynb", ["x = 1"])
    (project / "broken.ipynb").write_text("{not json")
    other = json.loads((project / "nb.ipynb").read_text())  # made on another machine
    other["metadata"]["kernelspec"] = {"name": "conda-env-gone-py", "language": "python"}
    (project / "elsewhere.ipynb").write_text(json.dumps(other))
    assert vestige("run", "true", cwd=project).returncode == 0
    store = project / ".vestige"
    state = store_state(store)
    done = vestige("run", *args, cwd=project)
    assert done.returncode == 2
    err = done.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert store_state(store) == state
    assert len(as_json("ls", cwd=project)) == 1


def test_a_sweep_over_a_notebook(project: Path) -> None:
    write_notebook(project / "nb.ipynb", ANALYSIS, parameters=0)
    done = vestige("run", "--each", "model=a,b", "--", "nb.ipynb", "-p", "model={model}",
                   cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    runs = as_json("ls", cwd=project)
    children = [r for r in runs if r["parent"]]
    assert sorted(r["params"]["model"] for r in children) == ["a", "b"]
    assert all(r["status"] == "ok" for r in runs)
    for r in children:
        cells = as_json("cells", str(r["seq"]), cwd=project)["cells"]
        assert f"model = '{r['params']['model']}'" in cells[1]["source"]
        assert cells[2]["writes"] == [f"result-{r['params']['model']}.json"]


def test_allow_errors_runs_past_failing_cells_and_names_them(project: Path) -> None:
    """A book's deliberate error (PDSH 02.05) stopped the notebook: 13 of 23 cells ran and
    no image was kept. --allow-errors (as nbconvert's) says each failing cell and goes on."""
    write_notebook(project / "book.ipynb", [
        "x = 1", "1 / 0", "open('after.txt', 'w').write('ran on')", "undefined_name",
        "print('end')",
    ], parameters=None)  # fmt: skip
    done = vestige("run", "book.ipynb", "--allow-errors", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    said = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("vestige: book")]
    assert said == [
        "vestige: book.ipynb cell 2 failed: ZeroDivisionError: division by zero "
        "(went on: --allow-errors)",
        "vestige: book.ipynb cell 4 failed: NameError: name 'undefined_name' is not defined "
        "(went on: --allow-errors)",
        "vestige: book.ipynb ran to its end; failed cells: 2, 4 (numbered as in `vestige cells`)",
    ], said
    assert (project / "after.txt").read_text() == "ran on"
    run = as_json("show", "@last", cwd=project)
    assert run["status"] == "ok" and run["notebook"]["errors"] == 2
    cells = as_json("cells", "@last", cwd=project)["cells"]
    assert [c["status"] for c in cells] == ["ok", "error", "ok", "error", "ok"]
    bad = vestige("run", "book.ipynb", "--allow-errors=yes", cwd=project)
    assert bad.returncode == 2 and b"not an option of a notebook run" in bad.stderr


def test_the_parameters_cell_defaults_are_the_runs_params(project: Path) -> None:
    """A default run must be findable and comparable (issue 21, item 6): the `parameters`
    cell's literal assignments are params, -p overrides them; the executor's own options
    (--timeout, --kernel) are not params."""
    write_notebook(project / "p.ipynb", [
        "alpha = 0.5\nmodel: str = 'cnn'\nlayers = [1, 2]\nsteps = len(layers)",
        "print(alpha, model)",
    ], parameters=0)  # fmt: skip
    ok = vestige("run", "p.ipynb", "--timeout", "60", cwd=project)
    assert ok.returncode == 0, ok.stderr.decode()
    assert as_json("show", "@last", cwd=project)["params"] == {
        "alpha": 0.5, "model": "cnn", "layers": [1, 2]}  # fmt: skip
    ok = vestige("run", "p.ipynb", "-p", "alpha=0.1", cwd=project)
    assert ok.returncode == 0, ok.stderr.decode()
    assert as_json("show", "@last", cwd=project)["params"]["alpha"] == 0.1
    found = as_json("ls", "--where", "params.alpha = 0.5", cwd=project)
    assert [r["seq"] for r in found] == [1]
    plain = project / "plain.ipynb"
    write_notebook(plain, ["x = 1"], parameters=None)
    ok = vestige("run", "plain.ipynb", "--timeout", "60", cwd=project)
    assert ok.returncode == 0 and as_json("show", "@last", cwd=project)["params"] == {}


def test_cells_of_a_notebook_without_code_says_so_not_to_run_it(project: Path) -> None:
    """`vestige run` of a notebook with only markdown and an empty code cell records no
    cells; `cells` says the notebook has no code, not "run it with vestige run x.ipynb"
    (what the user just did), and `show` does not point at `vestige cells`."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# notes only"), nbformat.v4.new_code_cell("")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(project / "notes.ipynb"))
    done = vestige("run", "notes.ipynb", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    done = vestige("cells", "@last", cwd=project)
    err = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, err
    assert "notes.ipynb has no code cell" in err[0], err
    assert "vestige run" not in err[0] and "load_ext" not in err[0], err
    shown = vestige("show", "@last", cwd=project).stdout.decode()
    assert "no code cell ran" in shown and "vestige cells" not in shown, shown
