"""Small questions about AST shapes that every part of the scope analysis asks: the name at
the root of `a.b[i]`, the names a target or a parameter list binds, `globals()` calls.
"""

from __future__ import annotations

import ast


def chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """The base name of `a.b[i].c` ('a') and its attribute names; None under a call."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        if isinstance(node, ast.Attribute):
            attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attrs[::-1]
    return None, attrs[::-1]


def params(args: ast.arguments) -> set[str]:
    """The names a function's or lambda's parameters bind."""
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def target_names(node: ast.AST) -> list[str]:
    """The plain names an assignment target binds (`a, *b = ...`), not `a.x` or `a[i]`."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in target_names(elt)]
    if isinstance(node, ast.Starred):
        return target_names(node.value)
    return []


def is_namespace_call(node: ast.AST) -> bool:
    """Whether `node` is `globals()`, `locals()` or `vars()`: the namespace itself."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("globals", "locals", "vars")
        and not node.args
    )


def quoted(node: ast.AST, suffix: str = "") -> str:
    """Code as a warning quotes it: in backquotes, on one line, short."""
    text = " ".join(ast.unparse(node).split())
    return f"`{text if len(text) <= 60 else text[:57] + '...'}{suffix}`"
