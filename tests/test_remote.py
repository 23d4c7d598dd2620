"""Remotes (issue 17): `vestige remote add|ls|rm`, `push`, `pull` through a file:// folder
and through a real S3 API over HTTP (moto's server on 127.0.0.1), between real projects
made with `vestige run`. Nothing mocked: real subprocesses, a killed push, a flipped byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git, vestige

SECRET = "vestige-test-secret-Zq8x0PqWm3"  # a dummy secret: must never be written anywhere
KEY_ID = "AKIAVESTIGETEST00042"

MAKE = """\
import sys
name = sys.argv[1]
with open(name, "wb") as f:
    f.write(("made by " + name).encode() * 100)
print("made", name)
"""


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def one_error(done: subprocess.CompletedProcess[bytes]) -> str:
    """The single stderr line of a command that failed as bad input (exit 2)."""
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def make_project(path: Path, outputs: list[str]) -> Path:
    """A git project where `vestige run` made each output."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "make.py").write_text(MAKE)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    for name in outputs:
        ok(vestige("run", "python", "make.py", name, cwd=path))
    return path


def pulled_into(path: Path, remote: Path, *pull: str) -> tuple[Path, str]:
    """A new project at `path` whose remote origin is the folder `remote`, after `vestige
    pull *pull` there: (the project, what the pull printed)."""
    root = make_project(path, [])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=root))
    return root, ok(vestige("pull", *pull, cwd=root))


def ls_json(root: Path, env: dict[str, str] | None = None) -> list[dict]:
    return json.loads(ok(vestige("ls", "--json", cwd=root, env=env)))


