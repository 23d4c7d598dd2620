"""The `--where` language: user text parsed into a parameterized SQL boolean over `runs r`.

Grammar (keywords and field names case-insensitive; precedence not > and > or):

    expr       := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := field ( ("="|"=="|"!="|"<>"|"<"|"<="|">"|">="|"~") value
                        | ["not"] ("contains"|"matches") STRING
                        | ["not"] "in" "(" value ("," value)* ")" | "is" ["not"] "null" )
    field      := params.KEY | metrics.KEY | status | exit_code | command | started | ended
                | duration | id | seq | parent | rerun_of | tag | note | name | pinned
                | adopted
    value      := NUMBER | DURATION (5m) | STRING | true | false

`~` is a glob over the whole text; `contains` a substring, case-insensitive; `matches` a
Python regular expression found anywhere in the text (SQLite's REGEXP: index/regexp.py,
registered on every connection of the index). A `~` pattern without a
wildcard is almost always meant as `contains`: `hints()` says so.

User text never becomes SQL text: the SQL is assembled only from fixed fragments chosen by
the parser, and every literal and every param/metric key is bound as a `?` parameter.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime

from vestige.errors import WhereError
from vestige.store.objects import escape_surrogates

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["compile_where", "hints"]

Fragment = tuple[str, list[object]]

FIELDS_HELP = (
    "fields are params.<name>, metrics.<name>, status, exit_code, command, started, ended, "
    "duration, id, seq, parent, rerun_of, tag, note, name, pinned, adopted"
)
# Plain run columns: name -> (SQL column, value type, nullable).
_COLUMNS: dict[str, tuple[str, str, bool]] = {
    "status": ("r.status", "text", False),
    "command": ("r.command", "text", False),
    "id": ("r.id", "text", False),
    "exit_code": ("r.exit_code", "num", True),
    "seq": ("r.seq", "num", False),
    "duration": ("r.duration", "num", True),
    "started": ("r.started", "time", False),
    "ended": ("r.ended", "time", True),
    "parent": ("r.parent", "text", True),
    "rerun_of": ("r.rerun_of", "text", True),
    "adopted": ("r.adopted", "text", True),  # the tool (mlflow...); also = true / false
}
_FIELD_WORDS = {*_COLUMNS, "tag", "params", "metrics", "pinned", "note", "name"}
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
# Subquery tables: kind -> (table, alias, "the row holds a value" condition).
_SUBTABLES = {
    "param": ("params", "p", "p.value_text IS NOT NULL"),
    "metric": ("metrics", "m", "m.last IS NOT NULL"),
    "tag": ("tags", "t", "1"),
    "note": ("notes", "n", "1"),
    "name": ("names", "nm", "1"),
}
_SUBCOLUMNS = {"metric": "m.last", "tag": "t.tag", "note": "n.text", "name": "nm.name"}
#: Fields with several values per run (a run has tags, notes): `!=` and `not in` mean
#: "has none that is", and order comparisons mean nothing.
_MULTI = ("tag", "note")
#: Operators written as words (`command contains "train"`), text fields only.
_TEXT_OPS = ("contains", "matches")
# Value type -> (literal kinds it accepts, how an error names them).
_TYPES = {
    "text": (("str",), "strings"),
    "num": (("num", "dur"), "numbers"),
    "time": (("num", "dur", "str"), "a date, an age or an epoch"),
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CMP = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_OPS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">", "~")
_OPS_HELP = "=, !=, <, <=, >, >=, ~, contains, matches, in, not in, is null"
_GLOB_WILDCARDS = ("*", "?", "[")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
_NUM_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")  # first-look: one word
_KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]+")
_GLUE_RE = re.compile(r"[\w.]*")
_AGE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*")
_MAX_DEPTH = 100  # nesting of parentheses / not; keeps Python and SQLite recursion bounded
_INT64 = 2**63


@dataclass(frozen=True)
class _Tok:
    """One token: kind is num, dur, str, word, field, op, (, ), , or eof; text is the source."""

    kind: str
    text: str
    pos: int
    value: Any = None


@dataclass(frozen=True)
class _Field:
    """A field reference: kind is col, param, metric or tag; name is the column or key;
    typ is how its values compare (text, num, time, or param: by the literal's type)."""

    kind: str
    name: str
    tok: _Tok
    typ: str


def _found(tok: _Tok) -> str:
    """How an error message names the token it found."""
    return "end of input" if tok.kind == "eof" else f"'{tok.text}'"


def _is_word(tok: _Tok, *words: str) -> bool:
    """Whether tok is one of the given keywords (case-insensitive)."""
    return tok.kind == "word" and tok.text.lower() in words


def _glued(text: str, i: int) -> str:
    """Letters, digits, _ and dots at text[i:], which may not directly follow a number."""
    return text[i : _GLUE_RE.match(text, i).end()]  # type: ignore[union-attr]


def _join(parts: list[Fragment], op: str) -> Fragment:
    """Join fragments with AND/OR as a balanced tree, so long chains stay shallow in SQLite."""
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    left, lp = _join(parts[:mid], op)
    right, rp = _join(parts[mid:], op)
    return f"({left} {op} {right})", lp + rp


def _exists(field: _Field, cond: str, params: list[object], negated: bool) -> Fragment:
    """Whether the run has [no] row in the field's table (for this key) matching cond: as
    `r.id [NOT] IN (SELECT run_id ...)`, which SQLite answers once through the table's
    (key, value) index, where a correlated EXISTS is evaluated again for every run
    (0.24 s for `params.i = 1234` over 100,000 runs; benchmarks/queries.py)."""
    table, alias, _ = _SUBTABLES[field.kind]
    sql = f"SELECT {alias}.run_id FROM {table} {alias} WHERE "
    if field.kind in ("param", "metric"):
        sql, params = f"{sql}{alias}.key = ? AND ", [field.name, *params]
    return f"(r.id {'NOT ' if negated else ''}IN ({sql}{cond}))", params


class _Parser:
    """Tokenizer and recursive-descent parser that emits SQL fragments as it goes."""

    def __init__(self, text: str, now: float) -> None:
        self.text = text
        self.now = now
        self.depth = 0
        self.hints: list[str] = []  # advice on a query that parses (see hints())
        self.toks = self._tokenize()
        self.i = 0

    def err(self, message: str, pos: int) -> WhereError:
        return WhereError(message, pos, self.text)

    # -- tokenizer ---------------------------------------------------------------------------

    def _tokenize(self) -> list[_Tok]:
        """Split the whole text up front, so lexical errors surface before any parsing."""
        text, toks, i = self.text, [], 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
                continue
            if c in "(),":
                tok = _Tok(c, c, i)
            elif c in "\"'":
                # (a regular expression's backslashes reach it as typed, like r"...")
                raw = bool(toks) and toks[-1].kind == "word" and toks[-1].text.lower() == "matches"
                value, end = self._string(i, raw)
                tok = _Tok("str", text[i:end], i, value)
            elif m := _NUM_RE.match(text, i):
                tok = self._number(m)
            elif m := _WORD_RE.match(text, i):
                tok = self._word(m)
            elif op := next((o for o in _OPS if text.startswith(o, i)), None):
                tok = _Tok("op", op, i)
            else:
                raise self.err(f"unexpected character '{c}'", i)
            toks.append(tok)
            i = tok.pos + len(tok.text)
        toks.append(_Tok("eof", "", len(text)))
        return toks

    def _string(self, start: int, raw: bool = False) -> tuple[str, int]:
        """Read a quoted string at start; returns (value, index after the closing quote).
        `raw` (after `matches`): a backslash escapes only the quote, and stays."""
        text, quote, out, i = self.text, self.text[start], [], start + 1
        while i < len(text):
            c = text[i]
            if c == quote:  # (a byte of argv that is not UTF-8: as the index holds it)
                return escape_surrogates("".join(out)), i + 1
            if c == "\\" and i + 1 < len(text) and raw:
                out.append(text[i : i + 2])  # (\' in a regular expression is ')
                i += 2
                continue
            if c == "\\" and i + 1 < len(text):
                if text[i + 1] not in _ESCAPES:
                    raise self.err(f"unknown escape '\\{text[i + 1]}' in string", i)
                out.append(_ESCAPES[text[i + 1]])
                i += 2
                continue
            out.append(c)
            i += 1
        raise self.err("unterminated string", start)

    def _number(self, m: re.Match[str]) -> _Tok:
        """A number, or a duration when a unit letter (s m h d w) follows directly."""
        text, start, end = self.text, m.start(), m.end()
        raw = m.group()
        # (past 19 digits an integer is beyond int64, compared as a float anyway: float()
        # reads any length, where int() refuses over 4300 digits and float(int) overflows)
        whole = not any(c in raw for c in ".eE") and len(raw.lstrip("-")) <= 19
        value: float | int = int(raw) if whole else float(raw)
        kind = "num"
        if text[end : end + 1] in _UNITS and not _glued(text, end + 1):
            value, kind, end = value * _UNITS[text[end]], "dur", end + 1
        if glued := _glued(text, end):
            raise self.err(f"bad number '{text[start:end]}{glued}'", start)
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            value = float(value)
        if not math.isfinite(value):
            raise self.err(f"number out of range '{text[start:end]}'", start)
        return _Tok(kind, text[start:end], start, value)

    def _word(self, m: re.Match[str]) -> _Tok:
        """A keyword or field name; params.KEY / metrics.KEY become one field token."""
        text, start, word = self.text, m.start(), m.group()
        if word.lower() not in ("params", "metrics"):
            return _Tok("word", word, start)
        dot = m.end()
        if text[dot : dot + 1] != ".":
            raise self.err(f"expected '.<name>' after '{word}'", start)
        if text[dot + 1 : dot + 2] in ("'", '"'):
            key, end = self._string(dot + 1)
            if not key:
                raise self.err("empty key", dot + 1)
        elif km := _KEY_RE.match(text, dot + 1):
            key, end = km.group(), km.end()
        else:
            raise self.err(f"expected a key after '{word}.'", dot + 1)
        kind = "param" if word.lower() == "params" else "metric"
        return _Tok("field", text[start:end], start, (kind, key))

    # -- parser ------------------------------------------------------------------------------

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def parse(self) -> Fragment:
        """The whole expression; anything left over is an error, not silently ignored."""
        if self.peek().kind == "eof":
            raise self.err("empty expression", 0)
        result = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            raise self.err("unexpected ')'", tok.pos)
        if tok.kind != "eof":
            raise self.err(f"expected 'and', 'or' or end of input, found {_found(tok)}", tok.pos)
        return result

    def or_expr(self) -> Fragment:
        parts = [self.and_expr()]
        while _is_word(self.peek(), "or"):
            self.take()
            parts.append(self.and_expr())
        return _join(parts, "OR")

    def and_expr(self) -> Fragment:
        parts = [self.not_expr()]
        while _is_word(self.peek(), "and"):
            self.take()
            parts.append(self.not_expr())
        return _join(parts, "AND")

    def not_expr(self) -> Fragment:
        tok = self.peek()
        if self.depth >= _MAX_DEPTH:
            raise self.err("expression nested too deeply", tok.pos)
        self.depth += 1
        try:
            if _is_word(tok, "not"):
                self.take()
                sql, params = self.not_expr()
                return f"(NOT {sql})", params
            if tok.kind == "(":
                self.take()
                result = self.or_expr()
                close = self.take()
                if close.kind == "eof":
                    raise self.err("unclosed '('", tok.pos)
                if close.kind != ")":
                    raise self.err(f"expected ')', found {_found(close)}", close.pos)
                return result
            return self.comparison()
        finally:
            self.depth -= 1

    def field(self) -> _Field:
        """The field that starts a comparison."""
        tok = self.take()
        if tok.kind == "field":
            kind, key = tok.value
            return _Field(kind, key, tok, "param" if kind == "param" else "num")
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise self.err(f"expected a field, found {_found(tok)}", tok.pos)
        name = tok.text.lower()
        if name in ("tag", "note", "name"):
            return _Field(name, name, tok, "text")
        if name == "pinned":  # `vestige pin`: pinned = true / pinned = false
            return _Field("pinned", name, tok, "bool")
        if name not in _COLUMNS:
            raise self.err(f"unknown field '{tok.text}'; {FIELDS_HELP}", tok.pos)
        return _Field("col", name, tok, _COLUMNS[name][1])

    def comparison(self) -> Fragment:
        """`field op value`, `field [not] in (...)` or `field is [not] null`."""
        field = self.field()
        op_tok = self.take()
        if op_tok.kind == "op":
            value = self.value(f"after '{op_tok.text}'")
            return self.build(field, _CMP.get(op_tok.text, "~"), op_tok, [value])
        if _is_word(op_tok, *_TEXT_OPS):
            word = op_tok.text.lower()
            return self.build(field, word, op_tok, [self.value(f"after '{op_tok.text}'")])
        if _is_word(op_tok, "in"):
            return self.build(field, "in", op_tok, self.value_list("in"))
        if _is_word(op_tok, "not"):
            in_tok = self.take()
            if _is_word(in_tok, *_TEXT_OPS):
                word = f"not {in_tok.text.lower()}"
                return self.build(field, word, in_tok, [self.value(f"after '{in_tok.text}'")])
            if not _is_word(in_tok, "in"):
                raise self.err(
                    f"expected 'in', 'contains' or 'matches' after 'not', found {_found(in_tok)}",
                    in_tok.pos,
                )
            return self.build(field, "not in", op_tok, self.value_list("not in"))
        if _is_word(op_tok, "is"):
            tok, negated = self.take(), False
            if _is_word(tok, "not"):
                tok, negated = self.take(), True
            if not _is_word(tok, "null"):
                after = "is not" if negated else "is"
                raise self.err(f"expected 'null' after '{after}', found {_found(tok)}", tok.pos)
            return self.null_test(field, negated)
        raise self.err(
            f"expected an operator ({_OPS_HELP}) after '{field.tok.text}', found {_found(op_tok)}",
            op_tok.pos,
        )

    def value(self, where: str) -> _Tok:
        """One literal; `where` says what it follows, for the error message."""
        tok = self.take()
        if tok.kind in ("num", "dur", "str"):
            return tok
        if _is_word(tok, "true", "false"):
            return _Tok("bool", tok.text, tok.pos, tok.text.lower() == "true")
        if _is_word(tok, "null"):
            raise self.err("use 'is null' or 'is not null' to test for a missing value", tok.pos)
        if tok.kind == "field" or (tok.kind == "word" and tok.text.lower() in _FIELD_WORDS):
            raise self.err("comparing a field to a field is not supported", tok.pos)
        if tok.kind == "word" and tok.text.lower() not in _KEYWORDS:
            return _Tok("str", tok.text, tok.pos, tok.text)  # a bare word: tag = baseline
        raise self.err(f"expected a value {where}, found {_found(tok)}", tok.pos)

    def value_list(self, op: str) -> list[_Tok]:
        """The parenthesized, comma-separated literals after in / not in."""
        tok = self.take()
        if tok.kind != "(":
            raise self.err(f"expected '(' after '{op}', found {_found(tok)}", tok.pos)
        values = [self.value("after '('")]
        while (tok := self.take()).kind != ")":
            if tok.kind != ",":
                raise self.err(f"expected ',' or ')' in the list, found {_found(tok)}", tok.pos)
            values.append(self.value("after ','"))
        return values

    # -- SQL generation ----------------------------------------------------------------------

    def bind(self, field: _Field, op: str, tok: _Tok) -> tuple[str, Any]:
        """The SQL column a literal compares against and the value to bind, type-checked."""
        if op.removeprefix("not ") in _TEXT_OPS:  # (build() checked: a string, a text field)
            column = "p.value_text" if field.kind == "param" else (
                _SUBCOLUMNS.get(field.kind) or _COLUMNS[field.name][0])  # fmt: skip
            return column, self.text_value(op.removeprefix("not "), tok)
        if field.kind == "param":
            if tok.kind == "bool" and op not in ("=", "!=", "in", "not in"):
                raise self.err("true/false only compare with =, != or in", tok.pos)
            if tok.kind in ("num", "dur"):
                return "p.value_num", tok.value
            return "p.value_text", tok.value if tok.kind == "str" else str(tok.value).lower()
        column, typ = _SUBCOLUMNS.get(field.kind) or _COLUMNS[field.name][0], field.typ
        kinds, what = _TYPES[typ]
        if tok.kind not in kinds:
            raise self.err(f"'{field.tok.text}' compares with {what}, found {_found(tok)}", tok.pos)
        if typ == "time" and tok.kind == "dur":  # an unquoted 7d means 7 days ago, as "7d" does
            return column, self.now - tok.value
        if typ == "time" and tok.kind == "str":
            return column, self.time_value(tok)
        return column, tok.value

    def text_value(self, op: str, tok: _Tok) -> str:
        """What `contains` / `matches` bind: a LIKE pattern (ASCII: SQLite's LIKE folds only
        ASCII case) or a case-insensitive regular expression of the literal text; for
        `matches`, the user's regular expression, compiled here so a bad one is an error
        at its position, not SQLite's "user-defined function raised exception"."""
        text = str(tok.value)
        if op == "contains":
            if text.isascii():
                escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                return f"%{escaped}%"
            return "(?i)" + re.escape(text)
        try:
            re.compile(text)
        except re.error as e:
            raise self.err(f"bad regular expression {tok.text}: {e.msg}"
                           + (f" at character {e.pos}" if e.pos is not None else ""),
                           tok.pos) from None  # fmt: skip
        return text

    def time_value(self, tok: _Tok) -> float:
        """An ISO date/datetime (local time unless zoned) or an age like "7d" as an epoch."""
        text = str(tok.value)
        if m := _AGE_RE.fullmatch(text):
            return self.now - float(m.group(1)) * _UNITS[m.group(2)]
        try:
            return datetime.fromisoformat(text.strip()).timestamp()
        except (ValueError, OverflowError, OSError):
            expected = "a date (2026-11-01, 2026-11-01T12:00) or an age (7d, 3h)"
            raise self.err(f"expected {expected}, found {_found(tok)}", tok.pos) from None

    def build(self, field: _Field, op: str, op_tok: _Tok, values: list[_Tok]) -> Fragment:
        """SQL for `field op value(s)`; a missing param/metric/column never satisfies it."""
        if field.kind == "pinned":
            return self.pinned(op, op_tok, values)
        if field.name == "adopted" and any(v.kind == "bool" for v in values):
            return self.adopted(op, op_tok, values)
        text_op = op.removeprefix("not ") if op.removeprefix("not ") in _TEXT_OPS else None
        if (op == "~" or text_op) and field.typ not in ("text", "param"):
            raise self.err(f"'{op_tok.text}' applies to text fields, not '{field.tok.text}'",
                           op_tok.pos)  # fmt: skip
        if (op == "~" or text_op) and values[0].kind != "str":
            raise self.err(f"'{op_tok.text}' needs a string pattern, found {_found(values[0])}",
                           values[0].pos)  # fmt: skip
        if field.kind in _MULTI and op in ("<", "<=", ">", ">="):
            raise self.err(f"'{field.tok.text}' supports =, !=, ~, contains, matches, in and "
                           f"not in, not '{op}'", op_tok.pos)  # fmt: skip
        if op == "~" and not any(c in str(values[0].value) for c in _GLOB_WILDCARDS):
            self.hints.append(_glob_hint(field, values[0]))
        bound = [self.bind(field, op, tok) for tok in values]
        # a run lacking such a tag or note: NOT IN of the positive test
        negated = field.kind in _MULTI and op in ("!=", "not in", "not contains", "not matches")
        if negated:
            op = {"!=": "=", "not in": "in"}.get(op, text_op or op)
        params: list[object] = []
        if op in ("in", "not in"):
            groups: dict[str, list[object]] = {}
            for column, value in bound:
                groups.setdefault(column, []).append(value)
            parts = []
            for column, vals in groups.items():
                test = f"{column} {op.upper()} ({', '.join('?' * len(vals))})"
                if op == "not in" and field.kind != "col":  # "abc" is not in (1, 2)
                    test = f"({column} IS NULL OR {test})"
                parts.append(test)
                params += vals
            cond = f"({(' OR ' if op == 'in' else ' AND ').join(parts)})"
        else:
            column, value = bound[0]
            params.append(value)
            if op == "~":
                cond = f"{column} GLOB ?"
            elif text_op:
                cond = self.text_test(column, text_op, values[0])
                if op.startswith("not "):
                    cond = f"NOT ({cond})"
            elif op == "!=" and field.kind != "col":
                cond = f"{column} IS NOT ?"
            else:
                cond = f"{column} {op} ?"
        if field.kind == "col":
            column, _, nullable = _COLUMNS[field.name]
            return (f"({column} IS NOT NULL AND {cond})" if nullable else f"({cond})"), params
        if field.kind not in _MULTI and op in ("!=", "not in", "not contains", "not matches"):
            cond = f"{_SUBTABLES[field.kind][2]} AND {cond}"
        return _exists(field, cond, params, negated)

    def text_test(self, column: str, op: str, tok: _Tok) -> str:
        """The SQL test of `column contains|matches ?` (bind() made the bound value)."""
        if op == "contains" and str(tok.value).isascii():
            return f"{column} LIKE ? ESCAPE '\\'"  # (SQLite's LIKE folds ASCII case only)
        return f"{column} REGEXP ?"

    def adopted(self, op: str, op_tok: _Tok, values: list[_Tok]) -> Fragment:
        """`adopted = true|false` (or !=): whether the run came from another tool."""
        if op not in ("=", "!=") or any(v.kind != "bool" for v in values):
            raise self.err("'adopted' compares with true or false (= or !=), or with a tool's "
                           "name as text", op_tok.pos)  # fmt: skip
        want = bool(values[0].value) == (op == "=")
        # (looked up through runs_adopted, not tested on every run walked newest first: a
        # range, which SQLite looks up where it would scan for IS NOT NULL; a TEXT column)
        adopted = "SELECT ad.id FROM runs ad WHERE ad.adopted >= ''"
        return f"(r.id {'' if want else 'NOT '}IN ({adopted}))", []

    def pinned(self, op: str, op_tok: _Tok, values: list[_Tok]) -> Fragment:
        """`pinned = true|false` (or !=): whether the run has a pin (the index's pins table)."""
        if op not in ("=", "!="):
            raise self.err(f"'pinned' supports = and !=, not '{op}'", op_tok.pos)
        if values[0].kind != "bool":
            raise self.err(f"'pinned' compares with true or false, found {_found(values[0])}",
                           values[0].pos)  # fmt: skip
        want = bool(values[0].value) == (op == "=")
        pinned = "SELECT pn.run_id FROM pins pn WHERE pn.run_id IS NOT NULL"
        return f"(r.id {'' if want else 'NOT '}IN ({pinned}))", []

    def null_test(self, field: _Field, negated: bool) -> Fragment:
        """`is [not] null`: a missing (or null-valued) param/metric, a run without tags, or a
        NULL column."""
        if field.kind == "col":
            return f"({_COLUMNS[field.name][0]} IS {'NOT ' if negated else ''}NULL)", []
        if field.kind == "pinned":
            raise self.err("'pinned' is true or false, never null", field.tok.pos)
        return _exists(field, _SUBTABLES[field.kind][2], [], not negated)


def _glob_hint(field: _Field, tok: _Tok) -> str:
    """The advice for a `~` pattern without a wildcard: it matches the whole text only."""
    name = field.tok.text
    return (f"hint: '~' matches the whole text and {tok.text} has no wildcard (* ? [...]); "
            f"for a part of it write {name} contains {tok.text} or {name} ~ "
            f"\"*{tok.value}*\"")  # fmt: skip


def hints(text: str, now: float | None = None) -> list[str]:
    """One-line advice on a --where expression that parses but probably does not say what
    was meant (a `~` pattern without a wildcard); [] for one that does not parse (its
    error comes from compile_where)."""
    try:
        parser = _Parser(text, time.time() if now is None else now)
        parser.parse()
    except WhereError:
        return []
    return parser.hints


def compile_where(text: str, now: float | None = None) -> tuple[str, list[object]]:
    """Compile a --where expression to (SQL boolean over `runs r`, params); raise WhereError.

    `now` (epoch seconds, default the current time) anchors relative ages like "7d".
    """
    return _Parser(text, time.time() if now is None else now).parse()
