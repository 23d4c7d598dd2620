"""`vestige extract` where a cell's effect is not a name: process-global library state
(matplotlib rcParams and styles, seaborn themes), a module written by `%%writefile` and
imported later, and figures only shown inline. Real kernels, real matplotlib, seaborn and
pandas; each extracted script runs with plain `python` in an empty folder and must make
the very bytes the session kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import vestige

from vestige.extract.slicing import Step, backward_slice

if TYPE_CHECKING:
    from test_notebook import Kernel

SMALL = "figsize=(3, 2), dpi=40"  # small figures: quick to draw on a busy machine


def history(*cells: str | tuple[str, tuple[str, ...]]) -> list[Step]:
    """Steps of a history: a source, or (source, the files the kernel saw it write)."""
    steps = []
    for n, cell in enumerate(cells, 1):
        source, writes = cell if isinstance(cell, tuple) else (cell, ())
        steps.append(Step(source=source, execution_count=n, ok=True, writes=writes))
    return steps


PLOT = "import matplotlib.pyplot as plt\nimport matplotlib as mpl"


@pytest.mark.parametrize(
    ("cells", "kept", "said"),
    [
        pytest.param(  # an rcParams item through `from ... import`; pandas options are not
            [f"{PLOT}\nfrom matplotlib import rcParams\nimport pandas as pd",
             "rcParams['lines.linewidth'] = 4", "pd.options.display.max_rows = 3",
             "plt.plot([1])\nplt.savefig('a.png')"],
            (0, 1, 3), "changes the global state of matplotlib (sets `rcParams[", id="rcparams"),
        pytest.param(  # a theme set by a function, where it is called
            [f"{PLOT}\nimport seaborn as sns", "def style():\n    sns.set_context('talk')",
             "x = 1", "style()", "plt.plot([2])\nplt.savefig('a.png')"],
            (0, 1, 3, 4), "global state of matplotlib (in a call)", id="function"),
        pytest.param(  # a figure drawn by pandas, styled before and after it was made
            [f"{PLOT}\nimport pandas as pd", "df = pd.DataFrame({'a': [1, 2]})",
             "mpl.style.use('ggplot')", "ax = df.plot()", "mpl.rcParams['axes.titlesize'] = 20",
             "ax.set_title('t')\nax.figure.savefig('a.png')"],
            (0, 1, 2, 3, 4, 5), "changes the global state of matplotlib (`mpl.style.use()`)",
            id="origins"),
        pytest.param(  # named like a setter, unknown: kept, and said to be unsure
            ["import mylib", "mylib.set_mode('fast')", "y = mylib.compute(2)"],
            (0, 1, 2), "may change the global state of mylib (`mylib.set_mode()`", id="unsure"),
        pytest.param(  # warnings filters are every step's
            ["import warnings", "warnings.filterwarnings('error')", "import numpy as np",
             "z = np.log(0)"],
            (0, 1, 2, 3), "changes the global state of warnings", id="warnings"),
        pytest.param(  # %%writefile seen in the source alone (an older recording), re-imported
            ["%%writefile helper.py\ndef g():\n    return 1\n", "import helper", "v = 2",
             "from helper import g\nprint(g())"],
            (0, 3), "", id="writefile"),
        pytest.param(  # a package the kernel saw written, its submodule imported
            [("x = 1", ("pkg/__init__.py",)), ("y = 2", ("pkg/tools.py",)), "z = 3",
             "from pkg.tools import f\nf()"],
            (0, 1, 3), "", id="package"),
        pytest.param(  # rewritten, then reloaded
            ["import importlib\nimport helper", "%%writefile helper.py\nA = 2\n", "w = 1",
             "importlib.reload(helper)\nprint(helper.A)"],
            (0, 1, 3), "", id="reload"),
    ],
)  # fmt: skip
def test_what_the_slice_counts_as_global_state_and_modules(
    cells: list[str | tuple[str, tuple[str, ...]]], kept: tuple[int, ...], said: str
) -> None:
    steps = history(*cells)
    sl = backward_slice(steps, len(steps) - 1)
    assert sl.steps == kept, sl
    assert said in "\n".join(sl.warnings), sl.warnings


# -- real kernels -------------------------------------------------------------------------------


@pytest.fixture
def session(project: Path) -> Iterator[Kernel]:
    pytest.importorskip("nbclient")
    pytest.importorskip("seaborn")
    from test_notebook import Kernel  # a real ipykernel kernel, as Jupyter starts one

    kernel = Kernel(project)
    yield kernel
    if kernel.km.is_alive():
        kernel.km.shutdown_kernel(now=True)


def run_cells(kernel: Kernel, cells: list[str]) -> None:
    for code in ["%load_ext vestige", *cells]:
        reply, _messages = kernel.run(code)
        assert reply["status"] == "ok", reply


def extract(project: Path, *args: str) -> tuple[str, str]:
    """(the script, what extract said on stderr)."""
    done = vestige("extract", "@last", *args, cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode(), done.stderr.decode()


def run_empty(tmp: Path, script: str, name: str) -> Path:
    """Run the script (kept elsewhere) with plain python in an empty folder; the folder."""
    folder = tmp / f"empty-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = tmp / f"extracted-{name}.py"
    path.write_text(script)
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(path)], cwd=folder, capture_output=True,
                          env=env, check=False, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode() + script
    return folder


def test_global_style_cells_are_kept_for_a_later_figure(
    project: Path, session: Kernel, tmp_path: Path
) -> None:
    """seaborn's theme, rcParams items, `mpl.rc`, `plt.style.use` and pandas options set
    state no later cell names; figures drawn after them depend on them all the same."""
    run_cells(session, [
        "import matplotlib as mpl\nimport matplotlib.pyplot as plt\nimport seaborn as sns\n"
        "import pandas as pd",
        "unused = list(range(5))",                                  # dead
        "sns.set_theme(style='darkgrid')",
        f"fig, ax = plt.subplots({SMALL})\nax.plot([0, 1, 2], [1, 0, 2])\n"
        "fig.savefig('a.png')",
        "mpl.rcParams['lines.linewidth'] = 6",
        "pd.set_option('display.max_rows', 5)",
        f"fig, ax = plt.subplots({SMALL})\nax.plot([0, 1, 2], [1, 0, 2])\n"
        "fig.savefig('b.png')",
        "plt.style.use('dark_background')\nmpl.rc('axes', titlesize=20)",
        f"fig2, ax2 = plt.subplots({SMALL})",                        # made before ...
        "plt.rcParams.update({'lines.linestyle': '--'})",            # ... a later style
        "ax2.plot([0, 1, 2], [2, 0, 1])\nax2.set_title('late')\nfig2.savefig('c.png')",
    ])  # fmt: skip
    session.shutdown()
    for name, changes in [("a.png", 1), ("b.png", 2), ("c.png", 4)]:
        made = (project / name).read_bytes()
        script, err = extract(project, "--output", name)
        folder = run_empty(tmp_path, script, name)
        assert (folder / name).read_bytes() == made, (name, script)
        assert "unused" not in script and "display.max_rows" not in script
        assert err.count("global state") >= changes, err
        assert "changes the global state of matplotlib" in script


def test_a_module_written_by_writefile_then_imported(
    project: Path, session: Kernel, tmp_path: Path
) -> None:
    """`%%writefile helper.py` is kept for the cells importing helper (the first import
    reads the file; a later one finds the module loaded): the script writes the file."""
    run_cells(session, [
        "%%writefile helper.py\ndef g(x):\n    return x * 3\n",
        "other = 1",
        "from helper import g",
        "with open('out.txt', 'w') as f:\n    f.write(str(g(14)))",
        "import helper\nwith open('again.txt', 'w') as f:\n    f.write(str(helper.g(2)))",
    ])  # fmt: skip
    session.shutdown()
    cells = json.loads(vestige("cells", "@last", "--json", cwd=project).stdout)["cells"]
    assert cells[1]["writes"] == ["helper.py"], cells[1]
    assert "helper.py" in cells[3]["reads"], cells[3]
    for name, content in [("out.txt", "42"), ("again.txt", "6")]:
        script, _err = extract(project, "--output", name)
        folder = run_empty(tmp_path, script, name)
        assert (folder / name).read_text() == content
        assert "def g(x)" in script and "other = 1" not in script


def test_figures_shown_only_inline_are_saved_as_the_inline_backend_drew_them(
    project: Path, session: Kernel, tmp_path: Path
) -> None:
    """`--artefact cell-N/output-K` of a figure never saved: the script draws it and saves
    it as the inline backend rendered it (shown by the end of the cell, by plt.show(), by
    display(), as the cell's value), byte for byte."""
    run_cells(session, [
        "import numpy as np\nimport matplotlib.pyplot as plt\nimport seaborn as sns\n"
        "from IPython.display import display",
        "x = np.linspace(0, 3, 30)",
        f"plt.figure({SMALL})\nplt.plot(x, np.sin(x))\nplt.title('sine')",  # value, then figure
        "plt.rcParams['axes.titlesize'] = 18\nsns.set_theme(style='whitegrid')",
        f"fig, ax = plt.subplots({SMALL})\nax.bar([1, 2], [3, 4])\nplt.show()\n"
        f"fig2 = plt.figure({SMALL})\nplt.scatter(x, x ** 2)\nplt.title('second')",
        f"fig3, ax3 = plt.subplots({SMALL})\nax3.plot(x)\ndisplay(fig3)\nax3.set_title('then')",
        f"fig4, ax4 = plt.subplots({SMALL})\nax4.hist(x)\nplt.close(fig4)\nfig4",
        "print('not a figure')",
    ])  # fmt: skip
    session.shutdown()
    cells = json.loads(vestige("cells", "@last", "--json", cwd=project).stdout)["cells"]
    shown = [f for c in cells for o in c["outputs"] for f in o.get("files") or ()]
    assert len(shown) == 6, shown  # sine; bar, scatter; fig3 twice; fig4
    for name in shown:
        made = vestige("cat", "@last", name, cwd=project)
        assert made.returncode == 0, made.stderr.decode()
        script, _err = extract(project, "--artefact", name)
        folder = run_empty(tmp_path, script, name.replace("/", "-"))
        saved = folder / name.replace("/", "-")
        assert saved.read_bytes() == made.stdout, (name, script)
        assert "print('not a figure')" not in script
