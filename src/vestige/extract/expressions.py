"""What expressions read and bind: names, `:=`, and the locals of lambdas and comprehensions
(hidden from the enclosing scope). Calls are handed on to the call analysis (calls.py).
"""

from __future__ import annotations

import ast

from vestige.extract.syntax import params, target_names

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from vestige.extract.scope import Scope


class Expressions:
    """Records an expression's reads and bindings in a scope; `call` analyses its calls."""

    def __init__(self, scope: Scope, call: Callable[[ast.Call, bool], None]) -> None:
        self.scope, self.call = scope, call

    def expr(self, node: ast.AST | None) -> None:
        """Walk an expression (or any node whose children are expressions); None is nothing."""
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.scope.load(node.id)
            else:
                self.scope.store(node.id, False)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.scope.store(node.target.id, False)
        elif isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                self.expr(default)
            self.scope.hidden.append(params(node.args))
            self.expr(node.body)
            self.scope.hidden.pop()
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.comprehension(node)
        elif isinstance(node, ast.Call):
            self.call(node, False)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        """A comprehension: its loop variables are its own, its first iterable is not."""
        generators = node.generators
        self.expr(generators[0].iter)  # evaluated in the enclosing scope
        hidden: set[str] = set()
        self.scope.hidden.append(hidden)
        for i, generator in enumerate(generators):
            if i:
                self.expr(generator.iter)
            hidden.update(target_names(generator.target))
            for condition in generator.ifs:
                self.expr(condition)
        if isinstance(node, ast.DictComp):
            self.expr(node.key)
            self.expr(node.value)
        else:
            self.expr(node.elt)
        self.scope.hidden.pop()
