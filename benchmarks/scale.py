"""Commands over a large store (issue 23, item 5): `compare --where`, `du`, `fsck`, `reindex`
at 20,000 runs, as ratios to `vestige --version` in the same run.

A store of real runs is written through the library (objects named by `hash_bytes`,
without the per-object fsync of a real put; manifests, refs, then the index rows in one
transaction, as reindex fills them): each run has params (an integer i, a model, a
learning rate, a seed), a metrics object of two keys and its summaries, a log, two
outputs, a shared input and one of ten code snapshots. Then, as whole `vestige`
processes, interleaved, medians: `compare --json --where 'params.i < 3000'` (3,000 rows),
`du --json`, `fsck`, `reindex`, beside `vestige --version` (the floor every command
pays). fsck hashes every object: the time BLAKE3 takes over all of them (one process,
`hash_file` each, warm page cache) is measured alone and taken off.

Goals (issue 23): compare <= 5x --version, du <= 3x; fsck and reindex <= 0.1 ms per run
(over --version, fsck's hashing taken off).

Usage: .venv/bin/python benchmarks/scale.py [--quick] [--markdown] [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    NOISE_NOTE,
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

NOW = 1_780_000_000.0
MODELS = ("resnet", "vit", "mlp", "convnext", "lstm")
COMPARE_GOAL = 5.0
DU_GOAL = 3.0
PER_RUN_GOAL_MS = 0.1

COMMANDS = [
    ("compare --where 'params.i < 3000'", ("compare", "--json", "--where", "params.i < 3000")),
    ("(the same, as a table: no goal)", ("compare", "--where", "params.i < 3000")),
    ("du", ("du", "--json")),
    ("fsck", ("fsck",)),
    ("reindex", ("reindex",)),
]


def build(project: Path, n_runs: int, seed: int = 5) -> int:
    """A store of `n_runs` sealed runs (objects, manifests, refs, index rows); the number of
    objects it holds."""
    from vestige.ids import new_run_id
    from vestige.records import FileRecord, Run
    from vestige.repo import Repo
    from vestige.store.hashing import hash_bytes
    from vestige.store.metrics import Series, encode, summary_json
    from vestige.store.objects import canonical_json

    rng = random.Random(seed)
    repo = Repo.open(project, create=True)
    objects = repo.store.objects
    made: set[str] = set()

    def put(data: bytes) -> str:  # a real put fsyncs each object: minutes for 100,000
        digest = hash_bytes(data)
        if digest not in made:
            made.add(digest)
            path = objects.path(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return digest

    env = put(canonical_json({"type": "env", "python": {"version": "3.11"}}))
    trees = []
    for v in range(10):
        entries = [[f"src/m{k}.py", 33188, 40, put(f"# module {k} v{v}\n".encode() * 2), 1]
                   for k in range(20)]  # fmt: skip
        trees.append(put(canonical_json({"type": "tree", "entries": entries})))
    raw = put(b"the shared input\n" * 100)
    refs = repo.store.refs.dir
    refs.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for seq in range(1, n_runs + 1):
        t = NOW - (n_runs - seq) * 60.0
        loss = rng.random() ** 3
        steps = array("d", range(50))
        series = [
            Series(name="loss", steps=steps, times=array("d", (t + i for i in range(50))),
                   values=array("d", (loss + 1 / (i + 1) for i in range(50)))),
            Series(name="acc", steps=steps, times=array("d", (t + i for i in range(50))),
                   values=array("d", (1 - loss - 1 / (i + 2) for i in range(50)))),
        ]  # fmt: skip
        metrics = {"object": put(encode(series)), "keys": {s.name: summary_json(s) for s in series}}
        outs = []
        for k in range(2):
            body = f"run {seq} output {k} {rng.random()}\n".encode() * rng.randrange(5, 50)
            outs.append(FileRecord(f"out/f{k}.csv", put(body), len(body), True))
        log = f"run {seq}: loss {loss}\n".encode()
        run = Run(
            id=new_run_id(int(t * 1000)), seq=seq, status="ok" if rng.random() < 0.9 else "failed",
            command=["python", "train.py", f"--i={seq}"], cwd=".", root=str(project),
            started=t, ended=t + 30.0, duration=30.0, exit_code=0,
            code={"tree": trees[seq % 10], "size": 800},
            params={"i": seq, "model": rng.choice(MODELS),
                    "lr": rng.choice((0.1, 0.01, 0.001)), "seed": rng.randrange(10)},
            inputs=(FileRecord("data/raw.txt", raw, 1700, True),), outputs=tuple(outs),
            stdout={"hash": put(log), "size": len(log), "lines": 1}, env=env, metrics=metrics,
            tags=("best",) if seq % 50 == 0 else (),
        )  # fmt: skip
        digest = put(canonical_json(run.to_dict()))
        (refs / run.id).write_text(digest + "\n")
        runs.append(Run.from_dict(run.to_dict(), manifest=digest))
        if len(runs) == 5000:
            repo.index.record.runs(runs)
            runs = []
    if runs:
        repo.index.record.runs(runs)
    repo.close()
    return len(made)


def hashing_seconds(project: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of BLAKE3 over every object of the store, one file at a time
    (what fsck must do)."""
    from vestige.store.hashing import hash_file
    from vestige.store.local import Store

    store, _ = Store.open(project)
    start, cpu = time.perf_counter(), time.process_time()
    for digest in store.objects:
        hash_file(store.objects.path(digest))
    return time.perf_counter() - start, time.process_time() - cpu


