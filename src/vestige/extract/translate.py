"""IPython syntax -> plain Python: what a kept cell becomes in `vestige extract`'s script.

IPython's own transformer (or, without IPython, a line-based reading of the same forms) turns
magics, shell commands and help into get_ipython() calls; each call with constant arguments
becomes plain Python (`%cd` -> os.chdir, `!ls` -> subprocess.run), or a comment and a warning
when there is no equivalent. The analysis reads the translated code, and the script runs it.
"""

from __future__ import annotations

import ast
import keyword
import re
import shlex

from vestige.records import Record


class Translation(Record):
    """A cell as plain Python, with what the translation could not do faithfully."""

    code: str
    warnings: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # modules the translated code imports from the script head
    parsed: bool = True  # False: the code does not parse (the cell is not valid Python)
    writes: tuple[str, ...] = ()  # files its magics write, when their paths are constants


#: Line magics that only change the display, the kernel or the shell: a comment suffices.
# fmt: off
QUIET_MAGICS = frozenset((
    "matplotlib", "load_ext", "reload_ext", "unload_ext", "autoreload", "aimport", "config",
    "xmode", "pdb", "colors", "autocall", "automagic", "doctest_mode", "pprint", "precision",
    "who", "whos", "lsmagic", "magic", "history", "hist", "page", "quickref", "pinfo", "pinfo2",
    "pdoc", "pdef", "psource", "pfile", "psearch", "clear", "cls", "ls", "ll", "dirs", "dhist",
    "alias", "unalias", "bookmark", "notebook", "connect_info", "qtconsole", "killbgscripts",
    "tb", "logstart", "logon", "logoff", "logstop", "logstate", "gui", "pylab",
))
# fmt: on
#: Line magics that install packages: the script says so and goes on.
INSTALL_MAGICS = frozenset({"pip", "conda", "mamba", "micromamba", "uv"})
#: Cell magics whose effect is only what the notebook displayed.
DISPLAY_CELL_MAGICS = frozenset(
    {"html", "HTML", "markdown", "latex", "javascript", "js", "svg", "perl_display"}
)
#: Cell magics that run the body with another program (the program is the magic's name).
SCRIPT_CELL_MAGICS = frozenset({"bash", "sh", "zsh", "perl", "ruby", "python2", "pypy"})

_transformer = None


def translate(source: str) -> str:
    """IPython-only syntax -> plain Python (or a comment when there is no equivalent)."""
    return translate_cell(source).code


def translate_cell(source: str) -> Translation:
    """`translate` with its warnings and the modules the translated code needs."""
    return _rewrite(_ipython_syntax(source), source)


def _ipython_syntax(source: str) -> str:
    """IPython's own view of the cell (magics and shell lines as get_ipython() calls)."""
    global _transformer
    if _transformer is None:
        try:
            from IPython.core.inputtransformer2 import TransformerManager
        except ImportError:  # IPython is optional: a line-based reading of the same forms
            _transformer = False
        else:
            _transformer = TransformerManager()
    if _transformer is False:
        return fallback_syntax(source)
    try:
        return _transformer.transform_cell(source)
    except Exception:  # its tokenizer gives up on some broken cells: read them by lines
        return fallback_syntax(source)


_ASSIGN_FROM = re.compile(r"^(\s*)([\w.\[\]'\", ()]+?)\s*=\s*(!|%)(.*)$")
_HELP_BEFORE = re.compile(r"^(\s*)(\?{1,2})\s*([\w.]+)\s*$")
_HELP_AFTER = re.compile(r"^(\s*)([\w.]+)\s*(\?{1,2})\s*$")


def fallback_syntax(source: str) -> str:
    """Magic, shell and help lines -> get_ipython() calls, line by line (no IPython)."""
    lines = source.lstrip("\n").splitlines()
    if lines and lines[0].startswith("%%"):
        name, _, line = lines[0][2:].partition(" ")
        body = "\n".join(lines[1:]) + "\n" if len(lines) > 1 else ""
        return f"get_ipython().run_cell_magic({name!r}, {line.strip()!r}, {body!r})\n"
    out: list[str] = []
    in_string: str | None = None
    for line in lines:
        if in_string is None:
            out.append(_fallback_line(line))
        else:
            out.append(line)
        for quote in ('"""', "'''"):
            if (in_string in (None, quote)) and line.count(quote) % 2:
                in_string = None if in_string == quote else quote
    return "\n".join(out) + "\n"


