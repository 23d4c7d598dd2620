"""The backward slice of a notebook history (`vestige extract`'s engine), for real: messy
histories are sliced, written as scripts, run by a real `python`, and compared with what
running the whole history in order (as a kernel did) gives at the target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vestige.errors import UsageError
from vestige.extract.analysis import Step
from vestige.extract.slicing import Slice, backward_slice, to_script
from vestige.extract.translate import (
    _ipython_syntax,
    expand,
    fallback_syntax,
    translate,
    translate_cell,
)

#: Runs a history as a kernel did: every cell in order in one namespace, errors caught,
#: figures closed at the end of each cell (the inline backend), up to the target step.
KERNEL = """
import json, os, runpy, subprocess, sys
os.environ.setdefault("MPLBACKEND", "Agg")
cells = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__", "os": os, "runpy": runpy, "subprocess": subprocess, "sys": sys}
for code in cells:
    try:
        exec(compile(code, "<cell>", "exec"), ns)
    except Exception as error:
        print("cell raised", repr(error), file=sys.stderr)
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
"""


def cell(source: str, count: int | None = None, ok: bool = True, **files: tuple[str, ...]) -> Step:
    return Step(source=source, execution_count=count, ok=ok, **files)


def history(*sources: str | Step) -> list[Step]:
    return [s if isinstance(s, Step) else cell(s, i + 1) for i, s in enumerate(sources)]


def python(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def results(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("RESULT")]


def run_both(tmp_path: Path, steps: list[Step], target: int, sl: Slice) -> tuple[str, str]:
    """(the sliced script's output, the whole history's output up to the target)."""
    sliced_dir, full_dir = tmp_path / "sliced", tmp_path / "full"
    sliced_dir.mkdir(exist_ok=True)
    full_dir.mkdir(exist_ok=True)
    script = sliced_dir / "extracted.py"
    script.write_text(to_script(steps, sl, "Extracted by vestige from a test history"))
    done = python(script)
    assert done.returncode == 0, done.stderr + script.read_text()
    (full_dir / "cells.json").write_text(
        json.dumps([translate(s.source) for s in steps[: target + 1]])
    )
    (full_dir / "kernel.py").write_text(KERNEL)
    full = python(full_dir / "kernel.py", "cells.json")
    assert full.returncode == 0, full.stderr
    return done.stdout, full.stdout


def check(tmp_path: Path, steps: list[Step], target: int, expected: tuple[int, ...]) -> Slice:
    sl = backward_slice(steps, target)
    assert sl.steps == expected, (sl, [steps[i].source for i in sl.steps])
    sliced, full = run_both(tmp_path, steps, target, sl)
    assert results(sliced) and results(sliced) == results(full)[-len(results(sliced)) :]
    return sl


# -- slicing, checked by running ---------------------------------------------------------


def test_out_of_order_redefinitions_and_dead_cells(tmp_path: Path) -> None:
    steps = history(
        "import math",
        "a = [1, 2, 3]",
        "unused = [x * 100 for x in range(5)]",  # dead
        "b = [v * 2 for v in a]",
        "a = [10, 20]",  # redefined after b was made: b keeps the old a
        "print('RESULT', sum(b), math.floor(2.5))",  # target
        "b = None",  # later: never matters
    )
    sl = check(tmp_path, steps, 5, (0, 1, 3, 5))
    assert len(sl.steps) < len(steps)
    assert sl.warnings == () and sl.needs == ()


def test_in_place_mutations_are_kept(tmp_path: Path) -> None:
    steps = history(
        "import random",
        "lst = [3, 1, 2]\nd = {'k': 1}\nobj = type('O', (), {})()\nobj.x = 1",
        "lst.append(7)",
        "d['k'] += 5",
        "obj.x += 1",
        "lst.sort()",
        "random.seed(3)\nrandom.shuffle(lst)",
        "def fill(xs):\n    xs[0] = 99",
        "fill(lst)",
        "other = lst.copy()\nother.append(0)",  # changes other, not lst
        "print('RESULT', lst, d, obj.x)",
    )
    check(tmp_path, steps, 10, (0, 1, 2, 3, 4, 5, 6, 7, 8, 10))


def test_pandas_drop_inplace_and_item_assignment(tmp_path: Path) -> None:
    steps = history(
        "import pandas as pd",
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4, 5, 6], 'c': [0, 0, 0]})",
        "df.head()",  # read-only look: not a mutation
        "df.drop(columns=['c'], inplace=True)",
        "df['s'] = df['a'] + df['b']",
        "summary = df.describe()",  # dead
        "print('RESULT', df.to_dict('list'))",
    )
    check(tmp_path, steps, 6, (0, 1, 3, 4, 6))


def test_pandas_query_and_eval_read_at_variables(tmp_path: Path) -> None:
    """'@mu' inside a query()/eval() string reads the variable mu (found on real code:
    a sigma-clip cell of a public notebook lost the cell defining mu and sig)."""
    steps = history(
        "import pandas as pd",
        "df = pd.DataFrame({'x': [1, 2, 3, 40]})",
        "mu, sig = 2, 1",
        "unused = 5",
        "lo = 0",
        "clipped = df.query('(x > @lo) & (x < @mu + 5 * @sig)')",
        "total = pd.eval('clipped.x.sum()') if False else df.eval('x * @sig').sum()",
        "print('RESULT', clipped['x'].tolist(), int(total))",
    )
    check(tmp_path, steps, 7, (0, 1, 2, 4, 5, 6, 7))


def test_edited_helper_the_version_that_ran_is_kept(tmp_path: Path) -> None:
    steps = history(
        "def f(x):\n    return x + 1",
        "y1 = f(1)",  # dead
        "def f(x):\n    return x * scale",  # the cell edited and re-run
        "scale = 10",  # defined after the def, before the call: read at call time
        "y2 = f(2)",
        "scale = 1000",  # after the call: irrelevant
        "print('RESULT', y2)",
    )
    check(tmp_path, steps, 6, (2, 3, 4, 6))


def test_function_changing_a_global_and_classes(tmp_path: Path) -> None:
    steps = history(
        "counter = 0\nlog = []",
        "def bump():\n    global counter\n    counter += 1\n    log.append(counter)",
        "class Acc:\n    def __init__(self):\n        self.total = base\n"
        "    def add(self, v):\n        self.total += v",
        "base = 100",
        "bump()\nbump()",
        "acc = Acc()\nacc.add(5)",
        "noise = 'irrelevant'",
        "print('RESULT', counter, log, acc.total)",
    )
    check(tmp_path, steps, 7, (0, 1, 2, 3, 4, 5, 7))


def test_imports_and_scopes(tmp_path: Path) -> None:
    steps = history(
        "import os.path\nfrom collections import Counter as C\nimport json as unused_json",
        "words = ['a', 'b', 'a']",
        "counts = C(words)\nsquares = [w * 2 for w in words]\nw = 'not the loop variable'",
        "total = sum(n for n in counts.values())\n(first := words[0])",
        "for k, v in counts.items():\n    last = (k, v)\nhead, *rest = words\nn: int = len(rest)",
        "with open(os.path.join('.', 'x.txt'), 'w') as fh:\n    fh.write('x')",
        "print('RESULT', counts['a'], total, first, w, last, head, n)",
    )
    check(tmp_path, steps, 6, (0, 1, 2, 3, 4, 6))


def test_file_written_by_one_cell_read_by_another(tmp_path: Path) -> None:
    steps = [
        cell("with open('data.txt', 'w') as f:\n    f.write('42')", 1, writes=("data.txt",)),
        cell("x = 5", 2),
        cell("value = int(open('data.txt').read())", 3, reads=("./data.txt",)),
        cell("print('RESULT', value)", 4),
    ]
    check(tmp_path, steps, 3, (0, 2, 3))


def test_failed_cells(tmp_path: Path) -> None:
    steps = [
        cell("x = 1", 1),
        cell("x = 2\nraise ValueError('boom')", 2, ok=False),  # defined x before failing
        cell("y = undefined_name + 1", 3, ok=False),  # failed, then redone
        cell("y = 5", 4),
        cell("print('RESULT', x, y)", 5),
    ]
    sl = check(tmp_path, steps, 4, (0, 1, 3, 4))
    assert any("step 2 (cell [2]) raised" in w and "x" in w for w in sl.warnings)
    assert not any("step 3" in w for w in sl.warnings)


def test_exec_and_globals_keep_more_and_warn(tmp_path: Path) -> None:
    steps = history(
        "a = 1",
        "b = 2",
        "name = 'z'\nglobals()[name] = a * 7",
        "code = 'q = b + 1'\nexec(code)",
        "exec('r = 40')",  # a literal string: read like code, no warning
        "print('RESULT', z, q, r)",
    )
    sl = check(tmp_path, steps, 5, (0, 1, 2, 3, 4, 5))
    assert any("step 3 (cell [3])" in w and "globals()" in w for w in sl.warnings)
    assert any("step 4 (cell [4])" in w and "exec()" in w for w in sl.warnings)
    assert not any("step 5" in w for w in sl.warnings)


def test_unsafe_module_setattr_run_and_locals() -> None:
    steps = history(
        "import types\nmod = types.ModuleType('m')\nimport sys",
        "a = 1",
        "setattr(sys.modules['__main__'], 'b', 2)",
        "%run other.py",
        "c = len(locals())",
        "print(b, c)",
    )
    sl = backward_slice(steps, 5)
    assert sl.steps == (0, 1, 2, 3, 4, 5)
    text = "\n".join(sl.warnings)
    assert "step 3 (cell [3]) setattr() on a module" in text
    assert "step 4 (cell [4])" in text and "runpy" in text
    assert "step 5 (cell [5]) calls locals()" in text
    assert backward_slice(steps, 1).steps == (1,)  # an unsafe step after the target: no matter


def test_star_import_may_define_anything(tmp_path: Path) -> None:
    steps = history("pi = 3", "from math import *", "print('RESULT', pi)")
    sl = check(tmp_path, steps, 2, (0, 1, 2))
    assert any("import *" in w for w in sl.warnings)
    assert sl.needs == ()


def test_random_state_latest_seed_and_draws(tmp_path: Path) -> None:
    steps = history(
        "import numpy as np",
        "np.random.seed(1)",
        "np.random.seed(2)",
        "warmup = np.random.rand(3)",  # advances the global state: needed
        "grid = np.linspace(0, 1, 3)",
        "sample = np.random.rand(3) + grid",
        "print('RESULT', sample.round(6).tolist())",
    )
    sl = check(tmp_path, steps, 6, (0, 2, 3, 4, 5, 6))
    assert any("step 3" in w and "seeds numpy" in w for w in sl.warnings)


def test_matplotlib_figure_target(tmp_path: Path) -> None:
    steps = history(
        "import matplotlib.pyplot as plt\nimport numpy as np",
        "x = np.arange(10)",
        "plt.plot(x, x ** 2)\nplt.show()",  # another figure: closed at the end of its cell
        "fig, ax = plt.subplots()",
        "ax.plot(x, -x)",  # draws on fig: kept for the figure
        "y = x * 3",  # dead
        "fig.savefig('out.png')\nprint('RESULT', len(ax.lines))",
    )
    check(tmp_path, steps, 6, (0, 1, 3, 4, 6))
    assert (tmp_path / "sliced" / "out.png").read_bytes() == (
        tmp_path / "full" / "out.png"
    ).read_bytes()


def test_magics_in_a_history(tmp_path: Path) -> None:
    steps = history(
        "%matplotlib inline\n%load_ext autoreload\n%autoreload 2",
        "%pip install nothing-at-all",
        cell("%%writefile notes.txt\nfirst line\nsecond line\n", 3, writes=("notes.txt",)),
        "%mkdir -p sub\n%cd sub",  # an unknown magic (dropped) and a directory change
        "%env GREETING=hello",
        cell("lines = !cat ../notes.txt", 6, reads=("notes.txt",)),
        "%%bash\necho from-bash > made.txt\n",
        "%time n = len(lines)",
        "import os\nprint('RESULT', n, os.environ['GREETING'], os.path.exists('made.txt'))",
    )
    (tmp_path / "sliced" / "sub").mkdir(parents=True)
    (tmp_path / "full" / "sub").mkdir(parents=True)
    sl = backward_slice(steps, 8)
    assert 7 in sl.steps and 5 in sl.steps and 4 in sl.steps and 2 in sl.steps
    assert 6 not in sl.steps  # made.txt: no reads/writes given, nothing links it
    steps[8] = cell(steps[8].source.replace("os.path.exists('made.txt')", "True"), 9)
    sl = backward_slice(steps, 8)
    assert sl.steps == (2, 3, 4, 5, 7, 8)
    sliced, full = run_both(tmp_path, steps, 8, sl)
    assert results(sliced) == results(full) == ["RESULT 2 hello True"]
    assert any("%mkdir" in w for w in sl.warnings)
    assert "get_ipython" not in to_script(steps, sl, "h")


def test_slice_of_names_as_of_a_step() -> None:
    steps = history("a = 1", "b = a + 1", "c = 3", "a = 10")
    assert backward_slice(steps, 2, names=["b"]).steps == (0, 1)
    assert backward_slice(steps, 3, names=["a"]).steps == (3,)
    missing = backward_slice(steps, 3, names=["nowhere"])
    assert missing.steps == () and missing.needs == ("nowhere",)


def test_needs_lists_names_defined_nowhere() -> None:
    steps = history("import numpy as np", "y = np.sum(data) + len(extra)\nprint(Out)")
    sl = backward_slice(steps, 1)
    assert sl.needs == ("Out", "data", "extra")
    assert any("output history" in w for w in sl.warnings)


def test_bad_input_is_a_usage_error() -> None:
    steps = history("a = 1")
    with pytest.raises(UsageError, match="no step 3"):
        backward_slice(steps, 3)
    with pytest.raises(UsageError, match="not a Python name"):
        backward_slice(steps, 0, names=["a b"])
    with pytest.raises(UsageError, match="step 5"):
        to_script(steps, Slice(steps=(5,), warnings=(), needs=()), "h")


# -- the script --------------------------------------------------------------------------


def test_script_layout(tmp_path: Path) -> None:
    steps = [
        cell("from __future__ import annotations\nx = 1", 3),
        cell("text = '''a\nb'''\nraise KeyError(text)", None, ok=False),
        cell("!echo shell-says-hi\ndisplay(x)\nx", 4),
    ]
    sl = Slice(steps=(0, 1, 2), warnings=("w1",), needs=())
    script = to_script(steps, sl, "Extracted by vestige from run 01ABC\nsecond line")
    lines = script.splitlines()
    assert lines[:3] == [
        "# Extracted by vestige from run 01ABC",
        "# second line",
        "# vestige: warning: w1",
    ]
    assert "from __future__ import annotations" in lines[4]
    assert "import subprocess, sys" in script
    assert "# --- cell [3] (step 1) ---" in script and "# --- cell [ ] (step 2) ---" in script
    assert script.rstrip().endswith("x")  # the target's last expression stays as is
    path = tmp_path / "s.py"
    path.write_text(script)
    done = python(path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["shell-says-hi", "1"]
    assert "KeyError" in done.stderr


# -- translate ---------------------------------------------------------------------------

FORMS = {
    "%matplotlib inline": "# %matplotlib inline  (IPython only)",
    "%time y = f(2)": "y = f(2)",
    "%timeit -n 3 -r 2 g(1)": "g(1)",
    "t = %time g(1)": "t = (g(1))",
    "%%time\na = 1\nb = 2\n": "a = 1\nb = 2",
    "%%capture\nprint(1)\n": "print(1)",
    "%cd data": "os.chdir(os.path.expanduser('data'))",
    "%env A=b": "os.environ['A'] = 'b'",
    "%pip install x": "# vestige: the notebook ran `%pip install x`: install that before running",
    "%conda install y": "# vestige: the notebook ran `%conda install y`",
    "%load_ext autoreload": "# %load_ext autoreload  (IPython only)",
    "%autoreload 2": "# %autoreload 2  (IPython only)",
    "!ls -l": "subprocess.run('ls -l', shell=True, check=False)",
    "!echo {name} $n $HOME": 'subprocess.run(f"echo {name} {n} $HOME", shell=True, check=False)',
    "x = !ls": "x = subprocess.run('ls', shell=True, check=False, capture_output=True, "
    "text=True).stdout.splitlines()",
    "%%bash\necho hi\n": "subprocess.run(['bash'], input='echo hi\\n', text=True, check=False)",
    "%%sh\necho hi\n": "subprocess.run(['sh'], input='echo hi\\n', text=True, check=False)",
    "%%writefile f.txt\nhello\n": 'with open(\'f.txt\', "w", encoding="utf-8") as _vestige_file:',
    "x?": "# %pinfo x  (IPython only)",
    "?x": "# %pinfo x  (IPython only)",
    "%run script.py": "globals().update(runpy.run_path('script.py', run_name=\"__main__\"))",
    "%frobnicate now": "# vestige: dropped IPython magic: %frobnicate now",
    "if True:\n    %matplotlib inline\n": "if True:\n    pass  # %matplotlib inline",
    "for i in range(2):\n    !echo {i}\n": 'for i in range(2):\n    subprocess.run(f"echo {i}"',
    "get_ipython().run_cell(code)": "exec(code, globals())",
    "!awk '{print $1}' f": "subprocess.run(\"awk '{print $1}' f\", shell=True, check=False)",
}


@pytest.mark.parametrize("source", sorted(FORMS))
def test_translate_forms(source: str) -> None:
    code = translate(source)
    assert FORMS[source] in code
    assert "get_ipython" not in code
    compile(code, "<cell>", "exec")


def test_translate_warnings_and_modules() -> None:
    assert translate_cell("%run -i helper.py").modules == ("runpy", "sys")
    assert "init_globals=globals()" in translate("%run -i helper.py")
    assert any("runpy" in w for w in translate_cell("%run helper.py").warnings)
    assert any("dropped IPython magic" in w for w in translate_cell("%nope").warnings)
    assert any("%pip install x" in w for w in translate_cell("%pip install x").warnings)
    assert translate_cell("x = (").parsed is False
    plain = "df = load()\ndf.head()\n"
    assert translate(plain) == plain  # plain Python comes back untouched


def test_translated_magics_run(tmp_path: Path) -> None:
    source = "\n".join(
        [
            "%%writefile out.txt",
            "line one",
            "it's {not} expanded",
        ]
    )
    script = tmp_path / "w.py"
    script.write_text(translate(source))
    assert python(script).returncode == 0
    assert (tmp_path / "out.txt").read_text() == "line one\nit's {not} expanded\n"
    name = "world"
    assert eval(expand("hello {name}!")) == f"hello {name}!"
    assert eval(expand("cost $$5 {{braces}}")) == "cost $5 {braces}"


def test_fallback_reads_the_forms_as_ipython_does() -> None:
    pytest.importorskip("IPython")
    for source in FORMS:
        if source.startswith("get_ipython"):
            continue
        assert fallback_syntax(source).strip() == _ipython_syntax(source).strip(), source
