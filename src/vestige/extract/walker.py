"""Walks one scope's code by putting the visitors together: statements, assignments,
definitions, expressions and calls each record their part in the same `Scope`.
"""

from __future__ import annotations

from vestige.extract.calls import Calls
from vestige.extract.definitions import Definitions
from vestige.extract.expressions import Expressions
from vestige.extract.statements import Assignments, Statements

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    import ast

    from vestige.extract.scope import Scope


class ScopeWalker:
    """The visitors of one scope, wired so each can hand nested code back to the others."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.expressions = Expressions(scope, self.call)
        self.calls = Calls(scope, self.expr, self.stmts)
        self.assignments = Assignments(scope, self.expr)
        self.definitions = Definitions(scope, self.expr, walk_body)
        self.statements = Statements(
            scope, self.expr, self.call, self.assignments, self.definitions
        )

    def stmts(self, body: list[ast.stmt], sure: bool) -> None:
        """Walk a block of statements; `sure`: they run on every path."""
        self.statements.stmts(body, sure)

    def expr(self, node: ast.AST | None) -> None:
        """Walk an expression."""
        self.expressions.expr(node)

    def call(self, node: ast.Call, discarded: bool) -> None:
        """Walk a call; `discarded`: its result is thrown away."""
        self.calls.call(node, discarded)


def walk_body(scope: Scope, body: list[ast.stmt]) -> None:
    """Walk a function's or class's body in its own scope (not surely run)."""
    ScopeWalker(scope).stmts(body, False)
