"""How fast are `vestige push` and `vestige pull` against a real S3 API, beside the floor?

To moto's S3 server on 127.0.0.1 (started here, on a free port; dummy credentials), for
two stores: 200 small runs of a sweep, and one run that wrote one 200 MB file. Timed,
interleaved: `vestige push` into an empty prefix, a second `vestige push` with nothing
new, `vestige pull` into an empty project; and the floor, an `aws s3 sync`-like s3fs
`put` (and `get`) of the same object files in one batch, in a fresh Python process too.
Goal (issue 17): the large object within 1.5x of the floor, both ways.

`.venv/bin/python benchmarks/remote.py [--quick] [--markdown] [--runs N]`
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import (
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    progress,
    run,
    secs,
    time_command,
    vestige_script,
)

MAKE = "import sys; open(f'out{sys.argv[1]}.txt', 'w').write('result %s\\n' % sys.argv[1] * 50)"
BIG = "import os; open('big.bin', 'wb').write(os.urandom({size}))"
FLOOR = """
import sys, s3fs
fs = s3fs.S3FileSystem()
way, base, target = sys.argv[1], sys.argv[2], sys.argv[3]
if way == "put":
    files = [l for l in open(base).read().split("\\n") if l]
    fs.put(files, [target + "/" + f.split("/objects/", 1)[1] for f in files], batch_size=16)
else:
    fs.get(base, target, recursive=True, batch_size=16)
"""


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = str(Path(PYTHON).with_name("moto_server"))
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while True:
        if proc.poll() is not None:
            raise SystemExit("moto_server exited (pip install 'moto[server]')")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)


def project(root: Path, env: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    run(["git", "init", "-q"], root, env)
    (root / "make.py").write_text(MAKE)
    return root


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_runs=3, quick_runs=1)
    count, big = (20, 20_000_000) if args.quick else (200, 200_000_000)
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-remote-"))
    env = bench_env(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                    HOME=str(work / "home"))  # fmt: skip
    (work / "home").mkdir()
    server, url = start_server(env)
    env["AWS_ENDPOINT_URL"] = url
    vestige = vestige_script()
    report = Report(args.markdown)
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="bench",
                          aws_secret_access_key="bench-secret")  # fmt: skip
        s3.create_bucket(Bucket="bench")
        progress(f"making {count} runs (a sweep) and one run of {big // 10**6} MB")
        small = project(work / "small", env)
        values = ",".join(str(i) for i in range(count))
        run([vestige, "run", "--each", f"n={values}", "-j", "2", "--", "python", "make.py",
             "{n}"], small, env)  # fmt: skip
        large = project(work / "large", env)
        run([vestige, "run", "python", "-c", BIG.format(size=big)], large, env)
        table = Table(f"push and pull to moto's S3 server ({machine()})",
                      ["store", "objects", "MB", "step", "vestige s", "floor s", "ratio"],
                      right=[1, 2, 4, 5, 6])  # fmt: skip
        ratios: dict[str, float] = {}
        for name, root in ((f"{count} runs", small), (f"1 run, {big // 10**6} MB", large)):
            objects = sorted(str(p) for p in (root / ".vestige" / "objects").rglob("*")
                             if p.is_file())  # fmt: skip
            mb = sum(os.path.getsize(p) for p in objects) / 1e6
            listing = work / f"{root.name}.files"
            listing.write_text("\n".join(objects))
            times: dict[str, list[float]] = {k: [] for k in ("push", "again", "pull", "put", "get")}
            for rep in range(args.runs):
                progress(f"{name}: repetition {rep + 1}/{args.runs}")
                prefix = f"bench/{root.name}-{rep}"
                run([vestige, "remote", "add", f"r{rep}", f"s3://{prefix}"], root, env)
                times["push"].append(time_command([vestige, "push", f"r{rep}"], root, env))
                times["again"].append(time_command([vestige, "push", f"r{rep}"], root, env))
                floor = f"bench/floor-{root.name}-{rep}"
                times["put"].append(time_command([PYTHON, "-c", FLOOR, "put", str(listing),
                                                  floor], root, env))  # fmt: skip
                into = project(work / f"pull-{root.name}-{rep}", env)
                run([vestige, "remote", "add", "origin", f"s3://{prefix}"], into, env)
                times["pull"].append(time_command([vestige, "pull"], into, env))
                got = work / f"get-{root.name}-{rep}"
                times["get"].append(time_command([PYTHON, "-c", FLOOR, "get", floor,
                                                  str(got)], root, env))  # fmt: skip
                shutil.rmtree(got, ignore_errors=True)
                shutil.rmtree(into, ignore_errors=True)
            for step, mine, floor_key in (("push", "push", "put"), ("pull", "pull", "get")):
                ratio = median(times[mine]) / median(times[floor_key])
                ratios[f"{name} {step}"] = ratio
                table.add(name, len(objects), f"{mb:.1f}", step, secs(median(times[mine])),
                          secs(median(times[floor_key])), f"{ratio:.2f}")  # fmt: skip
            table.add(name, len(objects), f"{mb:.1f}", "push, nothing new",
                      secs(median(times["again"])), "-", "-")  # fmt: skip
        report.table(table)
        report.note("Times are wall seconds of whole commands (process start included), "
                    f"medians of {args.runs}; the floor is s3fs put/get of the same object "
                    "files in one batch (16 at a time), in a fresh Python process.")  # fmt: skip
        big_name = f"1 run, {big // 10**6} MB"
        for step in ("push", "pull"):
            ratio = ratios[f"{big_name} {step}"]
            report.goal(f"{step} of one large object within 1.5x of the floor", ratio <= 1.5,
                        f"{ratio:.2f}x")  # fmt: skip
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    report.print()


if __name__ == "__main__":
    sys.exit(main())
