"""What each step of a notebook's history defines and uses: the facts the slice walks.

`ast` on each step's translated code gives the names it binds, reads and mutates; functions,
aliases and imports carry over from step to step (`Env`). State that is not a Python name
(random state, the working directory, files) is a pseudo-name defined and used like one.
Where the analysis is blind (exec, globals(), star imports) the step is marked as one that
may define or read anything, with the reason.

This module walks the history; one scope's analysis is split by kind of code: scope.py holds
what a scope records (`Scope`, `Env`, the pseudo-names), walker.py wires the visitors of
statements.py (control flow, imports, assignment targets, aliasing, match patterns),
definitions.py (functions, classes and their free names), expressions.py (names, lambdas,
comprehensions) and calls.py (mutating calls, module calls, random state, exec/globals()).

Deliberate approximations (each errs towards keeping more):
- a method call whose result is discarded mutates its receiver, and a name passed to a
  call whose result is discarded may be mutated; well-known read-only methods
  (`df.head()`, `fig.savefig()`) and print-like functions are exempt;
- names bound in one statement, or copied from one another (`ax = fig.axes[0]`), may
  share objects: mutating one mutates the others;
- a function's free names are needed where it is called (the body runs then), and the
  globals it rebinds or mutates are defined there;
- global random state is a name of its own per module (numpy, random, torch,
  tensorflow): seeds define it, explicit draws use and redefine it, and any step that
  uses the module needs the latest seed; the working directory, environment variables
  and sys.path likewise;
- a library's process-global state (matplotlib's rcParams and styles, seaborn's themes,
  pandas options, ...) is a name of its own: known setters (rules.GLOBAL_STATE_CALLS),
  item or attribute assignments through a module, and dropped calls through a module
  named like setters define it; a step uses it when it reads a name of that library or a
  name whose value came from one (`fig, ax = plt.subplots()`), or draws; warnings filters
  and logging's configuration are every step's;
- an import reads the files the history wrote that may be that module (`helper.py`,
  `pkg/__init__.py`), whatever folder of sys.path they were in.
"""

from __future__ import annotations

import ast
import posixpath

from vestige.extract.rules import AMBIENT_STATE
from vestige.extract.scope import CWD, ENVIRON, Env, Scope, modules_written, state
from vestige.extract.translate import translate_cell
from vestige.extract.walker import ScopeWalker
from vestige.records import Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from vestige.extract.translate import Translation


class Step(Record):
    """One executed cell: the code that ran, its prompt number, whether it raised, files."""

    source: str
    execution_count: int | None
    ok: bool
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


class Info:
    """What one step defines and uses, after translation."""

    __slots__ = ("defs", "ok", "parsed", "reasons", "state", "uses", "uses_all", "wildcard")

    def __init__(self, ok: bool, parsed: bool) -> None:
        self.ok, self.parsed = ok, parsed
        self.defs: set[str] = set()
        self.uses: set[str] = set()
        # library -> (sure, what): the process-global state the step's own code changes
        self.state: dict[str, tuple[bool, str]] = {}
        self.wildcard = not parsed and ok  # valid for the kernel, opaque to us
        self.uses_all = not parsed and ok
        self.reasons: list[str] = ["does not parse as Python"] if self.wildcard else []


#: Global state every step may depend on (warnings filters, logging's configuration).
AMBIENT = frozenset(state(library) for library in AMBIENT_STATE)


def _closure(start: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
    out: set[str] = set()
    todo = list(start)
    while todo:
        for name in step(todo.pop()):
            if name not in out:
                out.add(name)
                todo.append(name)
    return out


def _analyze(step: Step, tr: Translation, env: Env) -> Info:
    """One step's definitions and uses, given what the history established before it."""
    info = Info(step.ok, tr.parsed)
    if tr.parsed:
        # the script's head imports what the translation uses (os for %cd, ...)
        provided = {m for m in tr.modules if m not in env.defined}
        for module in provided:
            env.aliases.setdefault(module, module)
        scope = Scope(env, env.aliases, module=True)
        ScopeWalker(scope).stmts(ast.parse(tr.code).body, True)
        _apply_aliasing(env, scope)
        free = _closure(scope.all_loads, scope.lazy_of)
        writes = _closure(scope.all_loads | free, scope.lazy_defs_of)
        mutated = scope.mutated | {w for w in writes if not w.startswith("<")}
        shared = {g for name in mutated for g in env.groups.get(name, (name,))}
        info.defs = scope.stores | shared | writes | scope.effect_defs
        info.uses = scope.loads | ((free | shared) - scope.sure) | writes | scope.effect_uses
        info.uses |= {CWD, ENVIRON, *AMBIENT}
        info.state = scope.state_changes
        info.uses -= provided - scope.stores
        info.uses -= {s for s in info.defs if s.startswith("<seed")}
        info.wildcard, info.uses_all, info.reasons = scope.wildcard, scope.uses_all, scope.reasons
        for name in scope.stores:
            env.lazy.pop(name, None)
            env.lazy_defs.pop(name, None)
        env.lazy.update({k: frozenset(v) for k, v in scope.lazy.items()})
        env.lazy_defs.update({k: frozenset(v) for k, v in scope.lazy_defs.items()})
        env.defined |= scope.stores
        for name, libraries in scope.origins.items():
            if libraries:
                env.origins[name] = libraries
            else:
                env.origins.pop(name, None)
        env.functions = (env.functions - scope.stores) | scope.functions
    if step.ok or tr.parsed:
        info.defs |= {_file(p) for p in (*step.writes, *tr.writes)}
        info.uses |= {_file(p) for p in step.reads}
        for path in (*step.writes, *tr.writes):  # `%%writefile helper.py`: `import helper`
            info.defs |= modules_written(posixpath.normpath(path))
    return info


def _apply_aliasing(env: Env, scope: Scope) -> None:
    """Rebound names leave their groups; names bound together or copied join one."""
    for name in scope.stores - scope.mutated:
        group = env.groups.pop(name, None)
        if group:
            rest = group - {name}
            for other in rest:
                env.groups[other] = rest
    for names in scope.aliasing:
        merged = frozenset().union(*(env.groups.get(n, {n}) for n in names))
        for name in merged:
            env.groups[name] = merged


def _file(path: str) -> str:
    return f"<file {posixpath.normpath(path)}>"


def analyze_history(history: Sequence[Step]) -> tuple[list[Info], list[Translation]]:
    """Each step's definitions and uses, in order, with its translation (shared by source)."""
    env = Env()
    cache: dict[str, Translation] = {}
    infos, translations = [], []
    for step in history:
        tr = cache.get(step.source)
        if tr is None:
            tr = cache[step.source] = translate_cell(step.source)
        translations.append(tr)
        infos.append(_analyze(step, tr, env))
    return infos, translations
