"""Params from the command line, when the program did not parse them with argparse/click.

`--lr 0.1`, `--lr=0.1` and `lr=0.1` are read as params; a flag with no value is True.
Dashes in names become underscores, as argparse does, so both sources agree on keys.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

_KV = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)$", re.DOTALL)
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_PY_OPTS_WITH_VALUE = {"-W", "-X", "-Q"}


def coerce(text: str) -> Any:
    """'0.1' -> 0.1, '3' -> 3, 'true' -> True; anything else stays a string."""
    if _NUMBER.match(text):
        try:
            return int(text)
        except ValueError:
            return float(text)
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return text


def program_args(argv: list[str]) -> list[str]:
    """The arguments after the program: skips the interpreter, its options and the script."""
    if not argv:
        return []
    exe = os.path.basename(argv[0])
    if not re.match(r"^(python[0-9.]*|pypy[0-9.]*|Rscript|bash|sh|zsh|julia|node)$", exe):
        return argv[1:]
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "-c"):
            return argv[i + 2 :]
        if arg in _PY_OPTS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1
            continue
        return argv[i + 1 :]
    return []


def params_from_argv(argv: list[str]) -> dict[str, Any]:
    """Read `--k v`, `--k=v` and `k=v` out of a command's arguments."""
    args = program_args(argv)
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            key = name.replace("-", "_")
            if eq:
                out[key] = coerce(value)
            elif i + 1 < len(args) and not _is_option(args[i + 1]):
                out[key] = coerce(args[i + 1])
                i += 1
            else:
                out[key] = True
        elif m := _KV.match(arg):
            out[m.group(1).replace("-", "_")] = coerce(m.group(2))
        i += 1
    return out


def _is_option(arg: str) -> bool:
    return arg.startswith("-") and not _NUMBER.match(arg)


def parse_param_option(text: str) -> tuple[str, Any]:
    """`--param k=v` -> (k, coerced v); raises ValueError without '='."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(text)
    return key.strip(), coerce(value)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config (dicts of dicts) as one level of dotted keys, `{"model": {"lr": 1}}`
    -> `{"model.lr": 1}`: how params of Hydra, W&B and MLflow configs are queried
    (`--where 'params.model.lr < 0.01'`). Lists and scalars are values; an empty dict is one."""
    out: dict[str, Any] = {}
    if not isinstance(tree, dict) or not tree:
        if prefix:
            out[prefix] = tree
        return out
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out
