"""The environment record: its fields and JSON types, distributions read from entry names
(first on the path wins), env vars redacted without vestige's own, GPUs that never fail it,
and the same inputs giving the same JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from vestige.capture import env as envmod
from vestige.capture.env import (
    capture_environment,
    distributions,
    parse_distribution_entry,
    python_info_of_current,
)
from vestige.capture.redact import Redactor

KEY = b"k" * 32
GHP = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
FIELDS = [
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
]


@pytest.fixture
def site_dirs(tmp_path: Path) -> list[str]:
    """Two fake site-packages; the first shadows the second."""
    first, second = tmp_path / "first", tmp_path / "second"
    for d, entries in [
        (
            first,
            [
                "Foo_Bar-1.0.dist-info",
                "numpy-1.26.4.dist-info",
                "zope.interface-6.0.dist-info",
                "legacy_pkg-0.3_beta-py3.11.egg-info",
                "my-odd-name-2.1.dist-info",
                "numpy",
                "six.py",
            ],
        ),
        (second, ["foo.bar-2.0.dist-info", "NumPy-2.0.0.dist-info", "other-1.dist-info"]),
    ]:
        d.mkdir()
        for entry in entries:
            if entry.endswith(".dist-info") or "." not in entry:
                (d / entry).mkdir()
            else:
                (d / entry).write_text("")
    (first / "devpkg.egg-info").write_text("Metadata-Version: 2.1\n")  # a file, no version
    (tmp_path / "lib.zip").write_bytes(b"PK")
    return [
        "",
        str(first),
        str(tmp_path / "missing"),
        str(tmp_path / "lib.zip"),
        str(second),
        str(first),
    ]


def python_dict(path: list[str]) -> dict[str, Any]:
    return {
        "version": "3.11.7",
        "executable": "/venv/bin/python",
        "implementation": "cpython",
        "prefix": "/venv",
        "base_prefix": "/usr",
        "path": path,
    }


ENVIRON = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/alice",
    "GITHUB_TOKEN": GHP,
    "DB_PASSWORD": "correct-horse-battery",
    "DATABASE_URL": "postgres://alice:correct-horse-battery@db/x",
    "VESTIGE_RUN_ID": "r123",
    "VESTIGE_EVENTS_FD": "7",
    "LANG": "C.UTF-8",
}


def test_distributions_first_wins_and_names_normalised(site_dirs: list[str]) -> None:
    assert distributions(site_dirs) == [
        ["devpkg", None],
        ["foo-bar", "1.0"],
        ["legacy-pkg", "0.3-beta"],
        ["my-odd-name", "2.1"],
        ["numpy", "1.26.4"],
        ["other", "1"],
        ["zope-interface", "6.0"],
    ]


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("numpy-1.26.4.dist-info", ("numpy", "1.26.4")),
        ("Typing_Extensions-4.9.0.dist-info", ("typing-extensions", "4.9.0")),
        ("torch-2.3.0+cu121.dist-info", ("torch", "2.3.0+cu121")),
        ("foo-1.0-py3.11.egg-info", ("foo", "1.0")),
        ("foo-py3.11.egg-info", ("foo", None)),
        ("foo.egg-info", ("foo", None)),
        ("numpy", None),
        ("numpy.libs", None),
        ("-1.0.dist-info", None),
    ],
)
def test_parse_distribution_entry(entry: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_distribution_entry(entry) == parsed


def test_record_fields_and_types(site_dirs: list[str]) -> None:
    rec = capture_environment(python_dict(site_dirs), ENVIRON, Redactor(KEY), gpu=False)
    assert list(rec) == FIELDS
    assert rec["type"] == "env"
    assert list(rec["python"]) == [
        "version",
        "executable",
        "implementation",
        "prefix",
        "base_prefix",
        "path",
    ]
    assert rec["python"]["path"] == site_dirs
    assert list(rec["platform"]) == ["system", "release", "version", "machine", "libc"]
    assert all(isinstance(v, str) for k, v in rec["platform"].items() if k != "libc")
    assert rec["platform"]["system"] == os.uname().sysname
    assert isinstance(rec["host"], str) and rec["host"]
    assert rec["cpu"]["count"] == os.cpu_count()
    assert rec["cpu"]["model"] is None or isinstance(rec["cpu"]["model"], str)
    assert isinstance(rec["memory_bytes"], int) and rec["memory_bytes"] > 0
    assert rec["gpus"] == []
    assert ["numpy", "1.26.4"] in rec["distributions"]
    assert rec["conda"] is None
    assert isinstance(rec["env_vars"], dict)


def test_env_vars_redacted_sorted_and_own_dropped() -> None:
    r = Redactor(KEY)
    rec = capture_environment(None, ENVIRON, r, gpu=False)
    env_vars = rec["env_vars"]
    assert list(env_vars) == ["DATABASE_URL", "DB_PASSWORD", "GITHUB_TOKEN", "HOME", "LANG", "PATH"]
    assert env_vars["GITHUB_TOKEN"] == r.marker(GHP)
    assert env_vars["DB_PASSWORD"] == r.marker("correct-horse-battery")
    assert env_vars["DATABASE_URL"] == f"postgres://alice:{r.marker('correct-horse-battery')}@db/x"
    assert env_vars["PATH"] == "/usr/bin:/bin"
    dumped = json.dumps(rec)
    assert GHP not in dumped and "correct-horse-battery" not in dumped and "VESTIGE_" not in dumped
    assert "correct-horse-battery" in r.known_secrets  # the redactor learned, for the logs


def test_non_python_command() -> None:
    rec = capture_environment(None, {}, Redactor(KEY), gpu=False)
    assert rec["python"] is None and rec["distributions"] == [] and rec["env_vars"] == {}


def test_conda() -> None:
    environ = {"CONDA_PREFIX": "/opt/conda/envs/exp", "CONDA_DEFAULT_ENV": "exp"}
    rec = capture_environment(None, environ, Redactor(KEY), gpu=False)
    assert rec["conda"] == {"env": "exp", "prefix": "/opt/conda/envs/exp"}
    rec = capture_environment(None, {"CONDA_PREFIX": "/opt/conda"}, Redactor(KEY), gpu=False)
    assert rec["conda"] == {"env": None, "prefix": "/opt/conda"}


def test_json_serialisable_and_deterministic(site_dirs: list[str]) -> None:
    python = python_dict(site_dirs)
    shuffled = dict(reversed(list(ENVIRON.items())))
    one = capture_environment(python, ENVIRON, Redactor(KEY), gpu=False)
    two = capture_environment(
        dict(reversed(list(python.items()))), shuffled, Redactor(KEY), gpu=False
    )
    assert json.dumps(one) == json.dumps(two)
    assert json.loads(json.dumps(one)) == one  # JSON types only: no tuples, no paths


def test_python_dict_goes_through_the_redactor() -> None:
    python = python_dict(["/home/alice/src", f"/tmp/{GHP}/lib"])
    python["extra"] = "kept"
    r = Redactor(KEY)
    rec = capture_environment(python, {}, r, gpu=False)
    assert rec["python"]["path"] == ["/home/alice/src", f"/tmp/{r.marker(GHP)}/lib"]
    assert rec["python"]["extra"] == "kept"


def test_python_info_of_current() -> None:
    info = python_info_of_current()
    assert info["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert info["executable"] == sys.executable
    assert info["implementation"] == sys.implementation.name
    assert info["path"] == sys.path and info["path"] is not sys.path
    rec = capture_environment(info, {}, Redactor(KEY), gpu=False)
    assert "pytest" in dict(rec["distributions"])  # this venv's own packages


# -- GPUs -------------------------------------------------------------------------------


def fake_nvidia_smi(tmp_path: Path, body: str) -> str:
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_gpus_parsed_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = "NVIDIA A100-SXM4-80GB, 81920, 535.104.05\nNVIDIA GeForce RTX 4090, [N/A], 550.1\n"
    exe = fake_nvidia_smi(tmp_path, f"printf '{out}'")
    monkeypatch.setattr(envmod, "_find_executable", lambda name: exe)
    rec = capture_environment(None, {}, Redactor(KEY))
    assert rec["gpus"] == [
        {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "driver": "535.104.05"},
        {"name": "NVIDIA GeForce RTX 4090", "memory_mib": None, "driver": "550.1"},
    ]
    assert capture_environment(None, {}, Redactor(KEY), gpu=False)["gpus"] == []


@pytest.mark.parametrize(
    "body",
    [
        "echo 'NVIDIA-SMI has failed because it could not communicate' >&2; exit 9",
        "exec sleep 5",
        "echo 'garbage without commas'",
    ],
    ids=["fails", "hangs", "garbage"],
)
def test_gpu_failures_give_empty_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    exe = fake_nvidia_smi(tmp_path, body)
    monkeypatch.setattr(envmod, "_find_executable", lambda name: exe)
    monkeypatch.setattr(envmod, "NVIDIA_SMI_TIMEOUT", 0.2)
    assert capture_environment(None, {}, Redactor(KEY))["gpus"] == []  # no hang: timeout


def test_gpu_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert envmod.gpus() == []
