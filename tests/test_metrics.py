"""Metrics: vestige.log from threads and processes, journals that survive SIGKILL, the
sealed columnar object, and `vestige metrics` / `ls --cols` / `--where metrics.*`."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import vestige


def run_script(root: Path, code: str, *args: str) -> str:
    (root / "script.py").write_text(textwrap.dedent(code))
    done = vestige("run", "script.py", *args, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def metrics_json(root: Path, *args: str) -> dict:
    done = vestige("metrics", "@last", *args, "--json", cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def series_csv(root: Path, key: str, ref: str = "@last") -> list[dict[str, str]]:
    done = vestige("metrics", ref, key, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return list(csv.DictReader(io.StringIO(done.stdout.decode())))


def test_steps_auto_increment_and_nan_inf_round_trip(project: Path) -> None:
    run_script(project, """
        import vestige
        import numpy as np
        vestige.log(loss=0.5)
        vestige.log(loss=float("nan"))
        vestige.log(loss=float("inf"), acc=np.float32(0.25))
        vestige.log(step=10, loss=float("-inf"))
        vestige.log(loss=1)
        vestige.log({"acc": np.int64(1), "flag": True})
        vestige.log({"acc": 0.5}, step=7)
    """)  # fmt: skip
    loss = series_csv(project, "loss")
    assert [r["step"] for r in loss] == ["0", "1", "2", "10", "11"]
    assert [r["value"] for r in loss] == ["0.5", "nan", "inf", "-inf", "1.0"]
    seconds = [float(r["seconds"]) for r in loss]  # since the run started, not epoch floats
    assert seconds == sorted(seconds) and 0 <= seconds[0] < 600
    acc = metrics_json(project, "acc")["acc"]
    assert acc["step"] == [0, 1, 7] and acc["value"] == [0.25, 1.0, 0.5]
    summary = metrics_json(project)
    assert summary["loss"]["count"] == 5
    assert summary["loss"]["last"] == 1.0 and summary["loss"]["last_step"] == 11
    assert summary["loss"]["min"] == "-inf" and summary["loss"]["max"] == "inf"
    assert summary["flag"]["last"] == 1.0
    text = vestige("metrics", "@last", cwd=project).stdout.decode()
    assert "loss" in text and "-inf" in text


def test_wrong_types_name_the_key(project: Path) -> None:
    out = run_script(project, """
        import vestige
        for kwargs in ({"loss": "0.5"}, {"acc": None}, {"x": [1.0]}, {"step": "a", "y": 1.0}):
            try:
                vestige.log(**kwargs)
            except TypeError as e:
                print(e)
        try:
            vestige.log([1, 2])
        except TypeError as e:
            print(e)
        vestige.log(ok=1.0)
    """)  # fmt: skip
    lines = out.splitlines()
    assert "metric 'loss' must be a number" in lines[0] and "got str" in lines[0]
    assert "metric 'acc' must be a number" in lines[1] and "got NoneType" in lines[1]
    assert "metric 'x'" in lines[2] and "got list" in lines[2]
    assert "step must be a number" in lines[3]
    assert "must be a dict of metrics" in lines[4]
    assert list(metrics_json(project)) == ["ok"]


def test_fast_path_records_what_the_slow_path_would(project: Path) -> None:
    """vestige.log's fast paths (float and int values, a known key, an int step) write the
    same record (key id, step, time, value) as the general conversion, `_number`, gives:
    checked on the buffer itself (the flush lock held, so no flush empties it meanwhile),
    then on what `vestige metrics` reads back after the seal."""
    pytest.importorskip("numpy")
    out = run_script(project, """
        import json, math, struct
        import numpy as np
        import vestige
        from vestige.api import log as L

        vestige.log(first=0.0)  # opens the journal: key id 0
        values = [0.5, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324,
                  0, 3, -7, 2**53 + 1, True, False, np.float64(0.1), np.float32(0.1),
                  np.int64(5), np.bool_(True), np.array(2.5), np.array([1.5])]
        rows = []
        with L._flush_lock:  # the flusher thread cannot empty the buffer while we read it
            for i, v in enumerate(values):
                for step in (None, 7, 2.5, np.int32(3)):
                    key = f"v{i}"
                    before = len(L._buf)
                    t0 = L._time()
                    vestige.log(step=step, **{key: v})
                    kid, s, t, got = L._buf[before:]
                    assert len(L._buf) == before + 4
                    want = L._number(key, v)
                    same = struct.pack("<d", got) == struct.pack("<d", want)
                    assert same or (math.isnan(got) and math.isnan(want)), (v, got, want)
                    assert kid == L._keys[key][0] == L._names.index(key)
                    assert t0 <= t <= L._time()
                    rows.append([key, s])
        print(json.dumps(rows))
    """)  # fmt: skip
    rows = json.loads(out)
    # steps: auto 0, then 7, 2.5, 3 (explicit ones reset the count), for every key
    assert [s for _, s in rows[:4]] == [0, 7, 2.5, 3]
    assert all([s for _, s in rows[i : i + 4]] == [0, 7, 2.5, 3] for i in range(0, len(rows), 4))
    got = metrics_json(project, *(f"v{i}" for i in (0, 1, 2, 7, 10, 11, 13, 14, 17, 18)))
    assert got["v0"]["value"] == [0.5] * 4 and got["v0"]["step"] == [0, 7, 2.5, 3]
    assert got["v1"]["value"] == [-0.0] * 4
    assert all(math.copysign(1, v) == -1 for v in got["v1"]["value"])
    assert got["v2"]["value"] == ["nan"] * 4
    assert got["v7"]["value"] == [0.0] * 4
    assert got["v10"]["value"] == [float(2**53)] * 4  # rounded to float64, as documented
    assert got["v11"]["value"] == [1.0] * 4  # True
    assert got["v13"]["value"] == [0.1] * 4  # numpy.float64
    assert got["v14"]["value"] == [struct.unpack("f", struct.pack("f", 0.1))[0]] * 4
    assert got["v17"]["value"] == [2.5] * 4 and got["v18"]["value"] == [1.5] * 4


def test_errors_leave_no_partial_record(project: Path) -> None:
    """A call that raises writes nothing for the bad key and keeps the journal aligned:
    the same TypeErrors as ever, and an int step or value too large for a float raises
    OverflowError without a stray double in the buffer."""
    pytest.importorskip("numpy")
    out = run_script(project, """
        import numpy as np
        import vestige
        from vestige.api import log as L

        vestige.log(loss=1.0)
        bad = [
            ({"loss": "0.5"}, {}), ({"loss": None}, {}), ({"loss": [1.0]}, {}),
            ({"loss": np.array([1.0, 2.0])}, {}), ({"loss": 1.0}, {"step": "a"}),
            ({"loss": 1.0}, {"step": float("nan")}), ({1: 2.0}, {}),
            ({"loss": 2**1100}, {}), ({"loss": 1.0}, {"step": 2**1100}),
        ]
        with L._flush_lock:
            for metrics, extra in bad:
                before = len(L._buf)
                step = extra.pop("step", None)
                try:
                    vestige.log({**metrics, **extra}, step=step)
                except (TypeError, OverflowError) as e:
                    print(type(e).__name__, e)
                else:
                    print("no error", metrics, extra)
                assert len(L._buf) == before, (metrics, extra)
        vestige.log(loss=2.0)
        vestige.log(loss=3.0, step=10)
        vestige.log(loss=4.0)
    """)  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("TypeError") and "metric 'loss' must be a number" in lines[0]
    assert "got str" in lines[0] and "got NoneType" in lines[1] and "got list" in lines[2]
    assert "got ndarray" in lines[3]
    assert "step must be a number" in lines[4] and "step must be a number" in lines[5]
    assert lines[6].startswith("TypeError") and "metric names must be str" in lines[6]
    assert lines[7].startswith("OverflowError") and lines[8].startswith("OverflowError")
    loss = metrics_json(project, "loss")["loss"]
    assert loss["step"] == [0, 1, 10, 11] and loss["value"] == [1.0, 2.0, 3.0, 4.0]


def test_forked_child_continues_its_parents_steps(project: Path) -> None:
    """Automatic steps are counted per process, a forked child going on from its
    parent's counts at the fork (docs/api.md), with key ids of its own journal."""
    run_script(project, """
        import os
        import vestige

        for i in range(3):
            vestige.log(loss=float(i), acc=0.5)
        vestige.log(acc=0.5)
        pid = os.fork()
        if pid == 0:
            vestige.log(fresh=1.0)       # the child's key id 0
            vestige.log(acc=9.0, loss=9.0)
            os._exit(0)
        os.waitpid(pid, 0)
        vestige.log(loss=5.0)
    """)  # fmt: skip
    got = metrics_json(project, "loss", "acc", "fresh")
    assert sorted(zip(got["loss"]["step"], got["loss"]["value"], strict=True)) == [
        (0, 0.0), (1, 1.0), (2, 2.0), (3, 5.0), (3, 9.0)
    ]  # fmt: skip
    assert sorted(got["acc"]["step"]) == [0, 1, 2, 3, 4]
    assert got["fresh"]["step"] == [0] and got["fresh"]["value"] == [1.0]


