"""How fast are `vestige push` and `vestige pull` against a real S3 API, beside DVC and the floor?

To moto's S3 server on 127.0.0.1 (started here, on a free port; dummy credentials), for
two stores: 10,000 small runs of a sweep (`--runs-count`; written through the library
by scale.py's `build()`: each run a manifest, a metrics object, a log, two small outputs,
one of ten shared code trees), and one run that wrote one 1 GiB file (`--big-mb`, in
MiB). For each, interleaved, each repetition into empty prefixes, deleted after it:
- vestige: `vestige push` into an empty prefix, a second `vestige push` with nothing new,
  then `vestige push --all` (which asks the remote), `vestige pull` into an empty project;
- the floor: an `aws s3 sync`-like s3fs `put` (then `get`) of the same object files in
  one batch (16 at a time), in a fresh Python process too;
- DVC (benchmarks/.peers/dvc, from benchmarks/peers.sh): a DVC project whose data is a
  copy of the store's objects folder (`dvc add`, not timed) with an S3 remote on the same
  server (`endpointurl`): `dvc push`, a second `dvc push` with nothing new, then `dvc
  pull` in a fresh clone of the project (empty cache).
Goals (issue 17): for the small runs at least DVC's throughput (push and pull time <=
DVC's); the large object within 1.5x of the floor both ways; a push with nothing new
<= 1 s for a 10,000-run store.
One repetition by default (`--runs` for the small store, `--big-runs` for the large one):
moto answers a few hundred requests a second at best, so a repetition of the 10,000-run
store (~50,000 objects, sent and fetched three ways) takes half an hour or more.

`.venv/bin/python benchmarks/remote.py [--quick] [--markdown] [--runs N] [--big-runs N]
[--runs-count N] [--big-mb N]` (--quick: 200 runs, 20 MiB)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _bench import (
    NOISE_NOTE,
    PYTHON,
    Report,
    Table,
    bench_env,
    machine,
    median,
    parse_args,
    peer,
    progress,
    run,
    secs,
    time_command,
    vestige_script,
)
from scale import build

BIG = """
import os
with open('big.bin', 'wb') as f:
    for _ in range({mib}):
        f.write(os.urandom(1 << 20))
