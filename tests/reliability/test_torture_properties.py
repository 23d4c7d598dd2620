"""Torture properties (issue 20): hypothesis feeds every reader of user or on-disk text
vestige has (--where, manifests, trees, journals, config.toml, recorded paths) what a
careless user, a killed process or a hostile file could give it. Each either does what it
documents or refuses with a one-line UsageError; nothing else ever escapes.

Reproducible: every property is derandomized and writes no example database; the whole
file runs in well under a minute on two cores. A failure prints the minimal example."""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import configuration as hypothesis_configuration
from hypothesis import strategies as st

from vestige.capture.events import read_api_events, read_events
from vestige.config import Config, load_config
from vestige.errors import UsageError, WhereError
from vestige.index.db import Index, connect
from vestige.index.schema import migrate
from vestige.index.where import compile_where
from vestige.records import STATUSES, FileRecord, Run, safe_recorded, safe_relative
from vestige.store.objects import ObjectStore, canonical_json
from vestige.store.tree import TreeEntry, read_tree, write_tree


def torture(examples: int) -> Any:
    """Settings of every property: a fixed number of examples, derandomized (the same
    examples in CI as here), no deadline (a loaded CI machine is slow, never wrong) and no
    example database (nothing written to .hypothesis/)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: Hypothesis caches the constants of the code under test (and its unicode tables) in its
#: storage folder, example database or not, and does so while pytest collects, before any
#: fixture: a temporary folder, not .hypothesis/ in the checkout (unless one was chosen).
_PREVIOUS_STORAGE = hypothesis_configuration.__hypothesis_home_directory
if _PREVIOUS_STORAGE is None and not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    _STORAGE = tempfile.TemporaryDirectory(prefix="vestige-hypothesis-")  # (removed at exit)
    hypothesis_configuration.set_hypothesis_home_dir(_STORAGE.name)


@pytest.fixture(scope="module", autouse=True)
def hypothesis_storage() -> Iterator[None]:
    """Test modules after this one get hypothesis' storage folder back."""
    yield
    if _PREVIOUS_STORAGE is None and not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        hypothesis_configuration.set_hypothesis_home_dir(None)


def one_line(error: BaseException) -> str:
    """The error's message, checked to be what the CLI prints as one `error:` line."""
    message = str(error)
    assert message, f"{type(error).__name__} without a message"
    assert message.splitlines() == [message], f"message of several lines: {message!r}"
    return message


# -- shared strategies --------------------------------------------------------------------

#: A name as os.fsdecode gives it: arbitrary bytes, undecodable ones as lone surrogates.
fs_names = st.binary(min_size=1, max_size=24).map(lambda b: b.decode("utf-8", "surrogateescape"))
#: Any text a user or a file system can hand vestige (st.text never makes surrogates).
any_text = st.one_of(st.text(max_size=30), fs_names)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False),
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def quoted(value: str, quote: str = '"') -> str:
    """`value` as a --where string literal (docs/cli.md: escapes \\" \\' \\\\)."""
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


# -- --where ------------------------------------------------------------------------------

NOW = 1_800_000_000.0
WEIRD_KEY = "'); DROP TABLE runs; --"
RUNS = [
    # id, status, exit code, params, metrics (last), tags, pinned
    ("R1", "ok", 0, {"lr": 0.1, "model": "resnet", "flag": True, "big": 2**70}, {"loss": 0.5},
     ["baseline"], True),
    ("R2", "failed", 1, {"lr": "abc", "seed": None, "odd key": "x\0y", "nested": {"a": [1]}},
     {"loss": float("nan"), "acc": float("inf")}, ["exp", "b\udcffad"], False),
    ("R3", "running", None, {"lr": 3, WEIRD_KEY: "\udcfe", "inf": float("-inf")}, {},
     [], False),
    ("R4", "interrupted", -2, {}, {"acc": -1e308}, ["x" * 300], True),
]  # fmt: skip
RUN_IDS = {r[0] for r in RUNS}


