"""How long do vestige's own commands take to start, and what does `vestige run` import?

Times (median of `--runs`, interleaved) `python -c pass` as the floor, `vestige --help`,
`python -m vestige --help`, `vestige run --help`, `vestige ls` on a store of 100 runs,
and `python -c pass` with vestige's capture shim loaded (what every Python process of a
run pays). Then runs `python -X importtime -m vestige run true` with VESTIGE_TIMING=1 and
splits the imports at the "command started" line: what is imported before the command
starts (the start-up path, which should hold builtin modules only) and what the
background thread imports while it runs. rich, click, fsspec, numpy and pandas are
flagged wherever they appear.

Usage: .venv/bin/python benchmarks/startup.py [--quick] [--markdown] [--runs N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    ms,
    parse_args,
    progress,
    run,
    time_command,
    vestige_script,
)

from vestige.recording.process import SHIM_DIR

HELP_GOAL_MS = 60.0
HEAVY = ("rich", "click", "fsspec", "numpy", "pandas")
MARKER = "command started"


class Import:
    __slots__ = ("cumulative", "depth", "name", "self_us")

    def __init__(self, name: str, self_us: int, cumulative: int, depth: int) -> None:
        self.name, self.self_us, self.cumulative, self.depth = name, self_us, cumulative, depth


def parse_importtime(stderr: str) -> tuple[list[Import], list[Import]]:
    """(imports before the command started, imports after), in import order."""
    before: list[Import] = []
    after: list[Import] = []
    current = before
    for line in stderr.splitlines():
        if line.startswith("vestige:") and MARKER in line:
            current = after
            continue
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            self_us, cumulative, name = line[len("import time:") :].split("|", 2)
            self_int, cumulative_int = int(self_us), int(cumulative)
        except ValueError:
            continue
        name = name.rstrip()
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        current.append(Import(stripped, self_int, cumulative_int, depth))
    return before, after


def importtime(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc.stderr


def shim_env(live: Path, root: Path) -> dict[str, str]:
    """The environment `vestige run` gives a Python child (capture on)."""
    return bench_env(
        PYTHONPATH=SHIM_DIR,
        VESTIGE_RUN_ID="01BENCHMARKSTARTUP00000000",
        VESTIGE_LIVE=str(live),
        VESTIGE_ROOT=str(root),
        VESTIGE_STORE=str(root / ".vestige"),
        VESTIGE_SHIM=SHIM_DIR,
    )


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], default_runs=15, quick_runs=3)
    n_runs = 10 if args.quick else 100
    report = Report(args.markdown)
    env = bench_env()
    vestige = vestige_script()
    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        progress(f"recording {n_runs} runs of `true` for `vestige ls`")
        for i in range(n_runs):
            run([vestige, "run", "--param", f"i={i}", "true"], project, env)
        live = work / "live"
        live.mkdir()
        commands = {
            "python -c pass": ([PYTHON, "-c", "pass"], env),
            "vestige --help": ([vestige, "--help"], env),
            "python -m vestige --help": ([PYTHON, "-m", "vestige", "--help"], env),
            "vestige run --help": ([vestige, "run", "--help"], env),
            f"vestige ls ({n_runs} runs)": ([vestige, "ls"], env),
            "python -c pass, capture shim loaded": (
                [PYTHON, "-c", "pass"],
                shim_env(live, project),
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for argv, cmd_env in commands.values():  # warm-up (bytecode, page cache)
            time_command(argv, project, cmd_env)
        progress(f"timing {len(commands)} commands, {args.runs} runs each")
        for _ in range(args.runs):
            for name, (argv, cmd_env) in commands.items():
                samples[name].append(time_command(argv, project, cmd_env))

        progress("python -X importtime -m vestige run true")
        probe_env = bench_env(VESTIGE_TIMING="1", PYTHONUNBUFFERED="1")
        base_names = {
            i.name
            for i in parse_importtime(
                importtime([PYTHON, "-X", "importtime", "-c", "pass"], project, probe_env)
            )[0]
        }
        reps = 1 if args.quick else 5
        module_argv = [PYTHON, "-X", "importtime", "-m", "vestige", "run", "true"]
        traces = [
            parse_importtime(importtime(module_argv, project, probe_env)) for _ in range(reps)
        ]
        script_argv = [PYTHON, "-X", "importtime", vestige, "run", "true"]
        script_before, _ = parse_importtime(importtime(script_argv, project, probe_env))

    floor = median(samples["python -c pass"])
    table = Table(
        f"start-up, median of {args.runs}",
        ["command", "median ms", "above python -c pass"],
        right=(1, 2),
    )
    for name, got in samples.items():
        t = median(got)
        table.add(name, ms(t), "" if name == "python -c pass" else f"{1000 * (t - floor):+.1f}")
    report.table(table)

    before, after = traces[0]
    by_name: dict[tuple[int, str], list[Import]] = {}
    for trace in traces:
        for phase, imports in enumerate(trace):
            for imp in imports:
                by_name.setdefault((phase, imp.name), []).append(imp)

    def med_self(phase: int, name: str) -> int:
        return int(median([i.self_us for i in by_name[(phase, name)]]))

    def med_cum(phase: int, name: str) -> int:
        return int(median([i.cumulative for i in by_name[(phase, name)]]))

    ours_before = [i for i in before if i.name not in base_names]
    top = Table(
        "`python -m vestige run true`: imports before the command starts (beyond `python -c "
        "pass`), top level, median of the importtime runs",
        ["module", "self us", "cumulative us", "modules under it"],
        right=(1, 2, 3),
    )
    for k, imp in enumerate(ours_before):
        if imp.depth != 0:
            continue
        under = 0
        for prior in reversed(ours_before[:k]):
            if prior.depth == 0:
                break
            under += 1
        top.add(imp.name, med_self(0, imp.name), med_cum(0, imp.name), under)
    report.table(top)
    total_before = sum(med_self(0, i.name) for i in ours_before)
    report.note(
        f"Before the command starts: {len(ours_before)} modules beyond the interpreter's own "
        f"({total_before / 1000:.1f} ms of import time): "
        + ", ".join(i.name for i in ours_before)
        + "."
    )
    module_names = {i.name for i in before}
    script_only = [i for i in script_before if i.name not in module_names | base_names]
    script_top = [i for i in script_only if i.depth == 0]
    report.note(
        "The `vestige` console script (pip's generated wrapper) skips runpy but imports "
        + (", ".join(f"{i.name} ({i.cumulative / 1000:.1f} ms cumulative)" for i in script_top)
           or "nothing else")
        + f" before the command starts: {len(script_only)} modules not imported under `-m`, "
        f"{sum(i.self_us for i in script_only) / 1000:.1f} ms of import time."
    )  # fmt: skip
    total_after = sum(med_self(1, i.name) for i in after if (1, i.name) in by_name)
    report.note(
        "After the command starts (the background thread while it runs, then the seal): "
        f"{len(after)} modules ({total_after / 1000:.1f} ms of import time), top level: "
        + ", ".join(f"{i.name} ({med_cum(1, i.name) / 1000:.1f} ms)" for i in after if i.depth == 0)
        + "."
    )
    flags = []
    for heavy in HEAVY:
        where = [
            phase
            for phase, imports in (("BEFORE the command starts", before), ("background", after))
            if any(i.name == heavy or i.name.startswith(heavy + ".") for i in imports)
        ]
        flags.append(f"{heavy}: {', '.join(where) if where else 'not imported'}")
    report.note("Heavy modules on the run path: " + "; ".join(flags) + ".")
    help_ms = 1000 * median(samples["vestige --help"])
    report.goal(f"`vestige --help` <= {HELP_GOAL_MS:.0f} ms", help_ms <= HELP_GOAL_MS,
                f"{help_ms:.1f} ms")  # fmt: skip
    heavy_before = [h for h in HEAVY if any(i.name.split(".")[0] == h for i in before)]
    report.goal("no heavy module (rich, click, fsspec, numpy, pandas) before the command starts",
                not heavy_before, ", ".join(heavy_before) or "none imported")  # fmt: skip
    report.note(f"Machine: {machine()}. {NOISE_NOTE}")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