def _fallback_line(line: str) -> str:
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    if stripped.startswith("!!"):
        return f"{indent}get_ipython().getoutput({stripped[2:].strip()!r})"
    if stripped.startswith("!"):
        return f"{indent}get_ipython().system({stripped[1:].strip()!r})"
    if stripped.startswith("%") and not stripped.startswith("%%"):
        name, _, arg = stripped[1:].partition(" ")
        return f"{indent}get_ipython().run_line_magic({name!r}, {arg.strip()!r})"
    match = _HELP_BEFORE.match(line) or _HELP_AFTER.match(line)
    if match and not keyword.iskeyword(match.group(2)):
        groups = match.groups()
        marks, name = (groups[1], groups[2]) if groups[1].startswith("?") else groups[2:0:-1]
        magic = "pinfo2" if len(marks) == 2 else "pinfo"
        return f"{indent}get_ipython().run_line_magic({magic!r}, {name!r})"
    match = _ASSIGN_FROM.match(line)
    if match and "==" not in line:
        indent, target, mark, rest = match.groups()
        if mark == "!":
            return f"{indent}{target} = get_ipython().getoutput({rest.strip()!r})"
        name, _, arg = rest.partition(" ")
        return f"{indent}{target} = get_ipython().run_line_magic({name!r}, {arg.strip()!r})"
    return line


class _Magic(Record):
    """What one get_ipython() call becomes: as a statement, and inside an expression."""

    stmt: str  # a statement (may span lines; a comment when nothing is left to run)
    expr: str = "None"
    warning: str | None = None
    modules: tuple[str, ...] = ()
    comment: bool = False  # stmt is only a comment
    writes: tuple[str, ...] = ()  # files it writes (`%%writefile helper.py`), paths known


def _rewrite(code: str, original: str) -> Translation:
    """Replace each get_ipython() call in IPython's transformed cell by plain Python."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return Translation(code=original, parsed=False)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    offsets = _line_offsets(code)
    edits: list[tuple[int, int, str]] = []
    warnings: list[str] = []
    modules: set[str] = set()
    writes: list[str] = []
    handled: set[ast.AST] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        inner = node.func.value
        if not _is_get_ipython(inner):
            continue
        magic = _ipython_call(node.func.attr, node)
        if magic is None:
            continue
        handled.add(inner)
        edits.append(_edit(code, offsets, node, parents, magic))
        warnings += [magic.warning] if magic.warning else []
        modules.update(magic.modules)
        writes += [w for w in magic.writes if w not in writes]
    for node in ast.walk(tree):
        if _is_get_ipython(node) and node not in handled:
            statement = node
            while not isinstance(statement, ast.stmt):
                statement = parents[statement]
            text = ast.get_source_segment(code, statement) or "get_ipython()"
            magic = _Magic(
                stmt=f"# vestige: dropped IPython-only code: {_one_line(text)}",
                comment=True,
                warning=f"dropped IPython-only code (no plain Python for it): {_one_line(text)}",
            )
            here = _char_index(code, offsets, statement.lineno, statement.col_offset)
            if not any(start <= here < end for start, end, _ in edits):
                edits.append(_edit(code, offsets, statement, parents, magic))
                warnings.append(magic.warning or "")
    for start, end, text in sorted(edits, reverse=True):
        code = code[:start] + text + code[end:]
    return Translation(
        code=code,
        warnings=tuple(warnings),
        modules=tuple(sorted(modules)),
        writes=tuple(writes),
    )


def _is_get_ipython(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
        and not node.args
    )


def _line_offsets(code: str) -> list[int]:
    offsets, total = [0], 0
    for line in code.splitlines(keepends=True):
        total += len(line)
        offsets.append(total)
    return offsets


def _edit(
    code: str, offsets: list[int], node: ast.AST, parents: dict[ast.AST, ast.AST], magic: _Magic
) -> tuple[int, int, str]:
    """The text span of `node` (or of its statement when it is one) and its replacement."""
    parent = parents.get(node)
    target: ast.AST = node
    as_statement = isinstance(node, ast.stmt)
    if isinstance(parent, ast.Expr):
        target, as_statement = parent, True
    start = _char_index(code, offsets, target.lineno, target.col_offset)  # type: ignore[attr-defined]
    end = _char_index(code, offsets, target.end_lineno, target.end_col_offset)  # type: ignore[attr-defined]
    line_end = code.find("\n", end)
    rest = code[end : len(code) if line_end < 0 else line_end].strip()
    if not as_statement or (rest and not rest.startswith("#")):
        return start, end, magic.expr
    line_start = code.rfind("\n", 0, start) + 1
    indent = code[line_start:start]
    if indent.strip():  # after a `;` on the same line: stay an expression
        return start, end, magic.expr
    text = magic.stmt
    if indent and magic.comment:
        text = f"pass  {text}"
    elif indent:
        text = text.replace("\n", "\n" + indent)
    return start, end, text


def _char_index(code: str, offsets: list[int], lineno: int, byte_col: int) -> int:
    """A character index from ast's (line, UTF-8 byte column)."""
    line = code[offsets[lineno - 1] : offsets[lineno]]
    return offsets[lineno - 1] + len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def _constant_args(call: ast.Call) -> list[str] | None:
    values = []
    for arg in call.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return None
        values.append(arg.value)
    return values


