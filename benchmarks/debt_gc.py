"""How long do the ledger commands take on a large store? `vestige debt`, `vestige gc
--dry-run` and `vestige du`.

A synthetic history is written straight into a store's index through the library (runs,
their code units, outputs, inputs, a few published copies) with the objects the ledger
reads (each code version); then `vestige debt --json` is timed as a CLI subprocess,
once with a cold shingle cache and `--runs` times warm. Goal: <= 1 s for 10,000 runs
and 300 code units.

gc and du: a store of 100,000 objects (`--quick`: 10,000) is written through the library
(objects as files named by `hash_bytes`, without the per-object fsync of a real put, manifests,
refs, and the index rows in one transaction): runs of 8 outputs, a shared input and a log
each over 10 code snapshots; then `vestige gc --older-than 30d --dry-run --json` (goal
<= 5 s) and `vestige du --by kind --json` (goal <= 1 s) are timed as CLI subprocesses.

Usage: .venv/bin/python benchmarks/debt_gc.py [--quick] [--markdown] [--runs N]
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import (
    NOISE_NOTE,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    secs,
    vestige_script,
)

DEBT_GOAL_S = 1.0
DAY = 86400.0
#: the simulated now of every synthetic history (2026-06-01 UTC)
NOW = 1780272000.0


def _code(rng: random.Random, unit: int, lines: int) -> list[str]:
    """A plausible body of analysis code, different per unit."""
    ops = ["+", "-", "*", "/"]
    names = ["df", "loss", "acc", "x", "y", "batch", "model", "cfg", "rows", "frame"]
    out = []
    for j in range(lines):
        a, b = rng.choice(names), rng.choice(names)
        out.append(f"    {a}_{unit}_{j} = step_{rng.randrange(40)}({b}, {rng.randrange(1000)})"
                   f" {rng.choice(ops)} {a}")  # fmt: skip
    return out


def synthetic_history(repo: Any, n_runs: int, n_units: int, days: float = 120.0,
                      now: float = NOW, seed: int = 7) -> dict[str, Any]:  # fmt: skip
    """Write a history of `n_runs` runs over `days` days before `now` using `n_units` code
    units into the repo's index and store; return the plan (runs, published events).

    A third of the units are scripts (entry points), the rest modules each script may
    import; scripts have a skewed number of runs, a lifetime (one-offs, long-lived ones,
    ones unused for months), versions changing over their lifetime; a fifth of the
    scripts read the latest output of another script; a tenth of the units share a block
    of code with another; a few outputs are published."""
    from vestige.ids import new_run_id
    from vestige.records import FileRecord, Run
    from vestige.upkeep import publish

    rng = random.Random(seed)
    n_scripts = max(2, n_units // 3)
    scripts = [f"analysis/s{i:03d}.py" for i in range(n_scripts)]
    modules = [f"lib/m{i:03d}.py" for i in range(n_units - n_scripts)]
    bodies = {u: _code(rng, i, rng.randrange(15, 60)) for i, u in enumerate(scripts + modules)}
    units = scripts + modules
    for u in rng.sample(units, max(1, len(units) // 10)):  # copy-paste between units
        other = rng.choice(units)
        if other != u:
            bodies[u] = bodies[u] + bodies[other][: max(5, len(bodies[other]) * 3 // 4)]
    n_versions = {u: rng.choice([1, 1, 2, 3, 5, 7]) for u in units}
    versions: dict[str, list[str]] = {}
    for u in units:
        hashes = []
        for v in range(n_versions[u]):
            text = "def main():\n" + "\n".join(bodies[u] + [f"    return {v}"]) + "\n"
            hashes.append(repo.store.objects.put_bytes(text.encode()))
        versions[u] = hashes
    life: dict[str, tuple[float, float]] = {}
    for s in scripts:
        kind = rng.random()
        start = now - rng.uniform(0, days) * DAY
        if kind < 0.3:  # a one-off: a day
            life[s] = (start, min(now, start + DAY))
        elif kind < 0.55:  # unused for a while now
            end = now - rng.uniform(50, 90) * DAY
            life[s] = (min(start, end - DAY), end)
        else:  # in use
            life[s] = (start, now - rng.uniform(0, 5) * DAY)
    weights = [1.0 / (1 + i) ** 0.8 for i in range(n_scripts)]
    rng.shuffle(weights)
    total = sum(weights)
    counts = [max(1, round(n_runs * w / total)) for w in weights]
    while sum(counts) > n_runs:
        counts[counts.index(max(counts))] -= 1
    imports = {s: rng.sample(modules, min(len(modules), rng.randrange(0, 4))) for s in scripts}
    upstream = {s: rng.choice(scripts) for s in scripts if rng.random() < 0.2}
    plan_runs: list[dict[str, Any]] = []
    for s, count in zip(scripts, counts, strict=True):
        first, last = life[s]
        for k in range(count):
            t = first + (last - first) * (k / max(count - 1, 1)) if count > 1 else first
            plan_runs.append({"script": s, "started": t, "duration": rng.uniform(1, 600)})
    plan_runs.sort(key=lambda r: r["started"])
    latest_out: dict[str, str] = {}
    records = []
    for seq, r in enumerate(plan_runs, start=1):
        s = r["script"]
        code = {}
        for u in (s, *imports[s]):
            first, last = life[s] if u == s else (now - days * DAY, now)
            frac = 0.0 if last <= first else (r["started"] - first) / (last - first)
            vs = versions[u]
            code[u] = vs[min(len(vs) - 1, max(0, int(frac * len(vs))))]
        inputs = []
        up = upstream.get(s)
        if up is not None and up in latest_out:
            inputs.append(FileRecord(f"out/{up}.csv", latest_out[up], 100, False))
        digest = f"{rng.getrandbits(256):064x}"
        latest_out[s] = digest
        r.update(seq=seq, id=new_run_id(int(r["started"] * 1000)), code=code,
                 inputs=[f.hash for f in inputs], outputs=[digest])  # fmt: skip
        records.append(Run(
            id=r["id"], seq=seq, status="ok", command=["python", s], cwd=".",
            root=str(repo.store.root), started=r["started"],
            ended=r["started"] + r["duration"], duration=r["duration"],
            code={"imported_hashes": code}, inputs=tuple(inputs),
            outputs=(FileRecord(f"out/{s}.csv", digest, 100, False),),
        ))  # fmt: skip
    repo.index.record.runs(records)
    events = []
    for r in rng.sample(plan_runs, max(1, len(plan_runs) // 500)):
        t = min(now, r["started"] + rng.uniform(0, 10) * DAY)
        event = {"t": t, "dest": f"/home/ada/paper/{r['seq']}.csv", "how": "publish",
                 "run": r["id"], "source": f"out/{r['script']}.csv", "size": 100}  # fmt: skip
        publish.record(repo, r["outputs"][0], event)
        events.append({**event, "hash": r["outputs"][0]})
    return {"runs": plan_runs, "published": events, "now": now, "units": units}


def _make_store(work: Path, n_runs: int, n_units: int) -> Path:
    from vestige.repo import Repo

    project = work / "proj"
    project.mkdir()
    repo = Repo.open(project, create=True)
    try:
        synthetic_history(repo, n_runs, n_units)
    finally:
        repo.close()
    return project


def _time_debt(project: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([vestige_script(), "debt", "--json"], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"vestige debt failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def bench_debt(n_runs: int = 10000, n_units: int = 300, runs: int = 5) -> dict[str, float]:
    """Seconds of `vestige debt --json`: building the store, the first call (shingles not
    cached yet) and the median of `runs` warm calls."""
    from vestige.history.debt import interest  # noqa: F401 - fail early if the library is broken

    work = Path(tempfile.mkdtemp(prefix="vestige-bench-debt-"))
    try:
        t0 = time.perf_counter()
        project = _make_store(work, n_runs, n_units)
        build = time.perf_counter() - t0
        env = bench_env(VESTIGE_NOW=str(NOW))
        cold = _time_debt(project, env)
        warm = median([_time_debt(project, env) for _ in range(runs)])
        return {"build": build, "cold": cold, "warm": warm}
    finally:
        shutil.rmtree(work, ignore_errors=True)


GC_GOAL_S = 5.0
DU_GOAL_S = 1.0


def _gc_store(work: Path, n_objects: int) -> tuple[Path, int]:
    """A project whose store holds about `n_objects` objects; returns (root, objects)."""
    import json
    import os

    from vestige.records import FileRecord, Run
    from vestige.repo import Repo
    from vestige.store.hashing import hash_bytes
    from vestige.store.objects import canonical_json

    root = work / "proj"
    root.mkdir()
    repo = Repo.open(root, create=True)
    objects = repo.store.objects

    def put(data: bytes) -> str:  # a real put fsyncs each object: minutes for 100,000
        digest = hash_bytes(data)
        path = objects.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return digest

    rng = random.Random(11)
    env = put(canonical_json({"type": "env", "python": {"version": "3.11"}}))
    trees = []
    for v in range(10):
        entries = [[f"src/m{k}.py", 33188, 40, put(f"# module {k} v{v}\n".encode() * 2), 1]
                   for k in range(20)]  # fmt: skip
        trees.append(put(canonical_json({"type": "tree", "entries": entries})))
    raws = [put(f"raw {k}\n".encode() * 100) for k in range(50)]
    n_runs = max(10, n_objects // 10)
    runs = []
    refs = repo.store.refs.dir
    refs.mkdir(parents=True, exist_ok=True)
    for i in range(n_runs):
        started = NOW - 120 * DAY + i * (120 * DAY / n_runs)
        outs = []
        for k in range(8):
            body = f"run {i} output {k} ".encode() * rng.randrange(5, 100)
            outs.append(FileRecord(f"out/f{k}.bin", put(body), len(body), True))
        k = rng.randrange(50)
        log = f"run {i}\n".encode()
        run = Run(
            id=f"01M9{i:022d}", seq=i + 1, status="ok", command=["python", f"s{i % 7}.py"],
            cwd=".", root=str(root), started=started, ended=started + 1, duration=1.0,
            exit_code=0, code={"tree": trees[i % 10], "size": 800},
            inputs=(FileRecord(f"data/raw{k}.txt", raws[k], 600, True),), outputs=tuple(outs),
            stdout={"hash": put(log), "size": len(log), "lines": 1}, env=env,
        )  # fmt: skip
        digest = put(canonical_json(run.to_dict()))
        (refs / run.id).write_text(digest + "\n")
        runs.append(Run.from_dict(json.loads(objects.path(digest).read_bytes()), manifest=digest))
    repo.index.record.runs(runs)
    repo.close()
    old = time.time() - 2 * DAY  # written days ago: past gc's grace period
    count = 0
    for fan in os.scandir(objects.dir):
        for entry in os.scandir(fan.path):
            os.utime(entry.path, (old, old))
            count += 1
    return root, count


def _time_cli(project: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([vestige_script(), *args], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"vestige {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def bench_gc(n_objects: int = 100_000, runs: int = 5) -> dict[str, float]:
    """Seconds of `vestige gc --dry-run` and `vestige du` (medians of `runs` calls)."""
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-gc-"))
    try:
        t0 = time.perf_counter()
        project, count = _gc_store(work, n_objects)
        build = time.perf_counter() - t0
        env = bench_env(VESTIGE_NOW=str(NOW))
        gc_args = ("gc", "--older-than", "30d", "--keep-last", "100", "--dry-run", "--json")
        gc = median([_time_cli(project, env, *gc_args) for _ in range(runs)])
        du = median([_time_cli(project, env, "du", "--by", "kind", "--json")
                     for _ in range(runs)])  # fmt: skip
        return {"build": build, "gc": gc, "du": du, "objects": float(count)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=5, quick_runs=1)
    n_runs, n_units = (1000, 60) if args.quick else (10000, 300)
    progress(f"debt: a synthetic store of {n_runs} runs and {n_units} code units")
    debt = bench_debt(n_runs, n_units, args.runs)
    table = Table(f"`vestige debt --json` over {n_runs} runs and {n_units} code units",
                  ["what", "seconds"], right=(1,))  # fmt: skip
    table.add("build the synthetic store (not timed by the goal)", secs(debt["build"]))
    table.add("first call (tokenizes and caches every unit's latest version)", secs(debt["cold"]))
    table.add(f"later calls (median of {args.runs})", secs(debt["warm"]))
    report = Report(args.markdown)
    report.table(table)
    report.goal(f"`vestige debt` within {DEBT_GOAL_S:g} s (10,000 runs, 300 units)",
                max(debt["cold"], debt["warm"]) <= DEBT_GOAL_S,
                f"{debt['cold']:.2f} s cold, {debt['warm']:.2f} s warm")  # fmt: skip
    n_objects = 10_000 if args.quick else 100_000
    progress(f"gc, du: a synthetic store of about {n_objects} objects")
    gc = bench_gc(n_objects, args.runs)
    table = Table(f"`vestige gc --dry-run` and `vestige du` over {int(gc['objects'])} objects",
                  ["what", "seconds"], right=(1,))  # fmt: skip
    table.add("build the synthetic store (not timed by the goals)", secs(gc["build"]))
    table.add(f"gc --older-than 30d --keep-last 100 --dry-run (median of {args.runs})",
              secs(gc["gc"]))  # fmt: skip
    table.add(f"du --by kind (median of {args.runs})", secs(gc["du"]))
    report.table(table)
    report.goal(f"`vestige gc --dry-run` within {GC_GOAL_S:g} s (100,000 objects)",
                gc["gc"] <= GC_GOAL_S, f"{gc['gc']:.2f} s")  # fmt: skip
    report.goal(f"`vestige du` within {DU_GOAL_S:g} s (100,000 objects)",
                gc["du"] <= DU_GOAL_S, f"{gc['du']:.2f} s")  # fmt: skip
    report.note(f"{machine()}. {NOISE_NOTE}")
    report.print()


if __name__ == "__main__":
    main()
