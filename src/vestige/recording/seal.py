"""Sealing: turn a live run into objects, a manifest, a ref and index rows, in that order.

The same code seals a run at its normal end and a run found orphaned after vestige was
killed (then as `interrupted`, with what was captured so far). Write order (docs/format.md):
objects, then the manifest object, then the ref, then the index rows, then the live
directory is removed. A crash between any two steps leaves a valid store.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Mapping
from pathlib import Path

from vestige._version import __version__
from vestige.capture.events import RunEvents, read_api_events, read_events
from vestige.capture.params import params_from_argv
from vestige.capture.paths import is_environment_path
from vestige.capture.redact import Redactor, is_secret_file
from vestige.capture.scan import Scanner, changed
from vestige.config import Config
from vestige.fastpath import timing
from vestige.index.db import Index
from vestige.records import Factory, FileRecord, Record, Run
from vestige.store.hashing import hash_file
from vestige.store.live import LiveRun
from vestige.store.local import Store
from vestige.store.stat import Stat
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
        """From the live directory's result.json (as the runner writes it)."""
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
        #: the scan taken before the command, when the caller still has it (else read back)
        self.before: dict[str, Stat] | None = None
        self.info: dict[str, Any] | None = None  # run.json as its writer last wrote it

    def seal(self, live: LiveRun, result: SealInput, code: dict[str, Any] | None) -> Run:
        """Build the manifest and commit it: manifest object, ref, index rows, live removed."""
        run = self.build(live, result, code)
        return commit_batch(self.store, self.index, [(run, live)], barrier=False)[0]

    def build(self, live: LiveRun, result: SealInput, code: dict[str, Any] | None) -> Run:
        """Everything of sealing up to the manifest: the run's objects are stored and its
        record built, but nothing names them yet (`seal`, or `commit_batch` for many)."""
        info = self.info if self.info is not None else live.info
        self.live_path = live.path
        root = Path(info["root"])
        before = self.before if self.before is not None else live.load_before()
        events = read_events(live.path)
        warnings = list(result.warnings)
        after = Scanner(root, self.config.scan_ignore).scan()
        if before is None:  # no scan from before the command: only what it was seen writing
            seen = set(events.writes)
            before = {rel: st for rel, st in after.items() if str(root / rel) not in seen}
            warnings.append("the scan before the command was not recorded: its outputs are "
                            "the files its Python processes were seen writing")  # fmt: skip
        foreign = self.foreign_of() if self.foreign_of is not None else set()
        timing("seal: events read, tree scanned")
        found = self._outputs(root, before, after, events, foreign, warnings)
        outputs = _link_figures(found, root, events)
        inputs = self._inputs(root, before, events, {o.path for o in outputs}, warnings)
        code = dict(code or {})
        code["modules"], code["imported"] = self._modules(root, events)
        code["imported_hashes"] = self._imported_hashes(code)
        timing("seal: outputs, inputs, modules")
        api = read_api_events(live.path)
        params = self._params(info, events, api)
        artefacts = self._artefacts(live.path, api, events, warnings)
        metrics = self._metrics(live.path, warnings)
        notebook = self._notebook(live.path, root, warnings)
        tags = _unique(t for e in api if e.get("e") == "tag" for t in e.get("tags") or ())
        notes = [{"t": e.get("t"), "text": self.redactor.scrub_text(str(e.get("text", "")))}
                 for e in api if e.get("e") == "note"]  # fmt: skip
        timing("seal: api events, artefacts, metrics")
        stdout = self._stream(live.path / "stdout")
        stderr = self._stream(live.path / "stderr")
        timing("seal: logs stored")
        env_hash = self._env(info, events)
        timing("seal: environment")
        shift = float(info.get("clock_shift") or 0)  # VESTIGE_NOW: a simulated clock
        run = Run(
            id=live.id,
            seq=int(info["seq"]),
            status=result.status,
            command=list(info["command"]),  # scrubbed when the run started
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
        return run

    # -- parts ----------------------------------------------------------------------------

    def _keep(self, full: Path, st: Stat, limit: int | None) -> tuple[str, bool]:
        """Hash (through the stat cache) and keep a file's bytes unless over `limit`."""
        digest = self.cache.get(str(full), st)
        if limit is not None and st.size > limit:
            if digest is None:
                digest = hash_file(full, st.size)
            kept = self.store.objects.exists(digest)
        else:
            digest, _ = self.store.objects.put_file(full, digest)
            kept = True
        self.cache.put(str(full), st, digest)
        return digest, kept

    def _outputs(
        self,
        root: Path,
        before: dict[str, Stat],
        after: dict[str, Stat],
        events: RunEvents,
        foreign: set[str],
        warnings: list[str],
    ) -> list[FileRecord]:
        modified, _deleted = changed(before, after)
        written = set(events.writes)
        out: list[FileRecord] = []
        for rel in modified:
            full = root / rel
            if str(full) not in written and str(full) in foreign:
                continue  # seen by the scan, but a concurrent sibling's own write
            record = self._output(full, rel, after[rel], str(full) in written, warnings)
            if record is not None:
                out.append(record)
        for path in sorted(written):
            full = Path(path)
            if full == root or root in full.parents:
                continue  # in the tree: the scan saw it (or it was ignored on purpose)
            if is_environment_path(path):
                continue
            try:
                st = Stat.of(os.stat(full))
            except OSError:
                continue  # a temp file removed before the end
            if stat_mod.S_ISREG(st.mode):
                record = self._output(full, str(full), st, True, warnings)
                if record is not None:
                    out.append(record)
        return out

    def _output(
        self, full: Path, name: str, st: Stat, confirmed: bool, warnings: list[str]
    ) -> FileRecord | None:
        secret = bool(is_secret_file(name))
        limit = 0 if secret or not self.config.keep_outputs else None
        try:
            digest, kept = self._keep(full, st, limit)
        except OSError as e:
            warnings.append(f"output {name}: could not be read ({e.strerror})")
            return None
        kept = kept and not secret
        note = "not kept: the name looks like a credentials file" if secret else None
        return FileRecord(name, digest, st.size, kept, st.mode & 0o777, confirmed, note)

    def _inputs(
        self,
        root: Path,
        before: dict[str, Stat],
        events: RunEvents,
        outputs: set[str],
        warnings: list[str],
    ) -> list[FileRecord]:
        out: list[FileRecord] = []
        for path, st_open in sorted(events.reads.items()):
            full = Path(path)
            in_tree = full == root or root in full.parents
            if not in_tree and is_environment_path(path):
                continue
            name = full.relative_to(root).as_posix() if in_tree else path
            if in_tree and name not in before:
                continue  # made by the run itself, then read back: not an input
            try:
                now = Stat.of(os.stat(full))
            except OSError:
                continue
            if not stat_mod.S_ISREG(now.mode):
                continue
            opened = st_open if st_open is not None else None
            same = opened is None or (opened[0], opened[1]) == (now.size, now.mtime_ns)
            secret = bool(is_secret_file(name))
            limit = 0 if secret else self.config.keep_inputs_max_size
            note = "not kept: the name looks like a credentials file" if secret else None
            if same:
                try:
                    digest, kept = self._keep(full, now, limit)
                except OSError as e:
                    warnings.append(f"input {name}: could not be read ({e.strerror})")
                    continue
                if not kept and not secret:
                    note = f"not kept: larger than keep.inputs_max_size ({limit} bytes)"
                kept = kept and not secret
                out.append(FileRecord(name, digest, now.size, kept, now.mode & 0o777, True, note))
                continue
            out.append(self._changed_input(full, name, before, events, opened, limit, secret))
        return out

    def _changed_input(
        self,
        full: Path,
        name: str,
        before: dict[str, Stat],
        events: RunEvents,
        opened: tuple[int, ...] | None,
        limit: int,
        secret: bool,
    ) -> FileRecord:
        """An input the run changed after reading it: its bytes as they were read, from the
        shim's copy made just before the rewrite, else from the stat cache's hash."""
        copy = events.pre.get(str(full))
        if copy is not None and (opened is None or copy[0] is None or copy[0][:2] == opened[:2]):
            copy_path = self.live_path / "pre" / copy[1]
            try:
                size = copy_path.stat().st_size
                if size <= limit and not secret:
                    digest, _ = self.store.objects.put_file(copy_path)
                    kept = True
                else:
                    digest, kept = hash_file(copy_path, size), False
                note = "changed by the run; recorded as it was when read"
                return FileRecord(name, digest, size, kept, None, True, note)
            except OSError:
                pass
        pre = before.get(name)
        digest = self.cache.get(str(full), pre) if pre is not None else None
        kept = digest is not None and not secret and self.store.objects.exists(digest)
        size = pre.size if pre is not None else int(opened[0]) if opened else 0
        note = (
            "changed by the run; hash is of the bytes before the run"
            if digest
            else "changed by the run before it could be hashed"
        )
        return FileRecord(name, digest, size, kept, None, True, note)

    def _imported_hashes(self, code: dict[str, Any]) -> dict[str, str]:
        """{path: hash} of the project files the run imported, from its snapshot (so the
        index can answer `affected --code` and `debt` without reading trees)."""
        imported = code.get("imported") or []
        if not imported or not code.get("tree"):
            return {}
        entries = _TREE_CACHE.get(code["tree"])
        if entries is None:
            from vestige.store.tree import read_tree

            try:
                entries = {e.path: e.hash for e in read_tree(self.store.objects, code["tree"])}
            except Exception:
                return {}
            if len(_TREE_CACHE) > 64:
                _TREE_CACHE.clear()
            _TREE_CACHE[code["tree"]] = entries
        return {p: entries[p] for p in imported if p in entries}

    def _modules(self, root: Path, events: RunEvents) -> tuple[list[dict[str, Any]], list[str]]:
        """Project modules imported from outside the tree (kept), and those inside (listed)."""
        outside: list[dict[str, Any]] = []
        inside: list[str] = []
        own = _own_dir()  # vestige itself is not the run's code
        for path in sorted(events.modules):
            if path.startswith(own):
                continue
            full = Path(path)
            if full == root or root in full.parents:
                inside.append(full.relative_to(root).as_posix())
                continue
            try:
                st = Stat.of(os.stat(full))
                digest, kept = self._keep(full, st, self.config.keep_code_max_size)
            except OSError:
                continue
            outside.append({"path": path, "hash": digest, "size": st.size, "kept": kept})
        return outside, inside

    def _params(
        self, info: dict[str, Any], events: RunEvents, api: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """argparse/click values of the main process (else argv's key=value and --key v),
        then `vestige.param` calls, then `--param` overrides: later sources win."""
        runner_pid = int(info.get("runner_pid") or 0)
        params: dict[str, Any] = events.main_params(runner_pid)
        if not params and info.get("argv_params", True):
            params = params_from_argv(list(info["command"]))
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
                            "figure": _figure_label(figure), "files": files,
                            "t": fig.get("t"), "pid": fig.get("pid")})  # fmt: skip
        out.sort(key=lambda a: a.get("t") or 0.0)
        return out

    def _notebook(self, live: Path, root: Path, warnings: list[str]) -> dict[str, Any] | None:
        """The cells a notebook or IPython session recorded (vestige/recording/cells.py):
        one object, summarised in the manifest's `notebook`; None for other runs."""
        if not (live / "cells").is_dir():
            return None
        from vestige.recording.cells import seal_cells

        try:
            return seal_cells(live, root, self.store.objects, self.redactor.scrub_text)
        except (OSError, ValueError) as e:
            warnings.append(f"notebook cells could not be sealed ({e})")
            return None

    def _metrics(self, live: Path, warnings: list[str]) -> dict[str, Any] | None:
        from vestige.store import metrics

        try:
            return metrics.seal(live, self.store.objects)
        except (OSError, ValueError) as e:
            warnings.append(f"metrics could not be sealed ({e})")
            return None

    def _stream(self, path: Path) -> dict[str, Any] | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        clean = self.redactor.scrub_bytes(collapse_cr(data)) if data else b""
        digest = self.store.objects.put_bytes(clean)
        return {"hash": digest, "size": len(clean), "lines": clean.count(b"\n")}

    def _env(self, info: dict[str, Any], events: RunEvents) -> str | None:
        """Store the environment record of the run; return its hash."""
        from vestige.capture.env import capture_environment

        python = _python_of(events, int(info.get("runner_pid") or 0))
        environ = self.environ if self.environ is not None else info.get("environ") or {}
        import json

        key = (json.dumps(python, sort_keys=True, default=str), _variables(environ),
               self.config.capture_gpu, str(self.store.path))  # fmt: skip
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
#: {path: hash} of tree objects read in this process (objects never change): a sweep's
#: children share one snapshot.
_TREE_CACHE: dict[str, dict[str, str]] = {}


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
        index.record_many([annotations.apply(run) for run in sealed])
    timing("seal: index rows")
    for _run, live in built:
        live.remove()
    return sealed


