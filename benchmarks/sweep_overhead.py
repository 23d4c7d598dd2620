"""What does a sweep cost over a plain loop of the same commands, and over Hydra's multirun?

100 children (`python noop.py --i {i}`) with `vestige run --each i=0,...,99 -j 2`,
against the same 100 commands run by a plain shell loop at 2-way parallelism (`xargs -P
2`), each timed end to end (median of `--runs`, interleaved), in a clean git project and
in one of 50,000 files (`--files`; --quick: 2,000), the extra files small ones in
git-ignored data/ folders of 1,000. Once with no-op children, once with children that
compute for ~0.1 s (`sum(range(N))`, N calibrated here), as a small real analysis does.
Goals: the sweep within 2x of the loop for no-op children and within 1.1x for 0.1 s
children, in every project; and faster than Hydra's multirun of the same jobs.

Hydra, when benchmarks/peers_sweep.sh installed it (benchmarks/.peers/hydra): a tiny app
(`@hydra.main(version_base=None, config_path=None, config_name="config")` over a
structured config with fields `i` and `n`) doing the same work in its task function,
`python hydra_app.py -m i=range(0,100)` with the basic launcher (in-process, one job after
the other: it has no parallelism) and with `hydra/launcher=joblib
hydra.launcher.n_jobs=2` (joblib's loky processes, reused across jobs). Hydra's job
folders go to a folder outside the project (`hydra.sweep.dir`), kept to the end: in the
project they would grow the tree the sweeps then scan.

One more row says where a no-op sweep's time goes: the same loop with the capture shim's
environment (each child records itself as under vestige, but nothing is sealed: the
floor of any sweep that captures its children). The CPU column is the user+system time of
every process of a row: with 2 commands at a time on 2 cores, wall time follows it, so
its excess over the loop, per command, is what a sweep costs.

Every command runs once as a warm-up (2 children) before it is timed.

Usage: .venv/bin/python benchmarks/sweep_overhead.py [--quick] [--markdown] [--runs N]
       [--files N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PEERS,
    PYTHON,
    Report,
    Table,
    bench_env,
    data_tree,
    machine,
    median,
    parse_args,
    progress,
    room_for,
    run,
    secs,
    time_call,
    time_command,
    vestige_script,
)

GOAL_NOOP = 2.0
GOAL_WORK = 1.1
SHIM = str(Path(__file__).resolve().parents[1] / "src" / "vestige" / "shim")
HYDRA = PEERS / "hydra" / "bin" / "python"
HYDRA_MISSING = "not installed (run benchmarks/peers_sweep.sh)"
WORK = "import sys\nn = int(sys.argv[2]) if len(sys.argv) > 2 else 0\nsum(range(n))\n"
HYDRA_APP = '''"""The sweep benchmark's jobs as a Hydra app: job `i` computes sum(range(n))."""

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore


@dataclass
class Config:
    i: int = 0
    n: int = 0


ConfigStore.instance().store(name="config", node=Config)


@hydra.main(version_base=None, config_path=None, config_name="config")
def main(cfg: Config) -> None:
    sum(range(cfg.n))


if __name__ == "__main__":
    main()