def test_threads_and_processes_journal_safely(project: Path) -> None:
    run_script(project, """
        import multiprocessing as mp, threading
        import vestige

        def work(name, n=20000):
            for i in range(n):
                vestige.log(step=i, **{name: float(i)})
                vestige.log(shared=1.0)

        if __name__ == "__main__":
            threads = [threading.Thread(target=work, args=(f"t{k}",)) for k in range(4)]
            for t in threads: t.start()
            for t in threads: t.join()
            for method in ("fork", "spawn"):
                ctx = mp.get_context(method)
                procs = [ctx.Process(target=work, args=(f"{method}{k}", 5000)) for k in range(2)]
                for p in procs: p.start()
                for p in procs: p.join()
                assert all(p.exitcode == 0 for p in procs)
            with mp.get_context("fork").Pool(2) as pool:
                pool.starmap(work, [("pool0", 3000), ("pool1", 3000)])
    """)  # fmt: skip
    summary = metrics_json(project)
    for k in range(4):
        assert summary[f"t{k}"]["count"] == 20000
        assert summary[f"t{k}"]["last"] == 19999.0
    for name in ("fork0", "fork1", "spawn0", "spawn1"):
        assert summary[name]["count"] == 5000, name
    assert summary["pool0"]["count"] == 3000 and summary["pool1"]["count"] == 3000
    assert summary["shared"]["count"] == 4 * 20000 + 4 * 5000 + 2 * 3000
    t0 = metrics_json(project, "t0")["t0"]
    assert t0["step"] == list(range(20000)) and t0["value"] == [float(i) for i in range(20000)]