def fsck_clean(root: Path, env: dict[str, str] | None = None) -> None:
    done = vestige("fsck", cwd=root, env=env)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def store_files(store: Path) -> dict[str, bytes]:
    """Every file of a store but the index (a cache that any command may touch)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and not p.name.startswith("index.sqlite")}  # fmt: skip


# -- remote add / ls / rm ---------------------------------------------------------------------


def test_remote_add_ls_rm_and_bad_input(tmp_path: Path) -> None:
    root = make_project(tmp_path / "a", [])
    ok(vestige("remote", "add", "origin", "s3://lab/v", "--endpoint-url", "http://h:9",
               "--region", "eu-west-1", "--profile", "lab", cwd=root))  # fmt: skip
    ok(vestige("remote", "add", "shared", f"file://{tmp_path}/shared", cwd=root))
    assert ok(vestige("remote", "ls", cwd=root)).split() == [
        "origin", "s3://lab/v", "shared", f"file://{tmp_path}/shared"]  # fmt: skip
    import tomllib

    config = tomllib.loads((root / ".vestige" / "config.toml").read_text())
    assert config["remote"]["origin"] == {"url": "s3://lab/v", "endpoint_url": "http://h:9",
                                          "region": "eu-west-1", "profile": "lab"}  # fmt: skip
    assert "exists already" in one_error(vestige("remote", "add", "origin", "s3://x/y", cwd=root))
    assert "remote name" in one_error(vestige("remote", "add", "a b", "s3://x/y", cwd=root))
    assert "unknown scheme" in one_error(vestige("remote", "add", "z", "nope://x", cwd=root))
    line = one_error(vestige("remote", "add", "p", f"s3://{KEY_ID}:{SECRET}@b/p", cwd=root))
    assert "credentials" in line and SECRET not in line
    assert "no bucket" in one_error(vestige("remote", "add", "q", "s3:///path", cwd=root))
    ok(vestige("remote", "rm", "origin", cwd=root))
    assert ok(vestige("remote", "ls", cwd=root)).split() == ["shared", f"file://{tmp_path}/shared"]
    assert "no remote" in one_error(vestige("remote", "rm", "origin", cwd=root))
    assert SECRET not in (root / ".vestige" / "config.toml").read_text()
    # A secret written into config.toml by hand is refused, naming the setting.
    with open(root / ".vestige" / "config.toml", "a") as f:
        f.write(f'\n[remote.hand]\nurl = "s3://b/p"\nsecret = "{SECRET}"\n')
    line = one_error(vestige("remote", "ls", cwd=root))
    assert "'secret'" in line and SECRET not in line


# -- file:// remotes --------------------------------------------------------------------------


def test_push_then_pull_file_remote(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png", "table.csv", "notes.txt"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    pushed = json.loads(ok(vestige("push", "--json", cwd=a)))
    assert len(pushed["pushed"]) == 3 and pushed["objects"] > 0 and pushed["left_out"] == []
    again = json.loads(ok(vestige("push", "--json", cwd=a)))
    assert again["pushed"] == [] and again["objects"] == 0
    # A fresh clone with a run of its own pulls them: same ids, new numbers, no collision.
    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(a), str(b))
    ok(vestige("run", "python", "make.py", "mine.txt", cwd=b))
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    listed = json.loads(ok(vestige("remote", "ls", "origin", "--json", cwd=b)))
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in ls_json(a))
    assert not any(r["pulled"] for r in listed)
    sizes = {p.parent.name + p.name: p.stat().st_size for p in (remote / "objects").glob("*/*")}
    du = json.loads(ok(vestige("du", "--remote", "origin", "--json", cwd=b)))
    assert (du["runs"], du["objects"], du["stored"]) == (3, len(sizes), sum(sizes.values()))
    assert (du["only_here"]["runs"], du["only_there"]["runs"]) == (1, 3)
    assert du["only_there"]["objects"] > 0 and du["only_here"]["objects"] > 0
    text = ok(vestige("du", "--remote", "origin", cwd=b)).splitlines()
    assert text[0].startswith("remote origin (file://") and ": 3 runs; stored " in text[0]
    assert text[2].startswith("  only there: 3 runs, ") and "`vestige pull`" in text[2]
    refused = vestige("du", "--remote", "origin", "--by", "kind", cwd=b)
    assert refused.returncode == 2 and refused.stderr.decode().count("\n") == 1
    pulled = json.loads(ok(vestige("pull", "--json", cwd=b)))
    assert sorted(r["seq"] for r in pulled["pulled"]) == [2, 3, 4]
    before = store_files(b / ".vestige")
    assert json.loads(ok(vestige("pull", "--json", cwd=b)))["pulled"] == []
    du = json.loads(ok(vestige("du", "--remote", "origin", "--json", cwd=b)))
    assert du["only_there"] == {"runs": 0, "objects": 0, "bytes": 0}
    ok(vestige("pull", "--all", cwd=b))
    assert store_files(b / ".vestige") == before  # pulling twice changes nothing
    mine, theirs = ls_json(b), {r["id"]: r for r in ls_json(a)}
    assert sorted(r["seq"] for r in mine) == [1, 2, 3, 4]
    for run in mine:
        if run["id"] in theirs:
            for key in ("command", "cwd", "started", "params", "exit_code", "manifest"):
                assert run[key] == theirs[run["id"]][key]
    # The pulled runs answer as at home: which, show, cat; numbers survive a reindex.
    shutil.copy(a / "fig.png", b / "copy-of-fig.png")
    fig_run = next(r for r in mine if r["command"][-1] == "fig.png")
    which = json.loads(ok(vestige("which", "copy-of-fig.png", "--json", cwd=b)))
    assert fig_run["id"] in json.dumps(which)
    assert f"run #{fig_run['seq']}" in ok(vestige("show", str(fig_run["seq"]), cwd=b))
    cat = vestige("cat", str(fig_run["seq"]), "fig.png", cwd=b)
    assert ok(cat) == (a / "fig.png").read_text()
    ok(vestige("reindex", cwd=b))
    assert sorted((r["id"], r["seq"]) for r in ls_json(b)) == sorted(
        (r["id"], r["seq"]) for r in mine)  # fmt: skip
    fsck_clean(a)
    fsck_clean(b)
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(remote)})  # the remote is a store


def test_pull_metadata_only_fetches_each_large_file_when_it_is_read(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["small.txt"])
    (a / "big.py").write_text(
        "import os, sys\nopen(sys.argv[1], 'wb').write(os.urandom(3 << 20))\n"
    )
    for name in ("big.bin", "other.bin"):
        ok(vestige("run", "python", "big.py", name, cwd=a))
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    b, said = pulled_into(tmp_path / "b", remote, "--metadata-only", "--json")
    pulled = json.loads(said)
    assert len(pulled["pulled"]) == 3
    store = b / ".vestige"
    held = {p.name for p in (store / "refs" / "elsewhere").iterdir()}
    assert len(held) == 2 and not any((store / "objects" / h[:2] / h[2:]).exists() for h in held)
    assert pulled["bytes"] < 1 << 20  # the two 3 MiB files stayed on the remote
    fsck_clean(b)  # absent on purpose, not lost
    seq = {r["command"][-1]: r["seq"] for r in ls_json(b)}
    assert (
        ok(vestige("cat", str(seq["small.txt"]), "small.txt", cwd=b))
        == (a / "small.txt").read_text()
    )
    got = vestige("cat", str(seq["big.bin"]), "big.bin", cwd=b)  # fetched now, verified
    assert got.returncode == 0 and got.stdout == (a / "big.bin").read_bytes()
    assert len(list((store / "refs" / "elsewhere").iterdir())) == 1
    fsck_clean(b)
    ok(vestige("remote", "add", "backup", f"file://{tmp_path / 'backup'}", cwd=b))
    partial = vestige("push", "backup", cwd=b)  # other.bin is not here yet: its run waits
    assert partial.returncode == 1 and "still on remote origin" in partial.stderr.decode()
    assert "`vestige pull --all origin` brings it" in partial.stderr.decode()
    # The remote out of reach: one line naming it, exit 2, nothing in the store changed.
    (tmp_path / "team").rename(tmp_path / "away")
    before = store_files(store)
    err = one_error(vestige("restore", str(seq["other.bin"]), "other.bin", "--to",
                            str(tmp_path / "out"), cwd=b))  # fmt: skip
    assert "remote origin" in err and "could not be read" in err
    assert store_files(store) == before
    (tmp_path / "away").rename(tmp_path / "team")
    ok(vestige("restore", str(seq["other.bin"]), "other.bin", "--to", str(tmp_path / "out"), cwd=b))
    restored = [p for p in (tmp_path / "out").rglob("other.bin")]
    assert [p.read_bytes() for p in restored] == [(a / "other.bin").read_bytes()]
    assert not (store / "refs" / "elsewhere").exists() or not any(
        (store / "refs" / "elsewhere").iterdir()
    )
    fsck_clean(b)


def test_metadata_only_files_come_when_diff_export_or_the_ui_read_them(tmp_path: Path) -> None:
    """Beyond cat and restore, every reader of a kept file fetches one left on the remote:
    diff (a text output's lines), export (the output's bytes) and the UI's artefact view."""
    a = make_project(tmp_path / "a", [])
    (a / "lines.py").write_text(
        "import sys\nopen('big.txt', 'w').write(''.join(f'{i} {sys.argv[1]}\\n'"
        " for i in range(150_000)))\n"
    )
    for word in ("first", "second"):
        ok(vestige("run", "python", "lines.py", word, cwd=a))
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    b, _said = pulled_into(tmp_path / "b", remote, "--metadata-only")
    store = b / ".vestige"
    assert len(list((store / "refs" / "elsewhere").iterdir())) == 2
    diff = ok(vestige("diff", "1", "2", cwd=b))
    assert "big.txt" in diff and "second" in diff, diff
    assert len(list((store / "refs" / "elsewhere").iterdir())) == 0  # both read, both here
    fsck_clean(b)
    c, _said = pulled_into(tmp_path / "c", remote, "--metadata-only")  # export, then the UI
    ok(vestige("export", "1", "--to", str(tmp_path / "shared"), cwd=c))
    exported = [p for p in (tmp_path / "shared").rglob("big.txt")]
    assert exported and exported[0].read_bytes() == b"".join(
        f"{i} first\n".encode() for i in range(150_000)
    )
    pytest.importorskip("starlette", reason="the ui extra is not installed")
    from test_ui import Server

    run_id = next(r["id"] for r in ls_json(c) if r["seq"] == 2)
    with Server(c) as server:
        status, _headers, body = server.get(f"/artefact/{run_id}/big.txt")
    assert status == 200 and body.startswith(b"0 second\n"), body[:80]
    assert not any((c / ".vestige" / "refs" / "elsewhere").iterdir())
    fsck_clean(c)


