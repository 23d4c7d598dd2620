"""The benchmark scripts still run (their --quick smoke mode): a benchmark that rotted
would silently stop telling us anything. No timing is asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "script",
    [
        "capture_overhead.py",
        "debt_gc.py",
        "find.py",
        "metric_logging.py",
        "queries.py",
        "redact.py",
        "remote.py",
        "revisions.py",
        "scale.py",
        "startup.py",
        "store_throughput.py",
        "sweep_overhead.py",
        "ui.py",
    ],
)
def test_benchmark_runs_in_quick_mode(script: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESTIGE_")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "goal" in done.stdout