def timed(project: Path, env: dict[str, str], args: tuple[str, ...]) -> tuple[float, float]:
    """(wall, CPU: user + sys) seconds of one whole `vestige` process; exits if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([vestige_script(), *args], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"vestige {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def profile(project: Path, args: tuple[str, ...]) -> None:
    """cProfile of one command in this process, the top 25 by cumulative time, on stderr."""
    import contextlib
    import cProfile
    import os
    import pstats

    from vestige.cli import main as cli_main

    here = os.getcwd()
    os.chdir(project)
    prof = cProfile.Profile()
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            prof.runcall(cli_main, list(args))
    except SystemExit:
        pass
    finally:
        os.chdir(here)
    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--profile", action="store_true", help="cProfile each command")

    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1, extra=extra)
    n_runs = 1_000 if args.quick else 20_000
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-scale-"))
    try:
        project = work / "proj"
        project.mkdir()
        progress(f"scale: a store of {n_runs:,} runs")
        t0 = time.perf_counter()
        n_objects = build(project, n_runs)
        built = time.perf_counter() - t0
        env = bench_env(VESTIGE_NOW=str(NOW))
        if args.profile:
            for _, argv in COMMANDS:
                progress(f"profile: vestige {' '.join(argv)}")
                profile(project, argv)
        for _, argv in COMMANDS:  # warm-up (and the page cache)
            timed(project, env, argv)
        hashing = [hashing_seconds(project) for _ in range(args.runs)]
        samples: dict[str, list[tuple[float, float]]] = {"--version": []}
        for _ in range(args.runs):  # interleaved: a busy machine slows them alike
            samples["--version"].append(timed(project, env, ("--version",)))
            for label, argv in COMMANDS:
                samples.setdefault(label, []).append(timed(project, env, argv))
        # Each figure twice: wall time (the measure) and CPU time (user + sys of the
        # process), which a machine shared with other work disturbs much less.
        walls = {k: median([s[0] for s in v]) for k, v in samples.items()}
        cpus = {k: median([s[1] for s in v]) for k, v in samples.items()}
        hash_wall, hash_cpu = median([h[0] for h in hashing]), median([h[1] for h in hashing])
        table = Table(
            f"Whole `vestige` processes over {n_runs:,} runs, {n_objects:,} objects"
            f" (build {built:.0f} s, not timed)",
            ["command", "wall", "x --version", "ms/run", "CPU", "x --version", "ms/run"],
            right=(1, 2, 3, 4, 5, 6),
        )  # fmt: skip
        report = Report(args.markdown)
        for label in ["--version", *(c[0] for c in COMMANDS)]:
            row = [label]
            for got, hashed in ((walls, hash_wall), (cpus, hash_cpu)):
                t, floor = got[label], got["--version"]
                extra = (t - floor - (hashed if label == "fsck" else 0.0)) * 1000 / n_runs
                shown = f"{extra:.3f}" if label in ("fsck", "reindex") else ""
                row += [ms(t), f"{t / floor:.1f}x", shown]
            table.add(*row)
        table.add("(BLAKE3 of every object, in-process)", ms(hash_wall), "", "", ms(hash_cpu),
                  "", "")  # fmt: skip
        report.table(table)
        for what, got in (("wall", walls), ("CPU", cpus)):
            floor = got["--version"]
            compare_x = got[COMMANDS[0][0]] / floor
            report.goal(f"`compare --where` of 3,000 rows within {COMPARE_GOAL:g}x --version"
                        f" ({what})", compare_x <= COMPARE_GOAL, f"{compare_x:.1f}x")  # fmt: skip
            du_x = got["du"] / floor
            report.goal(f"`du` within {DU_GOAL:g}x --version ({what})", du_x <= DU_GOAL,
                        f"{du_x:.1f}x")  # fmt: skip
            hashed = hash_wall if what == "wall" else hash_cpu
            fsck_ms = (got["fsck"] - floor - hashed) * 1000 / n_runs
            report.goal(f"`fsck` within {PER_RUN_GOAL_MS:g} ms per run plus hashing ({what})",
                        fsck_ms <= PER_RUN_GOAL_MS, f"{fsck_ms:.3f} ms")  # fmt: skip
            re_ms = (got["reindex"] - floor) * 1000 / n_runs
            report.goal(f"`reindex` within {PER_RUN_GOAL_MS:g} ms per run ({what})",
                        re_ms <= PER_RUN_GOAL_MS, f"{re_ms:.3f} ms")  # fmt: skip
        load = os.getloadavg()[0]
        report.note(f"{machine()}; load average {load:.1f} at the end. {NOISE_NOTE}"
                    f" Medians of {args.runs}.")  # fmt: skip
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
