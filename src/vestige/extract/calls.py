"""What a call reads, mutates and changes: receivers and arguments of discarded calls, calls
into modules (random state, working directory, environment, sys.path), pure calls, and
exec/eval/globals(), where the analysis may go blind.
"""

from __future__ import annotations

import ast
import re

from vestige.extract.rules import (
    CONTAINER_METHODS,
    GLOBAL_STATE_CALLS,
    MUTATING_METHODS,
    NOT_GLOBAL_DRAWS,
    PLOT_METHODS,
    PURE_BUILTINS,
    PURE_CALLS,
    PURE_PREFIXES,
    READONLY_METHODS,
    SEED_CALLS,
    STATE_FUNCTIONS,
    STATE_PREFIXES,
    STATE_SEEDS,
    STATE_USES,
    TORCH_DRAWS,
)
from vestige.extract.scope import (
    CWD,
    ENVIRON,
    SYS_PATH,
    library_of,
    modules_imported,
    rng,
    seed,
)
from vestige.extract.syntax import chain, is_namespace_call, quoted

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from vestige.extract.scope import Scope


def _rng_effects(qual: str) -> tuple[set[str], set[str]]:
    """(uses, defs) of global random state for a call to the qualified name `qual`."""
    if qual in SEED_CALLS:
        mods = SEED_CALLS[qual]
        return set(), {rng(m) for m in mods} | {seed(m) for m in mods}
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
    return {rng(module)}, {rng(module)}


def _is_state_function(name: str) -> bool:
    return name in STATE_FUNCTIONS or name.startswith(STATE_PREFIXES)


#: `@name` in a pandas query()/eval() string: a read of the Python variable `name`.
_AT_NAME = re.compile(r"@([A-Za-z_][A-Za-z_0-9]*)")


