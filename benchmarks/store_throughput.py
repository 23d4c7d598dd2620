"""How fast does vestige store a large new output, and an unchanged one again?

A 2 GiB file of random bytes (`--quick`: 64 MiB) is stored with the library operation
vestige's seal uses, `ObjectStore.put_file`, into a fresh store each time, and compared
with reading it (`cat > /dev/null`), hashing it (BLAKE3 on all cores over mmap, as
vestige does), copying it (`cp`, and `cp` + fsync of the copy, since vestige fsyncs
every object) and with `dvc add` when benchmarks/peers.sh installed DVC.

Storing it again unchanged takes the seal's path (seal.Sealer._keep): a stat, a stat
cache hit, an existence check of the object. The end-to-end row is `vestige run python
gen.py` (gen.py writes the file into out/) minus `python gen.py` alone.

Page cache: "warm" means the file is in memory (read once before); "cold" means
`sync; echo 3 > /proc/sys/vm/drop_caches` before each repetition, measured only when
that works (root on a real kernel or a VM) and never with --quick.

Usage: .venv/bin/python benchmarks/store_throughput.py [--quick] [--markdown] [--runs N]
       [--dir DIR]   (where the temporary project goes; default: the system temp dir)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    parse_args,
    peer,
    progress,
    run,
    time_call,
    time_command,
    vestige_script,
)
from blake3 import blake3

from vestige.store.objects import ObjectStore
from vestige.store.stat import Stat
from vestige.store.statcache import DDL, RACY_NS, StatCache

MiB = 1 << 20
GiB = 1 << 30
RESTORE_GOAL_MS = 20.0
DVC_FACTOR_GOAL = 8.0
PUT_DIRTY = "vestige put_file, file just written (dirty pages)"
RESTORE_HIT = "re-store unchanged (stat cache hit)"
RESTORE_OUTSIDE = "same, for a path outside the preloaded tree"
RESTORE_REHASH = "re-store unchanged (no stat cache: re-hash)"
NOT_COPIES = {RESTORE_HIT, RESTORE_OUTSIDE, RESTORE_REHASH, "dvc add, unchanged",
              "python gen.py", "vestige run python gen.py"}  # fmt: skip
GEN_PY = """\
import os, sys

size = int(sys.argv[1])
block = os.urandom(min(size, 64 << 20))  # new bytes every run: a genuinely new output
os.makedirs("out", exist_ok=True)
with open("out/data.bin", "wb") as f:
    for _ in range(size // len(block)):
        f.write(block)
"""


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n
    os.sync()


def drop_caches() -> bool:
    """Empty the page cache; False if this process may not."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def cached_kib() -> int:
    with open("/proc/meminfo") as f:
        for row in f:
            if row.startswith("Cached:"):
                return int(row.split()[1])
    return 0


def can_drop_caches(data: Path, size: int) -> bool:
    """True if dropping the page cache works and really evicts the file."""
    subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)
    before = cached_kib()
    if not drop_caches():
        return False
    return before - cached_kib() >= size // 1024 // 2


def blake3_file(path: Path) -> str:
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(str(path))
    return hasher.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wait_until_old(path: Path) -> None:
    """The stat cache trusts an entry only if hashed RACY_NS after the file's last change,
    judged by max(mtime, ctime). os.utime can age mtime but it sets ctime to now, so the
    only honest way to get a trusted entry is to wait until the file is old enough."""
    st = os.stat(path)
    delay = (max(st.st_mtime_ns, st.st_ctime_ns) + RACY_NS) / 1e9 + 0.1 - time.time()
    if delay > 0:
        time.sleep(delay)


