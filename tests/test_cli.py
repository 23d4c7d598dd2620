"""The `vestige` command as a user runs it: real subprocesses over real git projects.

Read-only commands (ls, show, cat, log, which) are checked against stores built once per
module; every bad input must give one `error:` line, exit 2 and leave the store as it
was; every command must document itself (--help with examples, docs/cli.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest
from conftest import clean_environment, git, vestige

import vestige as vestige_pkg
from vestige.cli._app import COMMANDS

REPO = Path(__file__).resolve().parents[1]
CLI_DOC = REPO / "docs" / "cli.md"
COMMAND_NAMES = list(COMMANDS)

#: `ls --json`: one object per run. Changing this set is a change of a documented format.
LS_KEYS = {
    "id",
    "seq",
    "status",
    "command",
    "cwd",
    "started",
    "ended",
    "duration",
    "exit_code",
    "git_commit",
    "params",
    "metrics",
    "tags",
    "manifest",
    "parent",
    "pinned",
    "name",
    "origin",
    "adopted",
}
#: The run manifest's fields (docs/format.md, "Run manifest").
MANIFEST_KEYS = {
    "type",
    "format",
    "id",
    "seq",
    "status",
    "command",
    "cwd",
    "root",
    "host",
    "pid",
    "started",
    "ended",
    "duration",
    "exit_code",
    "signal",
    "code",
    "params",
    "inputs",
    "outputs",
    "stdout",
    "stderr",
    "env",
    "resources",
    "warnings",
    "parent",
    "rerun_of",
    "artefacts",
    "metrics",
    "tags",
    "notes",
    "sweep",
    "notebook",
    "adopted",
    "vestige_version",
}
#: `show --json` is the manifest plus its own hash and the environment record.
SHOW_KEYS = MANIFEST_KEYS | {"manifest", "environment"}
WHICH_KEYS = {"path", "hash", "made_by", "read_by"}
MAKER_KEYS = {"run_id", "seq", "path", "started", "command", "status", "confirmed", "kept"}
ENV_KEYS = {
    "type",
    "python",
    "platform",
    "host",
    "cpu",
    "memory_bytes",
    "gpus",
    "distributions",
    "conda",
    "env_vars",
}


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The clean environment of conftest's autouse fixture, for module-scoped fixtures."""
    base = tmp_path_factory.mktemp("module")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        yield base


def new_project(base: Path, files: dict[str, str | bytes], name: str = "proj") -> Path:
    """A git project with `files` committed."""
    root = base / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


def ok(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[bytes]:
    """Run vestige; fail with its stderr unless it exits with `code`."""
    done = vestige(*args, cwd=cwd)
    assert done.returncode == code, (args, done.returncode, done.stderr.decode())
    return done


def as_json(*args: str, cwd: Path) -> object:
    return json.loads(ok(*args, "--json", cwd=cwd).stdout)


def seqs_where(cwd: Path, *options: str) -> list[int]:
    """The seq numbers `ls --json` lists with these options, in its order."""
    runs = as_json("ls", *options, cwd=cwd)
    assert isinstance(runs, list)
    return [r["seq"] for r in runs]


def ls_table_seqs(text: str) -> list[int]:
    """The seq column of the `ls` table (rows start with the number and 10 id chars)."""
    return [int(m.group(1)) for m in re.finditer(r"(?m)^\s*(\d+)\s+[0-9A-Z]{10}\s", text)]


def store_state(store: Path) -> dict[str, str]:
    """Every directory and file under the store (but the index cache), with file digests."""
    state: dict[str, str] = {}
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store).as_posix()
        if path.name.startswith("index.sqlite"):
            continue
        if path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def object_path(store: Path, digest: str) -> Path:
    return store / "objects" / digest[:2] / digest[2:]


