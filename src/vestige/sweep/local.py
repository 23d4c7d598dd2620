"""The local executor: up to N children at once, as processes of this machine.

Each child is launched from a worker thread of the sweep's own process (a `Launch` with
no terminal: no signal handlers, no ptys, its output to its log and the board), so the
interpreter, vestige's imports, an index connection per worker and the environment record
are shared instead of paid again per child, and a committer thread writes the finished
children's manifests, refs and index rows in batches (6.8x -> ~1.6x a bare loop for
no-op children, docs/benchmarks.md). Each child is still a complete, ordinary run.

A child's stdout and stderr go straight to its live log files. While the sweep runs, one
live table (rich) shows each child's state, elapsed time and last output line (read from
the tail of its log at each refresh) when stdout is a terminal; otherwise one line per
child as it ends. Each child's full output is kept by its own run (`vestige log`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class LocalExecutor:
    """Runs jobs in `jobs` threads, each launching one child run at a time (in-process)."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, jobs)
        self.procs: dict[int, int] = {}  # job index -> pid of its running command
        self.launches: dict[int, Any] = {}  # job index -> its Launch, while it runs
        self.lives: dict[int, str] = {}  # job index -> live directory, while it runs
        self.ended: list[tuple[float, set[str]]] = []  # (end, paths it was seen writing)
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.committer: Committer | None = None
        #: set when the last worker has ended. The main thread waits on this, not on
        #: Thread.join: on 3.11 a KeyboardInterrupt inside join() can leave a thread that
        #: still runs reported as ended, and the parent was sealed before its children.
        self.finished = threading.Event()
        self.workers = 0
        #: (index, run id) as soon as a child's run exists: the parent's journal
        self.on_run: Callable[[int, str], None] | None = None

    def interrupt(self, forward: bool = True) -> None:
        """Ctrl-C (or --fail-fast): the children still running end because of it, as a
        single run's command does (a non-zero exit is `interrupted`, process.classify);
        `forward` passes SIGINT on (not when the terminal sent it to them already)."""
        with self.lock:
            procs = list(self.procs.values())
            for launch in self.launches.values():
                if launch.received is None:
                    launch.received = signal.SIGINT
        if not forward:
            return
        for pid in procs:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def run(
        self,
        jobs: list[dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None],
        on_start: Callable[[int], None],
        stop: threading.Event,
        fail_fast: bool,
    ) -> None:
        queue = list(reversed(jobs))
        if jobs:
            env = jobs[0].get("env", {})
            self.committer = Committer(env.get("VESTIGE_DIR", ""), jobs[0].get("root", ""))

        def worker() -> None:
            repo: list[Any] = [None]  # this worker's index connection, opened at first use
            reuse: dict[str, Any] = {}  # what its children share (runner.RunOptions.reuse)
            try:
                while not stop.is_set():
                    with self.lock:
                        if not queue:
                            return
                        job = queue.pop()
                    on_start(job["index"])
                    result = self._launch(job, repo, reuse, stop)
                    with self.lock:
                        self.procs.pop(job["index"], None)
                        self.launches.pop(job["index"], None)
                    on_done(result)
                    if fail_fast and result["exit_code"] not in (0, None):
                        stop.set()
                        self.interrupt()
            finally:
                if repo[0] is not None:
                    repo[0].close()
                with self.lock:
                    self.workers -= 1
                    if self.workers == 0:
                        self.finished.set()

        self.threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.jobs)]
        self.workers = len(self.threads)
        for t in self.threads:
            t.start()
        from vestige.recording.process import heartbeat_interval

        every, beat = heartbeat_interval(), time.monotonic()
        while not self.finished.wait(min(0.2, every)):  # short: Ctrl-C reaches this thread
            if time.monotonic() - beat >= every:  # the running children's heartbeats
                beat = time.monotonic()
                self._touch_running()
        self._close_committer()

    def _touch_running(self) -> None:
        """Touch each running child's run.json (process.heartbeat): if the sweep dies with
        them, recovery dates their end by it."""
        with self.lock:
            lives = list(self.lives.values())
        for live in lives:
            try:
                os.utime(os.path.join(live, "run.json"))
            except OSError:
                pass

    def tail(self, index: int) -> str:
        """The last line a running child printed (read from its live logs), or ''."""
        from vestige.recording.process import tail_line

        with self.lock:
            live = self.lives.get(index)
        return tail_line(live, prefer_stderr=False) if live else ""

    def _launch(
        self, job: dict[str, Any], repo: list[Any], reuse: dict[str, Any], stop: threading.Event
    ) -> dict[str, Any]:
        """One child as a `Launch` in this thread; the same result as child.run_child."""
        from vestige.capture.params import parse_param_option
        from vestige.recording.process import describe
        from vestige.recording.runner import Launch, RunOptions
        from vestige.repo import Repo

        index = job["index"]
        env = dict(job.get("env", {}))
        store, root = env.get("VESTIGE_DIR", ""), job.get("root", "")
        params = dict(parse_param_option(f"{k}={v}") for k, v in job.get("params", {}).items())
        options = RunOptions(params=params, cwd=job["cwd"], store=store, root=root,
                             trace=job.get("trace"))  # fmt: skip
        merged = reuse.get("environ")  # the same for every child of this worker
        if merged is None or merged[0] != env:
            merged = reuse["environ"] = (env, {**os.environ, **env})
        options.environ = merged[1]
        options.parent = env.get("VESTIGE_RUN_ID")
        options.terminal = False
        options.reuse = reuse

        def prepared(live: str) -> None:
            """Known to the siblings' seals before the command starts (not once it has
            started: this thread may wait for the GIL while its command already writes)."""
            with self.lock:
                self.lives[index] = live
                self.launches[index] = launch
            if self.on_run is not None:  # (its run.json holds its command and scan already)
                self.on_run(index, launch.run_id)

        def spawned(pid: int) -> None:
            with self.lock:
                self.procs[index] = pid
            if stop.is_set():  # stopped while it was starting
                try:
                    os.kill(pid, signal.SIGINT)
                except OSError:
                    pass

        def foreign() -> set[str]:
            """What the siblings running alongside this child were seen writing."""
            from vestige.capture.events import read_events

            with self.lock:
                lives = [d for i, d in self.lives.items() if i != index]
                ended = [p for end, p in self.ended if end >= launch.started]
            paths: set[str] = set().union(*ended) if ended else set()
            for d in lives:
                paths |= read_events(Path(d)).writes
            return paths

        options.on_live = prepared
        options.on_spawn = spawned
        options.foreign_writes = foreign
        if self.committer is not None:
            committer = self.committer
            options.commit = lambda run, live: committer.put(run, live, repo[0])
        try:
            if repo[0] is None:
                repo[0] = Repo.open_at(store, root)
            options.repo = repo[0]
            launch = Launch(list(job["argv"]), options)
            code = launch.execute()
            self._ended(index, launch, repo[0])
        except Exception as e:  # the command could not start or be recorded
            from vestige.errors import VestigeError

            with self.lock:
                self.lives.pop(index, None)
            code = e.exit_code if isinstance(e, VestigeError) else 127
            return {"index": index, "exit_code": code, "run_id": None,
                    "tail": describe(e), "output": ""}  # fmt: skip
        sealed = launch.sealed
        return {"index": index, "exit_code": code, "run_id": getattr(launch, "run_id", None),
                "tail": launch.tail, "output": "",
                "status": sealed.status if sealed is not None else None,
                "recorded_exit": sealed.exit_code if sealed is not None else code,
                "seq": sealed.seq if sealed is not None else None}  # fmt: skip

    def _ended(self, index: int, launch: Any, repo: Any) -> None:
        """Remember what a finished child was seen writing, for its siblings' seals."""
        import time as _time

        from vestige.capture.events import read_events

        paths: set[str] = set()
        try:
            run = launch.sealed
            if run is not None:
                paths = {str(Path(run.root) / f.path) if not f.path.startswith("/") else f.path
                         for f in run.outputs if f.confirmed}  # fmt: skip
            else:
                paths = read_events(Path(launch.live)).writes
        except Exception:
            pass
        with self.lock:
            self.lives.pop(index, None)
            self.ended.append((_time.time(), paths))

    def join(self, timeout: float) -> None:
        """After an interrupt: wait for the workers to see their children end."""
        try:
            if self.threads:
                self.finished.wait(timeout)
        finally:  # (a second Ctrl-C stops the waiting, not the commits of those that ended)
            self._close_committer()

    def _close_committer(self) -> None:
        """Commit what the workers handed over; the parent is sealed after its children."""
        if self.committer is not None:
            self.committer.close()