def _ipython_call(method: str, call: ast.Call) -> _Magic | None:
    """get_ipython().<method>(...) with constant arguments -> its translation."""
    args = _constant_args(call)
    if args is None and method == "run_cell" and len(call.args) == 1:
        code = ast.unparse(call.args[0])
        return _Magic(
            stmt=f"exec({code}, globals())",
            expr=f"exec({code}, globals())",
            warning="get_ipython().run_cell() of code built at run time: run with exec() "
            "(IPython syntax in it will not work)",
        )
    if args is None:
        return None
    if method == "run_line_magic" and len(args) == 2:
        return _line_magic(args[0], args[1])
    if method == "run_cell_magic" and len(args) == 3:
        return _cell_magic(args[0], args[1], args[2])
    if method == "system" and len(args) == 1:
        return _shell(args[0], capture=False)
    if method == "getoutput" and len(args) == 1:
        return _shell(args[0], capture=True)
    if method == "run_cell" and len(args) == 1:
        inner = translate_cell(args[0])
        return _Magic(stmt=inner.code.rstrip("\n") or "pass", modules=inner.modules)
    return None


def _shell(command: str, capture: bool) -> _Magic:
    cmd = expand(command)
    if capture:
        call = (
            f"subprocess.run({cmd}, shell=True, check=False, capture_output=True, text=True)"
            ".stdout.splitlines()"
        )
    else:
        call = f"subprocess.run({cmd}, shell=True, check=False)"
    return _Magic(stmt=call, expr=call, modules=("subprocess",))


def _comment(text: str, warning: str | None = None) -> _Magic:
    return _Magic(stmt=f"# {text}", comment=True, warning=warning)


def _dropped(shown: str) -> _Magic:
    return _comment(
        f"vestige: dropped IPython magic: {_one_line(shown)}",
        warning=f"dropped IPython magic with no plain-Python equivalent: {_one_line(shown)}",
    )


def _line_magic(name: str, arg: str) -> _Magic:
    shown = f"%{name} {arg}".rstrip()
    if name in QUIET_MAGICS:
        return _comment(f"{shown}  (IPython only)")
    if name in INSTALL_MAGICS:
        return _comment(
            f"vestige: the notebook ran `{shown}`: install that before running this script",
            warning=f"the notebook ran `{shown}`: install that before running the script",
        )
    if name in ("time", "timeit", "prun"):
        statement = _strip_options(arg, "nrp" if name == "timeit" else "DlrsT")
        inner = translate_cell(statement)
        code = inner.code.strip()
        expr = f"({code})" if _is_expression(code) else "None"
        return _Magic(stmt=code or "pass", expr=expr, modules=inner.modules)
    if name == "cd":
        return _cd(arg)
    if name == "env":
        return _env(arg)
    if name == "pwd":
        return _Magic(stmt="os.getcwd()", expr="os.getcwd()", modules=("os",))
    if name in ("sx", "system"):
        return _shell(arg, capture=True)
    if name == "run":
        return _run(arg)
    if name in ("load", "store", "reset", "rerun", "recall", "macro", "save", "edit"):
        return _comment(
            f"vestige: {shown}  (not reproduced: IPython session state)",
            warning=f"`{shown}` acts on IPython's session: not reproduced in the script",
        )
    return _dropped(shown)


