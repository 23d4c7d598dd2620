"""How much wall time does `vestige run` add to a no-op Python script?

A project of 200 Python files (~2 MB) plus noop.py, once as a git work tree and once as
a plain directory. Each command is timed `--runs` times (median reported), interleaved
with the bare `python noop.py` so that drift of a shared machine hits both alike:

- warm: the store exists and its stat cache knows every file (the usual case);
- cold: .vestige/index.sqlite* is deleted before each run, so the stat cache is empty
  and all 200 files are hashed again (their objects stay in the store, so nothing is
  copied). refs/runs/* is deleted too: otherwise every run would first rebuild the lost
  index from all earlier runs' manifests, a cost that grows with the repetition count.

Peers, when benchmarks/peers.sh installed them: `dvc repro -f` of a one-stage pipeline
in the same git project, and `datalad run python noop.py` in a dataset of the same files.

Usage: .venv/bin/python benchmarks/capture_overhead.py [--quick] [--markdown] [--runs N]
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PYTHON,
    CommandFailed,
    Report,
    Table,
    bench_env,
    machine,
    median,
    ms,
    parse_args,
    peer,
    progress,
    run,
    time_command,
    vestige_script,
)

GOAL_MS = 60.0
WORDS = ("alpha", "beta", "loss", "grad", "batch", "epoch", "model", "layer", "norm", "data")


def module_text(rng: random.Random, size: int) -> str:
    """Plausible Python source of about `size` bytes."""
    parts = ['"""Generated module for the capture-overhead benchmark."""\n\nimport math\n\n']
    total = len(parts[0])
    n = 0
    while total < size:
        name = "_".join(rng.choice(WORDS) for _ in range(3)) + f"_{n}"
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        body = (
            f"\ndef {name}({a}, {b}_factor=0.{rng.randint(1, 99)}):\n"
            f'    """Return a scaled {a} ({rng.randint(0, 10**6)})."""\n'
            f"    total = 0.0\n"
            f"    for i in range({rng.randint(2, 500)}):\n"
            f"        total += math.sqrt(abs({a}) + i) * {b}_factor\n"
            f"    return total\n"
        )
        parts.append(body)
        total += len(body)
        n += 1
    return "".join(parts)


def make_project(root: Path, files: int, total_bytes: int, git: bool) -> int:
    """Write the project (files in 10 packages) and noop.py; return the source bytes."""
    rng = random.Random(20240601)
    root.mkdir(parents=True)
    per_file = total_bytes // files
    written = 0
    for i in range(files):
        pkg = root / "src" / f"pkg{i % 10}"
        pkg.mkdir(parents=True, exist_ok=True)
        text = module_text(rng, per_file)
        (pkg / f"mod{i:03d}.py").write_text(text)
        written += len(text)
    (root / "noop.py").write_text("# a script that does nothing\n")
    if git:
        env = bench_env()
        run(["git", "init", "-q"], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-q", "-m", "project"], root, env)
    return written


def wait_until_old(root: Path, seconds: float = 2.2) -> None:
    """Let the files age past the stat cache's racy window (it checks ctime as well, which
    os.utime cannot set back), so that warm runs really hit the cache."""
    newest = max(p.stat().st_ctime for p in root.rglob("*") if p.is_file())
    delay = newest + seconds - time.time()
    if delay > 0:
        time.sleep(delay)


def reset_cold(project: Path) -> None:
    """Empty the stat cache: drop the index (and refs, see the module docstring)."""
    store = project / ".vestige"
    for path in store.glob("index.sqlite*"):
        path.unlink()
    runs = store / "refs" / "runs"
    if runs.is_dir():
        shutil.rmtree(runs)
        runs.mkdir()


class Samples:
    def __init__(self) -> None:
        self.data: dict[str, list[float]] = {}

    def add(self, key: str, seconds: float) -> None:
        self.data.setdefault(key, []).append(seconds)

    def med(self, key: str) -> float:
        return median(self.data[key])


def measure_projects(work: Path, runs: int, samples: Samples) -> None:
    """Both projects, interleaved run by run, so that a busy spell hits both alike."""
    env = bench_env()
    bare = [PYTHON, "noop.py"]
    script = [vestige_script(), "run", "python", "noop.py"]
    module = [PYTHON, "-m", "vestige", "run", "python", "noop.py"]
    kinds = ("git", "plain")
    for kind in kinds:  # warm-up: the store, the stat cache, the page cache
        for argv in (bare, script, module):
            time_command(argv, work / kind, env)
    progress(f"warm stat cache, {runs} runs")
    for _ in range(runs):
        for kind in kinds:
            project = work / kind
            samples.add(f"{kind}/bare", time_command(bare, project, env))
            samples.add(f"{kind}/warm/script", time_command(script, project, env))
            samples.add(f"{kind}/warm/module", time_command(module, project, env))
    progress(f"cold stat cache, {runs} runs")
    for _ in range(runs):
        for kind in kinds:
            project = work / kind
            samples.add(f"{kind}/bare", time_command(bare, project, env))
            reset_cold(project)
            samples.add(f"{kind}/cold/script", time_command(script, project, env))
            reset_cold(project)
            samples.add(f"{kind}/cold/module", time_command(module, project, env))


def phase_breakdown(project: Path, runs: int) -> Table:
    """Medians of the VESTIGE_TIMING=1 lines of warm runs: where the added time goes."""
    env = bench_env(VESTIGE_TIMING="1")
    argv = [vestige_script(), "run", "python", "noop.py"]
    phases: dict[str, list[float]] = {}
    walls: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        for line in proc.stderr.splitlines():
            parts = line.split(None, 3)  # "vestige:", "12.3", "ms", label
            if len(parts) == 4 and parts[0] == "vestige:" and parts[2] == "ms":
                phases.setdefault(parts[3], []).append(float(parts[1]))
    table = Table(
        f"where the time goes: VESTIGE_TIMING=1, warm, {project.name} project, median of {runs} "
        "(ms since vestige started; lines from the background thread interleave)",
        ["step", "at ms"],
        right=(1,),
    )
    for label, got in sorted(phases.items(), key=lambda kv: median(kv[1])):
        table.add(label, f"{median(got):.1f}")
    last = max((median(got) for got in phases.values()), default=0.0)
    table.add("whole `vestige run` (wall, as seen by the caller)", ms(median(walls)))
    table.add("of it, start-up before the runner import and exit after the seal",
              f"{1000 * median(walls) - last:.1f}")  # fmt: skip
    return table


def measure_dvc(project: Path, runs: int, samples: Samples) -> str | None:
    """`dvc repro -f` of `python noop.py` in the git project; None or why it failed."""
    dvc = peer("dvc")
    if dvc is None:
        return "not installed (run benchmarks/peers.sh)"
    env = bench_env()
    try:
        run([dvc, "init", "-q"], project, env)
        run([dvc, "config", "core.analytics", "false"], project, env)
        run([dvc, "stage", "add", "-n", "noop", "-d", "noop.py", "python noop.py"], project, env)
        repro = [dvc, "repro", "-f"]
        time_command(repro, project, env)
        progress(f"dvc repro -f, {runs} runs")
        for _ in range(runs):
            samples.add("dvc/bare", time_command([PYTHON, "noop.py"], project, env))
            samples.add("dvc/tool", time_command(repro, project, env))
    except CommandFailed as e:
        progress(f"dvc failed: {e}")
        return f"failed: {str(e).splitlines()[0]}"
    return None


def measure_datalad(source: Path, work: Path, runs: int, samples: Samples) -> str | None:
    """`datalad run python noop.py` in a dataset holding the same files."""
    datalad = peer("datalad")
    if datalad is None:
        return "not installed (run benchmarks/peers.sh)"
    if shutil.which("git-annex") is None:
        return "not installed (git-annex missing; run benchmarks/peers.sh as root)"
    env = bench_env()
    dataset = work / "dataset"
    try:
        run([datalad, "create", "-c", "text2git", str(dataset)], work, env)
        shutil.copytree(source / "src", dataset / "src")
        shutil.copy2(source / "noop.py", dataset / "noop.py")
        run([datalad, "save", "-m", "project files"], dataset, env)
        wait_until_old(dataset)
        command = [datalad, "run", "python noop.py"]
        time_command(command, dataset, env)
        progress(f"datalad run, {runs} runs")
        for _ in range(runs):
            samples.add("datalad/bare", time_command([PYTHON, "noop.py"], dataset, env))
            samples.add("datalad/tool", time_command(command, dataset, env))
    except CommandFailed as e:
        progress(f"datalad failed: {e}")
        return f"failed: {str(e).splitlines()[0]}"
    return None


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], default_runs=15, quick_runs=3)
    files, total = (20, 200_000) if args.quick else (200, 2_000_000)
    samples = Samples()
    report = Report(args.markdown)
    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        work = Path(tmp)
        sizes = {}
        for kind in ("git", "plain"):
            progress(f"building the {kind} project ({files} files)")
            sizes[kind] = make_project(work / kind, files, total, git=kind == "git")
        wait_until_old(work)
        measure_projects(work, args.runs, samples)
        progress("VESTIGE_TIMING=1 breakdown")
        breakdown = phase_breakdown(work / "git", args.runs)
        dvc_status = measure_dvc(work / "git", args.runs, samples)
        datalad_status = measure_datalad(work / "git", work, args.runs, samples)

    table = Table(
        f"vestige run overhead: no-op script, {files} source files "
        f"({sizes['git'] / 1e6:.1f} MB), median of {args.runs}",
        ["project", "stat cache", "command", "median ms", "added ms", "ratio"],
        right=(3, 4, 5),
    )
    commands = {"script": "vestige run python noop.py", "module": "python -m vestige run ..."}
    for kind in ("git", "plain"):
        base = samples.med(f"{kind}/bare")
        table.add(kind, "", "python noop.py", ms(base), "", "1.00x")
        for cache in ("warm", "cold"):
            for launcher, label in commands.items():
                t = samples.med(f"{kind}/{cache}/{launcher}")
                table.add(kind, cache, label, ms(t), f"+{ms(t - base)}", f"{t / base:.2f}x")
    report.table(table)

    ours = samples.med("git/warm/script") - samples.med("git/bare")
    peers = Table(
        f"peers: the same no-op script, median of {args.runs} (vestige: warm, git project)",
        ["tool", "command", "median ms", "added ms", "added vs vestige"],
        right=(2, 3, 4),
    )
    peers.add("vestige", "vestige run python noop.py", ms(samples.med("git/warm/script")),
              f"+{ms(ours)}", "1.0x")  # fmt: skip
    for name, command, status in (
        ("dvc", "dvc repro -f (1 stage)", dvc_status),
        ("datalad", "datalad run python noop.py", datalad_status),
    ):
        if status is not None:
            peers.add(name, command, status, "", "")
            continue
        t, base = samples.med(f"{name}/tool"), samples.med(f"{name}/bare")
        peers.add(name, command, ms(t), f"+{ms(t - base)}", f"{(t - base) / ours:.1f}x")
    report.table(peers)
    report.table(breakdown)

    for kind in ("git", "plain"):
        added = samples.med(f"{kind}/warm/script") - samples.med(f"{kind}/bare")
        report.goal(f"<= {GOAL_MS:.0f} ms added to a no-op script, warm, {kind} project",
                    1000 * added <= GOAL_MS, f"+{ms(added)} ms")  # fmt: skip
    report.note(f"Machine: {machine()}. {NOISE_NOTE}")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
