"""The backward slice of a notebook's executed history: what `vestige extract` keeps.

A kernel's history is every cell in the order it ran (edited versions, out-of-order runs,
failures and all). Each step's IPython syntax is first translated to plain Python
(translate.py); analysis.py then gives the names the step defines and uses. Walking back from
the target, the latest earlier step defining each needed name is kept, transitively; a
kept mutation (`lst.append(x)`, `df['a'] = ...`) also keeps the earlier definition.
Where static analysis is blind (exec, globals(), star imports, %run) the slice keeps
more, and a warning line says which step and why. `to_script` writes the kept steps as
a script for plain `python`: no IPython at run time. Pure: no store, no kernel.

A failed step may have defined any of its names before raising: when needed it is kept
(inside try/except) and the search goes on past it (another deliberate approximation that
errs towards keeping more; the others are in analysis.py).
"""

from __future__ import annotations

import ast
import bisect
import builtins
import io
import re
import textwrap
import tokenize

from vestige.errors import UsageError
from vestige.extract.analysis import Step, analyze_history
from vestige.extract.inline import InlineFigure, show_value
from vestige.extract.inline import helper as inline_helper
from vestige.extract.scope import state_library
from vestige.extract.translate import Translation, translate, translate_cell
from vestige.records import Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from vestige.extract.analysis import Info

__all__ = [
    "Slice",
    "Step",
    "Translation",
    "backward_slice",
    "to_script",
    "translate",
    "translate_cell",
]


class Slice(Record):
    """The steps a target needs (history indices, in the order they ran), and why."""

    steps: tuple[int, ...]
    warnings: tuple[str, ...]
    needs: tuple[str, ...]


# ---------------------------------------------------------------------------------------
# The slice

#: Names IPython or Python provide without a definition (not reported as needs).
# fmt: off
PROVIDED = frozenset((
    "display", "get_ipython", "exit", "quit", "__name__", "__doc__", "__builtins__", "__file__",
    "__spec__", "__loader__", "__package__", "__annotations__",
))
# fmt: on
_HISTORY_NAME = re.compile(r"^(In|Out|_+|_i+|_i\d+|_\d+|_ih|_oh|_dh)$")
_BUILTIN_NAMES = frozenset(dir(builtins))


def _label(history: Sequence[Step], i: int) -> str:
    count = history[i].execution_count
    return f"step {i + 1} (cell [{count if count is not None else ' '}])"  # 1-based, as `cells`


class _Walk:
    """Backwards from the target: the latest earlier definer of each needed name, kept."""

    def __init__(self, history: Sequence[Step], infos: list[Info]) -> None:
        self.history, self.infos = history, infos
        self.definers: dict[str, list[int]] = {}
        self.wild: list[int] = []
        for i, info in enumerate(infos):
            if not info.parsed and not info.ok:
                continue  # a cell that did not parse ran nothing
            for name in info.defs:
                self.definers.setdefault(name, []).append(i)
            if info.wildcard:
                self.wild.append(i)
        self.kept: dict[int, str | None] = {}
        self.needed_for: dict[int, set[str]] = {}  # kept step -> the needed names it defines
        self.maybe: dict[int, set[str]] = {}  # failed steps: the names they may have defined
        self.missing: set[str] = set()
        self.todo: list[tuple[str, int, bool]] = []
        self.seen: set[tuple[str, int, bool]] = set()

    def keep(self, i: int, why: str | None) -> None:
        if i in self.kept:
            return
        self.kept[i] = why
        info = self.infos[i]
        for name in info.uses:
            self.need(name, i, False)
        if info.uses_all:
            for name, where in self.definers.items():
                if where[0] < i:
                    self.need(name, i, False)

    def need(self, name: str, before: int, maybe: bool) -> None:
        if (name, before, False) in self.seen or (name, before, maybe) in self.seen:
            return
        self.seen.add((name, before, maybe))
        self.todo.append((name, before, maybe))

    def run(self) -> None:
        while self.todo:
            name, before, maybe = self.todo.pop()
            where = self.definers.get(name, [])
            at = bisect.bisect_left(where, before) - 1
            wild_at = bisect.bisect_left(self.wild, before) - 1
            candidates = [where[at]] if at >= 0 else []
            candidates += [self.wild[wild_at]] if wild_at >= 0 else []
            if not candidates:
                if not maybe:
                    self.missing.add(name)
                continue
            d = max(candidates)
            info = self.infos[d]
            self.keep(d, name)
            self.needed_for.setdefault(d, set()).add(name)
            if name not in info.defs:  # a step that may define anything
                self.need(name, d, True)
            elif not info.ok:
                self.maybe.setdefault(d, set()).add(name)
                self.need(name, d, True)
            elif name in info.uses:  # a mutation: the object it changed came from before
                self.need(name, d, maybe)


