"""Redaction cost (issue 22): what scrubbing secrets out of a run's logs costs, against a floor.

A run's stdout and stderr are scrubbed at its seal (recording/seal.py: the log file read,
progress bars collapsed, then `Redactor.scrub_bytes`). Three logs of 100 MB each, written
to files as the live directory holds them (already collapsed): an ordinary training log
(progress bars, losses, file paths, log lines), a hash-heavy one (hex digests, UUIDs,
base64 blobs: every one a candidate for gitleaks' rules) and the ordinary log with a few
hundred real-shaped fake secrets planted in it. Each is timed as the seal does it (read
the file, `scrub_bytes` with a fresh Redactor that knows 3 secrets from the environment)
beside a floor that reads the same file and makes one `bytes.find` pass over it, the two
interleaved. Then the whole run: `vestige run python -c PROG` against `python -c PROG`
for a program printing 100 MB of an ordinary training log, and where one more such run
spends its time (the command with its output tee'd, the seal's scrub and storing of the
logs: vestige's own step times, VESTIGE_TIMING=1).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    secs,
    time_call,
    time_command,
    vestige_script,
)

MB = 1_000_000
#: Goals. Principle 3 asks vestige to keep a run's cost near zero; a log is the one part of
#: the seal whose cost grows with what the program printed, so its scrub should keep up
#: with the disk it is stored on (a virtual disk writes ~100 MB/s and more).
GOAL_MBS = 100.0  # an ordinary log scrubbed at least this fast (a 1 GB log in 10 s)
GOAL_RUN_RATIO = 2.0  # `vestige run` of a 100 MB printer within this of the bare command

MARKER = re.compile(rb"<redacted:[0-9a-f]{8}>")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"


def pre(*parts: str) -> str:
    """A token's fixed prefix, spelt in pieces (this file holds no whole token shape that a
    secret scanner would flag)."""
    return "".join(parts)


# -- the logs ----------------------------------------------------------------------------------


def _bar(rng: random.Random) -> str:
    """One progress bar as it stands after its last carriage-return update (tqdm's)."""
    total = rng.choice((500, 1000, 2500))
    done = rng.randrange(total + 1)
    fill = 10 * done // total
    bar = "\u2588" * fill + "\u258c" * (fill < 10) + " " * max(0, 9 - fill)
    pct = 100 * done // total
    return (
        f"{pct:3d}%|{bar}| {done}/{total} [00:{rng.randrange(60):02d}<00:"
        f"{rng.randrange(60):02d}, {rng.uniform(5, 90):.2f}it/s, loss={rng.random():.3f}]"
    )


def ordinary_line(rng: random.Random, i: int) -> str:
    """A line of a training run's output: steps and losses, progress bars, paths, logging."""
    kind = i % 8
    if kind in (0, 1, 2):
        return (
            f"epoch {i // 40000} step {i} loss={rng.random():.4f} acc={rng.random():.4f} "
            f"lr=3.0e-04 grad_norm={rng.uniform(0, 5):.3f} time={rng.random():.3f}s"
        )
    if kind == 3:
        return _bar(rng)
    if kind == 4:
        return (
            f"loading /data/imagenet/train/n0{rng.randrange(10**7):07d}/"
            f"n0{rng.randrange(10**7):07d}_{rng.randrange(99999)}.JPEG"
        )
    if kind == 5:
        return (
            f"INFO 2026-12-06 12:{rng.randrange(60):02d}:{rng.randrange(60):02d},"
            f"{rng.randrange(1000):03d} trainer.py:{rng.randrange(900)}] evaluating "
            f"{rng.randrange(10000)} samples on cuda:{rng.randrange(8)}"
        )
    if kind == 6:
        return (
            f"saved checkpoint to /home/researcher/runs/exp-{rng.randrange(100)}/"
            f"ckpt-{i:08d}.pt ({rng.uniform(10, 900):.1f} MB)"
        )
    return (
        "/usr/lib/python3/dist-packages/torch/utils/data/dataloader.py:557: UserWarning: "
        f"This DataLoader will create {rng.randrange(2, 64)} worker processes in total."
    )


def hashy_line(rng: random.Random, i: int) -> str:
    """A line of a log full of hashes: content digests, run ids, commits, base64 blobs."""
    kind = i % 5
    if kind == 0:
        return (
            f"sha256={rng.getrandbits(256):064x} file=/data/shards/shard-{i % 4096:05d}.tar "
            f"size={rng.randrange(10**9)}"
        )
    if kind == 1:
        u = f"{rng.getrandbits(128):032x}"
        return (
            f"run_id={u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]} "
            f"commit={rng.getrandbits(160):040x}"
        )
    if kind == 2:
        blob = base64.b64encode(rng.randbytes(rng.randrange(24, 72))).decode()
        return f"cache hit key={blob} ttl={rng.randrange(3600)}"
    if kind == 3:
        return f'etag: "{rng.getrandbits(128):032x}" blake3:{rng.getrandbits(256):064x}'
    return ordinary_line(rng, i)


def _jwt(rng: random.Random) -> str:
    """A fake JSON Web Token: a real header, a fake user, a random signature."""

    def part(raw: bytes) -> str:
        """One base64url part, unpadded, as JWTs have them."""
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    head = part(b'{"alg":"HS256","typ":"JWT"}')
    body = part(b'{"sub":"fake-user-' + str(rng.randrange(10**6)).encode() + b'"}')
    return f"{head}.{body}.{''.join(rng.choices(URLSAFE, k=43))}"


def secret_line(rng: random.Random, i: int) -> tuple[str, str]:
    """A log line holding one fake secret of a shape people leak, and that secret (random:
    each call makes a new one)."""

    def r(alphabet: str, n: int) -> str:
        """`n` random characters of `alphabet`."""
        return "".join(rng.choices(alphabet, k=n))

    shapes: list[Callable[[], tuple[str, str]]] = [
        lambda: ("pushing with {}", pre("gh", "p_") + r(ALNUM, 36)),
        lambda: (
            "token {} accepted",
            pre("github", "_pat_") + "11" + r(ALNUM, 20) + "_" + r(ALNUM, 59),
        ),
        lambda: ("using key id {}", pre("AK", "IA") + r("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        lambda: (
            "openai client key={}",
            pre("sk", "-proj-") + r(ALNUM, 20) + "7" + r(URLSAFE, 27),
        ),
        lambda: ("anthropic: {}", pre("sk", "-ant-", "api03-") + r(URLSAFE, 93) + "AA"),
        lambda: ("hub login {}", pre("h", "f_") + r(ALNUM, 34)),
        lambda: (
            "slack {}",
            pre("xo", "xb-") + r("0123456789", 11) + "-" + r("0123456789", 12) + "-" + r(ALNUM, 24),
        ),
        lambda: ("gitlab {}", pre("gl", "pat-") + r(URLSAFE, 20)),
        lambda: ("maps {}", pre("AI", "za") + "Sy" + r(URLSAFE, 33)),
        lambda: ("stripe {}", pre("sk", "_live_") + r(ALNUM, 24)),
        lambda: ("mail {}", pre("S", "G.") + r(URLSAFE, 22) + "." + r(URLSAFE, 43)),
        lambda: ("npm {}", pre("np", "m_") + r(ALNUM, 36)),
        lambda: ("upload {}", pre("py", "pi-", "AgEIcHlwaS5vcmc") + r(URLSAFE, 70)),
        lambda: ("Authorization: Bearer {}", _jwt(rng)),
        lambda: ("db password={}", r(ALNUM, 10) + "!" + r(ALNUM, 5)),
        lambda: ("connecting to postgres://trainer:{}@db.internal:5432/runs", r(ALNUM, 18)),
        lambda: ("datadog_api_key = {}", r(HEX, 32)),
    ]
    template, secret = shapes[i % len(shapes)]()
    return template.format(secret), secret


def write_log(
    path: Path,
    size: int,
    line: Callable[[random.Random, int], str],
    planted: int = 0,
    seed: int = 22,
) -> list[str]:
    """Write `size` bytes (about) of `line`s to `path`, with `planted` secret lines spread
    evenly through it; return the planted secrets."""
    rng = random.Random(seed)
    secrets: list[str] = []
    every = 0
    if planted:
        every = max(1, size // 110 // planted)  # ~110 bytes a line
    written = 0
    i = 0
    with open(path, "w", encoding="utf-8") as f:
        chunk: list[str] = []
        while written < size:
            if every and i % every == every // 2 and len(secrets) < planted:
                text, secret = secret_line(rng, len(secrets))
                secrets.append(secret)
            else:
                text = line(rng, i)
            chunk.append(text)
            written += len(text) + 1
            i += 1
            if len(chunk) >= 10000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")
    return secrets


# -- timing ------------------------------------------------------------------------------------

#: The environment a run's Redactor learns from first (redact_env), as at a run's start.
ENVIRON = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/researcher",
    pre("HF_", "TOKEN"): pre("h", "f_") + "Q" * 8 + "x7" * 12,
    pre("WANDB_", "API_KEY"): "0f" * 20,
    pre("DB_", "PASSWORD"): "correct-horse-7",
}


def floor_pass(path: Path) -> int:
    """The floor: read the log and scan it once for a literal (what any pass must pay)."""
    data = path.read_bytes()
    return data.find(b"<never-in-a-log>")


def vestige_pass(path: Path, key: bytes) -> tuple[float, bytes, int]:
    """The seal's scrub of one log: read it, `scrub_bytes` with a fresh run's Redactor.
    Returns (seconds, the scrubbed log, how many secrets the Redactor learnt)."""
    from vestige.capture.redact import Redactor

    redactor = Redactor(key)
    redactor.redact_env(ENVIRON)  # (untimed: done at the run's start)
    start = time.perf_counter()
    out = redactor.scrub_bytes(path.read_bytes())
    return time.perf_counter() - start, out, len(redactor.known_secrets)


def rules_load_seconds() -> float:
    """Seconds to load gitleaks' rules (secret_rules.json), once per process: a fresh
    interpreter, so the module cache of this one does not hide it."""
    prog = (
        "import time; from vestige.capture.redact import rules; t = time.perf_counter(); "
        "rules(); print(time.perf_counter() - t)"
    )
    done = subprocess.run([PYTHON, "-c", prog], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


PRINTER = """\
import random, sys
w = sys.stdout.write
rng = random.Random(7)
size, n = {size}, 0
i = 0
while n < size:
    line = (f"epoch {{i // 40000}} step {{i}} loss={{rng.random():.4f}} acc={{rng.random():.4f}} "
            f"lr=3.0e-04 file=/data/train/shard-{{i % 1024:05d}}.tar time={{rng.random():.3f}}s\\n")
    w(line)
    n += len(line)
    i += 1
"""


def whole_run(work: Path, size: int, runs: int) -> tuple[float, float, dict[str, float]]:
    """Median seconds of `python -c PRINTER` and of `vestige run` of it (stdout to
    /dev/null for both), and the phases of one more `vestige run` (`phases`)."""
    project = work / "proj"
    project.mkdir()
    env = bench_env()
    prog = PRINTER.format(size=size)
    bare = [PYTHON, "-c", prog]
    recorded = [vestige_script(), "run", PYTHON, "-c", prog]
    time_command(bare, project, env)  # warm-up (and the store is made)
    time_command(recorded, project, env)
    bare_t: list[float] = []
    run_t: list[float] = []
    for n in range(runs):
        progress(f"redact: whole run {n + 1}/{runs}")
        bare_t.append(time_command(bare, project, env))
        run_t.append(time_command(recorded, project, env))
    return median(bare_t), median(run_t), phases(recorded, project, env)


#: The phases of a run worth telling apart here: the first step after each (label, start).
PHASES = {
    "the command, its output tee'd": ("command ended", "command started"),
    "the seal's learn + scrub of the logs": ("seal: secrets learnt", None),
    "the seal's storing of the logs": ("seal: logs stored", None),
}


def phases(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Seconds of each of `PHASES` in one run, from vestige's own step times
    (VESTIGE_TIMING=1: each line is a step's end, in ms since vestige started)."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={**env, "VESTIGE_TIMING": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marks = [
        (float(t), label) for t, label in re.findall(r"vestige: +([0-9.]+) ms  (.*)", done.stderr)
    ]
    out: dict[str, float] = {}
    for name, (end, start) in PHASES.items():
        for (before, _), (at, label) in itertools.pairwise(marks):
            if label.startswith(end):
                if start is not None:  # from a named step, not from the one before
                    before = next((t for t, lb in marks if lb.startswith(start)), before)
                out[name] = (at - before) / 1000
                break
    return out


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    """Write the logs, time them against the floor, then the whole run; print the report."""
    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1)
    size = 2 * MB if args.quick else 100 * MB
    planted = 30 if args.quick else 300
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-redact-"))
    try:
        from vestige.capture.redact import rules

        load = time_call(rules)  # (in this process; a fresh one is measured below too)
        key = os.urandom(32)
        logs = [
            ("ordinary training log", work / "ordinary.log", ordinary_line, 0),
            ("hash-heavy log", work / "hashes.log", hashy_line, 0),
            (f"ordinary log + {planted} secrets", work / "secrets.log", ordinary_line, planted),
        ]
        table = Table(
            f"Scrubbing a log as the seal does (`Redactor.scrub_bytes`), {size // MB} MB, "
            "against reading it and one `bytes.find` pass",
            [
                "log",
                "MB",
                "floor s",
                "floor MB/s",
                "vestige s",
                "vestige MB/s",
                "x floor",
                "markers",
                "secrets learnt",
                "planted left raw",
            ],
            right=range(1, 10),
        )
        speeds: dict[str, float] = {}
        scrub_s: dict[str, tuple[float, int]] = {}
        raw_left = 0
        for label, path, line, n_planted in logs:
            progress(f"redact: writing the {label}")
            secrets = write_log(path, size, line, n_planted)
            nbytes = path.stat().st_size
            floor_pass(path)  # warm-up: the page cache, as a just-written log is
            vestige_pass(path, key)
            floors: list[float] = []
            scrubs: list[float] = []
            out, learnt = b"", 0
            for n in range(args.runs):
                progress(f"redact: {label}, {n + 1}/{args.runs}")
                floors.append(time_call(lambda p=path: floor_pass(p)))
                t, out, learnt = vestige_pass(path, key)
                scrubs.append(t)
            f, v = median(floors), median(scrubs)
            left = sum(1 for s in secrets if s.encode() in out)
            raw_left += left
            speeds[label] = nbytes / MB / v
            scrub_s[label] = (v, learnt)
            table.add(
                label,
                f"{nbytes / MB:.0f}",
                secs(f),
                f"{nbytes / MB / f:,.0f}",
                secs(v),
                f"{speeds[label]:,.1f}",
                f"{v / f:,.0f}x",
                f"{len(MARKER.findall(out)):,}",
                learnt,
                f"{left} of {len(secrets)}" if secrets else "-",
            )
            del out
            path.unlink()
        progress("redact: the whole run")
        bare, recorded, steps = whole_run(work, size, args.runs)
        runs = Table(
            f"`vestige run python -c PROG` against `python -c PROG`, PROG printing "
            f"{size // MB} MB of a training log (stdout to /dev/null)",
            ["command", "s", "x bare"],
            right=(1, 2),
        )
        runs.add("python -c PROG", secs(bare), "1.0x")
        runs.add("vestige run python -c PROG", secs(recorded), f"{recorded / bare:.1f}x")
        for name, seconds in steps.items():
            runs.add(f"  one more run: {name}", secs(seconds), f"{seconds / bare:.1f}x")
        report = Report(args.markdown)
        report.table(table)
        report.table(runs)
        report.note(
            f"gitleaks' rules load once per process: {1000 * load:.0f} ms here, "
            f"{1000 * rules_load_seconds():.0f} ms in a fresh interpreter (untimed above). "
            "The Redactor of each try is fresh and knows 3 secrets from its environment; "
            "markers count every `<redacted:...>` written, secrets learnt the distinct "
            "values it knows afterwards (the 3 included). "
            f"{machine()}. Medians of {args.runs}, floor and vestige interleaved."
        )
        (plain, known), (seeded, learnt) = scrub_s[logs[0][0]], scrub_s[logs[2][0]]
        if learnt > known:  # each secret learnt is one more pass over the whole log
            per = (seeded - plain) / (learnt - known) / (size / MB) * 100
            report.note(
                f"Each secret the Redactor knows costs the log {1000 * per:.0f} ms "
                f"per 100 MB: ({secs(seeded)} - {secs(plain)}) s over "
                f"{learnt - known} secrets learnt in the log."
            )
        ordinary = speeds[logs[0][0]]
        report.goal("every planted secret redacted", raw_left == 0, f"{raw_left} left raw")
        if not args.quick:  # (small sizes measure start-up, not throughput)
            report.goal(
                f"an ordinary log scrubbed at {GOAL_MBS:g} MB/s or more",
                ordinary >= GOAL_MBS,
                f"{ordinary:.1f} MB/s",
            )
            report.goal(
                f"`vestige run` of a {size // MB} MB printer within "
                f"{GOAL_RUN_RATIO:g}x the bare command",
                recorded / bare <= GOAL_RUN_RATIO,
                f"{recorded / bare:.1f}x",
            )
        report.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