def manifest_of(store: Path, run_id: str) -> dict[str, object]:
    digest = (store / "refs" / "runs" / run_id).read_text().strip()
    data = json.loads(object_path(store, digest).read_bytes())
    assert isinstance(data, dict)
    return data


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The single `error: ...` line a bad input must produce (exit 2, nothing on stdout)."""
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, (
        f"expected one `error:` line on stderr; exit {done.returncode}, "
        f"stdout {done.stdout[:80]!r}, stderr:\n{err}"
    )
    assert lines[0].startswith("error: "), lines[0]
    assert done.returncode == 2, (done.returncode, err)
    assert done.stdout == b"", done.stdout[:200]
    return lines[0]


# -- a lab: one project with four runs ------------------------------------------------------

TRAIN = """\
import argparse
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--model", required=True)
p.add_argument("--fail", type=int, default=0)
a = p.parse_args()
rows = open("data/input.csv").read().splitlines()
os.makedirs("out", exist_ok=True)
with open("out/metrics.txt", "w") as f:
    f.write(f"model={a.model} lr={a.lr} rows={len(rows)}\\n")
sys.stdout.buffer.write(f"training {a.model} at lr={a.lr}\\nna\\u00efve \\u2713\\n".encode())
sys.stderr.buffer.write(f"warn: {a.model} is slow\\n".encode())
sys.exit(a.fail)
"""
INPUT_V1 = b"x,y\n1,2\n"
INPUT_V2 = b"x,y\n1,2\n3,4\n"


def train_stdout(model: str, lr: float) -> bytes:
    return f"training {model} at lr={lr}\nnaïve ✓\n".encode()


@dataclass
class Lab:
    root: Path
    ids: dict[int, str] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.root / ".vestige"


@pytest.fixture(scope="module")
def lab(module_env: Path) -> Lab:
    """Runs 1-2 ok (the input changes between them), 3 failed with exit 3, 4 a slow sleep."""
    root = new_project(module_env, {"train.py": TRAIN, "data/input.csv": INPUT_V1})
    lab = Lab(root)
    first = ok("run", "train.py", "--lr", "0.1", "--model", "vit", cwd=root)
    assert first.stdout == train_stdout("vit", 0.1)
    (root / "data" / "input.csv").write_bytes(INPUT_V2)
    ok("run", "train.py", "--lr", "0.01", "--model", "resnet", cwd=root)
    ok("run", "train.py", "--lr", "0.001", "--model", "mlp", "--fail", "3", cwd=root, code=3)
    ok("run", "--param", "note=slow", "sleep", "0.5", cwd=root)
    for r in as_json("ls", cwd=root):  # type: ignore[union-attr]
        lab.ids[r["seq"]] = r["id"]
    assert sorted(lab.ids) == [1, 2, 3, 4]
    return lab


# -- ls --------------------------------------------------------------------------------------


def test_ls_lists_newest_first(lab: Lab) -> None:
    assert seqs_where(lab.root) == [4, 3, 2, 1]
    text = ok("ls", cwd=lab.root).stdout.decode()
    assert ls_table_seqs(text) == [4, 3, 2, 1]
    for seq, run_id in lab.ids.items():
        assert run_id[:10] in text, seq


def test_ls_status_and_limit(lab: Lab) -> None:
    assert seqs_where(lab.root, "--status", "failed") == [3]
    assert seqs_where(lab.root, "--status", "ok") == [4, 2, 1]
    assert seqs_where(lab.root, "--status", "interrupted") == []
    assert seqs_where(lab.root, "--limit", "2") == [4, 3]
    assert seqs_where(lab.root, "-n", "1", "--status", "ok") == [4]
    text = ok("ls", "--limit", "2", cwd=lab.root).stdout.decode()
    assert ls_table_seqs(text) == [4, 3]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("params.lr < 0.05", [3, 2]),
        ("params.lr >= 0.1", [1]),
        ("params.lr = 0.01", [2]),
        ('params.model = "resnet"', [2]),
        ("params.model in ('vit', 'mlp')", [3, 1]),
        ('params.model ~ "*n*"', [2]),
        ('params.note = "slow"', [4]),
        ("params.note is null", [3, 2, 1]),
        ('status = "failed"', [3]),
        ('status != "failed"', [4, 2, 1]),
        ("exit_code = 3", [3]),
        ("exit_code = 0", [4, 2, 1]),
        ('command ~ "*train.py*"', [3, 2, 1]),
        ('command ~ "sleep*"', [4]),
        ('params.lr < 0.05 and status = "ok"', [2]),
        ('not (status = "ok") or params.model = "vit"', [3, 1]),
        ("seq > 2", [4, 3]),
    ],
)
def test_ls_where(lab: Lab, expr: str, expected: list[int]) -> None:
    assert seqs_where(lab.root, "--where", expr) == expected


def test_ls_where_duration(lab: Lab) -> None:
    """The filter agrees with the durations ls reports (no assumption on how long runs take,
    except that `sleep 0.5` takes at least half a second)."""
    runs = as_json("ls", cwd=lab.root)
    assert isinstance(runs, list)
    slow = [r["seq"] for r in runs if r["duration"] >= 0.5]
    assert 4 in slow
    assert seqs_where(lab.root, "--where", "duration >= 0.5") == slow
    assert seqs_where(lab.root, "--where", "duration < 0.5") == [
        r["seq"] for r in runs if r["seq"] not in slow
    ]
    assert seqs_where(lab.root, "--where", "duration < 1h") == [4, 3, 2, 1]


def test_ls_json_shape(lab: Lab) -> None:
    runs = as_json("ls", cwd=lab.root)
    assert isinstance(runs, list)
    assert len(runs) == 4
    for r in runs:
        assert set(r) == LS_KEYS
    by_seq = {r["seq"]: r for r in runs}
    one = by_seq[1]
    assert one["id"] == lab.ids[1]
    assert one["status"] == "ok"
    assert one["exit_code"] == 0
    assert one["command"] == ["train.py", "--lr", "0.1", "--model", "vit"]  # as typed
    assert one["cwd"] == "."
    assert one["params"] == {"lr": 0.1, "model": "vit", "fail": 0}
    assert one["parent"] is None
    assert one["git_commit"] == git(lab.root, "rev-parse", "HEAD").strip()
    assert one["ended"] >= one["started"]
    assert one["manifest"] == (lab.store / "refs" / "runs" / lab.ids[1]).read_text().strip()
    assert by_seq[3]["status"] == "failed"
    assert by_seq[3]["exit_code"] == 3
    assert by_seq[4]["command"] == ["sleep", "0.5"]
    assert by_seq[4]["params"]["note"] == "slow"


def test_ls_empty_store_says_so(tmp_path: Path) -> None:
    from vestige.repo import Repo

    root = tmp_path / "fresh"
    root.mkdir()
    Repo.open(root, create=True).close()
    done = ok("ls", cwd=root)
    assert done.stdout.decode().strip() == "no runs yet: try `vestige run ...`"
    assert json.loads(ok("ls", "--json", cwd=root).stdout) == []


def test_ls_nothing_matches(lab: Lab) -> None:
    done = ok("ls", "--where", "params.lr > 100", cwd=lab.root)
    assert done.stdout.decode().strip() == "no runs match"


# -- show ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "seq"),
    [("2", 2), ("#2", 2), ("@last", 4), ("-1", 4), ("-2", 3), ("-4", 1), ("1", 1)],
)
def test_show_resolves_references(lab: Lab, ref: str, seq: int) -> None:
    data = as_json("show", ref, cwd=lab.root)
    assert isinstance(data, dict)
    assert data["seq"] == seq
    assert data["id"] == lab.ids[seq]


@pytest.mark.parametrize(
    "prefix",
    [lambda i: i[:16], lambda i: i[:16].lower(), lambda i: i],
    ids=["prefix", "lowercase-prefix", "whole-id"],
)
def test_show_by_id_prefix(lab: Lab, prefix: Callable[[str], str]) -> None:
    data = as_json("show", prefix(lab.ids[2]), cwd=lab.root)
    assert isinstance(data, dict)
    assert data["seq"] == 2


def test_show_json_is_the_manifest_plus_environment(lab: Lab) -> None:
    data = as_json("show", "1", cwd=lab.root)
    assert isinstance(data, dict)
    assert set(data) == SHOW_KEYS
    manifest = manifest_of(lab.store, lab.ids[1])
    assert set(manifest) == MANIFEST_KEYS
    assert {k: data[k] for k in MANIFEST_KEYS} == manifest
    digest = (lab.store / "refs" / "runs" / lab.ids[1]).read_text().strip()
    assert data["manifest"] == digest
    env = data["environment"]
    assert isinstance(env, dict)
    assert set(env) == ENV_KEYS
    assert env["type"] == "env"
    env_bytes = object_path(lab.store, str(data["env"])).read_bytes()
    assert json.loads(env_bytes) == env
    assert data["type"] == "run"
    assert data["format"] == 1
    assert Path(str(data["root"])).resolve() == lab.root.resolve()
    assert [f["path"] for f in data["outputs"]] == ["out/metrics.txt"]  # type: ignore[index]
    assert "data/input.csv" in [f["path"] for f in data["inputs"]]  # type: ignore[index]


def test_show_text(lab: Lab) -> None:
    text = ok("show", "3", cwd=lab.root).stdout.decode()
    assert text.startswith(f"run #3  {lab.ids[3]}  failed")
    assert "train.py --lr 0.001 --model mlp --fail 3" in text
    assert "exit      3" in text
    assert "out/metrics.txt" in text
    assert "model = 'mlp'" in text


# -- cat and log -----------------------------------------------------------------------------


def test_cat_an_output_as_that_run_wrote_it(lab: Lab) -> None:
    assert ok("cat", "1", "out/metrics.txt", cwd=lab.root).stdout == b"model=vit lr=0.1 rows=2\n"
    assert ok("cat", "2", "out/metrics.txt", cwd=lab.root).stdout == (
        b"model=resnet lr=0.01 rows=3\n"
    )
    assert ok("cat", "@last", "train.py", cwd=lab.root).stdout == TRAIN.encode()


def test_cat_an_input_as_that_run_read_it(lab: Lab) -> None:
    assert ok("cat", "1", "data/input.csv", cwd=lab.root).stdout == INPUT_V1
    assert ok("cat", "2", "./data/input.csv", cwd=lab.root).stdout == INPUT_V2
    assert ok("cat", "2", str(lab.root / "data/input.csv"), cwd=lab.root).stdout == INPUT_V2
    assert ok("cat", "1", "input.csv", cwd=lab.root / "data").stdout == INPUT_V1


def test_log_prints_exact_bytes(lab: Lab) -> None:
    assert ok("log", "1", cwd=lab.root).stdout == train_stdout("vit", 0.1)
    assert ok("log", "1", "--stderr", cwd=lab.root).stdout == b"warn: vit is slow\n"
    assert ok("log", "-2", "--stderr", cwd=lab.root).stdout == b"warn: mlp is slow\n"
    assert ok("log", "@last", cwd=lab.root).stdout == b""
    assert ok("log", "@last", "--stderr", cwd=lab.root).stdout == b""


PLOT = """\
import sys