class Committer:
    """Commits the children's runs in batches, in a thread of its own (seal.commit_batch).

    A worker hands over a child once its objects are stored and its record is built, and
    starts the next child at once. The committer takes what has arrived within WAIT
    seconds of the first (at most MOST runs) and commits it with two durability barriers
    and one index transaction, instead of four fsyncs and a transaction per child. Until
    then the child's live directory (with result.json) stays: if the sweep dies, the next
    vestige command seals it from there, with the status it ended with.
    """

    WAIT = 0.05
    MOST = 64

    def __init__(self, store: str, root: str) -> None:
        self.store, self.root = store, root
        self.items: list[tuple[Any, Any]] = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="vestige-commit", daemon=True)
        self.thread.start()

    def put(self, run: Any, live: Any, repo: Any) -> None:
        """Queue a built run; once closed, commit it here with the caller's index."""
        with self.cond:
            if not self.closed:
                self.items.append((run, live))
                self.cond.notify()
                return
        from vestige.recording.seal import commit_batch

        commit_batch(repo.store, repo.index, [(run, live)])

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join()

    def _loop(self) -> None:
        from vestige.recording.seal import commit_batch
        from vestige.repo import Repo

        repo = None
        try:
            while True:
                with self.cond:
                    while not self.items and not self.closed:
                        self.cond.wait()
                    if not self.items:
                        return
                    first = time.monotonic()
                    while len(self.items) < self.MOST and not self.closed:
                        left = self.WAIT - (time.monotonic() - first)
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    batch, self.items = self.items, []
                try:
                    if repo is None:
                        repo = Repo.open_at(self.store, self.root)
                    commit_batch(repo.store, repo.index, batch)
                except Exception as e:  # their live directories stay: recovery seals them
                    from vestige.fastpath import warn
                    from vestige.recording.process import describe

                    ids = ", ".join(f"#{run.seq}" for run, _live in batch)
                    warn(f"runs {ids} could not be sealed now ({describe(e)}); the next "
                         "vestige command will seal them")  # fmt: skip
        finally:
            if repo is not None:
                repo.close()