def _run(rid: str, seq: int, status: str, code: int | None, params: dict[str, Any],
         metrics: dict[str, float], tags: list[str]) -> Run:  # fmt: skip
    keys = {k: {"last": v, "min": v, "max": v, "count": 1} for k, v in metrics.items()}
    return Run(
        id=rid, seq=seq, status=status, command=["python", f"run {rid}.py", "\udcff"],
        cwd="", root="/proj", started=NOW - 3600 * seq, ended=None if code is None else NOW,
        duration=None if code is None else 3600.0 * seq, exit_code=code, params=params,
        metrics={"keys": keys}, tags=tuple(tags), parent="R1" if rid == "R3" else None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """A real index file with a few runs of every kind of value (the tables `ls` reads)."""
    index, _fresh = Index.open(tmp_path_factory.mktemp("where") / "index.sqlite")
    for seq, (rid, status, code, params, metrics, tags, pinned) in enumerate(RUNS, 1):
        index.record.run(_run(rid, seq, status, code, params, metrics, tags))
        if pinned:
            index.conn.execute("INSERT INTO pins (run_id, t) VALUES (?, ?)", (rid, NOW))
    yield index
    index.close()


def where(index: Index, text: str) -> set[str] | None:
    """Run `text` against the index: the ids it selects, or None when it is refused (as a
    WhereError with a one-line message and a position inside the text)."""
    try:
        compiled = compile_where(text, now=NOW)
    except UsageError as e:
        assert isinstance(e, WhereError), f"{type(e).__name__}: {e}"
        assert 0 <= e.position <= len(text)
        one_line(e)
        return None
    sql, params = compiled
    assert isinstance(sql, str) and isinstance(params, list)
    found = {row["id"] for row in index.runs.rows(compiled)}
    assert found <= RUN_IDS
    return found


FIELDS = [
    "status", "exit_code", "command", "started", "ended", "duration", "id", "seq", "parent",
    "tag", "pinned", "STATUS", "Tag", "params.lr", "params.model", "params.flag", "params.big",
    "params.seed", "metrics.loss", "METRICS.acc", 'params."odd key"', "params.a.b-c/d",
    "params." + quoted(WEIRD_KEY, "'"), "params.", "metrics.''", "params", "nofield",
]  # fmt: skip
OPERATORS = ["=", "==", "!=", "<>", "<", "<=", ">", ">=", "~", "=<", "!", "==="]
WORDS = [
    "and", "or", "not", "in", "is", "null", "true", "FALSE", "baseline", "first-look", "ok",
    "running", "x-", "nan", "inf", "status", "params", "a_b",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "\t", "\n", "\r\n", "\u3000", "\x0b", "  "]
JUNK = ["(", ")", ",", "'", '"', "\\", "\0", "\udcff", "-", ".", "params.", "9" * 500, "é",
        "\u2028", "\x85", "1e999", "--", ";", "*"]  # fmt: skip

NUMBER_RE = r"-?([0-9]{1,6}(\.[0-9]{0,3})?|\.[0-9]{1,3})([eE][+-]?[0-9]{1,4})?[smhdw]?"
ODD_NUMBERS = ["1e308", "1e309", "-1e400", "9223372036854775808", "-9223372036854775809",
               "0x10", "1_000", "1.2.3", "5mm", "3 h", "-", "-.", "1e"]  # fmt: skip
ODD_STRINGS = ["2026-11-01", "2026-11-01T12:00+05:00", "7d", " 3.5 h ", "0001-01-01",
               "9999-12-31T23:59:59-14:00", "*", "[", "?", WEIRD_KEY]  # fmt: skip
numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(NUMBER_RE, fullmatch=True),
    st.integers(min_value=19, max_value=5000).map(lambda n: "9" * n),  # beyond int64, float
    st.tuples(st.integers(19, 400), st.sampled_from("smhdw")).map(lambda t: "7" * t[0] + t[1]),
    st.sampled_from(ODD_NUMBERS),
)
strings = st.builds(
    quoted,
    st.one_of(st.text(max_size=20), fs_names, st.sampled_from(ODD_STRINGS)),
    st.sampled_from(['"', "'"]),
)
raw_strings = st.sampled_from(['"unterminated', "'a\\q'", '"a\\', '"\n"', "'\0'", '""'])
values = st.one_of(numbers, strings, raw_strings, st.sampled_from(WORDS))