"""
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
BUCKET = "bench"
KEY = "bench"
SECRET = "bench-secret"


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
    return root


def files_under(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def check_count(what: str, folder: Path, expected: int) -> None:
    """A transfer that brought fewer files than it should is a broken benchmark."""
    got = len(files_under(folder))
    if got != expected:
        raise SystemExit(f"benchmark: {what} holds {got} files, expected {expected}")


class Dvc:
    """A DVC project holding a copy of one store's objects folder, pushing to one prefix."""

    def __init__(self, exe: str, root: Path, objects: Path, url: str, prefix: str,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.exe, self.root, self.env = exe, root, env
        project(root, env)
        shutil.copytree(objects, root / "objects")
        for argv in (
            ["init", "-q"],
            ["config", "core.analytics", "false"],
            ["config", "core.check_update", "false"],
            ["remote", "add", "-d", "bench", f"s3://{prefix}"],
            ["remote", "modify", "bench", "endpointurl", url],
            ["add", "-q", "objects"],
        ):
            run([exe, *argv], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-q", "-m", "data"], root, env)

    def push(self) -> float:
        return time_command([self.exe, "push"], self.root, self.env)

    def pull(self, into: Path) -> float:
        """`dvc pull` in a fresh clone of the project (empty cache); the seconds it took."""
        run(["git", "clone", "-q", str(self.root), str(into)], self.root.parent, self.env)
        return time_command([self.exe, "pull"], into, self.env)


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runs-count", type=int, default=None,
                            help="runs in the store of small runs (default 10,000; --quick "
                                 "200)")  # fmt: skip
        parser.add_argument("--big-mb", type=int, default=None,
                            help="MiB of the large file (default 1024; --quick 20)")  # fmt: skip
        parser.add_argument(
            "--big-runs", type=int, default=None, help="repetitions of the large store (default 1)"
        )

    args = parse_args(__doc__.splitlines()[0], default_runs=1, quick_runs=1, extra=extra)
    count = args.runs_count or (200 if args.quick else 10_000)
    if count < 10:  # (every object of the store is then some run's: all of them are sent)
        raise SystemExit("remote.py: --runs-count must be at least 10 (the store's ten code "
                         "snapshots each need a run)")  # fmt: skip
    big_mib = args.big_mb or (20 if args.quick else 1024)
    big_runs = max(1, args.big_runs or 1)
    work = Path(tempfile.mkdtemp(prefix="vestige-bench-remote-"))
    env = bench_env(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                    HOME=str(work / "home"))  # fmt: skip
    (work / "home").mkdir()
    server, url = start_server(env)
    env["AWS_ENDPOINT_URL"] = url
    vestige = vestige_script()
    dvc = peer("dvc")
    if dvc is not None and run([str(Path(dvc).with_name("python")), "-c", "import dvc_s3"],
                               work, env, quiet_ok=True).returncode != 0:  # fmt: skip
        progress("DVC is installed without dvc-s3: re-run benchmarks/peers.sh")
        dvc = None
    report = Report(args.markdown)
    try:
        import s3fs

        fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=url)
        fs.mkdir(BUCKET)
        big_name = f"{big_mib // 1024} GiB" if big_mib % 1024 == 0 else f"{big_mib} MiB"
        progress(f"making {count:,} runs (scale.build) and one run of a {big_name} file")
        small = project(work / "small", env)
        start = time.perf_counter()
        build(small, count)
        built = time.perf_counter() - start
        large = project(work / "large", env)
        run([vestige, "run", "python", "-c", BIG.format(mib=big_mib)], large, env)
        (large / "big.bin").unlink()
        table = Table(f"push and pull to moto's S3 server ({machine()})",
                      ["store", "objects", "MB", "step", "vestige s", "DVC s", "floor s",
                       "vestige/floor", "vestige/DVC"], right=[1, 2, 4, 5, 6, 7, 8])  # fmt: skip
        rates = Table("throughput (objects/s, MB/s) of the same rows",
                      ["store", "step", "vestige obj/s", "MB/s", "DVC obj/s", "MB/s",
                       "floor obj/s", "MB/s"], right=[2, 3, 4, 5, 6, 7])  # fmt: skip
        got: dict[str, dict[str, float]] = {}
        stores = ((f"{count:,} runs", "small", small, args.runs),
                  (f"1 run, {big_name} file", "large", large, big_runs))  # fmt: skip
        for name, key, root, reps in stores:
            objects = files_under(root / ".vestige" / "objects")
            n_obj = len(objects)
            mb = sum(os.path.getsize(p) for p in objects) / 1e6
            listing = work / f"{key}.files"
            listing.write_text("\n".join(objects))
            peer_dvc = None
            if dvc is not None:
                progress(f"{name}: a DVC project of its {n_obj:,} objects (dvc add, not timed)")
                peer_dvc = Dvc(dvc, work / f"dvc-{key}", root / ".vestige" / "objects", url,
                               f"{BUCKET}/dvc-{key}", env)  # fmt: skip
            times: defaultdict[str, list[float]] = defaultdict(list)
            for rep in range(reps):
                progress(f"{name}: repetition {rep + 1}/{reps}: vestige")
                prefix = f"{BUCKET}/{key}-{rep}"
                run([vestige, "remote", "add", f"r{rep}", f"s3://{prefix}"], root, env)
                push = [vestige, "push", f"r{rep}"]
                times["vestige push"].append(time_command(push, root, env))
                times["vestige again"].append(time_command(push, root, env))
                times["vestige check"].append(time_command([*push, "--all"], root, env))
                into = project(work / f"pull-{key}-{rep}", env)
                run([vestige, "remote", "add", "origin", f"s3://{prefix}"], into, env)
                times["vestige pull"].append(time_command([vestige, "pull"], into, env))
                check_count("the pulled store", into / ".vestige" / "objects", n_obj)
                shutil.rmtree(into)
                fs.rm(prefix, recursive=True)

                progress(f"{name}: repetition {rep + 1}/{reps}: the floor")
                floor = f"{BUCKET}/floor-{key}-{rep}"
                put = [PYTHON, "-c", FLOOR, "put", str(listing), floor]
                times["floor push"].append(time_command(put, root, env))
                got_dir = work / f"get-{key}-{rep}"
                get = [PYTHON, "-c", FLOOR, "get", floor, str(got_dir)]
                times["floor pull"].append(time_command(get, root, env))
                check_count("the floor's download", got_dir, n_obj)
                shutil.rmtree(got_dir)
                fs.rm(floor, recursive=True)

                if peer_dvc is not None:
                    progress(f"{name}: repetition {rep + 1}/{reps}: DVC")
                    times["DVC push"].append(peer_dvc.push())
                    times["DVC again"].append(peer_dvc.push())
                    clone = work / f"dvc-clone-{key}-{rep}"
                    times["DVC pull"].append(peer_dvc.pull(clone))
                    check_count("the DVC clone's data", clone / "objects", n_obj)
                    shutil.rmtree(clone)
                    fs.rm(f"{BUCKET}/dvc-{key}", recursive=True)
                fs.invalidate_cache()
            mid = {k: median(v) for k, v in times.items()}
            got[key] = mid
            absent = "not installed" if dvc is None else "-"
            for step, label in (("push", "push"), ("again", "push, nothing new"),
                                ("check", "push --all, nothing new"),
                                ("pull", "pull")):  # fmt: skip
                mine = mid[f"vestige {step}"]
                theirs = mid.get(f"DVC {'again' if step == 'check' else step}")
                under = mid.get(f"floor {step}")
                table.add(name, f"{n_obj:,}", f"{mb:.1f}", label, secs(mine),
                          secs(theirs) if theirs else absent, secs(under) if under else "-",
                          f"{mine / under:.2f}" if under else "-",
                          f"{mine / theirs:.2f}" if theirs else absent)  # fmt: skip
                if step not in ("again", "check"):
                    cells = [name, step]
                    for t in (mine, theirs, under):
                        cells += [f"{n_obj / t:,.0f}", f"{mb / t:.2f}"] if t else [absent] * 2
                    rates.add(*cells)
        report.table(table)
        report.table(rates)
        about_dvc = (
            "DVC pushes the same files (a copy of the store's objects folder, `dvc add`ed "
            "untimed; DVC also sends one .dir listing); its pull runs in a fresh clone with "
            "an empty cache and includes its checkout into the workspace (vestige's pull "
            "writes only the store). "
            if dvc is not None
            else "DVC is not installed (bash benchmarks/peers.sh installs it). "
        )
        report.note(
            "Times are wall seconds of whole commands (process start included), medians of "
            f"{args.runs} for the {count:,}-run store and of {big_runs} for the large one, "
            "each repetition into empty S3 prefixes (deleted after it: moto keeps objects "
            "in memory). The floor is s3fs put/get of the same object files in one batch "
            f"(16 at a time), in a fresh Python process. {about_dvc}vestige's push also "
            "writes a ref per run, and its pull reads those refs and manifests and verifies "
            "every object (BLAKE3). A push with nothing new ends on the store's record of "
            "what its pushes sent (remote/known.py) without asking the remote; `push --all` "
            "asks it (lists its refs and objects: DVC's second push, which also asks, "
            "is beside it). The small store was written through the library in "
            f"{built:.0f} s (not timed)."
        )
        load = os.getloadavg()[0]
        report.note(f"Load average {load:.1f} at the end. {NOISE_NOTE}")
        small_t, large_t = got["small"], got["large"]
        for step in ("push", "pull"):
            mine, theirs = small_t[f"vestige {step}"], small_t.get(f"DVC {step}")
            what = f"{step} of {count:,} small runs at least DVC's throughput (time <= DVC's)"
            if theirs is None:
                bullet = "- " if args.markdown else ""
                report.note(f"{bullet}goal not measured: {what} (DVC not installed: "
                            "bash benchmarks/peers.sh)")  # fmt: skip
            else:
                report.goal(what, mine <= theirs,
                            f"{mine:.2f} s vs {theirs:.2f} s, {mine / theirs:.2f}x")  # fmt: skip
        for step in ("push", "pull"):
            ratio = large_t[f"vestige {step}"] / large_t[f"floor {step}"]
            report.goal(f"{step} of one large object ({big_name}) within 1.5x of the floor",
                        ratio <= 1.5, f"{ratio:.2f}x")  # fmt: skip
        again = small_t["vestige again"]
        scope = f"{count:,} runs" + ("" if count == 10_000 else "; the goal is for 10,000")
        report.goal(f"push with nothing new <= 1 s ({scope})", again <= 1.0, f"{again:.2f} s")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    report.print()


if __name__ == "__main__":
    sys.exit(main())
