"""In-process runs (`import vestige` in a plain `python script.py`) tell the truth about how
the process ended, and a process can make run after run without running out of file
descriptors or memory. Real subprocesses, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import vestige

#: (script name, its body after `vestige.start()`, the process's return code as
#: subprocess reports it, the run's status and exit code)
EXITS = [
    ("end", "print('done')", 0, "ok", 0),
    ("raise3", "raise SystemExit(3)", 3, "failed", 3),
    ("raise_main", "def main():\n    return 4\nraise SystemExit(main())", 4, "failed", 4),
    ("raise_deep", "def f(n):\n    if n == 0:\n        raise SystemExit(7)\n    f(n - 1)\nf(300)",
     7, "failed", 7),
    ("raise0", "raise SystemExit(0)", 0, "ok", 0),
    ("raise_bare", "raise SystemExit", 0, "ok", 0),
    ("raise_msg", "raise SystemExit('bye')", 1, "failed", 1),
    ("exit3", "sys.exit(3)", 3, "failed", 3),
    ("exit_msg", "sys.exit('bye')", 1, "failed", 1),
    ("exit0", "sys.exit(0)", 0, "ok", 0),
    ("exit_none", "sys.exit(None)", 0, "ok", 0),
    ("exit_builtin", "exit(5)", 5, "failed", 5),
    ("caught", "try:\n    sys.exit(4)\nexcept SystemExit:\n    pass\nprint('went on')",
     0, "ok", 0),
    ("thread", "import threading\nt = threading.Thread(target=sys.exit, args=(6,))\n"
     "t.start()\nt.join()", 0, "ok", 0),
    ("exception", "raise RuntimeError('boom')", 1, "failed", 1),
    ("interrupt", "raise KeyboardInterrupt", -signal.SIGINT, "interrupted", 130),
]  # fmt: skip


def script(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.write_text(textwrap.dedent(body))
    return path


def python(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python ARGS...` in root, without `vestige run`."""
    return subprocess.run(
        [sys.executable, *args], cwd=root, capture_output=True, timeout=300,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip


def runs(root: Path) -> list[dict]:
    done = vestige("ls", "--json", cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def show(root: Path, ref: str) -> dict:
    done = vestige("show", ref, "--json", cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


# -- item 7: the run is sealed with the process's real exit status ------------------------------


def test_a_plain_script_run_has_the_process_exit_status(project: Path) -> None:
    """Every way a script ends: the run's status and exit code are the process's own, and
    the process's return code is what it would be without vestige."""
    wrong = []
    for name, body, returncode, _status, _code in EXITS:
        script(project, f"{name}.py", "import sys\nimport vestige\nvestige.start()\n" + body + "\n")
        done = python(project, f"{name}.py")
        if done.returncode != returncode:
            wrong.append(f"{name}: returncode {done.returncode}, not {returncode}")
        assert b"vestige: warning" not in done.stderr, (name, done.stderr.decode())
    by_script = {r["command"][1]: r for r in runs(project)}
    for name, _body, _returncode, status, code in EXITS:
        run = by_script[f"{name}.py"]
        if (run["status"], run["exit_code"]) != (status, code):
            wrong.append(f"{name}: {run['status']} {run['exit_code']}, not {status} {code}")
    assert not wrong, "\n".join(wrong)
    interrupted = show(project, str(by_script["interrupt.py"]["seq"]))
    assert interrupted["signal"] == "SIGINT"


def test_an_unseen_exit_code_is_not_claimed_ok(project: Path) -> None:
    """`raise SystemExit(n)` under `python -m` and `python -c` leaves no trace vestige can
    read: the run says failed, exit code unknown, and why; the process exits n."""
    (project / "pkg").mkdir()
    script(project, "pkg/__main__.py", "import vestige\nvestige.start()\nraise SystemExit(3)\n")
    done = python(project, "-m", "pkg")
    assert done.returncode == 3 and b"vestige: warning" not in done.stderr, done.stderr
    run = show(project, "@last")
    assert (run["status"], run["exit_code"]) == ("failed", None)
    assert any("SystemExit" in w and "could not see" in w for w in run["warnings"])

    done = python(project, "-c", "import vestige; vestige.start(); raise SystemExit(0)")
    assert done.returncode == 0
    run = show(project, "@last")
    assert (run["status"], run["exit_code"]) == ("failed", None)

    done = python(project, "-c", "import sys, vestige; vestige.start(); sys.exit(9)")
    assert done.returncode == 9
    run = show(project, "@last")
    assert (run["status"], run["exit_code"], run["warnings"]) == ("failed", 9, [])


def test_os_exit_leaves_a_run_the_next_command_seals_interrupted(project: Path) -> None:
    """`os._exit` runs no exit handler (documented): the run is sealed by the next vestige
    command, as interrupted, with what was captured."""
    script(project, "quick.py", """
        import os
        import vestige
        vestige.start()
        vestige.log(loss=1.0)
        vestige.flush()
        os._exit(4)
    """)  # fmt: skip
    assert python(project, "quick.py").returncode == 4
    (run,) = runs(project)
    assert run["status"] == "interrupted" and run["metrics"] == {"loss": 1.0}


# -- item 9: run after run in one process: no fd or memory growth ---------------------------------

LOOP = """
    import gc
    import json
    import os
    import sys

    import vestige

    def fds():
        return len(os.listdir("/proc/self/fd"))

    counts = []
    for i in range(int(sys.argv[1])):
        with vestige.run():
            vestige.param(i=i)
            vestige.log(loss=1.0 / (i + 1))
            print("run", i)
        if i in (0, 20):
            gc.collect()
            counts.append((fds(), len(gc.get_objects())))
    gc.collect()
    counts.append((fds(), len(gc.get_objects())))
    print(json.dumps(counts), file=sys.stderr)
"""


def test_a_thousand_runs_in_one_process_keep_fds_and_memory(project: Path) -> None:
    """The docs' own loop of `with vestige.run():`: each run gives back its pipes and
    index connection, and keeps nothing alive (it used to leak 4 fds a run, and every
    run's objects through its exit handler)."""
    n = 1000
    script(project, "loop.py", LOOP)
    done = python(project, "loop.py", str(n))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = done.stderr.decode().splitlines()
    assert not [ln for ln in lines if "vestige: warning" in ln], lines[:5]
    (first_fds, _), (warm_fds, warm_objects), (last_fds, last_objects) = json.loads(lines[-1])
    assert first_fds == warm_fds == last_fds, (first_fds, warm_fds, last_fds)
    assert last_objects - warm_objects < 500, (warm_objects, last_objects)
    listed = runs(project)
    assert len(listed) == n and {r["status"] for r in listed} == {"ok"}
    assert sorted(r["params"]["i"] for r in listed) == list(range(n))
    out = vestige("log", str(listed[0]["seq"]), cwd=project).stdout
    assert out == f"run {n - 1}\n".encode()


def test_out_of_fds_the_warning_says_so_and_a_later_start_records(project: Path) -> None:
    """A process that ran out of file descriptors: vestige says that is why it is not
    recording (not "format is unreadable"), the program goes on, and once fds are free
    again the next `with vestige.run():` records."""
    script(project, "starved.py", """
        import os
        import resource
        import vestige

        with vestige.run():  # (the store exists: its format file is the first thing read)
            vestige.log(loss=0.0)  # (and vestige.log is imported)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        vestige.start()
        vestige.log(loss=1.0)
        print("still here")
        for fd in held:
            os.close(fd)
        with vestige.run():
            vestige.param(after=True)
    """)  # fmt: skip
    done = python(project, "starved.py")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"still here\n"
    err = done.stderr.decode()
    assert "vestige: warning: not recording" in err and "file descriptors" in err, err
    assert "unreadable" not in err, err
    listed = runs(project)
    assert [r["params"].get("after") for r in listed] == [True, None]
    assert {r["status"] for r in listed} == {"ok"}