@st.composite
def comparisons(draw: st.DrawFn) -> list[str]:
    field = draw(st.sampled_from(FIELDS))
    shape = draw(st.integers(0, 3))
    if shape == 0:
        return [field, draw(st.sampled_from(OPERATORS)), draw(values)]
    if shape == 1:
        items = draw(st.lists(values, min_size=1, max_size=4))
        op = draw(st.sampled_from([["in"], ["not", "in"], ["NOT", "IN"]]))
        return [field, *op, "(", *" , ".join(items).split(" "), ")"]
    return [field, "is", *draw(st.sampled_from([[], ["not"]])), "null"]


expressions = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or", "AND", "Or"]), inner).map(
            lambda t: [*t[0], t[1], *t[2]]
        ),
        inner.map(lambda t: ["not", *t]),
        inner.map(lambda t: ["(", *t, ")"]),
    ),
    max_leaves=6,
)


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A grammatical expression, then maybe broken: a token dropped, doubled or replaced
    with junk; tokens joined by odd whitespace (or none)."""
    tokens = draw(expressions)
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(tokens) - 1))
        how = draw(st.integers(0, 2))
        if how == 0 and len(tokens) > 1:
            del tokens[i]
        elif how == 1:
            tokens.insert(i, tokens[i])
        else:
            tokens[i] = draw(st.sampled_from(JUNK + WORDS + OPERATORS))
    out = tokens[0]
    for tok in tokens[1:]:
        out += draw(st.sampled_from(SEPARATORS)) + tok
    return out


where_chars = st.one_of(
    st.characters(),
    st.sampled_from("()=<>!~,'\"\\.-_ \t\n\0" + "\udcff\udc80"),
    st.sampled_from("0123456789smhdw"),
)
where_words = st.sampled_from(["params.", "metrics.", "tag", " and ", " or ", "not ", " in ",
                               " is null", "status", "seq", "started"])  # fmt: skip


@torture(500)
@given(text=st.one_of(st.text(max_size=60), st.text(where_chars, max_size=40),
                      st.lists(where_chars | where_words, max_size=20).map("".join)))  # fmt: skip
@example(text="seq = " + "9" * 400)  # int beyond a float: OverflowError before the fix
@example(text="seq = " + "9" * 5000)  # beyond int's digit limit: ValueError before the fix
@example(text="duration < " + "9" * 400 + "m")
@example(text='pinned = "a\nb"')  # the message quoted the newline: 2 lines before the fix
@example(text="seq = 1\n)")
@example(text='tag = "\udcff"')  # argv's undecodable byte: UnicodeEncodeError before the fix
@example(text="params.\udcff = 1")
@example(text='params."\udcff" ~ "\udcfe*"')
@example(text="\0")
@example(text="(" * 200 + "seq = 1" + ")" * 200)
@example(text="not " * 500 + "seq = 1")
@example(text=" or ".join(["seq = 1"] * 3000))
def test_where_on_any_text_selects_runs_or_is_a_one_line_usage_error(
    index: Index, text: str
) -> None:
    where(index, text)


@torture(700)
@given(text=near_valid())
@example(text="status = ok and (tag = baseline or params.lr < 1e-2) and not pinned = true")
@example(text="params.model in (vit, resnet) and started > 7d and exit_code is not null")
def test_where_on_near_valid_expressions_selects_runs_or_is_a_one_line_usage_error(
    index: Index, text: str
) -> None:
    where(index, text)


@pytest.mark.parametrize(
    "expr",
    [
        f"tag = {quoted(WEIRD_KEY)}",
        f"tag in ({quoted(WEIRD_KEY, chr(39))}, x)",
        f"status = {quoted(WEIRD_KEY)}",
        f"command ~ {quoted(WEIRD_KEY)}",
        f"id = {quoted(WEIRD_KEY)} or parent = {quoted(WEIRD_KEY)}",
        f"params.model = {quoted(WEIRD_KEY)}",
        f"params.{quoted(WEIRD_KEY, chr(39))} = {quoted(WEIRD_KEY)}",
        f"metrics.{quoted(WEIRD_KEY)} = 1",
        'params."x\' OR 1=1 --" is not null',
        "tag = \"' OR '1'='1\"",
    ],
)
def test_where_binds_user_values_as_parameters(index: Index, expr: str) -> None:
    """A value or key that is SQL finds nothing (it is compared, not run), never reaches the
    SQL text, and the runs table is still there with every run."""
    sql, params = compile_where(expr, now=NOW)
    assert "DROP" not in sql and "OR 1=1" not in sql and "'1'='1" not in sql
    assert any(isinstance(p, str) and ("DROP" in p or "1" in p) for p in params)
    assert where(index, expr) == set()
    (count,) = index.conn.execute("SELECT COUNT(*) FROM runs").fetchone()
    assert count == len(RUNS)
    assert where(index, "seq > 0") == RUN_IDS


def test_where_matches_names_made_of_undecodable_bytes(index: Index) -> None:
    """A value typed on a command line with a byte that is not UTF-8 (argv holds it as a
    lone surrogate) selects what the index holds as a \\udcxx escape; it was a
    UnicodeEncodeError from sqlite3, a traceback, before the fix."""
    assert where(index, 'tag = "b\udcffad"') == {"R2"}
    assert where(index, 'tag ~ "b\udcff*"') == {"R2"}
    assert where(index, f'params.{quoted(WEIRD_KEY, chr(39))} = "\udcfe"') == {"R3"}
    assert where(index, 'tag = "b\\\\udcffad"') == {"R2"}  # (the escape, typed: the same)


@pytest.fixture(scope="module")
def scratch_index() -> Iterator[Index]:
    """An in-memory index the literal-binding property rewrites runs A and B of."""
    conn = connect(":memory:")
    assert migrate(conn)
    index = Index(conn)
    yield index
    index.close()


@torture(200)
@given(key=any_text.filter(bool), value=any_text, tag=any_text.filter(bool))
@example(key="k", value="\udcff", tag="\udcff")  # a name from bytes: matched since the fix
@example(key=WEIRD_KEY, value=WEIRD_KEY, tag=WEIRD_KEY)
def test_where_literals_are_bound_exactly(
    scratch_index: Index, key: str, value: str, tag: str
) -> None:
    """Any key, value and tag, quoted, selects exactly the run that has it; the SQL text is
    the same whatever they are (only the bound parameters change)."""
    a = _run("A", 1, "ok", 0, {key: value}, {}, [tag])
    scratch_index.record.runs([a, _run("B", 2, "ok", 0, {"k": "other"}, {}, ["other"])])
    by_tag = f"tag = {quoted(tag)}"
    by_param = f"params.{quoted(key, chr(39))} = {quoted(value)}"
    assert compile_where(by_tag, now=NOW)[0] == compile_where('tag = "t"', now=NOW)[0]
    assert compile_where(by_param, now=NOW)[0] == compile_where('params.k = "v"', now=NOW)[0]
    selected = {row["id"] for row in scratch_index.runs.rows(compile_where(by_tag, now=NOW))}
    assert selected == ({"A", "B"} if tag == "other" else {"A"})
    selected = {row["id"] for row in scratch_index.runs.rows(compile_where(by_param, now=NOW))}
    assert "A" in selected and selected <= {"A", "B"}


# -- manifests ----------------------------------------------------------------------------

recorded_paths = st.one_of(
    any_text,
    st.lists(any_text.filter(bool), min_size=1, max_size=4).map("/".join),
    st.lists(fs_names, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
file_records = st.builds(
    FileRecord,
    path=recorded_paths,
    hash=st.none() | hex64,
    size=st.integers(0, 2**63 - 1),
    kept=st.booleans(),
    mode=st.none() | st.integers(0, 0o177777),
    confirmed=st.booleans(),
    note=st.none() | any_text.filter(bool),
    figure=st.none() | any_text.filter(bool),
    ambiguous=st.booleans(),
)
optional_floats = st.none() | st.floats(allow_nan=False)
small_dicts = st.dictionaries(any_text, json_values, max_size=3)
note_records = st.fixed_dictionaries({"t": st.floats(0, 2e10), "text": any_text})
runs = st.builds(
    Run,
    id=st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26),
    seq=st.integers(1, 2**31),
    status=st.sampled_from(STATUSES),
    command=st.lists(any_text, min_size=1, max_size=4),
    cwd=recorded_paths,
    root=recorded_paths,
    started=st.floats(0, 2e10),
    host=any_text,
    pid=st.none() | st.integers(0, 2**22),
    ended=optional_floats,
    duration=optional_floats,
    exit_code=st.none() | st.integers(-255, 255),
    signal=st.none() | st.sampled_from(["SIGINT", "SIGKILL"]),
    code=small_dicts,
    params=st.dictionaries(any_text, json_values, max_size=6),
    inputs=st.lists(file_records, max_size=3).map(tuple),
    outputs=st.lists(file_records, max_size=3).map(tuple),
    stdout=st.none() | st.fixed_dictionaries({"hash": hex64, "size": st.integers(0, 2**40)}),
    env=st.none() | hex64,
    resources=small_dicts,
    warnings=st.lists(any_text, max_size=2).map(tuple),
    parent=st.none() | st.text(max_size=26),
    artefacts=st.lists(small_dicts, max_size=2).map(tuple),
    metrics=st.none() | small_dicts,
    tags=st.lists(any_text.filter(bool), max_size=3).map(tuple),
    notes=st.lists(note_records, max_size=2).map(tuple),
    vestige_version=st.sampled_from(["", "0.1.0"]),
)


@torture(250)
@given(run=runs)
def test_manifest_round_trips_through_its_dict(run: Run) -> None:
    assert Run.from_dict(run.to_dict()) == run


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    root = tmp_path_factory.mktemp("store") / ".vestige"
    root.mkdir()
    return ObjectStore(root)


@torture(150)
@given(run=runs)
@example(run=Run(id="X", seq=1, status="ok", command=["a\udcff"], cwd="d\udc80/e", root="/",
                 started=0.0, params={"\udcff": ["\udcfe", {"k\udc80": 1}]}, tags=("\udcff",),
                 inputs=(FileRecord("\udcff\udcfe/x", None, 0, False),)))  # fmt: skip
def test_manifest_round_trips_through_the_store(objects: ObjectStore, run: Run) -> None:
    """The canonical JSON written to the store is valid UTF-8, decodes to the same run,
    and is a fixed point of the encoding (re-encoding the decoded record gives its bytes)."""
    digest = objects.put_json(run.to_dict(), sync=False)
    raw = objects.read_bytes(digest, verify=True)
    raw.decode("utf-8")  # strict: a non-UTF-8 name is kept as a \udcxx escape, not raw
    assert canonical_json(json.loads(raw)) == raw
    assert Run.from_dict(objects.read_json(digest), manifest=digest) == run.replace(manifest=digest)


# -- trees --------------------------------------------------------------------------------

#: A path component from arbitrary bytes but '/' (the separator) and NUL (no file has it).
components = st.binary(min_size=1, max_size=12).map(
    lambda b: b.replace(b"/", b"_").replace(b"\0", b"_").decode("utf-8", "surrogateescape")
)
tree_entries = st.builds(
    TreeEntry,
    path=st.lists(components, min_size=1, max_size=4).map("/".join),
    mode=st.integers(0, 0o177777),
    size=st.integers(0, 2**63 - 1),
    hash=hex64,
    kept=st.booleans(),
)


@torture(150)
@given(entries=st.lists(tree_entries, max_size=12, unique_by=lambda e: e.path), data=st.data())
def test_tree_round_trips_any_entries(
    objects: ObjectStore, entries: list[TreeEntry], data: st.DataObject
) -> None:
    digest = write_tree(objects, entries)
    assert read_tree(objects, digest) == sorted(entries, key=lambda e: e.path)
    raw = objects.read_bytes(digest)
    raw.decode("utf-8")
    assert not re.search(rb"(?<!\\)(?:\\\\)*\\/", raw)  # '/' is never written as \/
    shuffled = data.draw(st.permutations(entries))
    assert write_tree(objects, shuffled) == digest  # equal snapshots, equal tree objects


# -- journals -----------------------------------------------------------------------------

KINDS = ["hello", "open", "exit", "rename", "pre", "remove", "spawn", "params", "savefig",
         "figure", "modules", "bogus"]  # fmt: skip
#: Any JSON value, or one of the odd values a field of a journal line may hold.
odd = st.one_of(
    json_values,
    st.integers(min_value=10**300, max_value=10**400),  # beyond a float
    st.sampled_from([float("nan"), float("inf"), -1, 2**64, "", [1], {}, "w", "r", "__main__"]),
)
FIELD_NAMES = ["pid", "ppid", "t", "path", "mode", "st", "src", "dst", "copy", "values",
               "caller", "argv", "files", "exe"]  # fmt: skip
events = st.fixed_dictionaries(
    {"e": st.sampled_from(KINDS) | json_scalars}, optional=dict.fromkeys(FIELD_NAMES, odd)
)


@st.composite
def garbled_lines(draw: st.DrawFn) -> bytes:
    """A journal line as a killed process, a full disk or a stray writer may leave it."""
    how = draw(st.integers(0, 4))
    if how == 0:
        return draw(st.binary(max_size=80))
    if how == 1:
        return b"[" * draw(st.integers(1, 100_000))
    line = json.dumps(draw(events), ensure_ascii=draw(st.booleans()))
    data = line.encode("utf-8", "surrogateescape")
    if how == 2:
        return data
    if how == 3:
        return data[: draw(st.integers(0, len(data)))]
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]


journal_names = st.sampled_from(["1.jsonl", "2.jsonl", "77.jsonl", "x.jsonl", "0.jsonl",
                                 "-3.jsonl", "notes.txt"])  # fmt: skip


def write_journals(live: Path, folder: str, journals: dict[str, bytes]) -> None:
    (live / folder).mkdir(parents=True, exist_ok=True)
    for name, data in journals.items():
        (live / folder / name).write_bytes(data)


@torture(200)
@given(
    journals=st.dictionaries(
        journal_names, st.lists(garbled_lines(), max_size=6).map(b"\n".join), max_size=3
    ),
    runner=st.integers(0, 100),
)
@example(journals={"1.jsonl": b"[" * 100_000}, runner=1)  # RecursionError before the fix
@example(journals={"1.jsonl": b'{"e":"hello","pid":[1]}\n{"e":"exit","pid":{}}'}, runner=1)
@example(journals={"1.jsonl": b'{"e":"hello","pid":1,"t":1' + b"0" * 400 + b"}"}, runner=2)
@example(journals={"1.jsonl": b'{"e":"params","t":1' + b"0" * 400 + b',"values":{}}'}, runner=2)
def test_journal_reader_never_raises(journals: dict[str, bytes], runner: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        live = Path(tmp)
        write_journals(live, "events", journals)
        write_journals(live, "api", journals)
        run = read_events(live)
        run.root_process(runner)
        run.main_params(runner)
        assert all(isinstance(e, dict) for e in read_api_events(live))


stats = st.none() | st.lists(st.integers(0, 2**63 - 1), min_size=4, max_size=5)
journal_ops = st.one_of(
    st.tuples(st.just("open"), fs_names | st.text(max_size=12), st.sampled_from("rw"), stats),
    st.tuples(st.just("rename"), fs_names, fs_names),
    st.tuples(st.just("remove"), fs_names | st.text(max_size=12)),
)


@torture(150)
@given(
    ops=st.lists(journal_ops, max_size=12),
    ascii_only=st.booleans(),
    cut=st.none() | st.integers(0, 10_000),
)
def test_journal_writes_and_reads_are_parsed_exactly(
    ops: list[tuple[Any, ...]], ascii_only: bool, cut: int | None
) -> None:
    """A journal as the shim writes it (hello first, names as \\udcxx escapes or raw
    bytes) gives exactly its reads (first stat of each path), writes (and rename targets),
    removals and renames; a last line cut short by a kill changes nothing."""
    lines = [{"e": "hello", "pid": 7, "ppid": 1, "t": 1.5, "argv": ["x.py"]}]
    reads: dict[str, tuple[int, ...] | None] = {}
    writes: set[str] = set()
    removed: set[str] = set()
    renames: list[dict[str, Any]] = []
    for op in ops:
        if op[0] == "open":
            _, path, mode, stat = op
            lines.append({"e": "open", "pid": 7, "path": path, "mode": mode,
                          "st": None if mode == "w" else stat})  # fmt: skip
            if mode == "w":
                writes.add(path)
            elif path not in reads:
                reads[path] = None if stat is None else tuple(stat)
        elif op[0] == "rename":
            lines.append({"e": "rename", "pid": 7, "src": op[1], "dst": op[2]})
            writes.add(op[2])
            renames.append({"pid": 7, "src": op[1], "dst": op[2]})
        else:
            lines.append({"e": "remove", "pid": 7, "path": op[1]})
            removed.add(op[1])
    encoded = [json.dumps(line, ensure_ascii=ascii_only, separators=(",", ":"))
               for line in lines]  # fmt: skip
    data = b"".join((e + "\n").encode("utf-8", "surrogateescape") for e in encoded)
    if cut is not None:  # a further line, cut before its end by a kill
        tail = json.dumps({"e": "open", "pid": 7, "path": "late", "mode": "w"}).encode()
        data += tail[: cut % len(tail)]
    with tempfile.TemporaryDirectory() as tmp:
        write_journals(Path(tmp), "events", {"7.jsonl": data})
        run = read_events(Path(tmp))
    assert run.reads == reads
    assert run.writes == writes
    assert run.removed == removed
    assert run.renames == renames
    assert [p["pid"] for p in run.processes] == [7]
    assert run.processes[0]["exited"] is False


# -- config -------------------------------------------------------------------------------

#: Every setting of docs/configuration.md, and a few that are not.
SETTINGS = [
    "keep.inputs_max_size", "keep.code_max_size", "keep.outputs", "scan.ignore", "capture.gpu",
    "capture.figures", "capture.trace", "index.timeout", "compare.rtol", "compare.atol",
    "executor.default", "executor.jobs", "executor.dask.scheduler", "executor.slurm.partition",
    "executor.slurm.gpus", "executor.slurm.time", "executor.slurm.cpus", "executor.slurm.mem",
    "debt.young_days", "debt.few_runs", "debt.long_lived_days", "debt.many_versions",
    "debt.many_consumers", "debt.archive_days", "debt.recent_days", "debt.shingle_tokens",
    "debt.duplicate_min", "keep.bogus", "nope", "capture.trace.deeper", '"keep.outputs"',
]  # fmt: skip
TOML_SCALARS = ["inf", "-inf", "nan", "1e400", "-0.0", "1.5", "0x10", "1_000", "true", "false",
                '"auto"', '"always"', '"never"', '"sometimes"', "1", "0", "1979-05-27T07:32:00Z",
                "07:32:00", "'''multi\nline'''", '"\\u0000"', '"a\\nb"']  # fmt: skip
TOML_CONTAINERS = ["[]", "{}", "[1, [2]]", '["a", 1, {}]', "{a = 1}", "[true]", "[[]]",
                   '["data/", "*.tmp", ""]', '"data/"']  # fmt: skip
TOML_SIZES = ['"64MiB"', '"2 GB"', '"500k"', '"1.5 TiB"', '"-1k"', '"k"', '"\u0663"',
              '"\U0001d7d7"', '"5\\n"']  # fmt: skip
TOML_VALUES = st.one_of(
    st.integers().map(str),
    st.sampled_from(TOML_SCALARS),
    st.sampled_from(TOML_CONTAINERS),
    st.tuples(
        st.sampled_from([1, 2, 19, 300, 308, 309, 400, 5000]),
        st.sampled_from(["", ".5", "k", " MiB", "TB", "ti", "b", "x"]),
    ).map(lambda t: f'"{"9" * t[0]}{t[1]}"'),  # sizes, up to beyond a float
    st.sampled_from(TOML_SIZES),
    st.text(max_size=10).map(json.dumps),
)


@st.composite
def toml_ish(draw: st.DrawFn) -> str:
    """TOML a user may write: a few settings with values of every type, dotted in full;
    the last one maybe under its table's header instead, or a stray header, or junk."""
    names = draw(st.lists(st.sampled_from(SETTINGS), min_size=1, max_size=3, unique=True))
    lines = [f"{name} = {draw(TOML_VALUES)}" for name in names[:-1]]
    table, _, key = names[-1].rpartition(".")
    how = draw(st.integers(0, 5))
    if how == 0 and table and not names[-1].startswith('"'):
        lines += [f"[{table}]", f"{key} = {draw(TOML_VALUES)}"]
    elif how == 1:
        lines.append(f"[{names[-1]}]")
    elif how == 2:
        lines.append(draw(st.text(max_size=15)))
    else:
        lines.append(f"{names[-1]} = {draw(TOML_VALUES)}")
    return "\n".join(lines)