class Board:
    """What the user sees while the sweep runs: a live rich table, or plain lines."""

    def __init__(self, labels: list[str], live: bool) -> None:
        self.labels = labels
        self.state = ["queued"] * len(labels)
        self.started: list[float | None] = [None] * len(labels)
        self.ended: list[float | None] = [None] * len(labels)
        self.tail = [""] * len(labels)
        self.runs: list[str] = [""] * len(labels)
        self.lock = threading.Lock()
        self.finished = 0  # children no longer queued or running
        self.tail_of: Callable[[int], str] | None = None  # a running child's last line
        self.live = None
        if live:
            from rich.live import Live

            self.live = Live(get_renderable=self._table, refresh_per_second=4, transient=False)

    def __enter__(self) -> Board:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(*exc)

    def start(self, i: int) -> None:
        with self.lock:
            self.state[i] = "running"
            self.started[i] = time.monotonic()
        self._refresh()

    def mark(self, i: int, state: str) -> None:
        """A new state without a line of its own (not-started children after Ctrl-C)."""
        with self.lock:
            self.state[i] = state
        self._refresh()

    def done(self, i: int, state: str, run: str = "", note: str = "", last: str = "") -> None:
        """A child ended: its state, run and `last` output line; `note` joins its line."""
        with self.lock:
            if self.state[i] in ("queued", "running"):
                self.finished += 1
            self.state[i] = state
            self.ended[i] = time.monotonic()
            self.runs[i] = run
            if last or note:
                self.tail[i] = last or note
            n = self.finished
        if self.live is None:
            took = self._elapsed(i)
            line = f"[{n}/{len(self.labels)}] {state:11} {self.labels[i]}  {run}  {took}"
            self.say(line + (f"  {note}" if note else ""))
        self._refresh()

    _said = threading.Lock()

    @staticmethod
    def say(text: str) -> None:
        """A line on stdout, whole (workers end children at once); a closed pipe
        (`| head`) ends the printing, not the sweep."""
        import sys

        with Board._said:
            try:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):
                pass

    def _elapsed(self, i: int) -> str:
        start = self.started[i]
        if start is None:
            return ""
        end = self.ended[i] or time.monotonic()
        return f"{end - start:.1f}s"

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.refresh()

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        styles = {"ok": "green", "failed": "red", "interrupted": "yellow", "running": "cyan",
                  "skipped": "dim"}  # fmt: skip
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("child", "state", "took", "run", "last line"):
            table.add_column(name, no_wrap=True, overflow="ellipsis",
                             max_width=60 if name == "last line" else None)  # fmt: skip
        with self.lock:
            for i, label in enumerate(self.labels):
                st = self.state[i]
                if st == "running" and self.tail_of is not None:
                    self.tail[i] = self.tail_of(i) or self.tail[i]
                table.add_row(Text(label), Text(st, style=styles.get(st, "")),
                              self._elapsed(i), self.runs[i], Text(self.tail[i]))  # fmt: skip
        return table
