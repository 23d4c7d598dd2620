"""What a run captures while its command runs, off the start-up path: git's answers, the
redacted command and environment, the index row with the run's number, the code snapshot.

The runner starts it in a thread once the command is spawned (a sweep's worker runs it
in its own thread: it has nothing else to do meanwhile); the seal waits for it. Nothing
here may fail the user's run: an error is kept and the seal says so.
"""

from __future__ import annotations

from vestige.fastpath import proc_start, timing
from vestige.recording.process import describe

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Protocol

    from vestige.capture.dirs import Dirs
    from vestige.capture.gitprobe import GitProbe
    from vestige.capture.redact import Redactor
    from vestige.repo import Repo
    from vestige.store.live import LiveRun
    from vestige.store.statcache import StatCache

    class Prepared(Protocol):
        """What the capture reads of its launch (recording/runner.py's Launch, which
        holds the capture: the runner imports this module, not the other way)."""

        options: Any  # RunOptions: reuse, repo, params, rerun_of
        environ: Mapping[str, str]
        store: str
        root: str
        live: str
        run_id: str
        started: float
        child: int | None
        spawned: Any  # a lock held until `child` is known, or None
        info: dict[str, Any]
        since_ns: int
        ignore: tuple[str, ...]


class BackgroundCapture:
    """The capture of one launch, run while its command runs. It reads what the launch
    prepared (store, root, live directory, when it started, run.json's `info`) and adds
    to `info` what it learns (the redacted command, the run's number)."""

    def __init__(self, launch: Prepared) -> None:
        self.launch = launch
        self.probe: GitProbe | None = None
        self.dirs: Dirs | None = None
        self.repo: Repo | None = None
        self.redactor: Redactor | None = None
        self.cache: StatCache | None = None
        self.code: dict[str, Any] | None = None
        self.warnings: list[str] = []
        #: lines for the user's terminal, printed once the run is sealed (not mid-output)
        self.tell: list[str] = []
        self.error: BaseException | None = None

    def run(self, argv: list[str], done: Any = None) -> None:
        """Capture what can be captured while the command runs; `done` (a lock) is
        released when it ran in a thread of its own."""
        try:
            self._capture(argv)
        except BaseException as e:
            self.error = e
        finally:
            if done is not None:
                done.release()

    def redact(self, argv: list[str]) -> None:
        """The redactor of this environment (a sweep worker's previous one if the same),
        and the command, environment and params as recorded: into the launch's info."""
        from vestige.capture.redact import Redactor
        from vestige.store.local import read_secret_key

        launch = self.launch
        reuse = launch.options.reuse
        known = reuse.get("redacted") if reuse is not None else None
        if known is not None and known[0] == launch.environ:
            redactor, environ = known[1], known[2]  # a sweep worker's previous child: same env
        else:
            redactor = Redactor(read_secret_key(launch.store))
            environ = redactor.redact_env(launch.environ)  # first: it learns the secrets
            if reuse is not None:
                reuse["redacted"] = (dict(launch.environ), redactor, environ)
        self.redactor = redactor
        launch.info.update(command=redactor.scrub_argv(argv), environ=environ,
                           params_override=redactor.scrub_value(launch.options.params))  # fmt: skip

    def _capture(self, argv: list[str]) -> None:
        from vestige.capture.gitprobe import GitProbe

        launch = self.launch
        reuse = launch.options.reuse
        self.dirs = self._dirs()
        timing("directories refreshed")
        memo = reuse.setdefault("git", {}) if reuse is not None else None
        self.probe = GitProbe(launch.root, launch.store, memo, self.dirs)  # runs meanwhile
        timing("git started")
        from pathlib import Path

        from vestige.store.live import LiveRun

        timing("imported")
        if self.redactor is None:
            self.redact(argv)
        live = LiveRun(Path(launch.live))
        if reuse is None:  # (a sweep's child writes run.json once, with all of it, below)
            live.write_info(launch.info)
        timing("redacted, live info saved")
        repo = self._open_repo()
        timing("repo open")
        self._begin_row(repo)
        timing("index row")
        if reuse is None:
            live.write_info(launch.info)
        self.cache = self._stat_cache(repo)
        self._snapshot(repo, live)
        if reuse is not None:
            # A sweep's child: its seq and code in one write, not two files. Each file a
            # sweep creates and deletes costs more as the churn grows on some filesystems
            # (ext4 without a journal skips recently freed inodes).
            if self.code is not None:
                launch.info["code"] = self.code
            live.write_info(launch.info)
        timing("snapshot stored")
        import vestige.recording.seal  # noqa: F401  (here, off the path after the command ends)

    def _dirs(self) -> Dirs:
        """The tree's directories, refreshed (a sweep worker keeps its own between
        children); the first run in a tree walks it, and says so when that was long."""
        from vestige.capture.dirs import Dirs

        launch = self.launch
        reuse = launch.options.reuse
        dirs = reuse.get("dirs") if reuse is not None else None
        if dirs is None:
            dirs = Dirs.load(launch.store, launch.root, launch.ignore)
            if reuse is not None:
                reuse["dirs"] = dirs
        dirs.refresh()
        if dirs.slow():
            dirs.save()  # (the next run does not walk again, even if this one dies)
            self.tell.append(slow_walk_note(dirs))
        return dirs

    def _open_repo(self) -> Repo:
        """The sweep worker's open repo, else the store opened now (runs a killed vestige
        left behind are sealed by the next one, this one)."""
        repo = self.launch.options.repo
        if repo is None:
            from vestige.recording.recover import recover
            from vestige.repo import Repo

            repo = Repo.open_at(self.launch.store, self.launch.root)
            recover(repo)
        self.repo = repo
        return repo

    def _begin_row(self, repo: Repo) -> None:
        """The `running` row of the index, which gives the run its number (once the command
        started: its pid is in the row)."""
        from vestige.records import Run

        launch = self.launch
        if launch.spawned is not None:
            with launch.spawned:
                pass
        if launch.child is None:
            raise RuntimeError("the command did not start")
        info = launch.info
        run = Run(
            id=launch.run_id, seq=0, status="running", command=info["command"],
            cwd=info["cwd"], root=launch.root,
            started=launch.started + float(info.get("clock_shift") or 0), host=info["host"],
            pid=launch.child, parent=info["parent"], rerun_of=launch.options.rerun_of,
        )  # fmt: skip
        seq = repo.index.record.begin(run)
        # (with its start time: recovery tells the command, still running, from a reused pid)
        start = proc_start(launch.child) if launch.child else None
        info.update(seq=seq, child_pid=launch.child, child_start=start)

    def _stat_cache(self, repo: Repo) -> StatCache:
        """The stat cache of the tree: a sweep worker's previous one, else loaded now."""
        from vestige.store.statcache import StatCache

        reuse = self.launch.options.reuse
        cache = reuse.get("statcache") if reuse is not None else None
        if cache is None or cache.conn is not repo.index.conn:
            cache = StatCache(repo.index.conn)
            cache.preload(self.launch.root)
            if reuse is not None:
                reuse["statcache"] = cache
        return cache

    def _snapshot(self, repo: Repo, live: LiveRun) -> None:
        """Store the code snapshot (a sweep's child reuses the last one while the tree and
        git's answers are unchanged and settled)."""
        from pathlib import Path

        from vestige.capture.code import snapshot

        launch = self.launch
        assert self.cache is not None and self.probe is not None
        reuse, key = launch.options.reuse, self.probe.key
        memo = reuse.setdefault("snapshots", {}) if reuse is not None and key else None
        try:
            if memo is not None and key in memo:  # a sweep's child: the tree as the last one
                self.code = dict(memo[key])
            else:
                snap = snapshot(
                    Path(launch.root), repo.store.objects, self.cache,
                    repo.config.keep_code_max_size, self.probe, launch.since_ns, launch.ignore,
                    made=repo.index.files.written_at,  # earlier runs' outputs are not code
                )  # fmt: skip
                self.code = snap.to_dict()
                self.warnings.extend(snap.warnings)
                if memo is not None and snap.exact and not snap.warnings and self.probe.settled():
                    memo.clear()  # one tree at a time: the latest
                    memo[key] = dict(self.code)
            if reuse is None:
                live.save_code(self.code)
        except Exception as e:
            self.warnings.append(f"code snapshot failed ({describe(e)})")


def slow_walk_note(dirs: Dirs) -> str:
    """One line for a first look at a large tree: what it cost, where the entries are, and
    how to leave folders out (later runs only stat the folders: this is paid once)."""
    largest = ", ".join(f"{rel} ({n:,})" for rel, n in dirs.largest())
    return (f"the first look at this project listed {dirs.listed:,} entries in "
            f"{dirs.seconds:.1f} s (largest folders: {largest}); later runs do not list them "
            "again, and scan.ignore in .vestige/config.toml leaves out folders that hold "
            "no outputs")  # fmt: skip