def backward_slice(
    history: Sequence[Step], target: int, names: Iterable[str] | None = None
) -> Slice:
    """Steps needed to recompute step `target` (or only `names` as of after `target`)."""
    if not 0 <= target < len(history):
        raise UsageError(
            f"no step {target} in a history of {len(history)} steps: "
            f"give a step between 0 and {len(history) - 1}"
        )
    wanted = None if names is None else list(names)
    for name in wanted or ():
        if not isinstance(name, str) or not name.isidentifier():
            raise UsageError(f"{name!r} is not a Python name: give variable names")
    infos, translations = analyze_history(history)
    walk = _Walk(history, infos)
    if wanted is None:
        walk.keep(target, None)
    else:
        for name in wanted:
            walk.need(name, target + 1, False)
    walk.run()
    steps = tuple(sorted(walk.kept))
    return Slice(
        steps=steps,
        warnings=tuple(_warnings(history, infos, translations, walk, target)),
        needs=tuple(sorted(n for n in walk.missing if _is_need(n))),
    )


def _state_notes(label: str, info: Info, needed: set[str]) -> list[str]:
    """Why a step that binds nothing the target uses is kept: the library state it changes."""
    if any(not n.startswith("<") and n not in info.uses for n in needed):
        return []  # kept for a name it binds: nothing to explain
    lines = []
    for library in sorted(filter(None, (state_library(n) for n in needed & info.defs))):
        sure, what = info.state.get(library, (False, ""))
        if sure:
            lines.append(f"{label} kept: it changes the global state of {library} ({what})")
        elif what:
            lines.append(
                f"{label} kept to be safe: it may change the global state of {library} ({what}, "
                "named like a setter)"
            )
        else:
            lines.append(f"{label} kept: it changes the global state of {library} (in a call)")
    return lines


def _is_need(name: str) -> bool:
    return not name.startswith("<") and name not in _BUILTIN_NAMES and name not in PROVIDED


def _warnings(
    history: Sequence[Step],
    infos: list[Info],
    translations: list[Translation],
    walk: _Walk,
    target: int,
) -> list[str]:
    lines: list[str] = []
    for i in sorted(walk.kept):
        label, info, why = _label(history, i), infos[i], walk.kept[i]
        if not info.ok and i == target:
            lines.append(f"{label} is the target and raised when it ran: kept in try/except")
        elif not info.ok:
            names = ", ".join(sorted(n for n in walk.maybe.get(i, ()) if not n.startswith("<")))
            lines.append(
                f"{label} raised when it ran but may have defined {names or 'needed state'} "
                "before failing: kept in try/except"
            )
        if info.reasons and info.ok:
            consequence = (
                "every earlier step that defines a name is kept"
                if info.uses_all
                else "kept, and earlier definitions of the names it may define as well"
            )
            lines.append(f"{label} {'; '.join(info.reasons)}: {consequence}")
        if why and why.startswith(("<random state", "<seed")):
            module = why.rsplit(" ", 1)[-1].rstrip(">")
            verb = "seeds" if why in infos[i].defs and why not in infos[i].uses else "draws from"
            lines.append(f"{label} kept: it {verb} {module}'s global random state")
        lines += _state_notes(label, info, walk.needed_for.get(i, set()))
        lines += [f"{label}: {w}" for w in translations[i].warnings]
    history_names = sorted(n for n in walk.missing if _HISTORY_NAME.match(n))
    if history_names:
        lines.append(
            f"uses IPython's output history ({', '.join(history_names)}): "
            "not reproduced in a script; assign the value to a name in the notebook"
        )
    return lines


# ---------------------------------------------------------------------------------------
# The script

_END_CELL = '''
def _vestige_end_cell():
    """The notebook's inline backend closed every figure at the end of each cell."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
'''
_CWD_ON_PATH = """\
# as IPython does: modules in the working directory are found, before site-packages
_vestige_site = [i for i, p in enumerate(sys.path) if p.endswith(("-packages", "-packages/"))]
sys.path.insert(_vestige_site[0] if _vestige_site else 0, "")"""
_DISPLAY = '''
def display(*objects, **options):
    """IPython's display() in a notebook; printed in a script."""
    for obj in objects:
        print(obj)
'''


