"""Secrets never enter the store: a real `vestige run` with 20 secrets in its environment,
some printed, one passed on the command line and as argparse params; then every byte of
every file under .vestige is searched for them. Credentials files are hashed, not kept."""

from __future__ import annotations

import json
import random
import re
import string
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest
from conftest import clean_environment, git, vestige

MARKER = re.compile(rb"<redacted:[0-9a-f]{8}>")
_rng = random.Random(20251126)  # fixed: a failure reproduces with the same values
UPPER = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def pem() -> str:
    body = "\n".join(rand(B64, 64) for _ in range(4))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"


#: Secret by NAME: the values look like nothing in particular.
BY_NAME = {
    "AWS_SECRET_ACCESS_KEY": rand(B64, 40),
    "GITHUB_TOKEN": rand(ALNUM, 32),
    "DB_PASSWORD": "Tr0ub4dor&3-" + rand(ALNUM, 10),
    "MY_API_KEY": rand(ALNUM, 28),
    "SESSION_COOKIE": rand(ALNUM, 40),
    "OPENAI_API_KEY": rand(ALNUM, 36),
    "HF_TOKEN": rand(ALNUM, 30),
    "SLACK_TOKEN": rand(ALNUM, 24),
    "PRIVATE_THING": rand(ALNUM, 20),
    "AUTH_HEADER": "Bearer " + rand(ALNUM, 30),
}
DB_PW = rand(ALNUM, 18)
#: Secret by VALUE, under names that say nothing.
BY_VALUE = {
    "CLOUD_ID": "AKIA" + rand(UPPER, 16),
    "GH_STUFF": "ghp_" + rand(ALNUM, 36),
    "GITLAB_THING": "glpat-" + rand(ALNUM, 20),
    "CHAT_HOOK": f"xoxb-{rand(string.digits, 12)}-{rand(string.digits, 13)}-{rand(ALNUM, 24)}",
    "LLM_CONFIG": "sk-proj-" + rand(ALNUM, 20) + "7" + rand(ALNUM, 27),
    "HUB_ID": "hf_" + rand(ALNUM, 34),
    "BEARER_VALUE": "eyJ" + rand(ALNUM, 30) + "." + rand(ALNUM, 40) + "." + rand(ALNUM + "-_", 43),
    "MY_CERT": pem(),
    "DATABASE_URL": f"postgresql://alice:{DB_PW}@db.example.org:5432/lab",
    "MAPS_ID": "AIza" + rand(ALNUM + "-_", 35),
}
ENV = {**BY_NAME, **BY_VALUE}
#: What must never be stored: the whole value, except for a URL only its password.
SECRET_PARTS = {name: value for name, value in ENV.items() if name != "DATABASE_URL"}
SECRET_PARTS["DATABASE_URL"] = DB_PW
#: The third run changes two secrets: their markers must change, and nothing else's.
CHANGED = {"GITHUB_TOKEN": rand(ALNUM, 32), "CLOUD_ID": "AKIA" + rand(UPPER, 16)}

SCRIPT = """\
import argparse
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--api-key")
p.add_argument("--hub")
args = p.parse_args()
e = os.environ
print("github", e["GITHUB_TOKEN"], "aws", e["CLOUD_ID"], e["AWS_SECRET_ACCESS_KEY"])
print("slack", e["CHAT_HOOK"], "db", e["DATABASE_URL"])
print("key", args.api_key, "hub", args.hub, "llm", e["LLM_CONFIG"])
print("jwt", e["BEARER_VALUE"], "pw", e["DB_PASSWORD"], file=sys.stderr)
print(e["MY_CERT"], file=sys.stderr)
print("session", e["SESSION_COOKIE"], file=sys.stderr)
with open("result.txt", "w") as f:
    f.write("done\\n")
"""


def windows(value: str, width: int = 12) -> set[str]:
    """The value and, if long, every `width`-character piece of it."""
    if len(value) < 2 * width:
        return {value}
    return {value[i : i + width] for i in range(len(value) - width + 1)}


def store_files(store: Path) -> Iterator[Path]:
    for path in sorted(store.rglob("*")):
        if path.is_file():
            yield path


def leaks(store: Path, parts: dict[str, str]) -> list[str]:
    """`NAME in FILE` for every secret (or piece of one) found in any file's bytes."""
    found: list[str] = []
    needles = {name: [w.encode() for w in windows(v)] for name, v in parts.items()}
    for path in store_files(store):
        data = path.read_bytes()
        for name, pieces in needles.items():
            if any(piece in data for piece in pieces):
                found.append(f"{name} in {path.relative_to(store)}")
    return found


def obj(store: Path, digest: str) -> bytes:
    return (store / "objects" / digest[:2] / digest[2:]).read_bytes()


