"""What each step of a notebook's history defines and uses: the facts the slice walks.

`ast` on each step's translated code gives the names it binds, reads and mutates; functions,
aliases and imports carry over from step to step (`_Env`). State that is not a Python name
(random state, the working directory, files) is a pseudo-name defined and used like one.
Where the analysis is blind (exec, globals(), star imports) the step is marked as one that
may define or read anything, with the reason.

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
  and sys.path likewise.
"""

from __future__ import annotations

import ast
import posixpath
import re

from vestige.notebook.rules import (
    MUTATING_METHODS,
    NOT_GLOBAL_DRAWS,
    PLOT_METHODS,
    PURE_BUILTINS,
    PURE_CALLS,
    PURE_PREFIXES,
    READONLY_METHODS,
    RNG_MODULES,
    SEED_CALLS,
    STATE_FUNCTIONS,
    STATE_PREFIXES,
    TORCH_DRAWS,
)
from vestige.notebook.translate import translate_cell
from vestige.records import Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from vestige.notebook.translate import Translation


class Step(Record):
    """One executed cell: the code that ran, its prompt number, whether it raised, files."""

    source: str
    execution_count: int | None
    ok: bool
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


#: Pseudo-names for state that is not a Python name: steps define and use them like names.
CWD, ENVIRON, SYS_PATH = "<working directory>", "<environment variables>", "<sys.path>"


def _rng(module: str) -> str:
    return f"<random state of {module}>"


def _seed(module: str) -> str:
    return f"<seed of {module}>"


def _rng_effects(qual: str) -> tuple[set[str], set[str]]:
    """(uses, defs) of global random state for a call to the qualified name `qual`."""
    if qual in SEED_CALLS:
        mods = SEED_CALLS[qual]
        return set(), {_rng(m) for m in mods} | {_seed(m) for m in mods}
    parts = qual.split(".")
    module = None
    if qual.startswith("numpy.random.") and parts[-1] not in NOT_GLOBAL_DRAWS:
        module = "numpy"
    elif parts[0] == "random" and len(parts) == 2 and parts[1] not in NOT_GLOBAL_DRAWS:
        module = "random"
    elif parts[0] == "torch" and (parts[-1] in TORCH_DRAWS or qual.startswith("torch.nn.init.")):
        module = "torch"
    elif qual.startswith("tensorflow.random."):
        module = "tensorflow"
    if module is None:
        return set(), set()
    return {_rng(module)}, {_rng(module)}


def _is_state_function(name: str) -> bool:
    return name in STATE_FUNCTIONS or name.startswith(STATE_PREFIXES)


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """The base name of `a.b[i].c` ('a') and its attribute names; None under a call."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        if isinstance(node, ast.Attribute):
            attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attrs[::-1]
    return None, attrs[::-1]


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _target_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in _target_names(elt)]
    if isinstance(node, ast.Starred):
        return _target_names(node.value)
    return []


def _is_namespace_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("globals", "locals", "vars")
        and not node.args
    )


#: `@name` in a pandas query()/eval() string: a read of the Python variable `name`.
_AT_NAME = re.compile(r"@([A-Za-z_][A-Za-z_0-9]*)")


class _Env:
    """What the history established before a step: imports, functions' free names, aliases."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # name bound by an import -> qualified name
        self.lazy: dict[str, frozenset[str]] = {}  # name -> free names its calls read
        self.lazy_defs: dict[str, frozenset[str]] = {}  # name -> globals its calls change
        self.groups: dict[str, frozenset[str]] = {}  # name -> names that may share objects
        self.defined: set[str] = set()
        self.functions: set[str] = set()  # names bound by `def` (their calls return values)