def test_many_points_and_many_keys(project: Path) -> None:
    run_script(project, """
        import vestige
        for i in range(300_000):          # several 65,536-point flushes
            vestige.log(step=i, loss=i * 0.5)
        for k in range(10_000):           # 10,000 distinct keys
            vestige.log(**{f"layer{k}/norm": float(k)})
    """)  # fmt: skip
    summary = metrics_json(project)
    assert len(summary) == 10_001
    assert summary["loss"]["count"] == 300_000 and summary["loss"]["last"] == 149_999.5
    assert summary["layer9999/norm"]["last"] == 9999.0
    run = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
    assert run["metrics"]["points"] == 310_000
    loss = metrics_json(project, "loss")["loss"]
    assert loss["step"][:3] == [0, 1, 2] and len(loss["step"]) == 300_000


def test_sigkill_keeps_the_flushed_prefix(project: Path) -> None:
    (project / "script.py").write_text(textwrap.dedent("""
        import time, vestige
        i = 0
        while True:
            vestige.log(step=i, loss=float(i))
            i += 1
            if i % 1000 == 0:
                print(i, flush=True)
                time.sleep(0.01)
    """))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "script.py"], cwd=project,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    last = 0
    deadline = time.monotonic() + 60
    while last < 20000 and time.monotonic() < deadline:
        last = int(proc.stdout.readline() or 0)
    time.sleep(1.5)  # the flusher writes at least every second
    os.killpg(proc.pid, signal.SIGKILL)  # vestige and the script, at once
    proc.wait()
    # while still unsealed, the live journals are readable; then the next command seals it
    loss = series_csv(project, "loss")
    steps = [int(r["step"]) for r in loss]
    assert len(steps) >= 20000
    assert steps == list(range(len(steps)))  # a prefix, no holes, no torn records
    run = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
    assert run["status"] == "interrupted"
    assert run["metrics"]["keys"]["loss"]["count"] == len(steps)
    assert vestige("fsck", cwd=project).returncode == 0


