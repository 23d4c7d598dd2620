"""Read the event journals the shim (`vestige/shim/_vestige_shim.py`) writes during a run.

Every Python process of a run appends JSON lines to ``<live>/events/<pid>.jsonl``:
``hello`` (process start), ``open`` (``mode`` "r" with ``st`` = [size, mtime_ns, ino, dev]
or null, or "w"), ``rename``, ``remove``, ``spawn``, ``params``, ``modules`` and ``exit``.
A process killed mid-write leaves a truncated last line; such lines (and any other line
that is not a JSON object) are skipped.

Journals are visited in process start order (the ``t`` of their first hello; pid, then
name, for journals without one), lines in file order. A process that ``exec``s another
Python program keeps its pid, so one journal may hold several hellos: an ``exit`` belongs to
the latest hello of its pid in that journal.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from vestige.records import Factory, Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from typing import Any

    Event = dict[str, Any]
    Stat = tuple[int, ...]


class RunEvents(Record):
    """Everything the Python processes of one run reported."""

    _frozen = False

    #: hello events (pid, ppid, t, exe, version, argv, cwd, ...) in start order, each with
    #: ``exited`` (an exit event was seen) and, when argv changed while it ran (``-m``),
    #: ``exit_argv``.
    processes: list[Event] = Factory(list)
    #: path -> stat of the FIRST read seen (None: the file could not be stat'ed then).
    reads: dict[str, Stat | None] = Factory(dict)
    #: paths opened with write intent, plus rename destinations.
    writes: set[str] = Factory(set)
    #: paths removed with os.remove / os.unlink.
    removed: set[str] = Factory(set)
    #: spawn events: pid, exe, argv.
    spawns: list[Event] = Factory(list)
    #: params events (pid, source, caller, values, and command for click), journal order.
    params: list[Event] = Factory(list)
    #: source files of the modules the processes ran that are not stdlib/site-packages.
    modules: set[str] = Factory(set)
    #: rename events (pid, src, dst), journal order.
    renames: list[Event] = Factory(list)
    #: path -> (stat, copy file name under live/pre/) of the first copy the shim made of a
    #: file just before a process that had read it opened it for writing.
    pre: dict[str, tuple[Stat | None, str]] = Factory(dict)
    #: savefig events (pid, t, path or None, format, figure {num, label, title}).
    savefigs: list[Event] = Factory(list)
    #: figures the shim rendered (pid, t, why, figure, files under live/figures/).
    figures: list[Event] = Factory(list)

    def root_process(self, runner_pid: int) -> Event | None:
        """The hello of the process the runner started (its ppid is the runner), else the
        earliest hello; None when no process reported."""
        for proc in self.processes:
            if proc.get("ppid") == runner_pid or proc.get("pid") == runner_pid:
                return proc  # (the pid itself for a run of the recording process)
        if not self.processes:
            return None
        return min(self.processes, key=lambda p: _number(p.get("t")))

    def main_params(self, runner_pid: int) -> dict[str, Any]:
        """The run's parameters: the merged values of the root process's params events
        called from ``__main__``; else its first params event; else the first params event
        of any process; else {}."""
        root = self.root_process(runner_pid)
        if root is not None:
            own = [p for p in self.params if p.get("pid") == root.get("pid")]
            merged: dict[str, Any] = {}
            for event in own:
                if event.get("caller") == "__main__":
                    merged.update(_values(event))
            if merged or any(e.get("caller") == "__main__" for e in own):
                return merged
            if own:
                return dict(_values(own[0]))
        if self.params:
            return dict(_values(self.params[0]))
        return {}


def read_events(live_dir: Path) -> RunEvents:
    """Parse every ``live_dir/events/*.jsonl`` into a RunEvents (missing dir: empty)."""

    journals: list[tuple[float, int, str, list[Event]]] = []
    events_dir = Path(live_dir) / "events"
    try:
        names = os.listdir(events_dir)
    except OSError:
        names = []
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        lines = _read_journal(events_dir / name)
        first_t = math.inf
        for event in lines:
            if event.get("e") == "hello":
                first_t = _number(event.get("t"))
                break
        stem = name[: -len(".jsonl")]
        pid = int(stem) if stem.isdigit() else 1 << 62
        journals.append((first_t, pid, name, lines))
    journals.sort(key=lambda j: (j[0], j[1], j[2]))

    run = RunEvents()
    for _t, _pid, _name, lines in journals:
        _apply(run, lines)
    return run


def _read_journal(path: Path) -> list[Event]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    events: list[Event] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):  # truncated or garbled (JSONDecodeError, bad
            continue  # UTF-8, more digits than int() reads, nesting deeper than the stack)
        if isinstance(event, dict) and isinstance(event.get("e"), str):
            events.append(event)
    return events


def _apply(run: RunEvents, lines: list[Event]) -> None:
    latest: dict[Any, Event] = {}  # pid -> latest hello in this journal
    for event in lines:
        kind = event["e"]
        if kind == "open":
            path = event.get("path")
            if not isinstance(path, str):
                continue
            if event.get("mode") == "w":
                run.writes.add(path)
            elif path not in run.reads:
                run.reads[path] = _stat(event.get("st"))
        elif kind == "hello":
            proc = dict(event)
            proc.pop("e", None)
            proc["exited"] = False
            run.processes.append(proc)
            if _hashable(proc.get("pid")):
                latest[proc.get("pid")] = proc
        elif kind == "exit":
            proc = latest.get(event.get("pid")) if _hashable(event.get("pid")) else None
            if proc is not None:
                proc["exited"] = True
                if isinstance(event.get("argv"), list):
                    proc["exit_argv"] = event["argv"]
        elif kind == "rename":
            src, dst = event.get("src"), event.get("dst")
            if isinstance(src, str) and isinstance(dst, str):
                run.writes.add(dst)
                run.renames.append(_strip(event))
        elif kind == "pre":
            path, copy = event.get("path"), event.get("copy")
            if isinstance(path, str) and isinstance(copy, str) and path not in run.pre:
                run.pre[path] = (_stat(event.get("st")), copy)
        elif kind == "remove":
            path = event.get("path")
            if isinstance(path, str):
                run.removed.add(path)
        elif kind == "spawn":
            run.spawns.append(_strip(event))
        elif kind == "params":
            if isinstance(event.get("values"), dict):
                run.params.append(_strip(event))
        elif kind == "savefig":
            run.savefigs.append(_strip(event))
        elif kind == "figure":
            if isinstance(event.get("files"), list):
                run.figures.append(_strip(event))
        elif kind == "modules":
            files = event.get("files")
            if isinstance(files, list):
                run.modules.update(f for f in files if isinstance(f, str))


def read_api_events(live_dir: Path) -> list[Event]:
    """The in-code API's journals (``live_dir/api/<pid>.jsonl``: param, tag, note, keep), in
    time order across processes."""
    events: list[Event] = []
    api_dir = Path(live_dir) / "api"
    try:
        names = sorted(os.listdir(api_dir))
    except OSError:
        return events
    for name in names:
        if name.endswith(".jsonl"):
            events.extend(_read_journal(api_dir / name))
    events.sort(key=lambda e: _number(e.get("t")))
    return events


def _strip(event: Event) -> Event:
    out = dict(event)
    out.pop("e", None)
    return out


def _stat(value: Any) -> Stat | None:
    if isinstance(value, list) and all(isinstance(x, int) for x in value):
        return tuple(value)
    return None


def _values(event: Event) -> dict[str, Any]:
    values = event.get("values")
    return values if isinstance(values, dict) else {}


def _hashable(value: Any) -> bool:
    """Whether a JSON value can be a dict key (a garbled line's pid may be a list)."""
    return not isinstance(value, list | dict)


def _number(value: Any) -> float:
    if not isinstance(value, (int, float)):
        return math.inf
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return math.inf if value > 0 else -math.inf