def test_pull_chooses_runs_by_id_and_where(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["x.txt", "y.txt"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    y = next(r for r in ls_json(a) if r["command"][-1] == "y.txt")
    where = vestige("remote", "ls", "origin", "--where", 'command ~ "*y.txt"', "--json", cwd=b)
    assert [r["id"] for r in json.loads(ok(where))] == [y["id"]]
    ok(vestige("pull", "origin", "--where", 'command ~ "*y.txt"', cwd=b))
    assert [r["id"] for r in ls_json(b)] == [y["id"]]
    x = next(r for r in ls_json(a) if r["command"][-1] == "x.txt")
    ok(vestige("pull", "origin", x["id"][:12].lower(), cwd=b))
    assert sorted(r["id"] for r in ls_json(b)) == sorted([x["id"], y["id"]])
    assert "no run" in one_error(vestige("pull", "origin", "ZZZZZZZZ", cwd=b))


def test_corrupt_remote_object_is_refused(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    digest = next(o["hash"] for o in json.loads(ok(vestige("show", "1", "--json", cwd=a)))[
        "outputs"])  # fmt: skip
    target = remote / "objects" / digest[:2] / digest[2:]
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01  # one flipped bit
    target.write_bytes(bytes(data))
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    line = one_error(vestige("pull", cwd=b))
    assert digest in line and "corrupt" in line and str(remote) in line
    assert not (b / ".vestige" / "objects" / digest[:2] / digest[2:]).exists()
    assert ls_json(b) == []  # the run did not land: no ref, no row
    assert not list((b / ".vestige" / "tmp").iterdir())
    fsck_clean(b)


# -- S3 through moto's server -----------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 at a free port, for the whole session."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while True:  # until it answers (or dies)
        assert proc.poll() is None, "moto_server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait()
    log.close()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket on the server, dummy credentials in the environment; its name."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"b-{tmp_path.name.lower().replace('_', '-')[-40:]}-{os.getpid()}"
    client().create_bucket(Bucket=bucket)
    return bucket


def client() -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def keys(bucket: str) -> list[str]:
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def no_secret_in(*folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert SECRET.encode() not in data and KEY_ID.encode() not in data, path


def test_s3_push_pull_which(s3: str, tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png", "data.csv"])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=a))
    out = ok(vestige("push", cwd=a))
    assert out.startswith("pushed 2 runs to origin")
    assert ok(vestige("push", cwd=a)).startswith("nothing to push")
    assert any(k.startswith("team/refs/runs/") for k in keys(s3))
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=b))
    shutil.copy(a / "fig.png", tmp_path / "paper-fig.png")  # looked up before any pull
    fig_id = next(r for r in ls_json(a) if r["command"][-1] == "fig.png")["id"]
    found = json.loads(ok(vestige("which", str(tmp_path / "paper-fig.png"), "--remote",
                                  "origin", "--json", cwd=b)))  # fmt: skip
    assert [(m["run_id"], m["here"]) for m in found["made_by"]] == [(fig_id, False)]
    assert ls_json(b) == []  # nothing pulled by the lookup
    ok(vestige("tag", "1", "from-a", cwd=a))  # marks travel through S3 too, merged as sets
    assert "merged the tags" in ok(vestige("push", cwd=a))
    assert ok(vestige("pull", cwd=b)).startswith("pulled 2 runs from origin")
    assert any(r["tags"] == ["from-a"] for r in ls_json(b))
    ok(vestige("tag", str(next(r["seq"] for r in ls_json(b) if r["tags"])), "from-b", cwd=b))
    assert "merged the tags" in ok(vestige("push", cwd=b))
    assert "merged the tags" in ok(vestige("pull", cwd=a))
    assert sorted(ls_json(a)[-1]["tags"]) == ["from-a", "from-b"]
    du = json.loads(ok(vestige("du", "--remote", "origin", "--json", cwd=b)))
    remote_keys = [k for k in keys(s3) if k.startswith("team/objects/")]
    assert (du["runs"], du["objects"]) == (2, len(remote_keys))
    assert du["only_there"] == {"runs": 0, "objects": 0, "bytes": 0}
    shutil.copy(a / "fig.png", b / "fig.png")
    which = ok(vestige("which", "fig.png", cwd=b))
    fig_run = next(r for r in ls_json(a) if r["command"][-1] == "fig.png")
    assert fig_run["id"][:10] in which
    fsck_clean(a)
    fsck_clean(b)
    no_secret_in(a / ".vestige", b / ".vestige")
    bodies = [client().get_object(Bucket=s3, Key=k)["Body"].read() for k in keys(s3)]
    assert not any(SECRET.encode() in body or KEY_ID.encode() in body for body in bodies)


def test_s3_pull_metadata_only_then_a_lazy_cat(s3: str, tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["small.txt"])
    (a / "big.py").write_text(
        "import os, sys\nopen(sys.argv[1], 'wb').write(os.urandom(2 << 20))\n"
    )
    ok(vestige("run", "python", "big.py", "big.bin", cwd=a))
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=a))
    ok(vestige("push", cwd=a))
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=b))
    ok(vestige("pull", "--metadata-only", cwd=b))
    assert len(list((b / ".vestige" / "refs" / "elsewhere").iterdir())) == 1
    fsck_clean(b)
    seq = next(r["seq"] for r in ls_json(b) if r["command"][-1] == "big.bin")
    got = vestige("cat", str(seq), "big.bin", cwd=b)
    assert got.returncode == 0 and got.stdout == (a / "big.bin").read_bytes()
    assert not any((b / ".vestige" / "refs" / "elsewhere").iterdir())
    fsck_clean(b)
    no_secret_in(b / ".vestige")


