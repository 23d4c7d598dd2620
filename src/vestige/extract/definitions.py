"""What `def` and `class` statements bind, and what their bodies need: a function's free names
are read, and the globals it changes are changed, where it is called (its body runs then).
"""

from __future__ import annotations

from vestige.extract.scope import Scope
from vestige.extract.syntax import params

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    import ast
    from collections.abc import Callable


def free_and_writes(inner: Scope, names: set[str]) -> tuple[set[str], set[str]]:
    """A function's free names (read when called) and the globals its calls change."""
    local = (names | inner.stores) - inner.global_decl - inner.nonlocal_decl
    free = ((inner.loads | inner.mutated) - local) | inner.effect_uses
    writes = (inner.stores & inner.global_decl) | (inner.mutated - local)
    return free, writes | inner.effect_defs | inner.inner_writes


class Definitions:
    """Records function and class definitions in a scope, walking their bodies in their own."""

    def __init__(
        self,
        scope: Scope,
        expr: Callable[[ast.AST | None], None],
        walk_body: Callable[[Scope, list[ast.stmt]], None],
    ) -> None:
        self.scope, self.expr, self.walk_body = scope, expr, walk_body

    def function_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, sure: bool) -> None:
        """`def`: decorators, defaults and annotations are read now, the body when called."""
        scope = self.scope
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            self.expr(expr)
        every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in [*every, node.args.vararg, node.args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.expr(arg.annotation)
        self.expr(node.returns)
        inner = Scope(scope.env, dict(scope.aliases), module=False)
        inner.outer = scope
        self.walk_body(inner, node.body)
        free, writes = free_and_writes(inner, params(node.args))
        self.absorb_unsafe(inner)
        scope.store(node.name, sure)
        scope.functions.add(node.name)
        if scope.module:
            scope.lazy[node.name] = free
            scope.lazy_defs[node.name] = writes
        elif scope.is_class:
            scope.method_free |= free
            scope.inner_writes |= writes
        else:
            for name in free:
                scope.load(name)
            scope.inner_writes |= writes

    def class_def(self, node: ast.ClassDef, sure: bool) -> None:
        """`class`: the body runs now; its methods' free names are needed where it is used."""
        scope = self.scope
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.expr(expr)
        inner = Scope(scope.env, dict(scope.aliases), module=False)
        inner.outer = scope
        inner.is_class = True
        self.walk_body(inner, node.body)
        self.absorb_unsafe(inner)
        for name in (inner.loads | inner.effect_uses) - inner.stores:
            scope.load(name) if not name.startswith("<") else scope.effect_uses.add(name)
        writes = inner.inner_writes | inner.effect_defs
        scope.store(node.name, sure)
        if scope.module:
            scope.lazy[node.name] = set(inner.method_free)
            scope.lazy_defs[node.name] = set(writes)
        else:
            for name in inner.method_free:
                scope.load(name)
            scope.inner_writes |= writes

    def absorb_unsafe(self, inner: Scope) -> None:
        """Where a nested scope's analysis is blind, so is this one's."""
        for reason in inner.reasons:
            self.scope.unsafe(reason, inner.wildcard, inner.uses_all)