def to_script(
    history: Sequence[Step], sl: Slice, header: str, inline: InlineFigure | None = None
) -> str:
    """A runnable script: header comment, then each kept step's source, magics translated;
    with `inline`, the figure that step showed inline is saved as the backend rendered it."""
    for i in sl.steps:
        if not 0 <= i < len(history):
            raise UsageError(f"the slice names step {i}, not in a history of {len(history)}")
    if inline is not None and inline.step not in sl.steps:
        inline = None
    cells: list[tuple[int, str, bool]] = []  # (step, code, parses)
    modules: set[str] = set()
    futures: list[str] = []
    writes_modules = False
    for i in sl.steps:
        tr = translate_cell(history[i].source)
        code, hoisted = _hoist_futures(tr.code) if tr.parsed else (tr.code, [])
        futures += [f for f in hoisted if f not in futures]
        modules.update(tr.modules)
        cells.append((i, code, tr.parsed))
        writes_modules |= any(p.endswith(".py") for p in (*history[i].writes, *tr.writes))
    everything = "\n".join(code for _, code, _ in cells)
    plots = "matplotlib" in everything or inline is not None
    shows = bool(re.search(r"\bdisplay\s*\(", everything)) and not re.search(
        r"\bimport\b[^\n]*\bdisplay\b|\bdef display\b|\bdisplay\s*=", everything
    )
    failed = any(not history[i].ok for i in sl.steps)
    if plots or failed or writes_modules:
        modules.add("sys")
    if plots:
        modules.add("os")
    out = [_comment_block(header)]
    out += [f"# vestige: warning: {w}" for w in sl.warnings]
    out.append("")
    out += futures
    if modules:
        out.append(f"import {', '.join(sorted(modules))}")
    if writes_modules:
        out.append(_CWD_ON_PATH)
    if plots:
        out.append('os.environ.setdefault("MPLBACKEND", "Agg")  # figures are drawn, not shown')
        out.append(_END_CELL)
    if shows:
        out.append(_DISPLAY)
    if inline is not None:
        out.append(inline_helper(inline, _count(history[inline.step])))
    for n, (i, code, parses) in enumerate(cells):
        out.append("")
        out.append(f"# --- cell [{_count(history[i])}] (step {i + 1}) ---")
        target = inline is not None and i == inline.step
        if target:
            out.append("_vestige_inline.start()")
            code = show_value(code, history[i].source) if parses else code
        if not parses:
            out.append("# vestige: this cell does not parse as Python; kept as a comment:")
            out += [f"# {line}" for line in code.splitlines()]
        elif not history[i].ok:
            out.append(_guarded(code, history[i]))
        else:
            out.append(code.rstrip("\n"))
        if target:
            out.append("_vestige_inline.end()")
        if plots and n < len(cells) - 1:
            out.append("_vestige_end_cell()")
    return "\n".join(out).rstrip("\n") + "\n"


def _count(step: Step) -> str:
    return str(step.execution_count) if step.execution_count is not None else " "


def _comment_block(text: str) -> str:
    lines = text.strip("\n").splitlines() or [""]
    return "\n".join(line if line.startswith("#") else f"# {line}".rstrip() for line in lines)


def _hoist_futures(code: str) -> tuple[str, list[str]]:
    """`from __future__ import ...` is only valid first in a file: move it to the top."""
    tree = ast.parse(code)
    futures = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "__future__"
    ]
    if not futures:
        return code, []
    lines = code.splitlines()
    hoisted = []
    for node in futures:
        hoisted.append(ast.get_source_segment(code, node) or "")
        for lineno in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            lines[lineno - 1] = "# (moved to the top) " + lines[lineno - 1]
    return "\n".join(lines), hoisted


def _guarded(code: str, step: Step) -> str:
    """A failed step inside try/except: it raised in the notebook; it may raise again."""
    label = f"cell [{_count(step)}]"
    handler = (
        "except Exception as _vestige_error:\n"
        f'    print(f"vestige: {label} raised {{_vestige_error!r}}'
        ' (it raised when recorded too)", file=sys.stderr)'
    )
    note = "# vestige: this cell raised when it ran; kept for what it defined before failing"
    if _has_multiline_string(code):  # indenting would change the strings' values
        body = f"    exec(compile({code!r}, {label!r}, 'exec'), globals())"
    else:
        body = textwrap.indent(code.rstrip("\n"), "    ", lambda line: True) or "    pass"
        if not any(line.strip() and not line.strip().startswith("#") for line in code.splitlines()):
            body += "\n    pass"
    return f"{note}\ntry:\n{body}\n{handler}"


def _has_multiline_string(code: str) -> bool:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return True
    return any(
        t.type in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1))
        and t.start[0] != t.end[0]
        for t in tokens
    )
