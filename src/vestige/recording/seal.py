"""Sealing: turn a live run into objects, a manifest, a ref and index rows, in that order.

The same code seals a run at its normal end and a run found orphaned after vestige was
killed (then as `interrupted`, with what was captured so far). Write order (docs/format.md):
objects, then the manifest object, then the ref, then the index rows, then the live
directory is removed. A crash between any two steps leaves a valid store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from vestige._version import __version__
from vestige.capture.dirs import Dirs
from vestige.capture.events import RunEvents, read_api_events, read_events
from vestige.capture.hydra import run_params
from vestige.capture.params import params_from_argv
from vestige.capture.redact import Redactor
from vestige.capture.trace import Trace, wait_for_exit
from vestige.config import Config
from vestige.fastpath import timing
from vestige.index.db import Index
from vestige.recording.files import RunFiles, figure_label, link_figures, own_dir
from vestige.recording.overlap import overlapping
from vestige.records import Factory, FileRecord, Record, Run
from vestige.store.live import STAGED, LiveRun
from vestige.store.local import Store
from vestige.store.statcache import StatCache

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class SealInput(Record):
    """What the runner (or crash recovery) knows when the command has ended."""

    _frozen = False

    status: str
    exit_code: int | None
    signal: str | None
    ended: float
    resources: dict[str, Any] = Factory(dict)
    warnings: list[str] = Factory(list)

    @classmethod
    def from_result(cls, result: dict[str, Any], warnings: list[str]) -> SealInput:
        """From the live directory's result.json (as the runner writes it): a log cut
        short (a full disk) is said in the warnings."""
        cut = result.get("cut") or {}
        if isinstance(cut, dict) and cut:
            warnings = [*warnings, *(f"{name} log {why}: the rest was shown, not kept"
                                     for name, why in sorted(cut.items()))]  # fmt: skip
        return cls(
            status=str(result.get("status") or "interrupted"),
            exit_code=result.get("exit_code"),
            signal=result.get("signal"),
            ended=float(result.get("ended") or time.time()),
            resources=result.get("resources") or {},
            warnings=warnings,
        )


def collapse_cr(data: bytes) -> bytes:
    """Keep only the last state of each `\\r`-updated line (progress bars), as a terminal shows."""
    if b"\r" not in data:
        return data
    lines = data.split(b"\n")
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            parts = [p for p in line.split(b"\r") if p]
            line = parts[-1] if parts else b""
        out.append(line)
    return b"\n".join(out)


class Sealer:
    """Builds and writes the manifest of one live run."""

    def __init__(
        self,
        store: Store,
        index: Index | None,
        cache: StatCache,
        config: Config,
        redactor: Redactor,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`environ` is the run's environment as it started (the runner passes its own);
        None takes the copy in run.json, redacted when the run started (recovery):
        redaction leaves its own markers alone, so redacting it again changes nothing."""
        self.store = store
        self.index = index
        self.cache = cache
        self.config = config
        self.redactor = redactor
        self.environ = environ
        #: () -> absolute paths that concurrent runs of the same sweep were seen writing: an
        #: output this run's processes were not seen writing is theirs, not this run's.
        #: Asked once the tree is scanned (a sibling's journal names a file before the file
        #: exists, so asking after the scan misses none the scan shows)
        self.foreign_of: Callable[[], set[str]] | None = None
        #: the tree's folders when the caller has them refreshed already (else loaded)
        self.dirs: Dirs | None = None
        self.info: dict[str, Any] | None = None  # run.json as its writer last wrote it
        self.recovering = False  # sealed after vestige died: bound the scan by its end
        self.trace_pid = 0  # the traced command's pid, to wait for the end of its trace
        #: files vestige staged in the live directory, stored scrubbed: their (hash, size)
        self._staged: dict[str, tuple[str, int]] = {}

    def seal(self, live: LiveRun, result: SealInput, code: dict[str, Any] | None) -> Run:
        """Build the manifest and commit it: manifest object, ref, index rows, live removed."""
        run = self.build(live, result, code)
        return commit_batch(self.store, self.index, [(run, live)], barrier=False)[0]

    def build(self, live: LiveRun, result: SealInput, code: dict[str, Any] | None) -> Run:
        """Everything of sealing up to the manifest: the run's objects are stored and its
        record built, but nothing names them yet (`seal`, or `commit_batch` for many)."""
        info = self.info if self.info is not None else live.info
        root = Path(info["root"])
        since = int(info.get("since_ns") or float(info["started"]) * 1e9)
        dirs = self.dirs or Dirs.load(str(self.store.path), str(root), self.config.scan_ignore)
        files = RunFiles(self.store, self.cache, self.config, live.path, root, since, dirs)
        events = read_events(live.path)
        warnings = list(result.warnings)
        traced = self._trace(info, root, events, warnings)
        # A run sealed by recovery, maybe days later: what changed after it ended is not its.
        until = int((result.ended + 2.0) * 1e9) if self.recovering else None
        dirs.refresh()
        changed = dirs.changed_files(since, until)
        dirs.save()
        if info.get("full_scan"):  # writes before anything watched them (inprocess.py)
            from vestige.capture.scan import Scanner

            every = Scanner(root, self.config.scan_ignore).scan()
            changed.update((rel, st) for rel, st in every.items() if st.ctime_ns >= since
                           and (until is None or st.ctime_ns <= until))  # fmt: skip
        others = overlapping(self.store, self.index, live.id, str(root),
                             float(info["started"]), result.ended)  # fmt: skip
        foreign = others.writes | (self.foreign_of() if self.foreign_of is not None else set())
        timing("seal: events read, tree scanned")
        if traced is not None and traced.complete:
            # every process of the command was traced to its end: a file none of them wrote
            # is another program's (an editor, a run beside it), not this run's
            changed = {rel: st for rel, st in changed.items() if str(root / rel) in events.writes}
        found = files.outputs(changed, events, foreign, warnings, ambiguous=bool(others.ids))
        outputs = link_figures(found, root, events)
        inputs = files.inputs(events, warnings, traced)
        code = dict(code or {})
        code["modules"], code["imported"] = files.modules(root, events)
        code["imported_hashes"] = files.imported_hashes(code)
        timing("seal: outputs, inputs, modules")
        api = read_api_events(live.path)
        params = self._params(info, events, api, outputs, warnings)
        # Every channel's secrets are learnt before anything is written, so that a value
        # found in one (a token printed to stdout) is redacted in all (cells, notes, env).
        logs = self._learn(live.path, api, info, warnings)
        timing("seal: secrets learnt, logs scrubbed")
        artefacts = self._artefacts(live.path, api, events, warnings)
        metrics = self._metrics(live.path, warnings)
        notebook = self._notebook(live.path, root, warnings)
        tags = _unique(t for e in api if e.get("e") == "tag" for t in e.get("tags") or ())
        notes = [{"t": e.get("t"), "text": self.redactor.scrub_text(str(e.get("text", "")))}
                 for e in api if e.get("e") == "note"]  # fmt: skip
        timing("seal: api events, artefacts, metrics")
        stdout = self._stream(logs["stdout"])
        stderr = self._stream(logs["stderr"])
        timing("seal: logs stored")
        env_hash = self._env(info, events)
        timing("seal: environment")
        shift = float(info.get("clock_shift") or 0)  # VESTIGE_NOW: a simulated clock
        run = Run(
            id=live.id,
            seq=int(info["seq"]),
            status=result.status,
            command=self.redactor.scrub_argv(list(info["command"])),  # (again: all it knows)
            cwd=info.get("cwd", ""),
            root=str(root),
            started=float(info["started"]) + shift,
            host=info.get("host", ""),
            pid=info.get("child_pid"),
            ended=result.ended + shift,
            duration=round(result.ended - float(info["started"]), 6),
            exit_code=result.exit_code,
            signal=result.signal,
            code=code,
            params=params,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            stdout=stdout,
            stderr=stderr,
            env=env_hash,
            resources=result.resources,
            warnings=tuple(warnings),
            parent=info.get("parent"),
            rerun_of=info.get("rerun_of"),
            artefacts=tuple(artefacts),
            metrics=metrics,
            tags=tuple(tags),
            notebook=notebook,
            notes=tuple(notes),
            vestige_version=__version__,
        )
        self.cache.flush()
        return Run.from_dict(self.redactor.scrub_manifest(run.to_dict()))

    # -- the rest of the run -------------------------------------------------------------

    def _trace(
        self, info: dict[str, Any], root: Path, events: RunEvents, warnings: list[str]
    ) -> Trace | None:
        """What the tracer saw (capture/trace.py), merged into `events`: every program's
        writes, renames and removals; its reads are returned for the inputs to judge."""
        if info.get("trace_off"):
            warnings.append(str(info["trace_off"]))
        path = info.get("trace")
        if not isinstance(path, str):
            return None
        from vestige.capture.trace import read

        if self.trace_pid:  # wait (a little) for strace to write the command's end
            wait_for_exit(path, self.trace_pid)
        cwd = str(root / str(info.get("cwd") or "."))
        traced = read(path, cwd, skip=(str(self.store.path), own_dir()))
        command_pid = self.trace_pid or int(info.get("child_pid") or 0)
        traced.complete = bool(command_pid) and command_pid in traced.exited
        events.writes.update(traced.writes)
        events.removed.update(traced.removed)
        for read_path in traced.reads:
            events.reads.setdefault(read_path, None)
        timing("seal: trace read")
        return traced

    def _params(
        self, info: dict[str, Any], events: RunEvents, api: list[dict[str, Any]],
        outputs: list[FileRecord], warnings: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        """The composed config of the Hydra job the run wrote (capture/hydra.py), then
        argparse/click values of the main process (else argv's key=value and --key v), then
        `vestige.param` calls, then `--param` overrides: later sources win."""
        runner_pid = int(info.get("runner_pid") or 0)
        params = run_params(Path(info["root"]), [o.path for o in outputs], warnings)
        parsed = events.main_params(runner_pid)  # (not Hydra's own argparse: the shim)
        if not parsed and info.get("argv_params", True):
            parsed = params_from_argv(list(info["command"]))
        params.update(parsed)
        for event in api:
            if event.get("e") == "param" and isinstance(event.get("values"), dict):
                params.update(event["values"])
        params.update(info.get("params_override") or {})
        scrubbed = self.redactor.scrub_value(params)
        return scrubbed if isinstance(scrubbed, dict) else {}

    def _artefacts(
        self, live: Path, api: list[dict[str, Any]], events: RunEvents, warnings: list[str]
    ) -> list[dict[str, Any]]:
        """`vestige.keep` records (their bytes are already objects), and the figures the shim
        rendered at show() or exit (stored now), in time order."""
        out: list[dict[str, Any]] = []
        for e in api:
            if e.get("e") != "keep" or not isinstance(e.get("files"), list):
                continue
            e["files"] = [self._unstage(live, f) for f in e["files"]]
            files = [f for f in e["files"] if isinstance(f, dict) and _present(self.store, f)]
            if len(files) != len(e["files"]):
                warnings.append(f"artefact {e.get('name')!r}: some of its objects are missing")
            record = {k: e[k] for k in ("name", "kind", "source", "note", "t", "pid") if k in e}
            record["files"] = files
            out.append(record)
        seen: dict[str, int] = {}
        for fig in sorted(events.figures, key=lambda e: _number(e.get("t"))):
            figure = fig.get("figure") if isinstance(fig.get("figure"), dict) else {}
            name = _figure_name(figure)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:  # the same figure kept again, changed: figure-1-2, -3...
                name = f"{name}-{seen[name]}"
            files = []
            for fname in fig["files"]:
                path = live / "figures" / str(fname)
                if "/" in str(fname) or not path.is_file():
                    continue
                digest, size = self.store.objects.put_file(path)
                files.append({"path": f"{name}{path.suffix}", "hash": digest, "size": size})
            if files:
                out.append({"name": name, "kind": "figure", "auto": fig.get("why"),
                            "figure": figure_label(figure), "files": files,
                            "t": fig.get("t"), "pid": fig.get("pid")})  # fmt: skip
        out.sort(key=lambda a: a.get("t") or 0.0)
        return out

    def _unstage(self, live: Path, f: Any) -> Any:
        """A file vestige made itself and staged in the live directory (the executed
        notebook: api.calls.keep_staged) stored now, through the run's whole redaction
        pass; any other file record as it is (the program's own bytes, stored already)."""
        staged = f.get("staged") if isinstance(f, dict) else None
        if not isinstance(staged, str) or "/" not in staged or ".." in staged:
            return f
        try:
            data = (live / staged).read_bytes()
        except OSError as e:  # (said by the artefact's missing file)
            return {k: v for k, v in f.items() if k != "staged"} | {
                "hash": None, "kept": False, "note": f"not kept: {e.strerror or e}"}  # fmt: skip
        clean = self.redactor.scrub_notebook(data) if staged.endswith(".ipynb") else (
            self.redactor.scrub_bytes(data))  # fmt: skip
        digest = self.store.objects.put_bytes(clean)
        self._staged[staged] = (digest, len(clean))
        return {k: v for k, v in f.items() if k != "staged"} | {"hash": digest,
                                                                 "size": len(clean)}  # fmt: skip

    def _notebook(self, live: Path, root: Path, warnings: list[str]) -> dict[str, Any] | None:
        """The cells a notebook or IPython session recorded (vestige/recording/cells.py):
        one object, summarised in the manifest's `notebook`; None for other runs."""
        if not (live / "cells").is_dir():
            return None
        from vestige.recording.cells import seal_cells

        try:
            summary = seal_cells(live, root, self.store.objects, self.redactor.scrub_text)
        except (OSError, ValueError) as e:
            warnings.append(f"notebook cells could not be sealed ({e})")
            return None
        executed = (summary or {}).get("executed")
        if isinstance(executed, dict) and executed.get("staged") in self._staged:
            staged = executed.pop("staged")
            executed["hash"], executed["size"] = self._staged[staged]
        return summary

    def _metrics(self, live: Path, warnings: list[str]) -> dict[str, Any] | None:
        from vestige.store import metrics

        try:
            return metrics.seal(live, self.store.objects, self.redactor.scrub_text)
        except (OSError, ValueError) as e:
            warnings.append(f"metrics could not be sealed ({e})")
            return None

    def _learn(
        self, live: Path, api: list[dict[str, Any]], info: dict[str, Any], warnings: list[str]
    ) -> dict[str, tuple[bytes, bytes, frozenset[str]] | None]:
        """Learn the secrets of every channel the seal writes: the command, the in-code
        API's params, notes, tags, artefact names, metric names, the cells' texts, the files
        vestige staged (the executed notebook), then the logs, scrubbed here and held:
        {stream: (raw, scrubbed, known secrets when scrubbed)}. A channel that cannot be
        read to learn from is a warning, never the run's failure: it is still scrubbed
        with what the others taught when it is written (or, unreadable, not written)."""
        try:
            self._learn_small(live, api, info)
        except (OSError, ValueError) as e:
            warnings.append(f"some of the run's records could not be read for secrets ({e})")
        logs: dict[str, tuple[bytes, bytes, frozenset[str]] | None] = {}
        for stream in ("stdout", "stderr"):
            try:
                raw = collapse_cr((live / stream).read_bytes())
            except FileNotFoundError:
                logs[stream] = None
                continue
            scrubbed = self.redactor.scrub_bytes(raw) if raw else b""
            logs[stream] = (raw, scrubbed, self.redactor.snapshot())
        return logs

    def _learn_small(self, live: Path, api: list[dict[str, Any]], info: dict[str, Any]) -> None:
        """Learn from the command, the API's journals, metric names, cells, staged files."""
        redactor = self.redactor
        redactor.scrub_argv(list(info.get("command") or ()))
        for e in api:
            redactor.learn({k: v for k, v in e.items() if k not in ("t", "pid", "files")})
            for f in e.get("files") or ():
                if isinstance(f, dict) and isinstance(f.get("path"), str):
                    redactor.learn(f["path"])
        from vestige.store import metrics
        from vestige.store.cells import read_journals

        for name in metrics.key_names(live):
            redactor.learn(name)
        cells = read_journals(live)
        for c in (cells or {}).get("cells") or ():
            redactor.learn([c.get(k) for k in ("source", "stdout", "stderr", "error", "outputs")])
        for path in sorted((live / STAGED).glob("*")) if (live / STAGED).is_dir() else ():
            redactor.learn(path.read_bytes())

    def _stream(self, log: tuple[bytes, bytes, frozenset[str]] | None) -> dict[str, Any] | None:
        """Store a log scrubbed by `_learn`, with the secrets learnt after it replaced too."""
        if log is None:
            return None
        raw, scrubbed, known = log
        clean = self.redactor.rescrub(scrubbed, raw, known) if raw else b""
        digest = self.store.objects.put_bytes(clean)
        return {"hash": digest, "size": len(clean), "lines": clean.count(b"\n")}

    def _env(self, info: dict[str, Any], events: RunEvents) -> str | None:
        """Store the environment record of the run; return its hash."""
        from vestige.capture.env import capture_environment

        python = _python_of(events, int(info.get("runner_pid") or 0))
        environ = self.environ if self.environ is not None else info.get("environ") or {}
        import json

        key = (json.dumps(python, sort_keys=True, default=str), _variables(environ),
               self.config.capture_gpu, str(self.store.path), self.redactor.snapshot())  # fmt: skip
        cached = _ENV_CACHE.get(key)
        if cached is not None and self.store.objects.exists(cached):
            return cached  # the same interpreter and variables in this process: same record
        env = capture_environment(python, environ, self.redactor, gpu=self.config.capture_gpu)
        digest = self.store.objects.put_json(env)
        _ENV_CACHE[key] = digest
        return digest


def _variables(environ: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """The variables an environment record depends on; a sweep's worker passes the same
    (never changed) dict for each child, so its set is made once (os.environ may change)."""
    known = _VARIABLES.get(id(environ))
    if known is not None and known[0] is environ and environ is not os.environ:
        return known[1]
    variables = frozenset(kv for kv in environ.items() if not kv[0].startswith("VESTIGE_"))
    if len(_VARIABLES) > 16:
        _VARIABLES.clear()
    _VARIABLES[id(environ)] = (environ, variables)  # (holding it: its id is not reused)
    return variables


_VARIABLES: dict[int, tuple[Mapping[str, str], frozenset[tuple[str, str]]]] = {}
#: Environment records computed in this process, by what they were computed from: a
#: sweep's children (and repeated in-process runs) share one instead of re-listing the
#: installed packages each time.
_ENV_CACHE: dict[tuple[Any, ...], str] = {}


def commit_batch(
    store: Store, index: Index | None, built: list[tuple[Run, LiveRun]], barrier: bool = True
) -> list[Run]:
    """Commit built runs in the write order of docs/format.md: every manifest object, every
    ref (the runs are sealed), every index row in one transaction, then the live
    directories. With `barrier` (a sweep's batches, sweep/local.py) one durability barrier
    follows the manifests and one the refs, instead of an fsync per file and folder (one
    run: `Sealer.seal`). A crash at any instant leaves a run without its ref, sealed again
    from its live directory by recovery, or one with its ref, only tidied."""
    from vestige.store.annotations import Annotations
    from vestige.store.layout import sync_filesystem

    digests = [store.objects.put_json(run.to_dict(), sync=not barrier) for run, _live in built]
    if barrier:
        sync_filesystem(str(store.path))
    timing("seal: manifest stored")
    for (run, _live), digest in zip(built, digests, strict=True):
        store.refs.set(run.id, digest, sync=not barrier)
    if barrier:
        sync_filesystem(str(store.path))
    timing("seal: ref written")
    sealed = [Run.from_dict(run.to_dict(), manifest=digest)
              for (run, _live), digest in zip(built, digests, strict=True)]  # fmt: skip
    if index is not None:
        annotations = Annotations(store)
        index.record.runs([annotations.apply(run) for run in sealed])
    timing("seal: index rows")
    for _run, live in built:
        live.remove()
    return sealed


def _python_of(events: RunEvents, runner_pid: int) -> dict[str, Any] | None:
    hello = events.root_process(runner_pid)
    if not hello:
        return None
    return {
        "version": hello.get("version"),
        "implementation": hello.get("impl"),
        "executable": hello.get("exe"),
        "prefix": hello.get("prefix"),
        "base_prefix": hello.get("base_prefix"),
        "path": hello.get("path") or [],
    }


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else 0.0


def _unique(items: Any) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if isinstance(item, str):
            seen.setdefault(item, None)
    return list(seen)


def _present(store: Store, f: dict[str, Any]) -> bool:
    digest = f.get("hash")
    return digest is None or (isinstance(digest, str) and store.objects.exists(digest))


def _figure_name(figure: dict[str, Any]) -> str:
    """An artefact name for a figure the shim kept: its label, else its title (suptitle
    or first axes title), else figure-<num> (pyplot gives every new figure after a
    close the number 1: names tell them apart in diff, affected and the UI)."""
    import re

    for text in (figure.get("label"), figure.get("title")):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text or "").strip()).strip("-.")
        if slug:
            return slug[:80]
    num = figure.get("num")
    return f"figure-{num}" if num is not None else "figure"