'''


class Row:
    """One way of running the n commands: its argv for n children, and its samples."""

    def __init__(self, label: str, argv: Callable[[int], list[str]] | None,
                 env: dict[str, str], status: str | None = None) -> None:  # fmt: skip
        self.label, self.argv, self.env = label, argv, env
        self.status = status  # why there is no number ("not installed ...")
        self.walls: list[float] = []
        self.cpus: list[float] = []


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1, extra=_options)
    n = 10 if args.quick else 100
    files = args.files or (2_000 if args.quick else 50_000)
    size = 1_000_000 if args.quick else _calibrate(0.1)
    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-sweep-"))
    report = Report(args.markdown)
    try:
        trees = {"clean project": _project(work / "clean", 0, env)}
        short = room_for(work, files)
        if short is None:
            progress(f"building the {files:,}-file project")
            trees[f"{files:,}-file project"] = _project(work / "big", files, env)
        else:
            report.note(f"Skipped the {files:,}-file project: {short}.")
        # A project's files are seconds old at least when a sweep starts; younger than the
        # racy window (2 s), git's answers and the code snapshot are not reused but asked
        # again per child (capture/gitprobe.py), which is the first seconds' cost only.
        time.sleep(2.5)
        hydra, versions = _hydra()
        out = work / "hydra-out"
        tables: dict[tuple[str, str], list[Row]] = {}
        for name, project in trees.items():
            tables[(name, "noop")] = _rows(project, work, out, "noop.py", "", env, hydra)
            tables[(name, "work")] = _rows(project, work, out, "work.py", str(size), env, hydra)
        for key, rows in tables.items():  # warm-up: 2 children each
            progress(f"warm-up: {key[0]}, {key[1]}")
            for row in rows:
                if row.argv is not None:
                    _timed(row.argv(2), trees[key[0]], row.env)
        for r in range(args.runs):
            for (name, kind), rows in tables.items():
                progress(f"run {r + 1} of {args.runs}: {name}, {n} {kind} commands")
                for row in rows:
                    if row.argv is not None:
                        row.walls.append(_cpu(row.cpus, lambda row=row, p=trees[name]:
                                              _timed(row.argv(n), p, row.env)))  # fmt: skip
        ratios: dict[str, list[float]] = {"noop": [], "work": []}
        against_hydra: list[tuple[str, float]] = []  # (what, sweep / Hydra)
        for (name, kind), rows in tables.items():
            what = "a no-op script" if kind == "noop" else "a script computing ~0.1 s"
            title = f"{n} children of {what}, 2 at a time, {name} (median of {args.runs})"
            report.table(_table(title, rows, n))
            loop, sweep = median(rows[0].walls), median(rows[-3].walls)
            ratios[kind].append(sweep / loop)
            for launcher, row in zip(("basic", "joblib"), rows[-2:], strict=True):
                if row.walls:
                    against_hydra.append((f"{kind}, {name}, {launcher}",
                                          sweep / median(row.walls)))  # fmt: skip
        per_child = median(next(iter(tables.values()))[0].cpus) / n  # the clean loop, no-op
        work_child = median(tables[(next(iter(trees)), "work")][0].cpus) / n
        report.note(f"work.py and the Hydra app compute sum(range(N)), N = {size:,}: a child "
                    f"of the loop used {1000 * work_child:.0f} ms of CPU, against "
                    f"{1000 * per_child:.0f} ms for a no-op one (interpreter start and "
                    "exit).")  # fmt: skip
        if versions:
            report.note(f"Hydra: {versions}; its Python: {_version(str(HYDRA))}.")
        names = ", ".join(trees)
        report.goal(f"no-op children: sweep within {GOAL_NOOP}x of the loop (xargs -P 2), "
                    f"in each of: {names}", all(r <= GOAL_NOOP for r in ratios["noop"]),
                    ", ".join(f"{r:.3f}x" for r in ratios["noop"]))  # fmt: skip
        report.goal(f"~0.1 s children: sweep within {GOAL_WORK}x of the loop (xargs -P 2), "
                    f"in each of: {names}", all(r <= GOAL_WORK for r in ratios["work"]),
                    ", ".join(f"{r:.3f}x" for r in ratios["work"]))  # fmt: skip
        if against_hydra:
            faster = all(r < 1 for _what, r in against_hydra)
            report.goal("the sweep faster than Hydra's multirun (basic and joblib launchers), "
                        "as the sweep's seconds over Hydra's", faster,
                        "; ".join(f"{w}: {r:.2f}x" for w, r in against_hydra))  # fmt: skip
        else:
            report.note(f"Not measured: faster than Hydra's multirun. Hydra is {HYDRA_MISSING}.")
        report.note(f"{machine()}. {NOISE_NOTE}")
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--files", type=int, default=None,
        help="files of the larger project (default 50000; --quick: 2000)",
    )  # fmt: skip


def _calibrate(seconds: float) -> int:
    """N such that sum(range(N)) takes about `seconds` in this interpreter."""
    probe = 10_000_000  # ~0.1 s itself: a shorter probe timed high here (0.08 s, not 0.1)
    took = median([time_call(lambda: sum(range(probe))) for _ in range(5)])
    return max(1, int(probe * seconds / took))


def _project(root: Path, files: int, env: dict[str, str]) -> Path:
    """A git project: noop.py, work.py, the Hydra app, and `files` files in data/
    (git-ignored); with a store, after a first run (the one-time walk)."""
    root.mkdir(parents=True)
    (root / "noop.py").write_text("import sys\n")
    (root / "work.py").write_text(WORK)
    (root / "hydra_app.py").write_text(HYDRA_APP)
    (root / ".gitignore").write_text("data/\n")
    if files:
        data_tree(root, files)
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "project"], root, env)
    run([vestige_script(), "run", "noop.py"], root, env)  # the store exists, the walk done
    return root


def _hydra() -> tuple[dict[str, str | None], str]:
    """Whether each launcher can run (None) or why not, and the versions installed."""
    if not HYDRA.exists():
        return {"basic": HYDRA_MISSING, "joblib": HYDRA_MISSING}, ""
    probe = subprocess.run(
        [str(HYDRA), "-c", "import importlib.metadata as m, hydra\n"
         "print('hydra-core', m.version('hydra-core'))\n"
         "import hydra_plugins.hydra_joblib_launcher\n"
         "print('hydra-joblib-launcher', m.version('hydra-joblib-launcher'),"
         " 'with joblib', m.version('joblib'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = probe.stdout.strip().splitlines()
    if not lines:
        return {"basic": HYDRA_MISSING, "joblib": HYDRA_MISSING}, ""
    joblib = None if len(lines) > 1 else HYDRA_MISSING
    return {"basic": None, "joblib": joblib}, ", ".join(" ".join(x.split()) for x in lines)


def _version(python: str) -> str:
    done = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return f"Python {done.stdout.strip()}" if done.returncode == 0 else "unknown"


def _rows(project: Path, work: Path, out: Path, script: str, arg: str, env: dict[str, str],
          hydra: dict[str, str | None]) -> list[Row]:  # fmt: skip
    """The ways of running `n` children of `script`, the loop first, then (for no-op
    children) the loop with the shim, the sweep, and Hydra's two launchers."""
    extra = [arg] if arg else []
    tail = f" {arg}" if arg else ""

    def loop(n: int) -> list[str]:
        return ["sh", "-c", f"seq 0 {n - 1} | xargs -P 2 -I{{}} {PYTHON} {script} {{}}{tail}"]

    def sweep(n: int) -> list[str]:
        values = ",".join(str(i) for i in range(n))
        return [vestige_script(), "run", "--each", f"i={values}", "-j", "2", "--",
                script, "{i}", *extra]  # fmt: skip

    counter = [0]

    def multirun(launcher: list[str]) -> Callable[[int], list[str]]:
        def argv(n: int) -> list[str]:
            counter[0] += 1
            folder = out / f"{project.name}-{counter[0]}"
            return [str(HYDRA), "hydra_app.py", "-m", f"i=range(0,{n})", f"n={arg or 0}",
                    f"hydra.sweep.dir={folder}", *launcher]  # fmt: skip

        return argv

    rows = [Row("plain loop (xargs -P 2)", loop, env)]
    if script == "noop.py":
        live = work / f"shim-live-{project.name}"
        (live / "events").mkdir(parents=True)
        shim_env = {**env, "PYTHONPATH": SHIM, "VESTIGE_SHIM": SHIM, "VESTIGE_LIVE": str(live),
                    "VESTIGE_RUN_ID": "01BENCHSHIMONLY0000000000",
                    "VESTIGE_ROOT": str(project), "VESTIGE_STORE": str(project / ".vestige"),
                    "VESTIGE_FIGURES": "1"}  # fmt: skip
        # (the shim's journals stay: one deletion per file would churn the disk the sweep
        # then allocates inodes on)
        rows.append(Row("the loop, each child with the capture shim", loop, shim_env))
    rows.append(Row("vestige run --each ... -j 2", sweep, env))
    rows.append(Row("Hydra multirun, basic launcher (1 at a time)",
                    None if hydra["basic"] else multirun([]), env, hydra["basic"]))  # fmt: skip
    rows.append(Row("Hydra multirun, joblib launcher, n_jobs=2",
                    None if hydra["joblib"] else
                    multirun(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
                    env, hydra["joblib"]))  # fmt: skip
    return rows


def _table(title: str, rows: list[Row], n: int) -> Table:
    table = Table(title, ["how", "seconds", "per command", "ratio", "CPU s",
                          "CPU over the loop"], right=(1, 2, 3, 4, 5))  # fmt: skip
    loop, loop_cpu = median(rows[0].walls), median(rows[0].cpus)
    for i, row in enumerate(rows):
        if not row.walls:
            table.add(row.label, row.status or "", "", "", "", "")
            continue
        wall, cpu = median(row.walls), median(row.cpus)
        over = "" if i == 0 else f"{1000 * (cpu - loop_cpu) / n:.1f} ms per command"
        table.add(row.label, secs(wall), f"{1000 * wall / n:.1f} ms", f"{wall / loop:.2f}x",
                  f"{cpu:.2f}", over)  # fmt: skip
    return table


def _cpu(samples: list[float], timed: Callable[[], float]) -> float:
    """Run `timed`; add the CPU time (user+system) of the processes it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """A sweep writes its summary to stdout and exits 0 when every child was ok; the
    others must exit 0 too (time_command checks, and refuses vestige's warnings)."""
    if argv[0] != vestige_script():
        return time_command(argv, cwd, env)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed


if __name__ == "__main__":
    main()
