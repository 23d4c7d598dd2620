"""The sweep spec: one command repeated over combinations of values, as child runs of one parent.

    vestige run --each model=resnet,vit --each seed=1,2 -j 2 -- \
        python train.py --model {model} --seed {seed}

The spec (every `--each NAME=V1,V2` or `NAME=glob:PATTERN`, or a `--grid` file) gives the
combinations, the cartesian product in the order given; `{name}` placeholders are
substituted in every argument. A placeholder without a value, or a value no argument
uses, is an error before anything runs. The parent is a run of its own (status, spec, its
children and theirs) sealed when the sweep ends; each child is a normal `vestige run` with
`parent` set and its values as params, started by an executor: local processes (`-j N`),
Dask, or Slurm through submitit.
"""

from __future__ import annotations

import glob as globlib
import itertools
import json
import os
import re
from pathlib import Path

from vestige.errors import UsageError
from vestige.records import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: {name} is a placeholder; {{ and }} are a literal brace (as in str.format), so a shell's
#: ${HOME} is written ${{HOME}}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SweepOptions(Record):
    """What `vestige run` was asked for a sweep."""

    _frozen = False

    each: list[str] = Factory(list)
    grid: str | None = None
    jobs: int = 1
    fail_fast: bool = False
    skip_done: bool = False
    executor: str = "local"
    scheduler: str | None = None
    slurm: dict[str, Any] = Factory(dict)
    params: dict[str, Any] = Factory(dict)
    trace: str | None = None  # --trace / --no-trace for every child (None: as configured)
    #: --push: the remote every run goes to (`location.shipped`: a dict workers can open)
    push: dict[str, Any] | None = None


def parse_each(item: str, cwd: Path) -> tuple[str, list[str]]:
    """`NAME=V1,V2,...` or `NAME=glob:PATTERN` -> (name, values)."""
    name, eq, rest = item.partition("=")
    name = name.strip()
    if not eq or not _NAME.match(name):
        raise UsageError(f"--each {item!r}: write NAME=V1,V2,... (or NAME=glob:PATTERN)")
    if rest.startswith("glob:"):
        pattern = rest[len("glob:") :]
        return name, _glob(f"--each {item!r}", f"{name}=glob:'data/*.csv'", pattern, cwd)
    values = _split_values(rest)
    if not rest or any(v == "" for v in values):
        raise UsageError(f"--each {item!r}: empty value; write NAME=V1,V2,...")
    return name, values


def _split_values(text: str) -> list[str]:
    """`a,b\\,c` -> ["a", "b,c"]: a comma is escaped by a backslash, a backslash before a
    comma or a backslash by another; any other backslash is kept (`\\d+` stays)."""
    values, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1 : i + 2] in (",", "\\"):
            current.append(text[i + 1])
            i += 2
            continue
        if c == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    values.append("".join(current))
    return values


def _glob(where: str, example: str, pattern: str, cwd: Path) -> list[str]:
    """The files a `glob:` value names; `where` and `example` shape the error messages."""
    if not pattern:
        raise UsageError(f"{where}: the glob pattern is empty; write it after glob:, "
                         f"e.g. {example}")  # fmt: skip
    matches = sorted(globlib.glob(pattern, root_dir=cwd, recursive=True))
    if not matches:
        raise UsageError(f"{where}: no file matches (in {cwd})")
    return matches


def load_grid(path: str, cwd: Path) -> list[tuple[str, list[str]]]:
    """A grid file: a JSON or YAML mapping NAME -> list, `glob:PATTERN`, or a range
    `{"range": [start, stop, step]}` (stop excluded, like Python's)."""
    p = (cwd / path) if not os.path.isabs(path) else Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UsageError(f"--grid {path}: cannot read it ({e.strerror})") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise UsageError(f"--grid {path}: YAML needs PyYAML (pip install pyyaml); "
                             "or write the grid as JSON") from None  # fmt: skip
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"--grid {path}: not valid YAML ({_one_line(e)})") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise UsageError(f"--grid {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise UsageError(f"--grid {path}: expected a mapping of names to value lists")
    out = []
    for name, spec in data.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"--grid {path}: {name!r} is not a usable name")
        out.append((name, _grid_values(path, name, spec, cwd)))
    return out


def _grid_values(path: str, name: str, spec: Any, cwd: Path) -> list[str]:
    if isinstance(spec, list) and spec:
        return [_text(v) for v in spec]
    if isinstance(spec, str) and spec.startswith("glob:"):
        return _glob(f"--grid {path}: {name}: {spec!r}", f'"{name}": "glob:data/*.csv"',
                     spec[5:], cwd)  # fmt: skip
    if isinstance(spec, dict) and set(spec) == {"range"} and isinstance(spec["range"], list):
        args = spec["range"]
        if 1 <= len(args) <= 3 and all(isinstance(a, (int, float)) for a in args):
            values = _frange(*args)
            if not values:
                raise UsageError(f"--grid {path}: {name}: range {args} gives no values (stop "
                                 "is excluded; a negative step counts down)")  # fmt: skip
            return [_text(v) for v in values]
    raise UsageError(f"--grid {path}: {name}: expected a non-empty list, 'glob:PATTERN' or "
                     '{"range": [start, stop, step]}')  # fmt: skip


def _frange(*args: float) -> list[float]:
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    if step == 0:
        raise UsageError("--grid: a range step of 0 never ends")
    if all(isinstance(a, int) for a in (start, stop, step)):
        return list(range(int(start), int(stop), int(step)))
    n = max(0, int((stop - start) / step + 1e-9) + (0 if (stop - start) % step == 0 else 1))
    return [round(start + i * step, 12) for i in range(n)]


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def combinations(axes: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """The cartesian product, first axis slowest; a name given twice is an error."""
    names = [n for n, _ in axes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UsageError(f"--each: {sorted(dup)[0]!r} is given twice")
    empty = [n for n, values in axes if not values]
    if empty:  # the product would be empty: a sweep of nothing, recorded as if it ran
        raise UsageError(f"{empty[0]!r} has no values; give it at least one")
    return [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def check_placeholders(argv: list[str], names: list[str]) -> None:
    """Every {name} has values and every name is used: else a clear error, before running."""
    used = {m for arg in argv for m in _PLACEHOLDER.findall(arg) if m}
    missing = sorted(used - set(names))
    if missing:
        name = missing[0]
        raise UsageError(f"the command uses {{{name}}} but no --each/--grid gives {name!r} "
                         f"values (a literal brace is doubled: {{{{{name}}}}})")  # fmt: skip
    unused = [n for n in names if n not in used]
    if unused:
        raise UsageError(f"--each {unused[0]}=... is not used: put {{{unused[0]}}} in the "
                         "command where its value goes")  # fmt: skip


def substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    """The command for one combination."""

    def one(m: re.Match[str]) -> str:
        text = m.group(0)
        return values[m.group(1)] if m.group(1) else text[0]

    return [_PLACEHOLDER.sub(one, arg) for arg in argv]