class Calls:
    """Records a call's effects in a scope; `expr` and `stmts` walk the code it contains."""

    def __init__(
        self,
        scope: Scope,
        expr: Callable[[ast.AST | None], None],
        stmts: Callable[[list[ast.stmt], bool], None],
    ) -> None:
        self.scope, self.expr, self.stmts = scope, expr, stmts

    def call(self, node: ast.Call, discarded: bool) -> None:
        """A call; `discarded`: its result is thrown away (so it is called for its effects)."""
        scope = self.scope
        func = node.func
        root, attrs = chain(func)
        method = func.attr if isinstance(func, ast.Attribute) else None
        name = func.id if isinstance(func, ast.Name) else None
        qual = ".".join([scope.aliases[root], *attrs]) if root in scope.aliases else None
        if method in ("query", "eval"):  # pandas: '@mu' in the expression reads `mu`
            for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "expr")]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    for local in _AT_NAME.findall(arg.value):
                        scope.load(local)
        if method in PLOT_METHODS:  # drawing (`df.plot()` too) reads matplotlib's rcParams
            scope.use_state("matplotlib")
        if qual in ("importlib.reload", "importlib.import_module") and node.args:
            self.module_read(node.args[0])
        if name is not None and not scope.user_defined(name):
            if name in ("exec", "eval") and self.exec_call(node, name):
                return
            if name in ("globals", "locals", "vars") and not node.args:
                scope.unsafe(f"calls {name}(): it may read or change any name", True, True)
            if name in ("setattr", "delattr") and node.args:
                target_root, _ = chain(node.args[0])
                if target_root in scope.aliases or "modules" in ast.dump(node.args[0]):
                    scope.unsafe(f"{name}() on a module may change any name", True, True)
                elif target_root:
                    scope.mutate(target_root)
            if name == "next" and node.args:
                target_root, _ = chain(node.args[0])
                if target_root:
                    scope.mutate(target_root)
        namespace_write = ("update", "setdefault", "__setitem__", "pop", "__delitem__")
        if (
            isinstance(func, ast.Attribute)
            and is_namespace_call(func.value)
            and method in namespace_write
        ):
            scope.unsafe("changes names through globals()", True, False)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                self.expr(arg)
            return
        if qual is not None and root is not None:
            self.module_call(qual, root, method, len(attrs))
            self.state_call(qual, func, discarded)
        elif (
            root is not None
            and method is not None
            and ((discarded and method not in READONLY_METHODS) or method in MUTATING_METHODS)
        ):
            scope.mutate(root)
        for keyword_arg in node.keywords:
            value = keyword_arg.value
            inplace = isinstance(value, ast.Constant) and value.value is True
            if keyword_arg.arg == "inplace" and inplace and isinstance(func, ast.Attribute):
                inplace_root, _ = chain(func.value)
                if inplace_root:
                    scope.mutate(inplace_root)
            if keyword_arg.arg == "out":
                out_root, _ = chain(value)
                if out_root:
                    scope.mutate(out_root)
        if discarded and not self.pure_call(name, qual, method):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                arg_root, _ = chain(arg)
                if arg_root and arg_root not in scope.aliases:
                    scope.mutate(arg_root)
        self.expr(func)
        for arg in node.args:
            self.expr(arg)
        for keyword_arg in node.keywords:
            self.expr(keyword_arg.value)

    def module_call(self, qual: str, root: str, method: str | None, depth: int) -> None:
        """A call into an imported module: random state, ambient state, module settings."""
        scope = self.scope
        uses, defs = _rng_effects(qual)
        if uses or defs:
            scope.effect_uses |= uses
            scope.effect_defs |= defs
        elif qual in ("os.chdir", "os.fchdir"):
            scope.effect_uses.add(CWD)
            scope.effect_defs.add(CWD)
        elif qual in ("os.putenv", "os.unsetenv") or (
            qual.startswith("os.environ.") and method in MUTATING_METHODS
        ):
            scope.effect_uses.add(ENVIRON)
            scope.effect_defs.add(ENVIRON)
        elif qual.startswith("sys.path.") and method in MUTATING_METHODS:
            scope.effect_uses.add(SYS_PATH)
            scope.effect_defs.add(SYS_PATH)
        elif method is not None and (
            _is_state_function(method) or (depth >= 2 and method in MUTATING_METHODS)
        ):
            scope.mutate(root)

    def module_read(self, arg: ast.expr) -> None:
        """`importlib.reload(helper)`, `import_module("helper")`: the module's file is read."""
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            self.scope.effect_uses |= modules_imported(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in self.scope.aliases:
            self.scope.effect_uses |= modules_imported(self.scope.aliases[arg.id])

    def state_call(self, qual: str, func: ast.expr, discarded: bool) -> None:
        """A call through a module that changes a library's process-global state: known ones
        (`sns.set_theme()`, `np.seterr()`), dict-like settings (`plt.rcParams.update()`),
        and, when its result is dropped, one named like a setter (`lib.set_x()`, `.use()`,
        `.seed()`): it may, so it counts (erring towards keeping the step, and saying so)."""
        library = library_of(qual)
        function = qual.rsplit(".", 1)[-1]
        known = GLOBAL_STATE_CALLS.get(qual)
        if known:
            self.scope.change_state(known, True, quoted(func, "()"))
        elif qual.count(".") >= 2 and function in CONTAINER_METHODS:
            self.scope.change_state((library,), True, quoted(func, "()"))
        elif (
            discarded
            and (_is_state_function(function) or function in STATE_SEEDS)
            and not _rng_effects(qual)[1]
        ):
            libraries = (library, *STATE_USES.get(library, ()))
            self.scope.change_state(libraries, False, quoted(func, "()"))

    def pure_call(self, name: str | None, qual: str | None, method: str | None) -> bool:
        """Whether the call changes none of its arguments (print-like, read-only methods)."""
        if name is not None and name in PURE_BUILTINS and not self.scope.user_defined(name):
            return True
        if qual is not None and (qual in PURE_CALLS or qual.startswith(PURE_PREFIXES)):
            return True
        return method is not None and (method in READONLY_METHODS or method in PLOT_METHODS)

    def exec_call(self, node: ast.Call, name: str) -> bool:
        """exec/eval of a literal string is read like the cell's own code (True: done)."""
        code = node.args[0] if node.args else None
        if len(node.args) > 1 or node.keywords:
            for arg in node.args[1:]:
                namespace_root, _ = chain(arg)
                if namespace_root:
                    self.scope.mutate(namespace_root)
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
        self.scope.unsafe(f"calls {name}() on code built at run time", True, True)
        return False
