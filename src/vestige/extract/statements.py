"""What statements bind, read and mutate: control flow (what is surely bound on every path),
imports, `global`, and the targets of assignments, loops, `with`, `del` and `match`, with
the names that may come to share objects.
"""

from __future__ import annotations

import ast

from vestige.extract.rules import READONLY_METHODS
from vestige.extract.scope import ENVIRON, SYS_PATH, library_of, modules_imported
from vestige.extract.syntax import chain, is_namespace_call, quoted, target_names

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from vestige.extract.definitions import Definitions
    from vestige.extract.scope import Scope


class Assignments:
    """Records what binding targets bind or mutate in a scope, and which names may alias."""

    def __init__(self, scope: Scope, expr: Callable[[ast.AST | None], None]) -> None:
        self.scope, self.expr = scope, expr

    def assign(self, targets: list[ast.expr], value: ast.expr, sure: bool) -> None:
        """`a = b = value`: the targets, what calling them later reads, what they share."""
        scope = self.scope
        collected: set[str] = set()
        scope.collecting.append(collected)
        self.expr(value)
        scope.collecting.pop()
        for target in targets:
            self.target(target, sure)
        names = [n for target in targets for n in target_names(target)]
        lazy: set[str] = set()
        lazy_defs: set[str] = set()
        if any(isinstance(node, ast.Lambda) for node in ast.walk(value)):
            lazy |= collected
        calls = any(isinstance(node, ast.Call) for node in ast.walk(value))
        for name in collected:
            if calls and scope.is_function(name):
                continue  # what a function returns is not the function (its calls are uses)
            lazy |= scope.lazy_of(name)
            lazy_defs |= scope.lazy_defs_of(name)
        for name in names:
            if lazy:
                scope.lazy[name] = set(lazy)
            if lazy_defs:
                scope.lazy_defs[name] = set(lazy_defs)
        if len(names) > 1:
            scope.aliasing.append(set(names))
        self.alias_with(names, value)
        self.inherit(names, collected, sure)

    def inherit(self, names: list[str], read: set[str], sure: bool) -> None:
        """`fig, ax = plt.subplots()`: the names hold objects of the libraries the value
        used, given the names it `read` (so using them later uses those libraries' global
        state, rcParams and the like)."""
        scope = self.scope
        libraries = scope.libraries_in(read)
        for name in names:
            if sure:
                scope.origins[name] = libraries
            elif libraries:
                scope.origins[name] = scope.libraries_of(name) | libraries

    def alias_with(self, names: list[str], value: ast.expr) -> None:
        """`b = a`, `b = a.x[0]`, `b = a.method()`: b may share objects with a."""
        node = value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in READONLY_METHODS:  # copies and new objects: no sharing
                return
            node = node.func.value
        root, _ = chain(node)
        if root is not None and root not in self.scope.aliases and names:
            self.scope.aliasing.append({root, *names})

    def value(self, value: ast.expr) -> set[str]:
        """Walk an expression; the names (and states) it read."""
        collected: set[str] = set()
        self.scope.collecting.append(collected)
        self.expr(value)
        self.scope.collecting.pop()
        return collected

    def target(self, node: ast.expr, sure: bool) -> None:
        """A binding target: names are bound, `a.x` and `a[i]` mutate a."""
        if isinstance(node, ast.Name):
            self.scope.store(node.id, sure)
        elif isinstance(node, ast.Tuple | ast.List):
            for elt in node.elts:
                self.target(elt, sure)
        elif isinstance(node, ast.Starred):
            self.target(node.value, sure)
        elif isinstance(node, ast.Subscript) and is_namespace_call(node.value):
            self.scope.unsafe("assigns names through globals()", True, False)
            self.expr(node.slice)
        elif isinstance(node, ast.Attribute | ast.Subscript):
            self.mutate_chain(node)
        else:
            self.expr(node)

    def mutate_chain(self, node: ast.expr) -> None:
        """`a.b[i] = v`, `del a[i]`, `a.x += 1`: a changes (and is read)."""
        scope = self.scope
        root, attrs = chain(node)
        part: ast.AST = node
        while isinstance(part, ast.Attribute | ast.Subscript):
            if isinstance(part, ast.Subscript):
                self.expr(part.slice)
            part = part.value
        if root is None:
            self.expr(part)
            return
        qual = ".".join([scope.aliases[root], *attrs]) if root in scope.aliases else ""
        if qual.startswith("os.environ"):
            scope.effect_uses.add(ENVIRON)
            scope.effect_defs.add(ENVIRON)
        elif qual.startswith("sys.path"):
            scope.effect_uses.add(SYS_PATH)
            scope.effect_defs.add(SYS_PATH)
        elif qual:  # `mpl.rcParams['lines.linewidth'] = 6`, `pd.options.display.x = 5`
            scope.change_state((library_of(qual),), True, f"sets {quoted(node)}")
        scope.mutate(root)

    def pattern(self, node: ast.AST) -> None:
        """A `case` pattern: its captures are bound (maybe), its values and classes read."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.MatchAs | ast.MatchStar) and sub.name:
                self.scope.store(sub.name, False)
            elif isinstance(sub, ast.MatchMapping) and sub.rest:
                self.scope.store(sub.rest, False)
            elif isinstance(sub, ast.MatchValue):
                self.expr(sub.value)
            elif isinstance(sub, ast.MatchClass):
                self.expr(sub.cls)


class Statements:
    """Sends each statement of a scope to what records it; `sure`: bound on every path."""

    def __init__(
        self,
        scope: Scope,
        expr: Callable[[ast.AST | None], None],
        call: Callable[[ast.Call, bool], None],
        assignments: Assignments,
        definitions: Definitions,
    ) -> None:
        self.scope, self.expr, self.call = scope, expr, call
        self.assignments, self.definitions = assignments, definitions

    def stmts(self, body: list[ast.stmt], sure: bool) -> None:
        """A block of statements, in order."""
        for node in body:
            self.stmt(node, sure)

    def stmt(self, node: ast.stmt, sure: bool) -> None:
        """One statement: what it binds (surely if `sure` and on every path), reads, changes."""
        scope, assignments = self.scope, self.assignments
        if isinstance(node, ast.Expr):
            value = node.value.value if isinstance(node.value, ast.Await) else node.value
            if isinstance(value, ast.Call):
                self.call(value, True)
            else:
                self.expr(node.value)
        elif isinstance(node, ast.Assign):
            assignments.assign(node.targets, node.value, sure)
        elif isinstance(node, ast.AnnAssign):
            if scope.module:
                self.expr(node.annotation)
            if node.value is not None:
                assignments.assign([node.target], node.value, sure)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value)
            if isinstance(node.target, ast.Name):
                scope.load(node.target.id)
                scope.stores.add(node.target.id)
                scope.aliases.pop(node.target.id, None)
            else:
                assignments.target(node.target, sure)
        elif isinstance(node, ast.For | ast.AsyncFor):
            read = assignments.value(node.iter)
            assignments.target(node.target, False)
            assignments.alias_with(target_names(node.target), node.iter)
            assignments.inherit(target_names(node.target), read, False)
            self.stmts(node.body, False)
            self.stmts(node.orelse, False)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test)
            self.stmts(node.body, False)
            self.stmts(node.orelse, False)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                read = assignments.value(item.context_expr)
                if item.optional_vars is not None:
                    assignments.target(item.optional_vars, sure)
                    names = target_names(item.optional_vars)
                    assignments.alias_with(names, item.context_expr)
                    assignments.inherit(names, read, sure)
            self.stmts(node.body, sure)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.stmts(node.body, False)
            for handler in node.handlers:
                self.expr(handler.type)
                if handler.name:
                    scope.store(handler.name, False)
                self.stmts(handler.body, False)
            self.stmts(node.orelse, False)
            self.stmts(node.finalbody, sure)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                assignments.pattern(case.pattern)
                self.expr(case.guard)
                self.stmts(case.body, False)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.definitions.function_def(node, sure)
        elif isinstance(node, ast.ClassDef):
            self.definitions.class_def(node, sure)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    scope.load(target.id)
                    scope.stores.add(target.id)
                    scope.sure.discard(target.id)
                else:
                    assignments.target(target, sure)
        elif isinstance(node, ast.Import):
            scope.effect_uses.add(SYS_PATH)
            for alias in node.names:
                scope.effect_uses |= modules_imported(alias.name)
                bound = alias.asname or alias.name.split(".")[0]
                scope.store(bound, sure)
                scope.aliases[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom):
            scope.effect_uses.add(SYS_PATH)
            module = "." * node.level + (node.module or "")
            if not node.level and node.module:
                scope.effect_uses |= modules_imported(node.module)
            for alias in node.names:
                if not node.level and node.module:  # `from pkg import sub`: maybe a module
                    scope.effect_uses |= modules_imported(f"{node.module}.{alias.name}")
                if alias.name == "*":
                    scope.unsafe(f"`from {module} import *` may define any name", True, False)
                    continue
                bound = alias.asname or alias.name
                scope.store(bound, sure)
                scope.aliases[bound] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Global):
            scope.global_decl.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.nonlocal_decl.update(node.names)
        else:  # Return, Raise, Assert, Pass, Break, Continue, TypeAlias
            for child in ast.iter_child_nodes(node):
                self.expr(child)