def test_s3_push_killed_mid_transfer_then_finished(s3: str, tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["small.txt"])
    big = "import os; open('big.bin', 'wb').write(os.urandom(120 * 1024 * 1024))"
    ok(vestige("run", "python", "-c", big, cwd=a))
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=a))
    push = subprocess.Popen([sys.executable, "-m", "vestige", "push"], cwd=a,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    # Causally mid-transfer: the small objects landed and the big one's multipart upload is
    # under way (s3fs sends files over 50 MiB in parts).
    while not client().list_multipart_uploads(Bucket=s3).get("Uploads"):
        assert push.poll() is None, push.communicate()
        time.sleep(0.02)
    push.send_signal(signal.SIGKILL)
    push.wait()
    landed = keys(s3)
    assert any(k.startswith("team/objects/") for k in landed)
    assert len([k for k in landed if k.startswith("team/refs/runs/")]) < 2  # not finished
    out = ok(vestige("push", cwd=a))
    assert "pushed" in out
    assert len([k for k in keys(s3) if k.startswith("team/refs/runs/")]) == 2
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=b))
    ok(vestige("pull", cwd=b))
    assert sorted(r["id"] for r in ls_json(b)) == sorted(r["id"] for r in ls_json(a))
    fsck_clean(a)
    fsck_clean(b)


def start_moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    """moto's S3 server on 127.0.0.1:port, answering (or the test fails)."""
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
    while True:
        assert proc.poll() is None, "moto_server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)


