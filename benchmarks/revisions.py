"""Does this checkout of vestige cost more than an earlier revision?

A refactor (moving modules into packages, splitting classes) must not make `vestige run`
or vestige's own commands slower. This extracts the source of `--base REV` (default
HEAD, so the question is "did my uncommitted change cost anything?") with `git archive`
and times, interleaved so that a busy machine slows both alike, each command once with
the base revision's source first on PYTHONPATH and once with this checkout's:
`vestige run python noop.py` in a git project of 200 files (warm stat cache),
`vestige --help`, `vestige ls` on a store of 50 runs and `python -c "import vestige"`,
against `python noop.py` as the floor. It reports the time each adds over the floor and
the ratio this/base of those added times. Goal: no command adds more than 5% (or 1 ms,
whichever is larger) over the base revision.

Usage: .venv/bin/python benchmarks/revisions.py [--base REV] [--quick] [--markdown] [--runs N]
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from _bench import (
    HERE,
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
)

REPO = HERE.parent
SLACK = 0.05  # the goal: at most 5% more added time than the base revision...
SLACK_MS = 1.0  # ...or 1 ms, for commands that add only a few milliseconds


def extract(rev: str, dest: Path) -> Path:
    """The `src/` of a revision, unpacked under `dest`; exits with a clear line if git
    cannot give it (not a git checkout, unknown revision)."""
    proc = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=REPO,
                          capture_output=True)  # fmt: skip
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"benchmark: cannot read revision {rev!r}: {' '.join(message)}")
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def project(root: Path, env: dict[str, str], files: int) -> Path:
    """A git project of `files` small modules and a no-op script."""
    proj = root / "proj"
    proj.mkdir()
    for i in range(files):
        (proj / f"m{i}.py").write_text("x = 1\n" * 200)
    (proj / "noop.py").write_text("pass\n")
    run(["git", "init", "-q"], proj, env)
    run(["git", "add", "-A"], proj, env)
    run(["git", "commit", "-qm", "start"], proj, env)
    return proj


def main() -> None:
    args = parse_args(
        __doc__.split("\n", 1)[0], default_runs=31, quick_runs=3,
        extra=lambda p: p.add_argument("--base", default="HEAD", help="revision to compare with"),
    )  # fmt: skip
    report = Report(args.markdown)
    with tempfile.TemporaryDirectory(prefix="vestige-revisions-") as tmp:
        root = Path(tmp)
        base_src = extract(args.base, root / "base")
        this_src = REPO / "src"
        plain = bench_env()
        proj = project(root, plain, 20 if args.quick else 200)
        envs = {"base": bench_env(PYTHONPATH=str(base_src)),
                "this": bench_env(PYTHONPATH=str(this_src))}  # fmt: skip
        for _ in range(5 if args.quick else 50):  # a store with runs, for `ls`
            run([PYTHON, "-m", "vestige", "run", "python", "noop.py"], proj, envs["this"])
        commands = {
            "vestige run python noop.py": [PYTHON, "-m", "vestige", "run", "python", "noop.py"],
            "vestige --help": [PYTHON, "-m", "vestige", "--help"],
            "vestige ls": [PYTHON, "-m", "vestige", "ls"],
            'python -c "import vestige"': [PYTHON, "-c", "import vestige"],
        }
        floor_cmd = [PYTHON, "noop.py"]
        progress(f"warming up ({args.base} and this checkout)")
        for env in envs.values():
            for argv in commands.values():
                time_command(argv, proj, env)
        times: dict[tuple[str, str], list[float]] = {}
        floor: list[float] = []
        for i in range(args.runs):
            progress(f"round {i + 1} of {args.runs}")
            floor.append(time_command(floor_cmd, proj, plain))
            for name, argv in commands.items():
                for which in ("base", "this") if i % 2 == 0 else ("this", "base"):
                    elapsed = time_command(argv, proj, envs[which])
                    times.setdefault((name, which), []).append(elapsed)
        base_floor = median(floor)
        table = Table(
            f"This checkout against {args.base}, median of {args.runs}, interleaved "
            f"(floor `python noop.py` {ms(base_floor)} ms)",
            ["command", f"{args.base} ms", "this ms", f"{args.base} adds", "this adds", "ratio"],
            right=(1, 2, 3, 4, 5),
        )
        worst = (0.0, "")
        for name in commands:
            before, after = median(times[(name, "base")]), median(times[(name, "this")])
            added_before, added_after = before - base_floor, after - base_floor
            ratio = added_after / added_before if added_before > 0 else float("nan")
            table.add(name, ms(before), ms(after), f"+{ms(added_before)}", f"+{ms(added_after)}",
                      f"{ratio:.2f}x")  # fmt: skip
            allowed = max(SLACK_MS, SLACK * added_before * 1000)
            excess = (added_after - added_before) * 1000 - allowed
            if excess > worst[0] or not worst[1]:
                worst = (excess, f"{name}: +{ms(added_after)} ms against +{ms(added_before)} ms")
        report.table(table)
        report.note(f"Machine: {machine()}. {NOISE_NOTE}")
        report.goal(
            f"no command adds more than {SLACK:.0%} (or {SLACK_MS:.0f} ms) over {args.base}",
            worst[0] <= 0, worst[1],
        )  # fmt: skip
    report.print()


if __name__ == "__main__":
    main()