data = bytes(range(256)) * 3 + b"\\x00\\xff\\xfe\\n\\r\\n"
with open("fig.bin", "wb") as f:
    f.write(data)
sys.stdout.buffer.write(b"\\x00\\xff binary\\n")
"""
FIG = bytes(range(256)) * 3 + b"\x00\xff\xfe\n\r\n"


def test_cat_from_a_subdirectory_binary_and_deleted_code(tmp_path: Path) -> None:
    root = new_project(tmp_path, {"analysis/plot.py": PLOT})
    sub = root / "analysis"
    ok("run", "plot.py", cwd=sub)
    assert (sub / "fig.bin").read_bytes() == FIG
    assert ok("cat", "1", "fig.bin", cwd=sub).stdout == FIG
    assert ok("cat", "1", "analysis/fig.bin", cwd=root).stdout == FIG
    assert ok("log", "1", cwd=root).stdout == b"\x00\xff binary\n"
    (sub / "plot.py").unlink()
    (sub / "fig.bin").unlink()
    git(root, "commit", "-qam", "clean up")
    assert ok("cat", "1", "plot.py", cwd=sub).stdout == PLOT.encode()
    assert ok("cat", "1", "analysis/plot.py", cwd=root).stdout == PLOT.encode()
    assert ok("cat", "1", "fig.bin", cwd=sub).stdout == FIG


# -- which -----------------------------------------------------------------------------------

MAKE = """\
seed = open("data/seed.txt", "rb").read()
import os
os.makedirs("out", exist_ok=True)
with open("out/fig.png", "wb") as f:
    f.write(b"\\x89PNG\\r\\n\\x1a\\n" + seed * 50)
