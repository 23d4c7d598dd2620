"""Shared helpers of the benchmark scripts: timing, the environment, tables, goals.

Every timed process gets `bench_env()`: PYTHONDONTWRITEBYTECODE removed (with it every
Python start recompiles the modules it imports, which is not what a user's machine does)
and the directory of the interpreter running the benchmark first on PATH, so `python`
is the real interpreter rather than a pyenv shim (a shim adds ~170 ms per start).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
PYTHON = sys.executable
BIN = str(Path(PYTHON).parent)
NOISE_NOTE = (
    "Numbers are medians; compare them only with runs on the same machine, and run "
    "nothing else meanwhile (a virtual disk can vary 2x between runs)."
)
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def parse_args(
    description: str,
    default_runs: int,
    quick_runs: int,
    extra: Callable[[argparse.ArgumentParser], object] | None = None,
) -> argparse.Namespace:
    """The options every benchmark takes: --quick, --markdown, --runs (and `extra`'s)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke mode: few runs, small sizes")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--runs", type=int, default=None, help=f"repetitions (default {default_runs})"
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.runs is None:
        args.runs = quick_runs if args.quick else default_runs
    args.runs = max(1, args.runs)
    return args


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every timed process (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESTIGE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != BIN]
    env["PATH"] = os.pathsep.join([BIN, *path])
    env.update(GIT_IDENTITY)
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def vestige_script() -> str:
    """The `vestige` console script of the environment running the benchmark."""
    script = Path(BIN) / "vestige"
    if script.exists():
        return str(script)
    found = shutil.which("vestige")
    if found is None:
        raise SystemExit("benchmark: no `vestige` console script next to python or on PATH")
    return found


def peer(name: str) -> str | None:
    """benchmarks/.peers/NAME/bin/NAME if benchmarks/peers.sh installed it."""
    exe = PEERS / name / "bin" / name
    return str(exe) if exe.exists() else None


class CommandFailed(RuntimeError):
    pass


def run(
    argv: Sequence[str], cwd: str | Path, env: dict[str, str], *, quiet_ok: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Run a command (untimed set-up); raise CommandFailed with its stderr if it fails."""
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0 and not quiet_ok:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{tail}")
    return proc


def time_command(argv: Sequence[str], cwd: str | Path, env: dict[str, str]) -> float:
    """Wall seconds of one run of a command (stdout to /dev/null, stderr checked)."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    elapsed = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{err[-2000:]}")
    if "vestige: warning" in err:
        raise CommandFailed(f"{' '.join(argv)} warned (the run was not recorded cleanly):\n{err}")
    return elapsed


def data_tree(root: Path, files: int, per_folder: int = 1000) -> None:
    """`files` small files (64 bytes, `imgNNNN.png`) under root/data/, in folders of
    `per_folder` (data/d000/, data/d001/, ...): the bulk of a project that keeps its data
    next to its code, git-ignored. Written with os.open/os.write (500,000 files: ~1 min)."""
    payload = b"\x89PNG" + bytes(60)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for start in range(0, files, per_folder):
        folder = root / "data" / f"d{start // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, min(files, start + per_folder)):
            fd = os.open(folder / f"img{i % per_folder:04d}.png", flags, 0o644)
            os.write(fd, payload)
            os.close(fd)


def room_for(path: Path, files: int) -> str | None:
    """None if the filesystem of `path` can take `files` more small files (a block and an
    inode each, plus 1 GiB to spare), else why not, in one line."""
    need = files * 4096 * 12 // 10 + 2**30
    free = shutil.disk_usage(path).free
    if free < need:
        return f"needs ~{need / 2**30:.1f} GiB free in {path}, has {free / 2**30:.1f} GiB"
    st = os.statvfs(path)
    if st.f_files and st.f_favail < files * 11 // 10:
        return f"needs ~{files * 11 // 10:,} free inodes in {path}, has {st.f_favail:,}"
    return None


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def secs(seconds: float) -> str:
    return f"{seconds:.3f}"


class Table:
    """Rows of strings printed as aligned plain text or as Markdown."""

    def __init__(self, title: str, headers: Sequence[str], right: Sequence[int] = ()) -> None:
        self.title = title
        self.headers = list(headers)
        self.right = set(right)  # column numbers aligned right (numbers)
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))
        ]

        def line(cells: list[str]) -> str:
            out = [
                c.rjust(w) if i in self.right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(out).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([self.title, "", line(self.headers), rule, *map(line, self.rows)])

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        rule = (
            "| "
            + " | ".join("---:" if i in self.right else "---" for i in range(len(self.headers)))
            + " |"
        )
        return "\n".join([f"**{self.title}**", "", line(self.headers), rule, *map(line, self.rows)])


class Report:
    """Tables, notes and goal lines, printed at the end in one format."""

    def __init__(self, markdown: bool) -> None:
        self.markdown = markdown
        self.parts: list[str] = []

    def table(self, table: Table) -> None:
        self.parts.append(table.markdown() if self.markdown else table.text())

    def note(self, text: str) -> None:
        self.parts.append(text)

    def goal(self, name: str, met: bool, measured: str) -> None:
        verdict = "goal met" if met else "goal missed"
        line = f"{verdict}: {name} (measured: {measured})"
        self.parts.append(f"- {line}" if self.markdown else line)

    def print(self) -> None:
        print("\n\n".join(self.parts))


def progress(message: str) -> None:
    """Progress on stderr, so that stdout holds only the report."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def machine() -> str:
    """One line about where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for row in f:
                if row.startswith("model name"):
                    cpu = row.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"
