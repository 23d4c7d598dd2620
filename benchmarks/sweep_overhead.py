"""What does a sweep cost over a plain loop of the same commands?

100 children of a no-op script (`python noop.py --i {i}`) with `vestige run --each
i=0,...,99 -j 2`, against the same 100 commands run by a plain shell loop at 2-way
parallelism (`xargs -P 2`), both timed end to end (median of `--runs`, interleaved).
Goal: the sweep within 1.3x of the loop.

Two more rows say where the time goes: the same loop with the capture shim's
environment (each child records itself as under vestige, but nothing is sealed: the
floor of any sweep that captures its children), and a second table with children that
compute for ~0.1 s each, as a small real analysis does. The CPU column is the user+system
time of every process of a row: with 2 commands at a time on 2 cores, wall time follows
it, so its excess over the loop, per command, is what a sweep costs.

Usage: .venv/bin/python benchmarks/sweep_overhead.py [--quick] [--markdown] [--runs N]
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    run,
    secs,
    time_command,
    vestige_script,
)

GOAL = 1.3
SHIM = str(Path(__file__).resolve().parents[1] / "src" / "vestige" / "shim")
WORK = "import sys\nn = int(sys.argv[2]) if len(sys.argv) > 2 else 0\nsum(range(n))\n"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1)
    n = 10 if args.quick else 100
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-sweep-"))
    try:
        project = work / "proj"
        project.mkdir()
        (project / "noop.py").write_text("import sys\n")
        (project / "work.py").write_text(WORK)
        run(["git", "init", "-q"], project, env)
        run(["git", "add", "-A"], project, env)
        run(["git", "commit", "-qm", "noop"], project, env)
        run([vestige_script(), "run", "noop.py"], project, env)  # the store exists, warm
        # A project's files are seconds old at least when a sweep starts; younger than the
        # racy window (2 s), git's answers and the code snapshot are not reused but asked
        # again per child (capture/gitprobe.py), which is the first seconds' cost only.
        time.sleep(2.5)
        report = Report(args.markdown)
        ratio = _noop_table(report, args.runs, n, project, work, env)
        _work_table(report, args.runs, 4 if args.quick else 20, project, env, args.quick)
        report.goal(f"sweep within {GOAL}x of a plain loop at the same parallelism",
                    ratio <= GOAL, f"{ratio:.2f}x")  # fmt: skip
        report.note(f"{machine()}. {NOISE_NOTE}")
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _noop_table(report: Report, runs: int, n: int, project: Path, work: Path,
                env: dict[str, str]) -> float:  # fmt: skip
    """The goal's table; returns the sweep's ratio to the loop."""
    live = work / "shim-live"
    (live / "events").mkdir(parents=True)
    shim_env = {**env, "PYTHONPATH": SHIM, "VESTIGE_SHIM": SHIM, "VESTIGE_LIVE": str(live),
                "VESTIGE_RUN_ID": "01BENCHSHIMONLY0000000000", "VESTIGE_ROOT": str(project),
                "VESTIGE_STORE": str(project / ".vestige"), "VESTIGE_FIGURES": "1"}  # fmt: skip
    values = ",".join(str(i) for i in range(n))
    sweep = [vestige_script(), "run", "--each", f"i={values}", "-j", "2", "--",
             "noop.py", "--i", "{i}"]  # fmt: skip
    loop = ["sh", "-c", f"seq 0 {n - 1} | xargs -P 2 -I{{}} {PYTHON} noop.py --i {{}}"]
    loops, shims, sweeps = [], [], []
    cpu: dict[str, list[float]] = {"loop": [], "shim": [], "sweep": []}
    for r in range(runs):
        progress(f"run {r + 1} of {runs}: {n} no-op commands, 2 at a time")
        loops.append(_cpu(cpu["loop"], lambda: time_command(loop, project, env)))
        shims.append(_cpu(cpu["shim"], lambda: time_command(loop, project, shim_env)))
        sweeps.append(_cpu(cpu["sweep"], lambda: _time_sweep(sweep, project, env)))
        # (the shim's journals stay: one deletion per file would churn the disk the sweep
        # then allocates inodes on)
    lo, sh, sw = median(loops), median(shims), median(sweeps)
    c_lo, c_sh, c_sw = (median(cpu[k]) for k in ("loop", "shim", "sweep"))
    table = Table(f"{n} children of a no-op script, 2 at a time (median of {runs})",
                  ["how", "seconds", "per command", "ratio", "CPU s", "CPU over the loop"],
                  right=(1, 2, 3, 4, 5))  # fmt: skip
    table.add("plain loop (xargs -P 2)", secs(lo), f"{1000 * lo / n:.1f} ms", "1.00x",
              f"{c_lo:.2f}", "")  # fmt: skip
    table.add("the loop, each child with the capture shim", secs(sh),
              f"{1000 * sh / n:.1f} ms", f"{sh / lo:.2f}x", f"{c_sh:.2f}",
              f"{1000 * (c_sh - c_lo) / n:.1f} ms per command")  # fmt: skip
    table.add("vestige run --each ... -j 2", secs(sw), f"{1000 * sw / n:.1f} ms",
              f"{sw / lo:.2f}x", f"{c_sw:.2f}",
              f"{1000 * (c_sw - c_lo) / n:.1f} ms per command")  # fmt: skip
    report.table(table)
    return sw / lo


def _cpu(samples: list[float], timed: Callable[[], float]) -> float:
    """Run `timed`; add the CPU time (user+system) of the processes it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def _work_table(report: Report, runs: int, n: int, project: Path,
                env: dict[str, str], quick: bool) -> None:  # fmt: skip
    """Children that compute for ~0.1 s: what the same overhead is next to real work."""
    size = "1000000" if quick else "10000000"
    values = ",".join(str(i) for i in range(n))
    sweep = [vestige_script(), "run", "--each", f"i={values}", "-j", "2", "--",
             "work.py", "{i}", size]  # fmt: skip
    loop = ["sh", "-c", f"seq 0 {n - 1} | xargs -P 2 -I{{}} {PYTHON} work.py {{}} {size}"]
    loops, sweeps = [], []
    for r in range(runs):
        progress(f"run {r + 1} of {runs}: {n} computing commands, 2 at a time")
        loops.append(time_command(loop, project, env))
        sweeps.append(_time_sweep(sweep, project, env))
    lo, sw = median(loops), median(sweeps)
    table = Table(f"{n} children computing ~0.1 s each, 2 at a time (median of {runs})",
                  ["how", "seconds", "per command", "ratio"], right=(1, 2, 3))  # fmt: skip
    table.add("plain loop (xargs -P 2)", secs(lo), f"{1000 * lo / n:.1f} ms", "1.00x")
    table.add("vestige run --each ... -j 2", secs(sw), f"{1000 * sw / n:.1f} ms",
              f"{sw / lo:.2f}x")  # fmt: skip
    report.table(table)


def _time_sweep(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """A sweep writes its summary to stdout and exits 0 when every child was ok."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed


if __name__ == "__main__":
    main()