def _strip_options(arg: str, with_value: str) -> str:
    """`-n 10 -r 3 stmt` -> `stmt` (the options of %timeit, %prun)."""
    rest = arg.lstrip()
    while rest.startswith("-"):
        option, _, rest = rest.partition(" ")
        if len(option) == 2 and option[1] in with_value:
            _, _, rest = rest.lstrip().partition(" ")
        rest = rest.lstrip()
    return rest


def _is_expression(code: str) -> bool:
    try:
        ast.parse(code, mode="eval")
    except SyntaxError:
        return False
    return bool(code)


def _cd(arg: str) -> _Magic:
    path = arg.strip()
    if path.startswith("-q"):
        path = path[2:].strip()
    if path in ("-", "") or path.startswith("-"):
        if not path:
            call = 'os.chdir(os.path.expanduser("~"))'
            return _Magic(stmt=call, expr=call, modules=("os",))
        return _comment(
            f"vestige: %cd {path}  (not reproduced: IPython's directory history)",
            warning=f"`%cd {path}` uses IPython's directory history: not reproduced",
        )
    if len(path) > 1 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    call = f"os.chdir(os.path.expanduser({expand(path)}))"
    return _Magic(stmt=call, expr=call, modules=("os",))


def _env(arg: str) -> _Magic:
    arg = arg.strip()
    if not arg:
        return _Magic(stmt="# %env  (IPython only)", expr="dict(os.environ)", modules=("os",))
    if "=" in arg:
        name, _, value = arg.partition("=")
    else:
        name, _, value = arg.partition(" ")
        if not value:
            read = f"os.environ[{name.strip()!r}]"
            return _Magic(stmt=read, expr=read, modules=("os",))
    name, value = name.strip(), value.strip()
    stmt = f"os.environ[{name!r}] = {expand(value)}"
    expr = f"os.environ.__setitem__({name!r}, {expand(value)})"
    return _Magic(stmt=stmt, expr=expr, modules=("os",))


def _run(arg: str) -> _Magic:
    try:
        words = shlex.split(arg)
    except ValueError:
        words = arg.split()
    interactive = False
    module = None
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option == "-i":
            interactive = True
        elif option == "-m" and words:
            module = words.pop(0)
            break
        elif option in ("-d", "-p", "-t", "-e", "-G", "-N"):
            continue
    warning = (
        f"`%run {arg}` runs code outside the history (through runpy): the names it defines "
        "are unknown to the slice"
    )
    init = ", init_globals=globals()" if interactive else ""
    if module:
        call = f'runpy.run_module({module!r}, run_name="__main__"{init})'
        argv = [module, *words]
    elif words:
        call = f'runpy.run_path({words[0]!r}, run_name="__main__"{init})'
        argv = words
    else:
        return _dropped(f"%run {arg}")
    stmt = f"sys.argv = {argv!r}\nglobals().update({call})"
    return _Magic(stmt=stmt, expr=call, modules=("runpy", "sys"), warning=warning)