@dataclass
class Recorded:
    root: Path
    manifests: list[dict[str, object]]

    @property
    def store(self) -> Path:
        return self.root / ".vestige"

    def env_vars(self, i: int) -> dict[str, str]:
        env = json.loads(obj(self.store, str(self.manifests[i]["env"])))
        assert isinstance(env["env_vars"], dict)
        return env["env_vars"]

    def log(self, i: int, stream: str) -> bytes:
        info = self.manifests[i][stream]
        assert isinstance(info, dict)
        return obj(self.store, info["hash"])


def run_args() -> list[str]:
    return ["run", "leaky.py", "--api-key", BY_NAME["MY_API_KEY"], "--hub", BY_VALUE["HUB_ID"]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Two runs with the same secrets, a third with two of them changed."""
    base = tmp_path_factory.mktemp("secrets")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        root = base / "proj"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "leaky.py").write_text(SCRIPT)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
        outputs = []
        for env in (ENV, ENV, {**ENV, **CHANGED}):
            done = vestige(*run_args(), cwd=root, env=env)
            assert done.returncode == 0, done.stderr.decode()
            assert ENV["GITHUB_TOKEN"].encode() in done.stdout or env is not ENV
            outputs.append(done)
        manifests = []
        refs = root / ".vestige" / "refs" / "runs"
        for ref in sorted(refs.iterdir()):  # ULIDs sort by time
            manifests.append(json.loads(obj(root / ".vestige", ref.read_text().strip())))
        assert [m["seq"] for m in manifests] == [1, 2, 3]
        yield Recorded(root, manifests)


def test_the_values_are_what_the_patterns_target() -> None:
    """Guard the fixture: by-value secrets must hide under innocent names."""
    from vestige.capture.redact import Redactor, is_secret_name

    assert len(ENV) == 20
    assert all(is_secret_name(n) for n in BY_NAME)
    assert not any(is_secret_name(n) for n in BY_VALUE)
    redactor = Redactor(b"k" * 32)
    for name, value in BY_VALUE.items():
        assert SECRET_PARTS[name] not in redactor.scrub_text(value), name


def test_no_secret_reaches_any_file_of_the_store(recorded: Recorded) -> None:
    files = {p.relative_to(recorded.store).as_posix() for p in store_files(recorded.store)}
    assert "index.sqlite" in files
    assert any(f.startswith("objects/") for f in files)
    assert len([f for f in files if f.startswith("refs/runs/")]) == 3
    parts = {**SECRET_PARTS, **{f"changed {k}": v for k, v in CHANGED.items()}}
    assert leaks(recorded.store, parts) == []
    # the search does read the objects: what is not secret in the logs is found
    assert leaks(recorded.store, {"canary": "@db.example.org:5432/lab"})


def test_no_secret_in_what_the_cli_shows(recorded: Recorded) -> None:
    for args in (["ls", "--json"], ["show", "1", "--json"], ["log", "1"], ["log", "1", "--stderr"]):
        done = vestige(*args, cwd=recorded.root)
        assert done.returncode == 0
        for name, value in SECRET_PARTS.items():
            assert not any(w.encode() in done.stdout for w in windows(value)), (args, name)


def test_markers_are_in_the_environment_and_the_logs(recorded: Recorded) -> None:
    env_vars = recorded.env_vars(0)
    for name in BY_NAME:
        assert MARKER.fullmatch(env_vars[name].encode()), name
    for name in BY_VALUE:
        assert b"<redacted:" in env_vars[name].encode(), name
    assert env_vars["DATABASE_URL"].startswith("postgresql://alice:<redacted:")
    assert env_vars["DATABASE_URL"].endswith(">@db.example.org:5432/lab")
    stdout, stderr = recorded.log(0, "stdout"), recorded.log(0, "stderr")
    assert stdout.startswith(b"github <redacted:")
    assert len(MARKER.findall(stdout)) >= 8
    assert b"<redacted:" in stderr
    assert b"@db.example.org:5432/lab" in stdout  # only the password went


def test_same_secret_same_marker_across_runs(recorded: Recorded) -> None:
    first, second, third = (recorded.env_vars(i) for i in range(3))
    for name in ENV:
        assert first[name] == second[name], name
    assert recorded.log(0, "stdout") == recorded.log(1, "stdout")
    assert recorded.log(0, "stderr") == recorded.log(1, "stderr")
    assert recorded.manifests[0]["command"] == recorded.manifests[1]["command"]
    assert recorded.manifests[0]["params"] == recorded.manifests[1]["params"]
    for name in ENV:
        if name in CHANGED:
            assert third[name] != first[name], name
        else:
            assert third[name] == first[name], name
    assert recorded.log(2, "stdout") != recorded.log(0, "stdout")
    assert recorded.log(2, "stderr") == recorded.log(0, "stderr")


def test_one_secret_has_one_marker_everywhere_in_a_run(recorded: Recorded) -> None:
    """The api key given on the command line: in the environment, the command, the params
    and the log it is the same marker, so a reader can tell it is one secret."""
    manifest = recorded.manifests[0]
    marker = recorded.env_vars(0)["MY_API_KEY"]
    assert MARKER.fullmatch(marker.encode())
    command = manifest["command"]
    params = manifest["params"]
    assert isinstance(command, list) and isinstance(params, dict)
    assert command[command.index("--api-key") + 1] == marker
    assert params["api_key"] == marker
    assert f"key {marker} hub ".encode() in recorded.log(0, "stdout")
    hub_marker = recorded.env_vars(0)["HUB_ID"]
    assert command[command.index("--hub") + 1] == hub_marker
    assert params["hub"] == hub_marker


# -- credentials files ------------------------------------------------------------------------

DOTENV = b"DB_PASSWORD=dotenv-Sup3rSecretValue-" + rand(ALNUM, 12).encode() + b"\n"
READ_DOTENV = """\
values = dict(line.split("=", 1) for line in open(".env").read().splitlines())
print("read", len(values), "values")
"""


@pytest.mark.parametrize("gitignored", [True, False], ids=["gitignored", "not-gitignored"])
def test_dotenv_is_an_input_hashed_but_not_kept(project: Path, gitignored: bool) -> None:
    (project / "use_env.py").write_text(textwrap.dedent(READ_DOTENV))
    if gitignored:
        (project / ".gitignore").write_text(".env\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "script")
    (project / ".env").write_bytes(DOTENV)
    done = vestige("run", "use_env.py", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"read 1 values\n"
    store = project / ".vestige"
    show = json.loads(vestige("show", "1", "--json", cwd=project).stdout)
    inputs = {f["path"]: f for f in show["inputs"]}
    assert ".env" in inputs
    record = inputs[".env"]
    assert record["hash"] == blake3.blake3(DOTENV).hexdigest()
    assert record["size"] == len(DOTENV)
    assert record["kept"] is False
    assert not (store / "objects" / record["hash"][:2] / record["hash"][2:]).exists()
    secret = DOTENV.split(b"=", 1)[1].strip()
    holders = [
        p.relative_to(store).as_posix()
        for p in store_files(store)
        if secret in p.read_bytes() or DOTENV in p.read_bytes()
    ]
    assert holders == []
    cat = vestige("cat", "1", ".env", cwd=project)
    assert cat.returncode == 2
    assert cat.stdout == b""
    assert cat.stderr.decode().startswith("error: ")


ECHO_ARGV = """\
import sys
print("called with", " ".join(sys.argv[1:]))
print("password is", sys.argv[sys.argv.index("--password") + 1], file=sys.stderr)
"""


def test_a_secret_option_echoed_by_the_program_is_redacted_in_its_logs(project: Path) -> None:
    """`--password X` was redacted in the command and params but kept raw in stdout
    (issue 22): a value recognised as secret anywhere is redacted everywhere."""
    (project / "echo.py").write_text(ECHO_ARGV)
    secret, other = "hunter2-" + rand(ALNUM, 10), "tok3n-" + rand(ALNUM, 12)
    done = vestige("run", "python", "echo.py", "--password", secret, f"--secret={other}",
                   cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert secret.encode() in done.stdout  # the program's own output is untouched
    assert leaks(project / ".vestige", {"password": secret, "secret": other}) == []
    assert MARKER.search(vestige("log", "1", cwd=project).stdout)
    assert MARKER.search(vestige("log", "1", "--stderr", cwd=project).stdout)


def test_the_kept_executed_notebook_holds_no_secret(project: Path) -> None:
    """The executed notebook vestige keeps held every token a cell printed, displayed or
    sent to stderr, while the cells record and logs were redacted (issue 22). (An -o copy
    is the user's own output file, kept byte for byte like any output.)"""
    nbformat = pytest.importorskip("nbformat")
    token = "ghp_" + rand(ALNUM, 36)
    env_secret = "s3cr3t-" + rand(ALNUM, 14)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [
        nbformat.v4.new_code_cell("import os, sys\nprint(os.environ['LAB_API_TOKEN'])"),
        nbformat.v4.new_code_cell(f"print({token[::-1]!r}[::-1], file=sys.stderr)"),  # (made
        # at run time: the notebook's own source is kept as it is, as code is)
        nbformat.v4.new_code_cell("{'key': os.environ['LAB_API_TOKEN']}"),
    ]
    nbformat.write(nb, str(project / "s.ipynb"))
    done = vestige("run", "s.ipynb", cwd=project, env={"LAB_API_TOKEN": env_secret})
    assert done.returncode == 0, done.stderr.decode()
    assert env_secret.encode() in done.stdout  # what the cells printed, untouched
    kept = vestige("cat", "1", "s.executed.ipynb", cwd=project).stdout
    assert b"redacted:" in kept and json.loads(kept)["cells"][0]["outputs"]
    assert leaks(project / ".vestige", {"env": env_secret, "token": token}) == []
