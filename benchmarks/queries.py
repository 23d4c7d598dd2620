"""Queries at scale: `vestige ls --where` and `compare --where` over a 100,000-run index.

The index is filled through the library (index.record.runs, as reindex fills it) with
runs like a long project's: params (an integer i, a model, a learning rate, a seed),
metric summaries (loss, acc), a tag on one run in fifty, sweeps of ten children. Each
query is timed as a whole `vestige` process, beside `vestige --version` in the same run
(the floor every command pays), and its SQL plan is printed: a filter must be looked up
through the index's indexes, not evaluated for every run (issue 16's goal: <= 0.15 s per
whole process at 100,000 runs).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    Report,
    Table,
    bench_env,
    machine,
    median,
    ms,
    parse_args,
    progress,
    vestige_script,
)

GOAL_S = 0.15
NOW = 1_780_000_000.0
MODELS = ("resnet", "vit", "mlp", "convnext", "lstm")

QUERIES = [
    ("ls", "plain (newest 50)", ("ls", "--json", "-n", "50")),
    ("ls", "plain, all runs as JSON", ("ls", "--json")),
    ("ls", "params.i = 1234", ("ls", "--json", "--where", "params.i = 1234", "-n", "50")),
    ("ls", "params.model = vit and metrics.loss < 0.05",
     ("ls", "--json", "--where", "params.model = 'vit' and metrics.loss < 0.05", "-n", "50")),
    ("ls", "tag = best", ("ls", "--json", "--where", "tag = best", "-n", "50")),
    ("ls", "params.seed in (1, 2) and status = ok",
     ("ls", "--json", "--where", "params.seed in (1, 2) and status = 'ok'", "-n", "50")),
    ("ls", "not tag = best (most runs)", ("ls", "--json", "--where", "not tag = best", "-n", "50")),
    ("compare", "params.i < 3000 (3,000 rows)",
     ("compare", "--json", "--where", "params.i < 3000")),
]  # fmt: skip


def build(project: Path, n_runs: int, seed: int = 11) -> float:
    """Fill a store's index with `n_runs` runs; the seconds it took."""
    from vestige.ids import new_run_id
    from vestige.records import Run
    from vestige.repo import Repo

    started = time.perf_counter()
    rng = random.Random(seed)
    repo = Repo.open(project, create=True)
    try:
        batch: list[Run] = []
        parent: str | None = None
        for seq in range(1, n_runs + 1):
            t = NOW - (n_runs - seq) * 60.0
            run_id = new_run_id(int(t * 1000))
            if seq % 100 == 1:  # a sweep's parent, its ten children follow
                parent = run_id
            elif seq % 100 > 10:
                parent = None
            loss = rng.random() ** 3
            batch.append(Run(
                id=run_id, seq=seq, status="ok" if rng.random() < 0.9 else "failed",
                command=["python", "train.py", f"--i={seq}"], cwd=".",
                root=str(project), started=t, ended=t + 30.0, duration=30.0, exit_code=0,
                params={"i": seq, "model": rng.choice(MODELS),
                        "lr": rng.choice((0.1, 0.01, 0.001)), "seed": rng.randrange(10)},
                metrics={"keys": {"loss": {"count": 100, "last": loss, "min": loss,
                                           "max": 1.0},
                                  "acc": {"count": 100, "last": 1 - loss, "min": 0.0,
                                          "max": 1 - loss}}},
                tags=("best",) if seq % 50 == 0 else (),
                parent=parent if seq % 100 != 1 else None,
            ))  # fmt: skip
            if len(batch) == 5000:
                repo.index.record.runs(batch)
                batch = []
        if batch:
            repo.index.record.runs(batch)
    finally:
        repo.close()
    return time.perf_counter() - started


def timed(project: Path, env: dict[str, str], args: tuple[str, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run([vestige_script(), *args], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"vestige {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def plan(project: Path, where: str) -> str:
    """SQLite's plan for `ls --where` of this expression, one step a line."""
    from vestige.index.where import compile_where

    sql, params = compile_where(where)
    conn = sqlite3.connect(project / ".vestige" / "index.sqlite")
    try:
        rows = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT r.* FROM runs r WHERE {sql} ORDER BY r.seq DESC LIMIT 50",
            params,
        ).fetchall()
    finally:
        conn.close()
    return "; ".join(r[-1] for r in rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=5, quick_runs=1)
    n_runs = 5_000 if args.quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-queries-"))
    try:
        project = work / "proj"
        project.mkdir()
        progress(f"queries: an index of {n_runs:,} runs")
        built = build(project, n_runs)
        env = bench_env(VESTIGE_NOW=str(NOW))
        timed(project, env, ("ls", "--json"))  # (warm the page cache)
        floor = median([timed(project, env, ("--version",)) for _ in range(args.runs)])
        table = Table(
            f"Whole `vestige` processes over {n_runs:,} runs (build {built:.1f} s, not timed)",
            ["command", "query", "time", "x --version"], right=(2, 3),
        )  # fmt: skip
        table.add("--version", "(the floor)", ms(floor), "1.0x")
        worst = 0.0
        for command, label, argv in QUERIES:
            t = median([timed(project, env, argv) for _ in range(args.runs)])
            table.add(command, label, ms(t), f"{t / floor:.1f}x")
            worst = max(worst, t) if command == "ls" and "-n" in argv else worst
        report = Report(args.markdown)
        report.table(table)
        plans = Table("SQLite's plan of each --where (ls, newest 50)", ["query", "plan"])
        for _, label, argv in QUERIES:
            if "--where" in argv:
                plans.add(label, plan(project, argv[argv.index("--where") + 1]))
        report.table(plans)
        if not args.quick:
            report.goal(f"`vestige ls --where` within {GOAL_S:g} s (100,000 runs)",
                        worst <= GOAL_S, f"slowest {worst:.3f} s")  # fmt: skip
        else:
            report.note("goal: not judged in --quick mode (5,000 runs)")
        report.note(f"{machine()}. Numbers are medians of {args.runs}.")
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