class _Scope:
    """One scope's names: the cell (in order, with what is surely bound) or a function."""

    def __init__(self, env: _Env, aliases: dict[str, str], module: bool) -> None:
        self.env, self.aliases, self.module = env, aliases, module
        self.is_class = False
        self.stores: set[str] = set()
        self.loads: set[str] = set()  # read before being surely bound here
        self.all_loads: set[str] = set()
        self.sure: set[str] = set()
        self.mutated: set[str] = set()
        self.hidden: list[set[str]] = []  # comprehension and lambda locals
        self.global_decl: set[str] = set()
        self.nonlocal_decl: set[str] = set()
        self.lazy: dict[str, set[str]] = {}
        self.lazy_defs: dict[str, set[str]] = {}
        self.effect_uses: set[str] = set()
        self.effect_defs: set[str] = set()
        self.inner_writes: set[str] = set()  # globals changed by nested scopes' calls
        self.functions: set[str] = set()
        self.method_free: set[str] = set()  # (class bodies) free names of the methods
        self.wildcard = False
        self.uses_all = False
        self.reasons: list[str] = []
        self.aliasing: list[set[str]] = []
        self._collect: list[set[str]] = []

    # -- names --------------------------------------------------------------------------

    def load(self, name: str) -> None:
        if any(name in hidden for hidden in self.hidden):
            return
        for collected in self._collect:
            collected.add(name)
        self.all_loads.add(name)
        qual = self.aliases.get(name)
        if qual and qual.split(".")[0] in RNG_MODULES:
            self.effect_uses.add(_seed(qual.split(".")[0]))
        if not (self.module and name in self.sure):
            self.loads.add(name)

    def store(self, name: str, sure: bool) -> None:
        self.stores.add(name)
        self.aliases.pop(name, None)
        if sure:
            self.sure.add(name)

    def mutate(self, name: str) -> None:
        if any(name in hidden for hidden in self.hidden):
            return
        self.load(name)
        self.mutated.add(name)

    def unsafe(self, reason: str, defines: bool, reads: bool) -> None:
        self.wildcard |= defines
        self.uses_all |= reads
        if reason not in self.reasons:
            self.reasons.append(reason)

    def user_defined(self, name: str) -> bool:
        return name in self.env.defined or name in self.stores

    # -- statements ---------------------------------------------------------------------

    def stmts(self, body: list[ast.stmt], sure: bool) -> None:
        for node in body:
            self.stmt(node, sure)

    def stmt(self, node: ast.stmt, sure: bool) -> None:
        if isinstance(node, ast.Expr):
            value = node.value.value if isinstance(node.value, ast.Await) else node.value
            if isinstance(value, ast.Call):
                self.call(value, discarded=True)
            else:
                self.expr(node.value)
        elif isinstance(node, ast.Assign):
            self.assign(node.targets, node.value, sure)
        elif isinstance(node, ast.AnnAssign):
            if self.module:
                self.expr(node.annotation)
            if node.value is not None:
                self.assign([node.target], node.value, sure)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value)
            if isinstance(node.target, ast.Name):
                self.load(node.target.id)
                self.stores.add(node.target.id)
                self.aliases.pop(node.target.id, None)
            else:
                self.target(node.target, sure)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.target(node.target, False)
            self.alias_with(_target_names(node.target), node.iter)
            self.stmts(node.body, False)
            self.stmts(node.orelse, False)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test)
            self.stmts(node.body, False)
            self.stmts(node.orelse, False)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, sure)
                    self.alias_with(_target_names(item.optional_vars), item.context_expr)
            self.stmts(node.body, sure)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.stmts(node.body, False)
            for handler in node.handlers:
                self.expr(handler.type)
                if handler.name:
                    self.store(handler.name, False)
                self.stmts(handler.body, False)
            self.stmts(node.orelse, False)
            self.stmts(node.finalbody, sure)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                self.pattern(case.pattern)
                self.expr(case.guard)
                self.stmts(case.body, False)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function_def(node, sure)
        elif isinstance(node, ast.ClassDef):
            self.class_def(node, sure)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.load(target.id)
                    self.stores.add(target.id)
                    self.sure.discard(target.id)
                else:
                    self.target(target, sure)
        elif isinstance(node, ast.Import):
            self.effect_uses.add(SYS_PATH)
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                self.store(bound, sure)
                self.aliases[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom):
            self.effect_uses.add(SYS_PATH)
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    self.unsafe(f"`from {module} import *` may define any name", True, False)
                    continue
                bound = alias.asname or alias.name
                self.store(bound, sure)
                self.aliases[bound] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Global):
            self.global_decl.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            self.nonlocal_decl.update(node.names)
        else:  # Return, Raise, Assert, Pass, Break, Continue, TypeAlias
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def assign(self, targets: list[ast.expr], value: ast.expr, sure: bool) -> None:
        collected: set[str] = set()
        self._collect.append(collected)
        self.expr(value)
        self._collect.pop()
        for target in targets:
            self.target(target, sure)
        names = [n for target in targets for n in _target_names(target)]
        lazy: set[str] = set()
        lazy_defs: set[str] = set()
        if any(isinstance(node, ast.Lambda) for node in ast.walk(value)):
            lazy |= collected
        calls = any(isinstance(node, ast.Call) for node in ast.walk(value))
        for name in collected:
            if calls and self.is_function(name):
                continue  # what a function returns is not the function (its calls are uses)
            lazy |= self.lazy_of(name)
            lazy_defs |= self.lazy_defs_of(name)
        for name in names:
            if lazy:
                self.lazy[name] = set(lazy)
            if lazy_defs:
                self.lazy_defs[name] = set(lazy_defs)
        if len(names) > 1:
            self.aliasing.append(set(names))
        self.alias_with(names, value)

    def alias_with(self, names: list[str], value: ast.expr) -> None:
        """`b = a`, `b = a.x[0]`, `b = a.method()`: b may share objects with a."""
        node = value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in READONLY_METHODS:  # copies and new objects: no sharing
                return
            node = node.func.value
        root, _ = _chain(node)
        if root is not None and root not in self.aliases and names:
            self.aliasing.append({root, *names})

    def is_function(self, name: str) -> bool:
        if name in self.functions:
            return True
        return name in self.env.functions and name not in self.stores

    def lazy_of(self, name: str) -> set[str] | frozenset[str]:
        return self.lazy.get(name) or self.env.lazy.get(name, frozenset())

    def lazy_defs_of(self, name: str) -> set[str] | frozenset[str]:
        return self.lazy_defs.get(name) or self.env.lazy_defs.get(name, frozenset())

    def target(self, node: ast.expr, sure: bool) -> None:
        if isinstance(node, ast.Name):
            self.store(node.id, sure)
        elif isinstance(node, ast.Tuple | ast.List):
            for elt in node.elts:
                self.target(elt, sure)
        elif isinstance(node, ast.Starred):
            self.target(node.value, sure)
        elif isinstance(node, ast.Subscript) and _is_namespace_call(node.value):
            self.unsafe("assigns names through globals()", True, False)
            self.expr(node.slice)
        elif isinstance(node, ast.Attribute | ast.Subscript):
            self.mutate_chain(node)
        else:
            self.expr(node)

    def mutate_chain(self, node: ast.expr) -> None:
        """`a.b[i] = v`, `del a[i]`, `a.x += 1`: a changes (and is read)."""
        root, attrs = _chain(node)
        part: ast.AST = node
        while isinstance(part, ast.Attribute | ast.Subscript):
            if isinstance(part, ast.Subscript):
                self.expr(part.slice)
            part = part.value
        if root is None:
            self.expr(part)
            return
        qual = ".".join([self.aliases[root], *attrs]) if root in self.aliases else ""
        if qual.startswith("os.environ"):
            self.effect_uses.add(ENVIRON)
            self.effect_defs.add(ENVIRON)
        elif qual.startswith("sys.path"):
            self.effect_uses.add(SYS_PATH)
            self.effect_defs.add(SYS_PATH)
        self.mutate(root)

    def pattern(self, node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.MatchAs | ast.MatchStar) and sub.name:
                self.store(sub.name, False)
            elif isinstance(sub, ast.MatchMapping) and sub.rest:
                self.store(sub.rest, False)
            elif isinstance(sub, ast.MatchValue):
                self.expr(sub.value)
            elif isinstance(sub, ast.MatchClass):
                self.expr(sub.cls)

    # -- nested scopes ------------------------------------------------------------------

    def function_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, sure: bool) -> None:
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            self.expr(expr)
        every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in [*every, node.args.vararg, node.args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.expr(arg.annotation)
        self.expr(node.returns)
        inner = _Scope(self.env, dict(self.aliases), module=False)
        inner.stmts(node.body, False)
        free, writes = inner.free_and_writes(_params(node.args))
        self.absorb_unsafe(inner)
        self.store(node.name, sure)
        self.functions.add(node.name)
        if self.module:
            self.lazy[node.name] = free
            self.lazy_defs[node.name] = writes
        elif self.is_class:
            self.method_free |= free
            self.inner_writes |= writes
        else:
            for name in free:
                self.load(name)
            self.inner_writes |= writes

    def class_def(self, node: ast.ClassDef, sure: bool) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.expr(expr)
        inner = _Scope(self.env, dict(self.aliases), module=False)
        inner.is_class = True
        inner.stmts(node.body, False)
        self.absorb_unsafe(inner)
        for name in (inner.loads | inner.effect_uses) - inner.stores:
            self.load(name) if not name.startswith("<") else self.effect_uses.add(name)
        writes = inner.inner_writes | inner.effect_defs
        self.store(node.name, sure)
        if self.module:
            self.lazy[node.name] = set(inner.method_free)
            self.lazy_defs[node.name] = set(writes)
        else:
            for name in inner.method_free:
                self.load(name)
            self.inner_writes |= writes

    def absorb_unsafe(self, inner: _Scope) -> None:
        for reason in inner.reasons:
            self.unsafe(reason, inner.wildcard, inner.uses_all)

    def free_and_writes(self, params: set[str]) -> tuple[set[str], set[str]]:
        """A function's free names (read when called) and the globals its calls change."""
        local = (params | self.stores) - self.global_decl - self.nonlocal_decl
        free = ((self.loads | self.mutated) - local) | self.effect_uses
        writes = (self.stores & self.global_decl) | (self.mutated - local)
        return free, writes | self.effect_defs | self.inner_writes

    # -- expressions --------------------------------------------------------------------

    def expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id)
            else:
                self.store(node.id, False)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.store(node.target.id, False)
        elif isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                self.expr(default)
            self.hidden.append(_params(node.args))
            self.expr(node.body)
            self.hidden.pop()
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.comprehension(node)
        elif isinstance(node, ast.Call):
            self.call(node, discarded=False)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        generators = node.generators
        self.expr(generators[0].iter)  # evaluated in the enclosing scope
        hidden: set[str] = set()
        self.hidden.append(hidden)
        for i, generator in enumerate(generators):
            if i:
                self.expr(generator.iter)
            hidden.update(_target_names(generator.target))
            for condition in generator.ifs:
                self.expr(condition)
        if isinstance(node, ast.DictComp):
            self.expr(node.key)
            self.expr(node.value)
        else:
            self.expr(node.elt)
        self.hidden.pop()

    def call(self, node: ast.Call, discarded: bool) -> None:
        func = node.func
        root, attrs = _chain(func)
        method = func.attr if isinstance(func, ast.Attribute) else None
        name = func.id if isinstance(func, ast.Name) else None
        qual = ".".join([self.aliases[root], *attrs]) if root in self.aliases else None
        if method in ("query", "eval"):  # pandas: '@mu' in the expression reads `mu`
            for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "expr")]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    for local in _AT_NAME.findall(arg.value):
                        self.load(local)
        if name is not None and not self.user_defined(name):
            if name in ("exec", "eval") and self.exec_call(node, name):
                return
            if name in ("globals", "locals", "vars") and not node.args:
                self.unsafe(f"calls {name}(): it may read or change any name", True, True)
            if name in ("setattr", "delattr") and node.args:
                target_root, _ = _chain(node.args[0])
                if target_root in self.aliases or "modules" in ast.dump(node.args[0]):
                    self.unsafe(f"{name}() on a module may change any name", True, True)
                elif target_root:
                    self.mutate(target_root)
            if name == "next" and node.args:
                target_root, _ = _chain(node.args[0])
                if target_root:
                    self.mutate(target_root)
        namespace_write = ("update", "setdefault", "__setitem__", "pop", "__delitem__")
        if (
            isinstance(func, ast.Attribute)
            and _is_namespace_call(func.value)
            and method in namespace_write
        ):
            self.unsafe("changes names through globals()", True, False)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                self.expr(arg)
            return
        if qual is not None and root is not None:
            self.module_call(qual, root, method, len(attrs))
        elif (
            root is not None
            and method is not None
            and ((discarded and method not in READONLY_METHODS) or method in MUTATING_METHODS)
        ):
            self.mutate(root)
        for keyword_arg in node.keywords:
            value = keyword_arg.value
            inplace = isinstance(value, ast.Constant) and value.value is True
            if keyword_arg.arg == "inplace" and inplace and isinstance(func, ast.Attribute):
                inplace_root, _ = _chain(func.value)
                if inplace_root:
                    self.mutate(inplace_root)
            if keyword_arg.arg == "out":
                out_root, _ = _chain(value)
                if out_root:
                    self.mutate(out_root)
        if discarded and not self.pure_call(name, qual, method):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                arg_root, _ = _chain(arg)
                if arg_root and arg_root not in self.aliases:
                    self.mutate(arg_root)
        self.expr(func)
        for arg in node.args:
            self.expr(arg)
        for keyword_arg in node.keywords:
            self.expr(keyword_arg.value)

    def module_call(self, qual: str, root: str, method: str | None, depth: int) -> None:
        """A call into an imported module: random state, ambient state, module settings."""
        uses, defs = _rng_effects(qual)
        if uses or defs:
            self.effect_uses |= uses
            self.effect_defs |= defs
        elif qual in ("os.chdir", "os.fchdir"):
            self.effect_uses.add(CWD)
            self.effect_defs.add(CWD)
        elif qual in ("os.putenv", "os.unsetenv") or (
            qual.startswith("os.environ.") and method in MUTATING_METHODS
        ):
            self.effect_uses.add(ENVIRON)
            self.effect_defs.add(ENVIRON)
        elif qual.startswith("sys.path.") and method in MUTATING_METHODS:
            self.effect_uses.add(SYS_PATH)
            self.effect_defs.add(SYS_PATH)
        elif method is not None and (
            _is_state_function(method) or (depth >= 2 and method in MUTATING_METHODS)
        ):
            self.mutate(root)

    def pure_call(self, name: str | None, qual: str | None, method: str | None) -> bool:
        if name is not None and name in PURE_BUILTINS and not self.user_defined(name):
            return True
        if qual is not None and (qual in PURE_CALLS or qual.startswith(PURE_PREFIXES)):
            return True
        return method is not None and (method in READONLY_METHODS or method in PLOT_METHODS)

    def exec_call(self, node: ast.Call, name: str) -> bool:
        """exec/eval of a literal string is read like the cell's own code (True: done)."""
        code = node.args[0] if node.args else None
        if len(node.args) > 1 or node.keywords:
            for arg in node.args[1:]:
                namespace_root, _ = _chain(arg)
                if namespace_root:
                    self.mutate(namespace_root)
            return False
        if isinstance(code, ast.Constant) and isinstance(code.value, str):
            try:
                tree = ast.parse(code.value, mode="exec" if name == "exec" else "eval")
            except SyntaxError:
                pass
            else:
                if isinstance(tree, ast.Module):
                    self.stmts(tree.body, False)
                else:
                    self.expr(tree.body)
                return True
        self.unsafe(f"calls {name}() on code built at run time", True, True)
        return False