def test_running_run_shows_live_metrics(project: Path) -> None:
    (project / "script.py").write_text(textwrap.dedent("""
        import sys, time, vestige
        for i in range(5):
            vestige.log(step=i, loss=float(i))
        print("logged", flush=True)
        sys.stdin.readline()
    """))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "vestige", "run", "script.py"], cwd=project,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"logged\n"
    time.sleep(1.5)
    try:
        rows = series_csv(project, "loss")
        assert [r["value"] for r in rows] == ["0.0", "1.0", "2.0", "3.0", "4.0"]
    finally:
        proc.stdin.write(b"\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    assert len(series_csv(project, "loss")) == 5


def test_ls_cols_where_and_reindex(project: Path) -> None:
    for lr, final in ((0.1, "0.5"), (0.01, "0.2"), (0.001, "float('nan')")):
        run_script(project, f"""
            import vestige
            vestige.param(lr={lr})
            vestige.log(loss=0.9)
            vestige.log(loss={final}, acc=0.7)
        """)  # fmt: skip
    where = vestige("ls", "--where", "metrics.loss < 0.3", "--json", cwd=project)
    assert [r["params"]["lr"] for r in json.loads(where.stdout)] == [0.01]
    nan = json.loads(vestige("ls", "--where", "metrics.loss is null", "--json", cwd=project).stdout)
    assert [r["params"]["lr"] for r in nan] == [0.001]
    assert nan[0]["metrics"]["loss"] is None  # NaN has no SQL value; the manifest keeps it
    table = vestige("ls", "--cols", "loss,acc,lr", cwd=project).stdout.decode()
    header = table.splitlines()[0].split()
    assert header[-3:] == ["loss", "acc", "lr"]
    assert "0.2" in table and "0.01" in table
    explicit = vestige("ls", "--cols", "metrics.acc,params.lr", cwd=project).stdout.decode()
    assert explicit.splitlines()[0].split()[-2:] == ["acc", "lr"]
    assert vestige("ls", "--cols", ",", cwd=project).returncode == 2
    bad = vestige("ls", "--cols", "nosuch", cwd=project)
    assert bad.returncode == 2 and b"no listed run has a metric or param" in bad.stderr
    before = vestige("ls", "--json", cwd=project).stdout
    assert vestige("reindex", cwd=project).returncode == 0
    assert vestige("ls", "--json", cwd=project).stdout == before


def test_metrics_cli_bad_input(project: Path) -> None:
    run_script(project, "import vestige\nvestige.log(loss=1.0)\n")
    done = vestige("metrics", "@last", "nope", cwd=project)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "error: run #1 has no metric 'nope' (it has: loss)"
    )  # fmt: skip
    assert vestige("metrics", "99", cwd=project).returncode == 2
    assert vestige("metrics", "@last", "--csv", "--json", cwd=project).returncode == 2
    run_script(project, "print('no metrics')\n")
    out = vestige("metrics", "@last", cwd=project)
    assert out.returncode == 0 and b"logged no metrics" in out.stdout
    both = vestige("metrics", "1", "--csv", cwd=project).stdout.decode().splitlines()
    assert both[0] == "step,seconds,value" and both[1].startswith("0,")


def test_metrics_object_format(tmp_path: Path) -> None:
    """The sealed object reads back exactly, NaN and inf included, one key at a time."""
    from array import array

    from vestige.store.metrics import MetricsObject, Series, encode

    series = [
        Series("b", array("d", [0, 1]), array("d", [1.0, 2.0]), array("d", [math.nan, math.inf])),
        Series("a", array("d", [5]), array("d", [3.0]), array("d", [-0.0])),
    ]
    obj = MetricsObject(io.BytesIO(encode(series)))
    assert obj.keys == ["a", "b"]
    b = obj.series("b")
    assert list(b.steps) == [0, 1] and math.isnan(b.values[0]) and b.values[1] == math.inf
    assert str(obj.series("a").values[0]) == "-0.0"


def on_a_terminal(root: Path, *args: str, columns: int = 60) -> str:
    """The output of `vestige ARGS` whose stdout is a real terminal (a pty) `columns` wide."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    argv = [sys.executable, "-m", "vestige", *args]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:  # until the child's end closes the terminal (EIO on Linux)
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else b""
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # (bold, colours)


def test_a_series_on_a_terminal_is_a_summary_and_a_sparkline(project: Path) -> None:
    """`metrics RUN KEY` on a terminal: a one-line summary, then the series drawn across
    the terminal; piped or with --csv, the same CSV as before."""
    run_script(project, """
        import vestige
        for i in range(200):
            vestige.log(step=i, loss=1.0 / (1 + i), acc=0.5)
    """)  # fmt: skip
    lines = on_a_terminal(project, "metrics", "1", "loss", "acc").splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("loss: 200 points, ") and "last 0.005 at step 199" in lines[0]
    assert "min 0.005, max 1" in lines[0], lines[0]
    bars = lines[1].strip()
    assert len(bars) == 58 and set(bars) <= set("▁▂▃▄▅▆▇█"), lines[1]
    assert bars[0] == "█" and bars[-1] == "▁"  # from its max down to its min
    assert bars == "".join(sorted(bars, reverse=True))  # falling, as the loss did
    assert lines[2].startswith("acc: 200 points, ")
    assert set(lines[3].strip()) == {"▄"}  # a constant: flat, mid-height
    csv_lines = on_a_terminal(project, "metrics", "1", "loss", "--csv").splitlines()
    assert csv_lines[0] == "step,seconds,value" and len(csv_lines) == 201
    assert series_csv(project, "loss", "1")[199]["value"] == repr(1.0 / 200)  # piped: CSV
