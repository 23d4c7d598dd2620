"""Finding and reading runs at scale (issue 23, items 2-3): `ls --where` with `contains`,
`matches`, `note` and `name` over a 20,000-run index, `ls` telling how many it cut, and
`vestige.runs()` building its DataFrame.

The index is filled as benchmarks/queries.py fills it (index.record.runs), plus a note on
one run in ten and a name on one in a hundred. Each `ls` is a whole `vestige` process,
beside `vestige --version` in the same run (the floor every command pays); `runs()` is
timed in this process (pandas imported beforehand: its own cost, ~0.3 s, is the user's
import). `contains` and `matches` on the command cannot use an index: they read every
run, and this is what that costs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import Report, Table, bench_env, machine, median, ms, parse_args, progress
from queries import NOW, build, timed

#: An `ls --where` that reads every run must stay within this many times a plain `ls`
#: (the same table, the same process start): a scan of 20,000 commands is cheap beside
#: them.
GOAL_X = 1.5

QUERIES = [
    ("plain, newest 50 (+ the count)", ("ls",)),
    ("command contains 'I=1234'", ("ls", "--where", "command contains 'I=1234'")),
    ("command matches '--i=12\\d\\d$'", ("ls", "--where", "command matches '--i=12\\d\\d$'")),
    ("note contains 'SPIKE'", ("ls", "--where", "note contains 'SPIKE'")),
    ("name = 'run-12300'", ("ls", "--where", "name = 'run-12300'")),
    ("name matches '^run-1'", ("ls", "--where", "name matches '^run-1'")),
    ("command ~ 'train' (a hint, no match)", ("ls", "--where", "command ~ 'train'")),
]


def annotate(project: Path, n_runs: int) -> None:
    """Notes on one run in ten, names on one in a hundred, through the index's writers."""
    from vestige.repo import Repo

    repo = Repo.open(project)
    try:
        ids = repo.index.runs.ids()
        with repo.index.conn:
            repo.index.conn.execute("BEGIN IMMEDIATE")  # (one transaction for all)
            for seq, run_id in enumerate(ids, start=1):
                if seq % 10 == 0:
                    text = "loss spike at step 3k" if seq % 70 == 0 else f"looks fine ({seq})"
                    repo.index.record.notes(run_id, [{"t": NOW, "text": text}], replace=False)
        for seq, run_id in enumerate(ids, start=1):
            if seq % 100 == 0:
                repo.index.record.name(run_id, f"run-{seq}")
    finally:
        repo.close()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=5, quick_runs=1)
    n_runs = 2_000 if args.quick else 20_000
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-find-"))
    try:
        project = work / "proj"
        project.mkdir()
        progress(f"find: an index of {n_runs:,} runs")
        built = build(project, n_runs)
        annotate(project, n_runs)
        env = bench_env(VESTIGE_NOW=str(NOW))
        timed(project, env, ("ls", "--json"))  # (warm the page cache)
        floor = median([timed(project, env, ("--version",)) for _ in range(args.runs)])
        table = Table(
            f"Whole `vestige ls` processes over {n_runs:,} runs (build {built:.1f} s, not timed)",
            ["query", "time", "x --version"], right=(1, 2),
        )  # fmt: skip
        table.add("--version (the floor)", ms(floor), "1.0x")
        worst, plain = 0.0, None
        for label, argv in QUERIES:
            t = median([timed(project, env, argv) for _ in range(args.runs)])
            table.add(label, ms(t), f"{t / floor:.1f}x")
            plain = t if plain is None else plain
            worst = max(worst, t / plain)
        report = Report(args.markdown)
        report.table(table)

        import os

        import pandas  # noqa: F401  (the user's import, not runs()'s cost)

        import vestige

        here = os.getcwd()
        os.chdir(project)
        try:
            api = Table(f"`vestige.runs()` in-process over {n_runs:,} runs",
                        ["call", "time", "rows x columns"], right=(1, 2))  # fmt: skip
            for label, kwargs in (
                ("runs()", {}),
                ("runs(where='note contains \"spike\"')", {"where": "note contains 'spike'"}),
                ("runs(cols=['seq', 'lr', 'loss'])", {"cols": ["seq", "lr", "loss"]}),
            ):
                times, shape = [], (0, 0)
                for _ in range(args.runs):
                    start = time.perf_counter()
                    df = vestige.runs(**kwargs)  # type: ignore[arg-type]
                    times.append(time.perf_counter() - start)
                    shape = df.shape
                api.add(label, ms(median(times)), f"{shape[0]:,} x {shape[1]}")
        finally:
            os.chdir(here)
        report.table(api)
        report.goal(f"`vestige ls --where` (contains/matches on every run) within {GOAL_X:g}x "
                    f"a plain `vestige ls` ({n_runs:,} runs)", worst <= GOAL_X,
                    f"slowest {worst:.2f}x")  # fmt: skip
        report.note(f"{machine()}. Numbers are medians of {args.runs}.")
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