class Info:
    """What one step defines and uses, after translation."""

    __slots__ = ("defs", "ok", "parsed", "reasons", "uses", "uses_all", "wildcard")

    def __init__(self, ok: bool, parsed: bool) -> None:
        self.ok, self.parsed = ok, parsed
        self.defs: set[str] = set()
        self.uses: set[str] = set()
        self.wildcard = not parsed and ok  # valid for the kernel, opaque to us
        self.uses_all = not parsed and ok
        self.reasons: list[str] = ["does not parse as Python"] if self.wildcard else []


def _closure(start: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
    out: set[str] = set()
    todo = list(start)
    while todo:
        for name in step(todo.pop()):
            if name not in out:
                out.add(name)
                todo.append(name)
    return out


def _analyze(step: Step, tr: Translation, env: _Env) -> Info:
    """One step's definitions and uses, given what the history established before it."""
    info = Info(step.ok, tr.parsed)
    if tr.parsed:
        # the script's head imports what the translation uses (os for %cd, ...)
        provided = {m for m in tr.modules if m not in env.defined}
        for module in provided:
            env.aliases.setdefault(module, module)
        scope = _Scope(env, env.aliases, module=True)
        scope.stmts(ast.parse(tr.code).body, True)
        _apply_aliasing(env, scope)
        free = _closure(scope.all_loads, scope.lazy_of)
        writes = _closure(scope.all_loads | free, scope.lazy_defs_of)
        mutated = scope.mutated | {w for w in writes if not w.startswith("<")}
        shared = {g for name in mutated for g in env.groups.get(name, (name,))}
        info.defs = scope.stores | shared | writes | scope.effect_defs
        info.uses = scope.loads | ((free | shared) - scope.sure) | writes | scope.effect_uses
        info.uses |= {CWD, ENVIRON}
        info.uses -= provided - scope.stores
        info.uses -= {s for s in info.defs if s.startswith("<seed")}
        info.wildcard, info.uses_all, info.reasons = scope.wildcard, scope.uses_all, scope.reasons
        for name in scope.stores:
            env.lazy.pop(name, None)
            env.lazy_defs.pop(name, None)
        env.lazy.update({k: frozenset(v) for k, v in scope.lazy.items()})
        env.lazy_defs.update({k: frozenset(v) for k, v in scope.lazy_defs.items()})
        env.defined |= scope.stores
        env.functions = (env.functions - scope.stores) | scope.functions
    if step.ok or tr.parsed:
        info.defs |= {_file(p) for p in step.writes}
        info.uses |= {_file(p) for p in step.reads}
    return info


def _apply_aliasing(env: _Env, scope: _Scope) -> None:
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
    env = _Env()
    cache: dict[str, Translation] = {}
    infos, translations = [], []
    for step in history:
        tr = cache.get(step.source)
        if tr is None:
            tr = cache[step.source] = translate_cell(step.source)
        translations.append(tr)
        infos.append(_analyze(step, tr, env))
    return infos, translations