def _cell_magic(name: str, line: str, body: str) -> _Magic:
    shown = f"%%{name} {line}".rstrip()
    if name in ("time", "capture", "prun", "debug"):
        inner = translate_cell(body)
        warning = None
        words = [w for w in line.split() if not w.startswith("-")]
        if name == "capture" and words:
            warning = f"`{shown}`: the captured output `{words[0]}` is not reproduced"
        return _Magic(
            stmt=inner.code.rstrip("\n") or "pass", modules=inner.modules, warning=warning
        )
    if name == "timeit":
        setup = _strip_options(line, "nrp")
        inner = translate_cell(f"{setup}\n{body}" if setup else body)
        return _Magic(stmt=inner.code.rstrip("\n") or "pass", modules=inner.modules)
    if name in ("writefile", "file"):
        words = line.split()
        mode = "a" if "-a" in words or "--append" in words else "w"
        paths = [w for w in words if not w.startswith("-")]
        if not paths:
            return _dropped(shown)
        path = paths[0]
        if len(path) > 1 and path[0] == path[-1] and path[0] in "'\"":
            path = path[1:-1]
        where = expand(path)
        stmt = (
            f'with open({where}, "{mode}", encoding="utf-8") as _vestige_file:\n'
            f"    _vestige_file.write({_literal(body)})"
        )
        return _Magic(stmt=stmt, writes=(path,) if where == repr(path) else ())
    if name in SCRIPT_CELL_MAGICS or name == "script":
        program = shlex.split(line) if name == "script" else [name, *shlex.split(line)]
        program = [w for w in program if not w.startswith("--")]
        if not program:
            return _dropped(shown)
        call = f"subprocess.run({program!r}, input={_literal(body)}, text=True, check=False)"
        return _Magic(stmt=call, expr=call, modules=("subprocess",))
    if name in ("python", "python3"):
        call = f"subprocess.run([sys.executable], input={_literal(body)}, text=True, check=False)"
        return _Magic(stmt=call, expr=call, modules=("subprocess", "sys"))
    if name in DISPLAY_CELL_MAGICS:
        return _comment(f"{shown}  (displayed output only)")
    commented = "".join(f"\n# {line}" for line in body.splitlines())
    magic = _dropped(shown)
    return magic.replace(stmt=magic.stmt + commented)


def _literal(text: str) -> str:
    """A string literal for `text`: triple-quoted when that reads better and is exact."""
    if (
        "\n" in text.rstrip("\n")
        and '"""' not in text
        and "\\" not in text
        and not text.endswith('"')
        and all(c.isprintable() or c == "\n" for c in text)
    ):
        return '"""\\\n' + text + '"""'
    return repr(text)


_DOLLAR = re.compile(r"\$\$|\$([A-Za-z_][\w.]*)")


def expand(text: str) -> str:
    """A Python expression for a magic's argument after IPython's variable expansion.

    `{expr}` and `$name` are Python values (IPython expands them from the namespace);
    `$NAME` in capitals and `$` inside single quotes are left to the shell, and when any
    `{...}` is not a Python expression nothing is expanded (`awk '{print $1}'`), as
    IPython does when its expansion fails.
    """
    parts: list[tuple[bool, str]] = []
    literal, i, quoted = "", 0, False
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        if char == "{" and text.startswith("{{", i):
            literal, i = literal + "{", i + 2
            continue
        if char == "}" and text.startswith("}}", i):
            literal, i = literal + "}", i + 2
            continue
        if char == "{":
            end = _matching_brace(text, i)
            if end < 0 or not _is_expression(text[i + 1 : end].split("!")[0].split(":")[0]):
                return repr(text)
            parts += [(False, literal), (True, text[i + 1 : end])]
            literal, i = "", end + 1
            continue
        match = _DOLLAR.match(text, i) if char == "$" and not quoted else None
        if match and match.group(0) == "$$":
            literal, i = literal + "$", i + 2
            continue
        if match and not match.group(1).split(".")[0].isupper():
            parts += [(False, literal), (True, match.group(1).rstrip("."))]
            literal, i = "", match.end()
            continue
        literal, i = literal + char, i + 1
    parts.append((False, literal))
    if not any(is_expr for is_expr, _ in parts):
        return repr(literal if len(parts) == 1 else "".join(p for _, p in parts))
    if any(is_expr and ('"' in p or "\\" in p) for is_expr, p in parts):
        return " + ".join(f"str({p})" if is_expr else repr(p) for is_expr, p in parts if p)
    inner = "".join("{" + p + "}" if is_expr else _fstring_literal(p) for is_expr, p in parts)
    return f'f"{inner}"'


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _fstring_literal(text: str) -> str:
    escaped = repr(text)[1:-1] if text else ""
    if repr(text).startswith('"'):  # repr chose double quotes: single quotes are bare
        escaped = escaped.replace('\\"', '"')
    escaped = escaped.replace("\\'", "'").replace('"', '\\"')
    return escaped.replace("{", "{{").replace("}", "}}")