config_files = st.one_of(
    toml_ish().map(str.encode),
    st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogateescape")),
    st.binary(max_size=60),
)


@torture(400)
@given(data=config_files, in_pyproject=st.booleans())
@example(data=b'[keep]\ninputs_max_size = "' + b"9" * 400 + b'"', in_pyproject=False)
@example(data=b"[capture]\ntrace = []", in_pyproject=False)  # TypeError before the fix
@example(data=b"[capture]\ntrace = [1]", in_pyproject=True)
@example(data=b"[keep]\noutputs = \xff", in_pyproject=False)  # UnicodeDecodeError before
@example(data=b"\xff", in_pyproject=True)
def test_config_is_read_or_refused_in_one_line(data: bytes, in_pyproject: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / ".vestige"
        store.mkdir()
        if in_pyproject:
            (root / "pyproject.toml").write_bytes(b"[tool.vestige]\n" + data)
        else:
            (store / "config.toml").write_bytes(data)
        try:
            config = load_config(store, root)
        except UsageError as e:
            one_line(e)
            return
    assert isinstance(config, Config)
    assert config.capture_trace in ("auto", "always", "never")
    assert isinstance(config.keep_inputs_max_size, int)
    assert isinstance(config.scan_ignore, tuple)


# -- recorded paths -----------------------------------------------------------------------

PATH_PIECES = ["a", "b", ".", "..", "/", "//", "\\", "..\\", "\0", " ", "\udcff", "\udc2e",
               "é", "~", "...", "\n", ".a", "a."]  # fmt: skip
path_strings = st.one_of(
    st.lists(st.sampled_from(PATH_PIECES), max_size=8).map("".join),
    any_text,
    st.lists(fs_names | st.sampled_from(["..", ".", ""]), max_size=5).map("/".join),
    st.lists(fs_names | st.sampled_from(["..", "."]), max_size=5).map(lambda p: "/" + "/".join(p)),
)
BASE = "/restore/to"


def inside(path: str, folder: str) -> bool:
    """Whether `path`, normalised, is strictly inside `folder` (a normalised absolute path)."""
    normal = posixpath.normpath(path)
    return normal.startswith(folder + "/") and posixpath.commonpath([normal, folder]) == folder


@torture(1500)
@given(path=path_strings | st.none() | st.integers() | st.binary(max_size=8))
@example(path="../x")
@example(path="a/../../x")
@example(path="/../etc/passwd")
@example(path="//..//x")
@example(path="a\\..\\..\\x")
@example(path="a/\0/b")
@example(path="\udcff/..")
def test_accepted_paths_stay_inside_the_folder_they_are_written_under(path: object) -> None:
    """Whatever safe_relative accepts stays inside a folder it is joined to; whatever
    safe_recorded accepts stays inside it too, an absolute path under its `outside/`
    (where restore and export write it)."""
    if safe_relative(path):
        assert isinstance(path, str) and "\0" not in path
        assert inside(posixpath.join(BASE, path), BASE)
        assert inside(os.fspath(Path(BASE) / path), BASE)
        assert safe_recorded(path)
    if safe_recorded(path):
        assert isinstance(path, str) and "\0" not in path
        if path.startswith("/"):
            outside = posixpath.join(BASE, "outside")
            assert inside(os.fspath(Path(outside) / path.lstrip("/")), outside)
        else:
            assert safe_relative(path)
            assert inside(posixpath.join(BASE, path), BASE)


@pytest.mark.parametrize("path", ["a/b", "/etc/x", "a\\..\\x", "\udcff/\udc2e", "..a/b..", "~"])
def test_paths_that_stay_inside_are_accepted(path: str) -> None:
    """(The property above is not vacuous: these are accepted, the next ones refused.)"""
    assert safe_recorded(path) and (path.startswith("/") or safe_relative(path))


@pytest.mark.parametrize(
    "path", ["", ".", "..", "../x", "a/../../x", "/../etc/x", "//..//x", "a//b", "a/", "a/\0",
             "/", "./a", "a/.", None, b"a", 3],
)  # fmt: skip
def test_paths_that_climb_out_or_are_not_paths_are_refused(path: object) -> None:
    assert not safe_relative(path) and not safe_recorded(path)