class Bench:
    def __init__(self, work: Path, size: int, runs: int) -> None:
        self.work = work
        self.size = size
        self.runs = runs
        self.data = work / "project" / "data.bin"
        self.env = bench_env()
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.dvc = peer("dvc")
        self.dvc_error: str | None = None
        self.serial = 0

    def add(self, op: str, cache: str, seconds: float) -> None:
        self.samples.setdefault((op, cache), []).append(seconds)

    def med(self, op: str, cache: str) -> float | None:
        got = self.samples.get((op, cache))
        return median(got) if got else None

    def fresh(self, name: str) -> Path:
        self.serial += 1
        path = self.work / f"{name}-{self.serial}"
        path.mkdir()
        return path

    # -- the operations; each returns the seconds it took and cleans up after itself --

    def op_cat(self) -> float:
        return time_command(["cat", str(self.data)], self.work, self.env)

    def op_blake3(self) -> float:
        return time_call(lambda: blake3_file(self.data))

    def op_cp(self) -> float:
        dst = self.work / "copy.bin"
        t = time_command(["cp", str(self.data), str(dst)], self.work, self.env)
        dst.unlink()
        return t

    def op_cp_fsync(self) -> float:
        dst = self.work / "copy.bin"
        start = time.perf_counter()
        subprocess.run(["cp", str(self.data), str(dst)], check=True, env=self.env)
        fsync_path(dst)
        t = time.perf_counter() - start
        dst.unlink()
        return t

    def op_put_file(self) -> float:
        store = self.fresh("store")
        objects = ObjectStore(store)
        t = time_call(lambda: objects.put_file(self.data))
        shutil.rmtree(store)
        return t

    def op_put_file_dirty(self) -> float:
        """A file just written, as a new output is when the seal stores it: its pages are
        still dirty, and the copy doubles the dirty data the kernel must write back."""
        fresh = self.work / "fresh.bin"
        block = os.urandom(min(self.size, 64 * MiB))
        with open(fresh, "wb") as f:
            for _ in range(self.size // len(block)):
                f.write(block)
        store = self.fresh("store")
        objects = ObjectStore(store)
        t = time_call(lambda: objects.put_file(fresh))
        shutil.rmtree(store)
        fresh.unlink()
        return t

    def op_dvc_add(self) -> float:
        """`dvc add` in a fresh DVC project (its own cache and state database), then again
        unchanged (recorded as a separate sample)."""
        assert self.dvc is not None
        project = self.fresh("dvc")
        site = self.fresh("dvc-site")
        run(["git", "init", "-q"], project, self.env)
        run([self.dvc, "init", "-q"], project, self.env)
        run([self.dvc, "config", "core.analytics", "false"], project, self.env)
        run([self.dvc, "config", "core.site_cache_dir", str(site)], project, self.env)
        target = project / "data.bin"
        os.rename(self.data, target)
        try:
            t = time_command([self.dvc, "add", "-q", "data.bin"], project, self.env)
            again = time_command([self.dvc, "add", "-q", "data.bin"], project, self.env)
            self.add("dvc add, unchanged", "warm", again)
        finally:
            os.rename(target, self.data)
            shutil.rmtree(project)
            shutil.rmtree(site)
        return t

    # -- phases ---------------------------------------------------------------------------

    def copy_ops(self, cache: str) -> dict[str, Callable[[], float]]:
        ops = {
            "cat > /dev/null": self.op_cat,
            "BLAKE3 (all cores, mmap)": self.op_blake3,
            "cp": self.op_cp,
            "cp + fsync": self.op_cp_fsync,
            "vestige put_file (first store)": self.op_put_file,
        }
        if cache == "warm":
            ops[PUT_DIRTY] = self.op_put_file_dirty
        if self.dvc is not None and self.dvc_error is None:
            ops["dvc add (first add)"] = self.op_dvc_add
        return ops

    def phase(self, cache: str) -> None:
        progress(f"page cache {cache}: {self.runs} runs of {len(self.copy_ops(cache))} operations")
        subprocess.run(["cat", str(self.data)], stdout=subprocess.DEVNULL, check=True)
        for _ in range(self.runs):
            for op, fn in self.copy_ops(cache).items():
                if cache == "cold":
                    drop_caches()
                else:
                    os.sync()
                try:
                    self.add(op, cache, fn())
                except CommandFailed as e:
                    if not op.startswith("dvc"):
                        raise
                    progress(f"dvc failed: {e}")
                    self.dvc_error = f"failed: {str(e).splitlines()[0]}"

    def restore_unchanged(self, reps: int) -> None:
        """The seal's path for an output already stored: stat, stat cache, object exists."""
        progress("re-storing the unchanged file")
        store = self.fresh("store")
        objects = ObjectStore(store)
        conn = sqlite3.connect(store / "index.sqlite")
        conn.execute(DDL)
        wait_until_old(self.data)
        path = str(self.data)
        st = Stat.of(os.stat(path))
        digest, _ = objects.put_file(self.data)
        cache = StatCache(conn)
        cache.put(path, st, digest)
        cache.flush()

        def keep(preload: bool) -> None:  # seal.Sealer._keep, with a new StatCache per run
            sc = StatCache(conn)
            if preload:
                sc.preload(str(self.data.parent))  # the runner preloads the project root
            now = Stat.of(os.stat(path))
            hit = sc.get(path, now)
            assert hit == digest, "the stat cache entry was not trusted"
            got, _size = objects.put_file(self.data, hit)
            sc.put(path, now, got)
            sc.flush()

        def rehash() -> None:  # the same without a cache entry: hashed again, not copied
            objects.put_file(self.data)

        for _ in range(reps):
            self.add(RESTORE_HIT, "warm", time_call(lambda: keep(True)))
            self.add(RESTORE_OUTSIDE, "warm", time_call(lambda: keep(False)))
        for _ in range(self.runs):
            self.add(RESTORE_REHASH, "warm", time_call(rehash))
        conn.close()
        shutil.rmtree(store)

    def end_to_end(self) -> None:
        progress(f"end to end: vestige run python gen.py, {self.runs} runs")
        project = self.fresh("e2e")
        (project / "gen.py").write_text(GEN_PY)
        bare = [PYTHON, "gen.py", str(self.size)]
        under = [vestige_script(), "run", "python", "gen.py", str(self.size)]

        def clean() -> None:
            shutil.rmtree(project / "out", ignore_errors=True)
            for obj in (project / ".vestige" / "objects").rglob("*"):
                if obj.is_file() and obj.stat().st_size > MiB:
                    obj.unlink()
            os.sync()

        time_command(under, project, self.env)  # creates the store, snapshots gen.py
        for _ in range(self.runs):
            clean()
            self.add("python gen.py", "warm", time_command(bare, project, self.env))
            clean()
            self.add("vestige run python gen.py", "warm", time_command(under, project, self.env))
        clean()


def main() -> int:
    args = parse_args(
        __doc__.splitlines()[0], default_runs=5, quick_runs=2,
        extra=lambda p: p.add_argument("--dir", help="where the temporary project goes"),
    )  # fmt: skip
    size = 64 * MiB if args.quick else 2 * GiB
    base = args.dir
    report = Report(args.markdown)
    label = f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB"
    with tempfile.TemporaryDirectory(prefix="vestige-bench-", dir=base) as tmp:
        work = Path(tmp)
        (work / "project").mkdir()
        bench = Bench(work, size, args.runs)
        progress(f"writing {label} of random bytes")
        make_file(bench.data, size)
        bench.phase("warm")
        # --quick (a smoke test) never drops the page cache of a shared machine
        cold = not args.quick and can_drop_caches(bench.data, size)
        if cold:
            bench.phase("cold")
        elif not args.quick:
            progress("cannot drop the page cache here: warm-cache numbers only")
        bench.restore_unchanged(reps=max(15, 5 * args.runs))
        bench.end_to_end()

    table = Table(
        f"storing a new {label} file, median of {args.runs}",
        ["operation", "page cache", "median s", "GB/s"],
        right=(2, 3),
    )
    for (op, cache), got in bench.samples.items():
        if op in NOT_COPIES:
            continue
        t = median(got)
        table.add(op, cache, f"{t:.3f}", f"{size / t / 1e9:.2f}")
    if bench.dvc is None:
        table.add("dvc add", "", "not installed (run benchmarks/peers.sh)", "")
    elif bench.dvc_error:
        table.add("dvc add", "", bench.dvc_error, "")
    e2e_bare = bench.med("python gen.py", "warm")
    e2e = bench.med("vestige run python gen.py", "warm")
    assert e2e_bare is not None and e2e is not None
    table.add("python gen.py (writes the file)", "warm", f"{e2e_bare:.3f}", "")
    table.add("vestige run python gen.py", "warm", f"{e2e:.3f}", "")
    added = e2e - e2e_bare
    rate = f"{size / added / 1e9:.2f}" if added > 0 else "n/a (noise)"
    table.add("added by vestige run (difference)", "warm", f"{added:.3f}", rate)
    report.table(table)

    again = Table(
        f"storing the same {label} file again, unchanged",
        ["operation", "median ms"],
        right=(1,),
    )
    for op in (RESTORE_HIT, RESTORE_OUTSIDE, RESTORE_REHASH, "dvc add, unchanged"):
        t = bench.med(op, "warm")
        if t is not None:
            again.add(op, f"{1000 * t:.2f}")
    report.table(again)

    first = bench.med("vestige put_file (first store)", "warm")
    b3, cp, cps = (bench.med(op, "warm") for op in ("BLAKE3 (all cores, mmap)", "cp", "cp + fsync"))
    assert first is not None and b3 is not None and cp is not None and cps is not None
    report.goal(
        "first store <= BLAKE3 + cp + fsync (warm cache)",
        first <= b3 + cps,
        f"{first:.3f} s vs {b3 + cps:.3f} s; vs BLAKE3 + cp without fsync: {b3 + cp:.3f} s",
    )
    dvc = bench.med("dvc add (first add)", "warm")
    if dvc is not None:
        report.goal(f">= {DVC_FACTOR_GOAL:.0f}x faster than dvc add (warm cache)",
                    dvc / first >= DVC_FACTOR_GOAL,
                    f"{dvc / first:.1f}x: dvc add {dvc:.3f} s, vestige {first:.3f} s")  # fmt: skip
    else:
        report.note("dvc add: not measured (run benchmarks/peers.sh)")
    restore = bench.med(RESTORE_HIT, "warm")
    assert restore is not None
    report.goal(f"unchanged re-store <= {RESTORE_GOAL_MS:.0f} ms",
                1000 * restore <= RESTORE_GOAL_MS, f"{1000 * restore:.2f} ms")  # fmt: skip
    if cold:
        report.note("Page cache: cold rows were measured after dropping it before each run.")
    elif args.quick:
        report.note("Page cache: --quick measures with the file in memory only.")
    else:
        report.note(
            "Page cache: could not be dropped here; every number is with the file in memory."
        )
    report.note(f"Machine: {machine()}. {NOISE_NOTE}")
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