"""
SEED = b"0123456789abcdef\n"
PNG = b"\x89PNG\r\n\x1a\n" + SEED * 50


@dataclass
class WhichLab:
    root: Path
    outside: Path
    ids: dict[int, str]


@pytest.fixture(scope="module")
def which_lab(module_env: Path) -> WhichLab:
    """Three runs make the same fig; then it is copied out, renamed, and its maker deleted."""
    root = new_project(module_env, {"make.py": MAKE, "data/seed.txt": SEED}, "figs")
    for _ in range(3):
        ok("run", "make.py", cwd=root)
    ids = {r["seq"]: r["id"] for r in as_json("ls", cwd=root)}  # type: ignore[union-attr]
    outside = module_env / "elsewhere"
    outside.mkdir()
    shutil.copyfile(root / "out" / "fig.png", outside / "copy.png")
    (root / "paper").mkdir()
    shutil.copyfile(root / "out" / "fig.png", root / "paper" / "kept.png")
    (root / "out" / "fig.png").rename(root / "paper" / "fig3.png")
    git(root, "rm", "-q", "make.py")
    git(root, "commit", "-qm", "the script is gone")
    assert not (root / "make.py").exists()
    return WhichLab(root, outside, ids)


def which_json(lab: WhichLab, path: str, code: int = 0) -> dict[str, object]:
    data = json.loads(ok("which", path, "--json", cwd=lab.root, code=code).stdout)
    assert isinstance(data, dict)
    assert set(data) == WHICH_KEYS
    for maker in [*data["made_by"], *data["read_by"]]:  # type: ignore[misc]
        assert set(maker) == MAKER_KEYS
    return data


@pytest.mark.parametrize(
    "where",
    ["paper/fig3.png", "paper/kept.png", "OUTSIDE/copy.png"],
    ids=["renamed", "copied-in-project", "copied-outside"],
)
def test_which_finds_the_maker_by_content(which_lab: WhichLab, where: str) -> None:
    path = where.replace("OUTSIDE", str(which_lab.outside))
    data = which_json(which_lab, path)
    assert data["hash"] == blake3.blake3(PNG).hexdigest()
    assert data["path"] == path
    made_by = data["made_by"]
    assert isinstance(made_by, list)
    assert [m["seq"] for m in made_by] == [1, 2, 3]
    first = made_by[0]
    assert first["run_id"] == which_lab.ids[1]
    assert first["path"] == "out/fig.png"
    assert first["status"] == "ok"
    assert first["confirmed"] is True
    assert first["kept"] is True
    assert "make.py" in first["command"]
    assert [m["seq"] for m in data["read_by"]] == []  # type: ignore[union-attr]


def test_which_text_lists_first_maker_first(which_lab: WhichLab) -> None:
    out = ok("which", "paper/fig3.png", cwd=which_lab.root).stdout.decode()
    lines = out.splitlines()
    assert lines[0].startswith(f"paper/fig3.png: made by run #1 ({which_lab.ids[1][:10]})")
    assert lines[1].split() == ["as", "out/fig.png"]
    assert "make.py" in lines[2]
    assert lines[3].split()[:2] == ["status", "ok"]
    assert lines[4] == "also made by 2 later runs:"
    assert lines[5].split()[0] == "#2"
    assert lines[6].split()[0] == "#3"


def test_which_after_the_script_was_deleted_cat_still_has_it(which_lab: WhichLab) -> None:
    assert ok("cat", "1", "make.py", cwd=which_lab.root).stdout == MAKE.encode()
    assert ok("cat", "3", "out/fig.png", cwd=which_lab.root).stdout == PNG


def test_which_a_file_no_run_made(which_lab: WhichLab) -> None:
    stranger = which_lab.outside / "stranger.txt"
    stranger.write_bytes(b"nobody made me\n")
    done = vestige("which", str(stranger), cwd=which_lab.root)
    assert done.returncode == 1
    assert "no recorded run made these bytes" in done.stdout.decode()
    data = which_json(which_lab, str(stranger), code=1)
    assert data["made_by"] == []
    assert data["read_by"] == []
    assert data["hash"] == blake3.blake3(b"nobody made me\n").hexdigest()


def test_which_a_file_runs_only_read(which_lab: WhichLab) -> None:
    done = vestige("which", "data/seed.txt", cwd=which_lab.root)
    assert done.returncode == 1
    assert "it was read by run #1" in done.stdout.decode()
    data = which_json(which_lab, "data/seed.txt", code=1)
    assert [m["seq"] for m in data["read_by"]] == [1, 2, 3]  # type: ignore[union-attr]


# -- bad input: one line, exit 2, store untouched --------------------------------------------


def common_prefix(ids: list[str]) -> str:
    """The characters all the ids start with (not a path: character by character)."""
    prefix = ids[0]
    while not all(i.startswith(prefix) for i in ids):
        prefix = prefix[:-1]
    assert len(prefix) >= 4 and not prefix.isdigit(), ids  # ULIDs of runs seconds apart
    return prefix


BAD_INPUTS: list[tuple[str, Callable[[Lab], list[str]], str]] = [
    ("unknown-number", lambda lab: ["show", "999"], "999"),
    ("unknown-id", lambda lab: ["show", "nosuchid"], "nosuchid"),
    ("unknown-relative", lambda lab: ["show", "-9"], "-9"),
    ("ambiguous-prefix", lambda lab: ["show", common_prefix(list(lab.ids.values()))], "several"),
    ("ambiguous-prefix-cat", lambda lab: ["cat", lab.ids[1][:4], "train.py"], "several"),
    ("file-not-in-run", lambda lab: ["cat", "1", "not/a/file"], "not/a/file"),
    ("which-missing", lambda lab: ["which", "missing.png"], "missing.png"),
    ("where-syntax", lambda lab: ["ls", "--where", "params.lr < 0.1 and and"], "position 20"),
    ("where-unknown-field", lambda lab: ["ls", "--where", "colour = 1"], "position 0"),
    ("where-unterminated", lambda lab: ["ls", "--where", 'status = "ok'], "position 9"),
    ("status-bogus", lambda lab: ["ls", "--status", "bogus"], "bogus"),
    ("limit-zero", lambda lab: ["ls", "--limit", "0"], "limit"),
    ("run-param-novalue", lambda lab: ["run", "--param", "novalue", "true"], "novalue"),
    ("run-param-missing", lambda lab: ["run", "--param"], "--param"),
    ("run-bogus-option", lambda lab: ["run", "--bogus-option", "cmd"], "--bogus-option"),
    ("run-no-command", lambda lab: ["run"], "no command"),
    ("run-missing-script", lambda lab: ["run", "nosuch.py"], "nosuch.py"),
    ("run-missing-program", lambda lab: ["run", "no-such-program-xyz"], "no-such-program-xyz"),
    ("cat-missing-argument", lambda lab: ["cat", "1"], "PATH"),
    ("unknown-command", lambda lab: ["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize(
    ("args", "needle"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_one_error_line_and_touches_nothing(
    lab: Lab, args: Callable[[Lab], list[str]], needle: str
) -> None:
    before = store_state(lab.store)
    listing = ok("ls", "--json", cwd=lab.root).stdout
    line = one_error_line(vestige(*args(lab), cwd=lab.root))
    assert needle in line
    assert store_state(lab.store) == before
    assert ok("ls", "--json", cwd=lab.root).stdout == listing


OUTSIDE_COMMANDS = [
    ["ls"], ["ls", "--json"], ["show", "1"], ["cat", "1", "x"], ["log", "1"],
    ["which", "f.txt"], ["fsck"], ["reindex"],
]  # fmt: skip


@pytest.mark.parametrize(
    "args",
    OUTSIDE_COMMANDS,
    ids=lambda a: "-".join(a),
)
def test_outside_a_store(tmp_path: Path, args: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "f.txt").write_text("hello\n")
    line = one_error_line(vestige(*args, cwd=empty))
    assert "no vestige store" in line
    assert not (empty / ".vestige").exists()
    assert sorted(p.name for p in empty.iterdir()) == ["f.txt"]


@pytest.mark.parametrize("stream", ["output", "stdout"])
def test_corrupt_object_is_an_error_naming_fsck(tmp_path: Path, stream: str) -> None:
    """`cat` of an output (or `log` of a stdout) whose object had a bit flipped."""
    root = new_project(tmp_path, {"w.py": 'open("out.txt", "w").write("precious\\n")\nprint(1)\n'})
    ok("run", "w.py", cwd=root)
    store = root / ".vestige"
    data = as_json("show", "1", cwd=root)
    assert isinstance(data, dict)
    if stream == "output":
        digest = data["outputs"][0]["hash"]  # type: ignore[index]
        args = ["cat", "1", "out.txt"]
    else:
        digest = data["stdout"]["hash"]  # type: ignore[index]
        args = ["log", "1"]
    obj = object_path(store, str(digest))
    body = bytearray(obj.read_bytes())
    body[0] ^= 0x01
    obj.chmod(0o644)
    obj.write_bytes(bytes(body))
    obj.chmod(0o444)
    before = store_state(store)
    listing = ok("ls", "--json", cwd=root).stdout
    line = one_error_line(vestige(*args, cwd=root))
    assert "fsck" in line
    assert store_state(store) == before
    assert ok("ls", "--json", cwd=root).stdout == listing


# -- help and docs ---------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    """`vestige --help` lists every command (the list the tests below go through)."""
    text = ok("--help", cwd=REPO).stdout.decode()
    section = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    # (a help line too long for the terminal goes on, indented, under its command)
    listed = [line.split()[0] for line in section.splitlines() if line[:3].strip()]
    assert listed == COMMAND_NAMES
    assert {"run", "ls", "show", "cat", "log", "which", "fsck", "reindex"} <= set(listed)
    assert "Examples:" in text


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_has_help_with_examples(name: str) -> None:
    for flag in ("--help", "-h"):
        done = ok(name, flag, cwd=REPO)
        text = done.stdout.decode()
        assert text.startswith(f"Usage: vestige {name} "), text
        description = text.split("\n\n", 2)[1].strip()
        assert description and not description.startswith("Options:"), text
        assert "Examples:" in text, f"`vestige {name} --help` has no Examples section"
        examples = text.split("Examples:", 1)[1].splitlines()
        assert any(line.strip().startswith(f"vestige {name}") for line in examples), text


def doc_sections() -> dict[str, str]:
    """docs/cli.md split on its `## vestige NAME` headings."""
    text = CLI_DOC.read_text()
    parts = re.split(r"(?m)^## `?vestige ([\w-]+)`?.*$", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_and_option_is_in_docs(name: str) -> None:
    """Like sqlite-utils' test_docs: a command or option without documentation fails."""
    import click

    from vestige.cli._app import app

    sections = doc_sections()
    assert name in sections, f"docs/cli.md has no '## vestige {name}' section"
    body = sections[name]
    with click.Context(app) as ctx:
        command = app.get_command(ctx, name)
    assert command is not None
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for opt in param.opts + param.secondary_opts:
                if opt not in ("-h", "--help"):
                    assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", body), (name, opt)
        elif isinstance(param, click.Argument):
            assert param.human_readable_name.upper() in body, (name, param.name)
    assert "```" in body and f"vestige {name}" in body  # at least one example