def test_s3_server_killed_mid_push_then_back(s3: str, tmp_path: Path) -> None:
    """The server dies under a push: one clean error line, exit 2, the local store
    untouched; a server back (moto keeps nothing: a fresh bucket) takes the whole push."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = start_moto(port, tmp_path / "moto.log")
    try:
        url = f"http://127.0.0.1:{port}"
        env = {"AWS_ENDPOINT_URL": url}
        boto = __import__("boto3").client("s3", endpoint_url=url)
        boto.create_bucket(Bucket="lab")
        a = make_project(tmp_path / "a", ["small.txt"])
        big = "import os; open('big.bin', 'wb').write(os.urandom(120 * 1024 * 1024))"
        ok(vestige("run", "python", "-c", big, cwd=a))
        ok(vestige("remote", "add", "origin", "s3://lab/team", cwd=a))
        before = store_files(a / ".vestige")
        push = subprocess.Popen([sys.executable, "-m", "vestige", "push"], cwd=a,
                                env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        while not boto.list_multipart_uploads(Bucket="lab").get("Uploads"):
            assert push.poll() is None, push.communicate()
            time.sleep(0.02)
        server.kill()  # mid-upload, causally: the big object's parts are going
        server.wait()
        _out, err = push.communicate(timeout=600)
        lines = [line for line in err.decode().splitlines() if line.strip()]
        assert push.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
        assert "origin" in lines[0] and SECRET not in lines[0]
        assert store_files(a / ".vestige") == before
        server = start_moto(port, tmp_path / "moto.log")
        boto.create_bucket(Bucket="lab")
        assert "pushed 2 runs" in ok(vestige("push", cwd=a, env=env))
        b = make_project(tmp_path / "b", [])
        ok(vestige("remote", "add", "origin", "s3://lab/team", cwd=b))
        ok(vestige("pull", cwd=b, env=env))
        assert sorted(r["id"] for r in ls_json(b)) == sorted(r["id"] for r in ls_json(a))
        fsck_clean(b)
    finally:
        server.kill()
        server.wait()


def test_two_stores_push_at_once_and_nothing_is_lost(s3: str, tmp_path: Path) -> None:
    """Concurrent pushers share no lock: objects and manifests are immutable and ids
    unique. Two processes into one S3 prefix, two threads into one folder remote."""
    import threading

    from vestige.remote.sync import push
    from vestige.repo import Repo

    stores = [make_project(tmp_path / name, ["same.txt", f"{name}.txt"]) for name in "ab"]
    folder = tmp_path / "team"
    for root in stores:
        ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=root))
        ok(vestige("remote", "add", "shared", f"file://{folder}", cwd=root))
    pushes = [subprocess.Popen([sys.executable, "-m", "vestige", "push", "origin"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for root in stores]  # fmt: skip
    for proc in pushes:
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    failures: list[BaseException] = []

    def push_from(root: Path) -> None:
        try:
            repo = Repo.open(root)
            try:
                push(repo, "shared")
            finally:
                repo.close()
        except BaseException as e:  # (reported by the test thread)
            failures.append(e)

    threads = [threading.Thread(target=push_from, args=(root,)) for root in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not failures, failures
    every = sorted(r["id"] for root in stores for r in ls_json(root))
    assert len(every) == 4
    for remote in ("origin", "shared"):
        c = make_project(tmp_path / f"c-{remote}", [])
        url = f"s3://{s3}/team" if remote == "origin" else f"file://{folder}"
        ok(vestige("remote", "add", remote, url, cwd=c))
        ok(vestige("pull", remote, cwd=c))
        assert sorted(r["id"] for r in ls_json(c)) == every
        fsck_clean(c)
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(folder)})


def test_s3_corrupt_object_refused(s3: str, tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png"])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=a))
    ok(vestige("push", cwd=a))
    digest = json.loads(ok(vestige("show", "1", "--json", cwd=a)))["outputs"][0]["hash"]
    key = f"team/objects/{digest[:2]}/{digest[2:]}"
    body = bytearray(client().get_object(Bucket=s3, Key=key)["Body"].read())
    body[0] ^= 0x01
    client().put_object(Bucket=s3, Key=key, Body=bytes(body))
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=b))
    line = one_error(vestige("pull", cwd=b))
    assert digest in line and f"s3://{s3}/team" in line
    assert not (b / ".vestige" / "objects" / digest[:2] / digest[2:]).exists()
    assert ls_json(b) == []
    fsck_clean(b)


def test_s3_errors_are_one_line_without_secrets(s3: str, s3_server: str, tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["x.txt"])
    ok(vestige("remote", "add", "nobucket", "s3://no-such-bucket-here/p", cwd=a))
    assert "does not exist" in one_error(vestige("push", "nobucket", cwd=a))
    ok(vestige("remote", "add", "origin", f"s3://{s3}/team", cwd=a))
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS_KEY_ID")
            and not k.startswith("AWS_SECRET")}  # fmt: skip
    env = {**bare, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "vestige", "push", "origin"], cwd=a, env=env,
                          capture_output=True, check=False, timeout=120)  # fmt: skip
    assert "no credentials" in one_error(done)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    ok(vestige("remote", "add", "dead", f"s3://{s3}/team", "--endpoint-url",
               f"http://127.0.0.1:{dead}", cwd=a))  # fmt: skip
    line = one_error(vestige("push", "dead", cwd=a))
    assert "unreachable" in line
    for verb in (("du", "--remote", "dead"), ("remote", "ls", "dead"), ("pull", "dead")):
        assert "unreachable" in one_error(vestige(*verb, cwd=a)), verb
    for done in (vestige("push", "nobucket", cwd=a), vestige("push", "dead", cwd=a)):
        assert SECRET not in done.stderr.decode() and KEY_ID not in done.stderr.decode()
    no_secret_in(a / ".vestige")


# -- where runs came from, which on a remote, run --push (issue 17, the rest) -----------------


def test_ls_shows_where_pulled_runs_came_from(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", [])
    ok(vestige("run", "python", "make.py", "fig.png", cwd=a, env={"USER": "alice"}))
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    assert "from" not in ok(vestige("ls", cwd=a)).splitlines()[0]  # nothing pulled: no column
    assert [r["origin"] for r in ls_json(a)] == [None]
    b = make_project(tmp_path / "b", ["mine.txt"])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    ok(vestige("pull", cwd=b))
    runs = {r["command"][-1]: r for r in ls_json(b)}
    assert runs["mine.txt"]["origin"] is None
    origin = runs["fig.png"]["origin"]
    assert {k: origin[k] for k in ("remote", "host", "user")} == {
        "remote": "origin", "host": os.uname().nodename, "user": "alice"}  # fmt: skip
    assert isinstance(origin["pulled"], float)
    lines = ok(vestige("ls", cwd=b)).splitlines()
    assert lines[0].split()[-1] == "from"
    fig = next(line for line in lines if "fig.png" in line)
    assert fig.rstrip().endswith(f"alice@{os.uname().nodename} via origin")
    assert not next(line for line in lines if "mine.txt" in line).rstrip().endswith("origin")


def test_which_remote_finds_a_file_without_pulling(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png", "data.csv"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    fig_run = next(r for r in ls_json(a) if r["command"][-1] == "fig.png")
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    shutil.copy(a / "fig.png", tmp_path / "paper-fig.png")
    objects = store_files(b / ".vestige")
    out = ok(vestige("which", str(tmp_path / "paper-fig.png"), "--remote", "origin", cwd=b))
    assert f"made by run {fig_run['id'][:10]} of remote origin" in out
    assert "as     fig.png" in out
    assert f"vestige pull origin {fig_run['id']}" in out
    assert store_files(b / ".vestige") == objects and ls_json(b) == []  # nothing pulled
    found = json.loads(ok(vestige("which", str(tmp_path / "paper-fig.png"), "--remote",
                                  "origin", "--json", cwd=b)))  # fmt: skip
    assert [(m["run_id"], m["here"]) for m in found["made_by"]] == [(fig_run["id"], False)]
    assert found["searched"] == 2
    ok(vestige("pull", "origin", fig_run["id"], cwd=b))  # what it said brings the run
    assert fig_run["id"] in ok(vestige("which", str(tmp_path / "paper-fig.png"), "--json", cwd=b))
    (tmp_path / "other.txt").write_text("no run made this")
    done = vestige("which", str(tmp_path / "other.txt"), "--remote", "origin", cwd=b)
    assert done.returncode == 1 and "no run of remote origin" in done.stdout.decode()
    assert "--remote" in one_error(vestige("which", "x.png", "--remote", "origin", "--similar",
                                           cwd=b))  # fmt: skip
    assert "no remote" in one_error(vestige("which", str(tmp_path / "other.txt"), "--remote",
                                            "nope", cwd=b))  # fmt: skip


def test_run_push_sends_the_run_when_it_ends(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", [])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    done = vestige("run", "--push", "origin", "python", "make.py", "fig.png", cwd=a)
    assert "pushed the run to origin" in ok(done) + done.stderr.decode()
    run = ls_json(a)[0]
    assert [r["id"] for r in json.loads(ok(vestige("remote", "ls", "origin", "--json",
                                                   cwd=a)))] == [run["id"]]  # fmt: skip
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(remote)})
    # The store knows the run is there (and so does a relative folder's push): `vestige
    # push` sends nothing and asks nothing.
    assert json.loads(ok(vestige("push", "origin", "--json", cwd=a)))["asked"] is False
    ok(vestige("remote", "add", "near", "../near", cwd=a))
    ok(vestige("run", "--push", "near", "python", "make.py", "near.png", cwd=a))
    near = json.loads(ok(vestige("push", "near", "--json", cwd=a)))
    assert (near["asked"], len(near["pushed"])) == (True, 1)  # (the first run was not there)
    assert json.loads(ok(vestige("push", "near", "--json", cwd=a)))["asked"] is False
    assert (tmp_path / "near" / "format").exists()
    # An unknown remote is bad input: exit 2 before anything runs.
    assert "no remote" in one_error(vestige("run", "--push", "nope", "python", "make.py",
                                            "x.txt", cwd=a))  # fmt: skip
    assert len(ls_json(a)) == 2 and not (a / "x.txt").exists()
    # A push that fails is a warning; the exit code stays the command's.
    (tmp_path / "blocked").write_text("a file where the remote's folder would be")
    ok(vestige("remote", "add", "blocked", f"file://{tmp_path}/blocked/store", cwd=a))
    failing = vestige("run", "--push", "blocked", "python", "-c", "raise SystemExit(3)", cwd=a)
    assert failing.returncode == 3
    err = failing.stderr.decode()
    assert "warning: the run was not pushed to blocked" in err and "vestige push blocked" in err
    assert len(ls_json(a)) == 3  # the run is kept here


def test_sweep_on_dask_pushes_each_child_from_its_worker(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    a = make_project(tmp_path / "a", [])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    elsewhere = tmp_path / "workers"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(scratch))  # (the workers' scratch stores go here)
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                      dashboard_address=None,
                                      local_directory=str(elsewhere)) as cluster:  # fmt: skip
            done = vestige("run", "--each", "v=1,2,3", "--executor", "dask", "--scheduler",
                           cluster.scheduler_address, "--push", "origin", "--",
                           "python", "make.py", "out{v}.txt", cwd=a, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "pushed the sweep to origin" in done.stdout.decode() + done.stderr.decode()
    runs = ls_json(a)
    parent = next(r for r in runs if r["parent"] is None)
    children = [r for r in runs if r["parent"] == parent["id"]]
    assert len(children) == 3 and all(c["status"] == "ok" for c in children)
    assert all(c["origin"] is not None and c["origin"]["remote"] == "origin" for c in children)
    assert parent["status"] == "ok" and parent["origin"] is None
    on_remote = json.loads(ok(vestige("remote", "ls", "origin", "--json", cwd=a)))
    assert sorted(r["id"] for r in on_remote) == sorted(r["id"] for r in runs)
    swept = json.loads(ok(vestige("ls", "--sweep", str(parent["seq"]), "--json", cwd=a)))
    assert sorted(r["id"] for r in swept) == sorted(c["id"] for c in children)
    assert not list(scratch.glob("vestige-scratch-*"))  # pushed, then removed
    fsck_clean(a)
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(remote)})


def test_tags_notes_names_and_pins_travel_merged_as_sets(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["fig.png"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("tag", "1", "paper", "draft", cwd=a))
    ok(vestige("note", "1", "the one for the paper", cwd=a))
    ok(vestige("name", "1", "baseline", cwd=a))
    ok(vestige("pin", "1", cwd=a))
    ok(vestige("push", cwd=a))
    run_id = ls_json(a)[0]["id"]
    b = make_project(tmp_path / "b", [])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    ok(vestige("pull", cwd=b))
    (mine,) = ls_json(b)
    assert (mine["id"], sorted(mine["tags"]), mine["name"], mine["pinned"]) == (
        run_id, ["draft", "paper"], "baseline", True)  # fmt: skip
    show = json.loads(ok(vestige("show", "baseline", "--json", cwd=b)))
    assert [n["text"] for n in show["notes"]] == ["the one for the paper"]
    before = store_files(b / ".vestige")
    ok(vestige("pull", cwd=b))
    assert store_files(b / ".vestige") == before  # nothing new: nothing written
    # Both sides change the run's marks; a push and a pull merge them, dropping nothing.
    ok(vestige("tag", "baseline", "reviewed", cwd=b))
    ok(vestige("note", "baseline", "checked by b", cwd=b))
    said = ok(vestige("push", cwd=b))  # no run to send, but marks: said, not "nothing"
    assert said == "merged the tags, notes, names or pins of 1 run into the remote (origin): #1\n"
    ok(vestige("tag", "1", "local-only", cwd=a))
    pulled = json.loads(ok(vestige("pull", "--json", cwd=a)))
    assert (pulled["pulled"], pulled["marks_merged"]) == ([], [{"id": run_id, "seq": 1}])
    assert ok(vestige("pull", cwd=a)).startswith("nothing to pull")  # merged already
    (theirs,) = ls_json(a)
    assert sorted(theirs["tags"]) == ["draft", "local-only", "paper", "reviewed"]
    notes = [n["text"] for n in json.loads(ok(vestige("show", "1", "--json", cwd=a)))["notes"]]
    assert notes == ["the one for the paper", "checked by b"]
    assert ls_json(a)[0]["name"] == "baseline"
    hits = json.loads(ok(vestige("ls", "--where", 'tag = "reviewed"', "--json", cwd=a)))
    assert [r["id"] for r in hits] == [run_id]  # the index knows what the pull merged
    ok(vestige("reindex", cwd=a))
    assert sorted(ls_json(a)[0]["tags"]) == ["draft", "local-only", "paper", "reviewed"]
    fsck_clean(a)
    fsck_clean(b)
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(remote)})


def test_push_with_nothing_new_does_not_ask_the_remote(tmp_path: Path) -> None:
    """A store whose runs and marks all reached the remote by its own pushes and pulls
    pushes nothing without opening it (known.py); anything new, --all, or the remote's
    name pointed at another place asks again."""
    a = make_project(tmp_path / "a", ["fig.png", "table.csv"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    first = json.loads(ok(vestige("push", "--json", cwd=a)))
    assert len(first["pushed"]) == 2 and first["asked"] is True
    # Not asked: the remote's format file says a newer format, refused by any push that
    # opens it.
    fmt = (remote / "format").read_bytes()
    (remote / "format").write_text('{"format": 99, "kind": "vestige-store"}\n')
    again = json.loads(ok(vestige("push", "--json", cwd=a)))
    said = ok(vestige("push", cwd=a))
    assert vestige("push", "--all", cwd=a).returncode == 2  # (it is refused when asked)
    (remote / "format").write_bytes(fmt)
    assert (again["pushed"], again["objects"], again["asked"]) == ([], 0, False)
    assert said.startswith("nothing to push: every run and mark here reached origin")
    # A tag, a pin, a new run: each makes the push ask, and send what is new.
    ok(vestige("tag", "1", "paper", cwd=a))
    tagged = json.loads(ok(vestige("push", "--json", cwd=a)))
    assert tagged["asked"] is True and [r["id"] for r in tagged["marks_merged"]] == [
        ls_json(a)[-1]["id"]]  # fmt: skip
    assert json.loads(ok(vestige("push", "--json", cwd=a)))["asked"] is False
    ok(vestige("pin", "2", cwd=a))
    assert json.loads(ok(vestige("push", "--json", cwd=a)))["marks_merged"] != []
    ok(vestige("run", "python", "make.py", "more.txt", cwd=a))
    assert len(json.loads(ok(vestige("push", "--json", cwd=a)))["pushed"]) == 1
    # The remote emptied behind the store's back: the default push trusts its record,
    # --all asks and sends everything again.
    shutil.rmtree(remote)
    assert json.loads(ok(vestige("push", "--json", cwd=a)))["asked"] is False
    full = json.loads(ok(vestige("push", "--all", "--json", cwd=a)))
    assert len(full["pushed"]) == 3 and full["asked"] is True
    fsck_clean(tmp_path, env={"VESTIGE_DIR": str(remote)})
    # The same name pointed elsewhere starts from nothing.
    ok(vestige("remote", "rm", "origin", cwd=a))
    ok(vestige("remote", "add", "origin", f"file://{tmp_path / 'other'}", cwd=a))
    assert len(json.loads(ok(vestige("push", "--json", cwd=a)))["pushed"]) == 3
    # Runs a pull brought are on that remote: pushing them back sends nothing, asks nothing.
    b, _said = pulled_into(tmp_path / "b", tmp_path / "other")
    assert json.loads(ok(vestige("push", "--json", cwd=b)))["asked"] is False
    # A store with no run yet asks (its first push reaches the remote; an unreachable one
    # is said).
    empty = make_project(tmp_path / "empty", [])
    ok(vestige("remote", "add", "origin", f"file://{tmp_path / 'other'}", cwd=empty))
    assert json.loads(ok(vestige("push", "--json", cwd=empty)))["asked"] is True


def test_fsck_checks_arrival_records(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a", ["x.txt"])
    remote = tmp_path / "team"
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=a))
    ok(vestige("push", cwd=a))
    b = make_project(tmp_path / "b", ["mine.txt"])
    ok(vestige("remote", "add", "origin", f"file://{remote}", cwd=b))
    ok(vestige("pull", cwd=b))
    fsck_clean(b)
    arrivals = b / ".vestige" / "refs" / "arrivals"
    (record,) = list(arrivals.iterdir())
    good = record.read_bytes()
    record.write_bytes(good.replace(b'"seq":2', b'"seq":1'))  # the number of b's own run
    done = vestige("fsck", cwd=b)
    assert done.returncode == 1 and "RM3" in done.stderr.decode(), done.stderr.decode()
    record.write_bytes(good)
    (arrivals / "01ZZZZZZZZZZZZZZZZZZZZZZZZ").write_text("not a record\n")
    done = vestige("fsck", cwd=b)
    assert done.returncode == 0 and "RM2: arrival record 01ZZZZZZZZZZZZZZZZZZZZZZZZ is " \
        "malformed" in done.stdout.decode() + done.stderr.decode()  # fmt: skip