def _own_dir(cache: list[str] = []) -> str:  # noqa: B006 (the cache)
    """vestige's own folder, resolved once per process (a sweep seals many runs)."""
    if not cache:
        cache.append(str(Path(__file__).resolve().parent) + os.sep)
    return cache[0]


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


def _figure_label(figure: dict[str, Any]) -> str:
    """'figure 1 "loss curve"' from the shim's {num, label, title}."""
    num = figure.get("num")
    text = figure.get("label") or figure.get("title") or ""
    label = f"figure {num}" if num is not None else "figure"
    return f'{label} "{text}"' if text else label


def _figure_name(figure: dict[str, Any]) -> str:
    """An artefact name for a figure the shim kept: its label, else figure-<num>."""
    import re

    label = str(figure.get("label") or "").strip()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")
    if slug:
        return slug
    num = figure.get("num")
    return f"figure-{num}" if num is not None else "figure"


def _link_figures(outputs: list[FileRecord], root: Path, events: RunEvents) -> list[FileRecord]:
    """Mark outputs that a savefig wrote with the figure they came from."""
    if not events.savefigs:
        return outputs
    saved: dict[str, str] = {}
    for e in events.savefigs:
        path = e.get("path")
        if isinstance(path, str):
            figure = e.get("figure") if isinstance(e.get("figure"), dict) else {}
            saved[path] = _figure_label(figure)
    out = []
    for f in outputs:
        full = f.path if f.path.startswith("/") else str(root / f.path)
        label = saved.get(full)
        out.append(f.replace(figure=label) if label else f)
    return out
