"""Shared fixtures: a clean environment (vestige captures it), real git projects in
temp dirs, and a helper that runs the real `vestige` CLI in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The tests that press Ctrl-C play a terminal's foreground job, whose SIGINT is never
# ignored. A suite started as a script's background job (`make test &` in `sh -c`, some CI
# harnesses) inherits SIGINT ignored, and so would every vestige it starts: vestige, as the
# bare command would, then leaves it ignored for the program (test_run.py shows it).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def clean_environment(mp: pytest.MonkeyPatch, base: Path) -> None:
    """No vestige variables leak in from the developer's shell; git works without config;
    HOME is a fresh folder under `base`. Also for module-scoped fixtures."""
    for name in list(os.environ):  # (PYTHONPATH stays: it runs the suite on another
        # checkout's code, `PYTHONPATH=/tmp/old/src pytest ...`, to see a test fail before a fix)
        if name.startswith(("VESTIGE_", "GIT_", "XDG_")) or name == "VIRTUAL_ENV":
            mp.delenv(name, raising=False)  # (XDG_*: the user's store list and secret key
            # live there; under the fresh HOME they are the test's own)
    for name, value in GIT_ENV.items():
        mp.setenv(name, value)
    home = base / "home"
    home.mkdir(exist_ok=True)
    mp.setenv("HOME", str(home))


@contextmanager
def module_environment(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """clean_environment for a module-scoped fixture (monkeypatch is per test): a fresh
    folder `name` under pytest's temp root, undone when the fixture ends."""
    mp = pytest.MonkeyPatch()
    base = factory.mktemp(name)
    clean_environment(mp, base)
    try:
        yield base
    finally:
        mp.undo()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts from a clean environment (vestige captures it)."""
    clean_environment(monkeypatch, tmp_path)


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; fail the test on error."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty git repository with one commit, as a research project starts."""
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("a project\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


@pytest.fixture
def plain_dir(tmp_path: Path) -> Path:
    """A project folder without git."""
    root = tmp_path / "plain"
    root.mkdir()
    return root


def vestige(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI (`python -m vestige ...`) and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vestige", *args],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_vestige() -> Iterator[object]:
    yield vestige
