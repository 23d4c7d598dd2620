"""`vestige extract` on messy histories made by a real kernel: cells run out of order, a
variable redefined after the output was made, dead cells, in-place mutation, a helper
edited and re-run. Each extracted script, run by plain `python` in a fresh copy of the
project, must re-make the chosen output with the same bytes, and be shorter than the
history where cells were irrelevant."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import vestige

pytest.importorskip("nbclient")
from test_notebook import Kernel  # a real ipykernel kernel, as Jupyter starts one


@pytest.fixture
def session(project: Path) -> Iterator[Kernel]:
    (project / "data.csv").write_text("a,b\n1,2\n3,4\n5,6\n7,8\n")
    kernel = Kernel(project)
    yield kernel
    if kernel.km.is_alive():
        kernel.km.shutdown_kernel(now=True)


def run_cells(kernel: Kernel, cells: list[str]) -> None:
    for code in ["%load_ext vestige", *cells]:
        reply, _messages = kernel.run(code)
        assert reply["status"] in ("ok", "error"), reply


def extract(project: Path, *args: str) -> tuple[Path, str]:
    script = project.parent / "extracted.py"
    script.unlink(missing_ok=True)
    done = vestige("extract", "@last", *args, "-o", str(script), cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    return script, done.stderr.decode()


def run_fresh(project: Path, script: Path, keep: tuple[str, ...] = ("data.csv",)) -> Path:
    """Run the script with plain python in a clean copy holding only the inputs."""
    fresh = project.parent / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    for name in keep:
        shutil.copy(project / name, fresh / name)
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=fresh, capture_output=True,
                          env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode() + script.read_text()
    return fresh


def kept_steps(stderr: str) -> int:
    return int(stderr.split("kept ", 1)[1].split(" ", 1)[0])


def test_out_of_order_redefinitions_dead_cells_and_an_edited_helper(
    project: Path, session: Kernel
) -> None:
    run_cells(session, [
        "import json\nimport pandas as pd",
        "scale = 3",                               # dead: redefined before use
        "def norm(v):\n    return v / scale",      # first version of the helper
        "df = pd.read_csv('data.csv')",
        "unused = [i ** 2 for i in range(5)]\nprint(unused)",   # dead cell
        "scale = 2",
        "def norm(v):\n    return v / scale + 1",  # the helper edited and re-run
        "df['c'] = norm(df['a'] + df['b'])",       # an item assignment: mutates df
        "rows = []",
        "rows.append(df['c'].sum())",              # in-place on a list
        "df.drop(columns=['b'], inplace=True)",    # in-place on the frame
        "with open('summary.json', 'w') as f:\n    json.dump({'c': rows, 'cols': list(df)}, f)",
        "scale = 100\nrows = None",                # redefined after the output was made
        "1 / 0",                                   # a failed, irrelevant cell
    ])  # fmt: skip
    session.shutdown()
    made = (project / "summary.json").read_bytes()

    script, err = extract(project, "--output", "summary.json")
    fresh = run_fresh(project, script)
    assert (fresh / "summary.json").read_bytes() == made
    text = script.read_text()
    assert "unused" not in text and "scale = 3" not in text and "1 / 0" not in text
    assert "scale = 100" not in text and "return v / scale + 1" in text
    assert "return v / scale\n" not in text  # the helper's first version did not run last
    assert "Extracted by vestige from run #1" in text
    assert kept_steps(err) < 15  # the history had 15 cells


def test_cells_run_out_of_order_and_a_figure(project: Path, session: Kernel) -> None:
    """The notebook's cell 3 ran before its cell 2: the order that ran is what counts; the
    displayed figure is re-made byte for byte by the script (Agg, as inline draws)."""
    run_cells(session, [
        "import numpy as np\nimport matplotlib\nimport matplotlib.pyplot as plt",
        "x = np.linspace(0, 1, 20)",
        "y = x ** 2",                               # run first...
        "x = np.linspace(0, 2, 20)",                # ...then x changed: y keeps the old x
        "fig, ax = plt.subplots(figsize=(3, 2), dpi=50)\nax.plot(x, y)\n"
        "fig.savefig('fig.png', metadata={'Software': None})",
        "ax.set_title('changed later')\nfig.savefig('other.png')",
    ])  # fmt: skip
    session.shutdown()
    made = (project / "fig.png").read_bytes()
    script, _err = extract(project, "--output", "fig.png")
    fresh = run_fresh(project, script)
    assert (fresh / "fig.png").read_bytes() == made
    assert "changed later" not in script.read_text()


def test_extract_a_displayed_image_or_a_cell(project: Path, session: Kernel) -> None:
    run_cells(session, [
        "import pandas as pd",
        "df = pd.read_csv('data.csv')",
        "total = int(df['a'].sum())",
        "print('noise')",
        "from IPython.display import display, Image\n"
        "import base64\n"
        "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')\n"
        "display(Image(png))",
        "!echo shell > shell.txt",
        "result = total * 2\nresult",
    ])  # fmt: skip
    session.shutdown()
    cells = json.loads(vestige("cells", "@last", "--json", cwd=project).stdout)["cells"]
    figure = next(c for c in cells if c["outputs"] and c["outputs"][0].get("files"))
    name = figure["outputs"][0]["files"][0]
    script, _err = extract(project, "--artefact", name)
    assert "png = base64" in script.read_text() and "df = pd.read_csv" not in script.read_text()
    script, err = extract(project, "--cell", str(len(cells)))
    assert kept_steps(err) == 4  # pandas, df, total, result
    text = script.read_text()
    assert "total = int" in text and "print('noise')" not in text and "shell" not in text
    out = subprocess.run([sys.executable, str(script)], cwd=project, capture_output=True,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    named, err = extract(project, "--cell", str(len(cells)), "--name", "df")
    assert kept_steps(err) == 2  # pandas, df
    assert f"# Again: vestige extract 1 --cell {len(cells)} --name df" in named.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "nope.txt"], "no cell of the run wrote it"),
        (["--cell", "99"], "there is no cell 99"),
        (["--artefact", "cell-99/output-1"], "no artefact 'cell-99/output-1'"),
        ([], "give exactly one target"),
        (["--cell", "1", "--output", "x"], "give exactly one target"),
        (["--cell", "2", "--name", "nosuchvar"], "no cell up to cell 2 defines nosuchvar"),
    ],
)
def test_bad_targets_are_usage_errors(project: Path, session: Kernel, args: list[str],
                                      message: str) -> None:  # fmt: skip
    run_cells(session, ["x = 1"])
    session.shutdown()
    done = vestige("extract", "@last", *args, cwd=project)
    assert done.returncode == 2, done.stderr.decode()
    assert message in done.stderr.decode() and len(done.stderr.decode().splitlines()) == 1


def test_extract_of_a_run_without_cells_and_an_existing_script(project: Path) -> None:
    (project / "a.py").write_text("print(1)\n")
    assert vestige("run", "python", "a.py", cwd=project).returncode == 0
    done = vestige("extract", "@last", "--cell", "1", cwd=project)
    assert done.returncode == 2 and "recorded no notebook cells" in done.stderr.decode()
    (project / "exists.py").write_text("mine")
    done = vestige("extract", "@last", "--cell", "1", "-o", "exists.py", cwd=project)
    assert done.returncode == 2 and "exists.py exists" in done.stderr.decode()
    assert (project / "exists.py").read_text() == "mine"


def test_gc_keeps_the_cells_and_fsck_checks_them(project: Path, session: Kernel) -> None:
    """The cells object is the notebook's code, never a payload: the harshest gc keeps it,
    `extract` still works, and fsck (N1) notices when it is gone."""
    run_cells(session, ["x = 41", "x += 1\nprint(x)"])
    session.shutdown()
    later = {"VESTIGE_NOW": "2030-01-01"}
    done = vestige("gc", "--keep-last", "0", "--older-than", "1d", cwd=project, env=later)
    assert done.returncode == 0, done.stderr.decode()
    assert vestige("fsck", cwd=project).returncode == 0
    script, _err = extract(project, "--cell", "3")
    assert "x = 41" in script.read_text()
    digest = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)["notebook"]["cells"]
    obj = project / ".vestige" / "objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.unlink()
    done = vestige("fsck", cwd=project)
    assert done.returncode == 1 and "N1" in done.stdout.decode() + done.stderr.decode()