def doc_json_block(marker: str) -> object:
    """The JSON example that follows `<!-- json: marker -->` in docs/cli.md."""
    text = CLI_DOC.read_text()
    m = re.search(rf"<!-- json: {marker} -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert m, f"docs/cli.md lacks the example marked '<!-- json: {marker} -->'"
    return json.loads(m.group(1))


def test_docs_json_examples_have_the_real_keys() -> None:
    ls = doc_json_block("ls")
    assert isinstance(ls, list) and ls
    assert all(set(r) == LS_KEYS for r in ls)
    show = doc_json_block("show")
    assert isinstance(show, dict)
    assert set(show) == SHOW_KEYS
    which = doc_json_block("which")
    assert isinstance(which, dict)
    assert set(which) == WHICH_KEYS
    assert all(set(m) == MAKER_KEYS for m in which["made_by"])


def test_docs_name_every_exit_code() -> None:
    text = CLI_DOC.read_text()
    section = text.split("## Exit codes", 1)[1]
    for code in ("0", "1", "2", "127", "130", "128"):
        assert re.search(rf"(?m)^\|\s*`?{code}", section), code


# -- entry points ----------------------------------------------------------------------------


def test_python_m_version(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vestige", "--version"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"vestige, version {vestige_pkg.__version__}"


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "vestige"
    assert script.exists(), "the vestige console script is not installed next to python"
    done = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"vestige, version {vestige_pkg.__version__}"
    done = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0
    assert b"Commands:" in done.stdout


# -- which counts runs, and names the file a run wrote before a copy it displayed --------------

PLOT_CELL = """\
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\\x00\\x80")) + chunk(b"IEND", b""))
open("fig.png", "wb").write(png)
from IPython.display import Image, display
display(Image(filename="fig.png"))
"""


def test_which_names_the_file_a_cell_wrote_and_counts_runs(project: Path) -> None:
    """A cell that saves fig.png and displays it: each run has the file and its displayed
    copy `cell-1/output-1.png` (same bytes). `which` names the file, and 4 runs are the
    first and 3 later ones, not 7."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = {"cells": [{"cell_type": "code", "id": "plot", "metadata": {}, "execution_count": None,
                     "outputs": [], "source": PLOT_CELL}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    (project / "plot.ipynb").write_text(json.dumps(nb))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "plot")
    for _ in range(4):
        ok("run", "plot.ipynb", cwd=project, code=0)
    shown = as_json("show", "1", cwd=project)
    assert isinstance(shown, dict)
    kept = [f["path"] for a in shown["artefacts"] for f in a["files"]]
    assert "cell-1/output-1.png" in kept  # the displayed copy is kept, with the same bytes
    lines = ok("which", "fig.png", cwd=project).stdout.decode().splitlines()
    assert lines[0].startswith("fig.png: made by run #1 "), lines
    assert lines[1].split() == ["as", "fig.png"], lines
    assert lines[4] == "also made by 3 later runs:", lines
    assert [line.split()[0] for line in lines[5:8]] == ["#2", "#3", "#4"], lines
    made_by = as_json("which", "fig.png", cwd=project)["made_by"]  # type: ignore[index]
    assert [(m["seq"], m["path"]) for m in made_by][:2] == [(1, "fig.png"),
                                                           (1, "cell-1/output-1.png")]  # fmt: skip


# -- restore names what the run had: one line and exit 2 otherwise -----------------------------

MAKE_VIEWS = """\
import os
for folder in ("src", "results", "archive"):
    os.makedirs(folder, exist_ok=True)
open("src/views.py", "w").write("VIEWS = 1\\n")
open("results/a.csv", "w").write("x\\n1\\n")
open("archive/a.csv", "w").write("x\\n0\\n")
"""


def one_error(*args: str, cwd: Path) -> str:
    """Run vestige expecting exit 2 and one `error:` line; return that line."""
    done = vestige(*args, cwd=cwd)
    err = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2, (args, done.returncode, done.stdout.decode(), err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def views(project: Path) -> Path:
    """Run #1 wrote src/views.py, results/a.csv and archive/a.csv (none tracked)."""
    (project / "make.py").write_text(MAKE_VIEWS)
    (project / "report.py").write_text("print('report')\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "scripts")
    ok("run", "make.py", cwd=project)
    return project


def test_restore_takes_the_unique_end_of_a_path(views: Path) -> None:
    project = views
    (project / "src" / "views.py").unlink()
    out = ok("restore", "@last", "views.py", cwd=project).stdout.decode()
    assert out.split()[:2] == ["written", str(project / "src" / "views.py")], out
    assert (project / "src" / "views.py").read_text() == "VIEWS = 1\n"
    line = one_error("restore", "1", "a.csv", cwd=project)
    assert "several files of run #1 (archive/a.csv, results/a.csv)" in line, line


def test_restore_of_a_file_the_run_did_not_write_is_an_error(views: Path, tmp_path: Path) -> None:
    project = views
    # run 2 wrote none of them: naming one is an error, not a copy of another run's output
    ok("run", "report.py", cwd=project)
    line = one_error("restore", "2", "results/a.csv", "--to", str(tmp_path / "r"), cwd=project)
    assert "run #2 has no file matching 'results/a.csv'" in line, line
    assert not (tmp_path / "r").exists()
    assert "in its outputs" in one_error("restore", "1", "--outputs", "make.py", cwd=project)
    # a committed result is in later snapshots, but it is still the output of the run that
    # wrote it: the error names that run
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results")
    ok("run", "report.py", cwd=project)
    line = one_error("restore", "3", "results/a.csv", cwd=project)
    assert "run #3 did not write results/a.csv" in line, line
    assert "vestige restore 1 results/a.csv" in line, line
    ok("restore", "3", "report.py", cwd=project)  # its code is its to restore
