"""Finding runs the way people think (issue 23, item 2): `contains` and `matches` in
--where, the note, name, rerun_of and adopted fields, a hint for a `~` without a
wildcard, named runs (`vestige run --name`, `vestige name`) as run references, and `ls`
with name and tags columns that says when it cuts the list."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import vestige

from vestige.errors import WhereError
from vestige.index.db import Index
from vestige.index.schema import migrate
from vestige.index.where import compile_where, hints
from vestige.records import Run


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def ls(root: Path, *args: str) -> list[dict]:
    return json.loads(ok("ls", "--json", *args, cwd=root))


def seqs(root: Path, where: str) -> list[int]:
    return sorted(r["seq"] for r in ls(root, "--where", where))


# -- the language, on the real schema written by the real recorder --------------------------


def _run(n: int, command: list[str], **fields: object) -> Run:
    return Run(id=f"R{n}", seq=n, status="ok", command=command, cwd=".", root="/p",
               started=1000.0 + n, **fields)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> Iterator[Index]:
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    migrate(conn)
    index = Index(conn)
    note = {"t": 1.0, "text": "Loss SPIKES at step 3k; LR too high?"}
    index.record.runs([
        _run(1, ["python", "Train.py", "--lr", "0.1"], params={"model": "ResNet50"},
             tags=("base_line",), notes=(note, {"t": 2.0, "text": "Überraschung: fine"})),
        _run(2, ["python", "eval.py"], params={"model": "vit"}, rerun_of="R1"),
        _run(3, ["bash", "run_50%.sh"], params={"model": "resnet18"}, tags=("best",),
             notes=({"t": 3.0, "text": "fine"},), adopted={"tool": "mlflow", "id": "abc"}),
        _run(4, ["python", "train.py"], adopted={"tool": "wandb", "id": "x1"}),
    ])  # fmt: skip
    index.record.name("R1", "baseline")
    index.record.name("R3", "baseline-2")
    yield index
    conn.close()


def select(index: Index, expr: str) -> set[int]:
    sql, params = compile_where(expr)
    rows = index.conn.execute(f"SELECT r.seq FROM runs r WHERE {sql}", params).fetchall()
    return {row[0] for row in rows}


CASES: list[tuple[str, set[int]]] = [
    # contains: a substring in any case; % and _ are plain characters
    ("command contains 'train'", {1, 4}),
    ("command contains TRAIN", {1, 4}),
    ("command contains '50%'", {3}),
    ("command contains '_'", {3}),
    ("command not contains 'train'", {2, 3}),
    ("not command contains 'python'", {3}),
    ("params.model contains 'resnet'", {1, 3}),
    ("params.model not contains 'res'", {2}),
    ("tag contains '_'", {1}),
    ("tag not contains 'best'", {1, 2, 4}),
    # matches: a Python regular expression, found anywhere; backslashes as typed
    ("command matches '^python (t|T)rain'", {1, 4}),
    ("command matches 'run_\\d+%\\.sh$'", {3}),
    ("params.model matches '\\d+$'", {1, 3}),
    ("params.model matches '(?i)^resnet'", {1, 3}),
    ("name matches '^base'", {1, 3}),
    ("tag not matches 'b'", {2, 4}),
    # notes: every note of a run, searched
    ("note contains 'spikes'", {1}),
    ("note contains 'überraschung'", {1}),  # (case folded beyond ASCII too)
    ("note = 'fine'", {3}),
    ("note != 'fine'", {1, 2, 4}),
    ("note is null", {2, 4}),
    ("note is not null", {1, 3}),
    ("note ~ '*step 3k*'", {1}),
    # names: one per run, missing never satisfies a comparison
    ("name = baseline", {1}),
    ("name != baseline", {3}),
    ("name in ('baseline', 'baseline-2')", {1, 3}),
    ("name ~ 'baseline*'", {1, 3}),
    ("name is null", {2, 4}),
    # rerun_of and adopted
    ("rerun_of = 'R1'", {2}),
    ("rerun_of is not null", {2}),
    ("rerun_of is null", {1, 3, 4}),
    ("adopted = true", {3, 4}),
    ("adopted = false", {1, 2}),
    ("adopted != true", {1, 2}),
    ("adopted = mlflow", {3}),
    ("adopted in ('wandb', 'hydra')", {4}),
    ("adopted is null", {1, 2}),
    ("adopted = true and note contains 'fine' or name = baseline", {1, 3}),
]


@pytest.mark.parametrize(("expr", "expected"), CASES)
def test_new_operators_and_fields_select_exactly(index: Index, expr: str, expected: set[int]
                                                 ) -> None:  # fmt: skip
    assert select(index, expr) == expected


@pytest.mark.parametrize(("expr", "position", "message"), [
    ("command matches '('", 16, "bad regular expression '(': missing ), unterminated"),
    ("params.x matches \"[a\"", 17, "bad regular expression \"[a\": unterminated character set"),
    ("seq contains 'x'", 4, "'contains' applies to text fields, not 'seq'"),
    ("started matches 'x'", 8, "'matches' applies to text fields, not 'started'"),
    ("command contains 3", 17, "'contains' needs a string pattern, found '3'"),
    ("note < 'x'", 5, "'note' supports =, !=, ~, contains, matches, in and not in, not '<'"),
    ("adopted > true", 8, "'adopted' compares with true or false"),
    ("command not like 'x'", 12, "expected 'in', 'contains' or 'matches' after 'not'"),
])  # fmt: skip
def test_bad_input_is_an_error_at_its_position(expr: str, position: int, message: str) -> None:
    with pytest.raises(WhereError) as info:
        compile_where(expr)
    assert info.value.position == position
    assert message in str(info.value)


def test_user_text_never_reaches_the_sql() -> None:
    for expr in (
        'command contains "x\'; DROP TABLE runs; --"',
        'note matches "\'; DROP TABLE notes; --"',
        'name = "a\' OR 1=1 --"',
    ):
        sql, params = compile_where(expr)
        assert "DROP" not in sql and "1=1" not in sql
        assert params


def test_a_glob_without_a_wildcard_gets_a_hint() -> None:
    (hint,) = hints("command ~ 'train' and tag = x")
    assert "'~' matches the whole text" in hint and "command contains 'train'" in hint
    assert "\n" not in hint
    assert hints("command ~ '*train*'") == []
    assert hints("command contains 'train'") == []
    assert hints("command ~") == []  # (does not parse: compile_where says why)


@pytest.mark.parametrize("expr", [
    "name = baseline", "rerun_of = 'R1'", "adopted = true", "note contains 'spike'",
    "name matches '^base' and tag = best",
])  # fmt: skip
def test_new_filters_are_looked_up_not_evaluated_for_every_run(expr: str) -> None:
    """As `ls` asks (newest first, a page): the runs are found by id through the filter's
    own table or index, never by walking every run (a `contains` on a note scans the
    notes, which are few; on the command it scans the runs: docs/cli.md says so)."""
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    Index(conn)  # (registers REGEXP)
    sql, params = compile_where(expr)
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT r.* FROM runs r WHERE {sql} ORDER BY r.seq DESC LIMIT 50",
        params,
    ).fetchall()
    details = " | ".join(row[3] for row in plan)
    assert "CORRELATED" not in details, details
    assert "SCAN r" not in details, details
    conn.close()


# -- through the CLI: real runs, names, notes, reindex ---------------------------------------


def test_names_notes_and_the_new_operators_end_to_end(project: Path) -> None:
    ok("run", "--name", "baseline", "--", "echo", "Training", "lr=0.1", cwd=project)
    ok("run", "echo", "eval", cwd=project)
    ok("run", "--name=sweep-a", "echo", "train", "again", cwd=project)
    ok("note", "2", "Loss spikes at step 3k", cwd=project)

    assert "echo Training" in ok("show", "baseline", cwd=project)
    assert seqs(project, "name = baseline") == [1]
    assert seqs(project, "name is null") == [2]
    assert seqs(project, "command contains 'TRAIN'") == [1, 3]
    assert seqs(project, "command matches 'train\\b'") == [3]
    assert seqs(project, "note contains 'SPIKES'") == [2]
    assert seqs(project, "adopted = false") == [1, 2, 3]
    assert [r["name"] for r in ls(project)] == ["sweep-a", None, "baseline"]

    # names: set, printed, moved, ambiguous, cleared
    assert ok("name", "2", "eval-1", cwd=project).strip() == "run #2 is now named 'eval-1'"
    assert ok("name", "eval-1", cwd=project).strip() == "eval-1"
    done = vestige("name", "3", "baseline", cwd=project)
    assert done.returncode == 0 and b"also names run(s) #1" in done.stderr
    done = vestige("show", "baseline", cwd=project)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "error: 'baseline' names several runs (#3, #1); use a number"
    )
    assert "run #3: name 'baseline' removed" in ok("name", "3", "--clear", cwd=project)
    assert "echo Training" in ok("show", "baseline", cwd=project)

    # the index is a cache: names and notes come back from the store
    ok("reindex", cwd=project)
    assert seqs(project, "name = baseline") == [1]
    assert seqs(project, "name = 'eval-1'") == [2]
    assert seqs(project, "note contains 'spikes'") == [2]
    (project / ".vestige" / "index.sqlite").unlink()
    assert seqs(project, "name is not null") == [1, 2]


@pytest.mark.parametrize("bad", ["42", "#3", "-1", "@x", "last", "", "  ", "a\tb", "x" * 101])
def test_bad_names_are_refused_before_anything_runs(project: Path, bad: str) -> None:
    ok("run", "true", cwd=project)
    done = vestige("name", "1", bad, cwd=project)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.decode().strip().splitlines()) == 1
    assert done.stderr.startswith(b"error: the name")
    done = vestige("run", "--name", bad, "touch", "made.txt", cwd=project)
    assert done.returncode == 2
    assert not (project / "made.txt").exists()
    assert len(ls(project)) == 1


def test_run_name_goes_with_one_run_not_a_sweep(project: Path) -> None:
    done = vestige("run", "--name", "x", "--each", "i=1,2", "--", "true", cwd=project)
    assert done.returncode == 2
    assert b"--name names one run, not a sweep" in done.stderr
    done = vestige("run", "--name", cwd=project)
    assert done.returncode == 2 and b"--name needs a value" in done.stderr


def test_where_errors_and_hints_on_the_command_line(project: Path) -> None:
    ok("run", "echo", "train", cwd=project)
    done = vestige("ls", "--where", "command matches '(train'", cwd=project)
    assert done.returncode == 2
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith("error: bad --where at position 16: bad regular expression")
    done = vestige("ls", "--where", "command ~ 'train'", cwd=project)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "no runs match"
    (hint,) = done.stderr.decode().strip().splitlines()
    assert hint.startswith("hint: '~' matches the whole text")
    done = vestige("ls", "--where", "command ~ '*train*'", cwd=project)
    assert done.stderr == b"" and b"echo train" in done.stdout
    ok("run", "echo", "train", "again", cwd=project)
    done = vestige("compare", "--where", "command ~ 'echo'", cwd=project)
    assert done.returncode == 2  # (no run matches: fewer than 2 to compare)
    assert done.stderr.decode().splitlines()[0].startswith("hint: '~' matches the whole text")


def test_ls_shows_names_and_tags_and_says_when_it_cuts(project: Path) -> None:
    for i in range(3):
        ok("run", "echo", str(i), cwd=project)
    done = vestige("ls", cwd=project)
    header = done.stdout.decode().splitlines()[0].split()
    assert "name" not in header and "tags" not in header  # (nothing to show)
    assert done.stderr == b""
    ok("name", "1", "first", cwd=project)
    ok("tag", "2", "best", "paper", cwd=project)
    lines = ok("ls", cwd=project).splitlines()
    assert lines[0].split() == ["#", "id", "name", "status", "started", "took", "exit",
                                "command", "params", "tags"]  # fmt: skip
    assert lines[2].split()[-2:] == ["best", "paper"]
    assert lines[3].split()[2] == "first"
    done = vestige("ls", "-n", "2", cwd=project)
    assert done.returncode == 0
    assert len(done.stdout.decode().strip().splitlines()) == 3
    assert done.stderr.decode().strip() == "2 of 3 shown (-n N)"
    done = vestige("ls", "-n", "1", "--where", "command contains echo and seq < 3", cwd=project)
    assert done.stderr.decode().strip() == "1 of 2 shown (-n N)"
    assert vestige("ls", "-n", "3", cwd=project).stderr == b""


def test_ls_says_thousands_with_separators(project: Path) -> None:
    """A store of 1,234 runs (its index written by the real recorder): `ls` lists 50 and
    says how many there are."""
    from vestige.index.db import Index as Db

    ok("run", "true", cwd=project)
    index, _ = Db.open(project / ".vestige" / "index.sqlite", store=project / ".vestige")
    index.record.runs(_run(n, ["true"]) for n in range(2, 1235))
    index.close()
    done = vestige("ls", cwd=project)
    assert done.stderr.decode().strip() == "50 of 1,234 shown (-n N)"
    assert len(done.stdout.decode().strip().splitlines()) == 51


def test_name_help_and_docs(project: Path) -> None:
    done = vestige("name", "--help", cwd=project)
    assert done.returncode == 0 and b"--clear" in done.stdout
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for needed in ("vestige name", "contains", "matches", "rerun_of", "adopted", "-n N"):
        assert needed in docs, needed
