"""The debt ledger: which code has proved long-lived, and so has earned its rewrite.

Sloppy code is fine while it is short-lived; vestige sees every run, so it can tell
which code is no longer short-lived. A code unit is a project file that runs imported
(the entry script included: `code.imported_hashes`, indexed as files rows with role
`code`) or a project notebook that runs read. Everything comes from a few queries over
the index, never from manifests; duplication compares token shingles of each unit's
latest version, cached in the index by content hash. Rules, the interest formula and
worked examples: docs/debt.md. Every function takes `now` (vestige/clock.py).
"""

from __future__ import annotations

import json
import math
import posixpath

from vestige.errors import UsageError
from vestige.records import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from vestige.config import Config
    from vestige.repo import Repo

DAY = 86400.0
#: interest = runs + VERSION_WEIGHT x (versions - 1) + CONSUMER_WEIGHT x consumers + hours
VERSION_WEIGHT = 2.0
CONSUMER_WEIGHT = 3.0
HOUR_WEIGHT = 1.0
#: the BLAKE3 of no bytes: a unit whose only version is empty (`__init__.py`) is no debt
EMPTY_HASH = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
#: a shingle found in more units than this is boilerplate; it is not counted as shared
#: (it would also make the pair count quadratic in the number of units)
BOILERPLATE_UNITS = 50
#: at most this many duplicates per unit in the ledger (the detail view lists all)
TOP_DUPLICATES = 3
CODE_SUFFIXES = (".py", ".pyw", ".ipynb")
VERDICTS = ("consolidate", "fine sloppy", "archive")


class Thresholds(Record):
    """The `[debt]` settings (docs/configuration.md), checked."""

    young_days: float
    few_runs: int
    long_lived_days: float
    many_versions: int
    many_consumers: int
    archive_days: float
    recent_days: float
    shingle_tokens: int
    duplicate_min: float

    @classmethod
    def from_config(cls, config: Config) -> Thresholds:
        values: dict[str, Any] = {}
        for name in cls._fields:
            value = getattr(config, f"debt_{name}")
            integral = name in ("few_runs", "many_versions", "many_consumers", "shingle_tokens")
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value >= 0
            if not ok or (integral and value != int(value)):
                kind = "a whole number >= 0" if integral else "a number >= 0"
                raise UsageError(f"config debt.{name}: {value!r} is not {kind}; fix the config")
            values[name] = int(value) if integral else float(value)
        if values["shingle_tokens"] < 1:
            raise UsageError("config debt.shingle_tokens: must be at least 1; fix the config")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Reason(Record):
    """One rule of the verdict: whether it fired, with its numbers and threshold."""

    rule: str
    fired: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "fired": self.fired, "text": self.text}


class Duplicate(Record):
    """Another unit that shares code with this one: `shared` is the fraction of this
    unit's shingles found in the other; `jaccard` the overlap of both."""

    unit: str
    shared: float
    jaccard: float

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "shared": self.shared, "jaccard": self.jaccard}


class Unit(Record):
    """One row of the ledger."""

    _frozen = False

    path: str
    kind: str  # script (some run's entry), module (only imported), notebook
    runs: int  # in the window
    versions: int  # distinct content hashes in the window
    seconds: float  # total wall time of its runs in the window
    recent_runs: int  # runs in the last `recent_days`
    first: float  # first run ever (up to now)
    last: float  # last run (up to now)
    consumers: int = 0
    published: int = 0
    latest: str | None = None
    last_seq: int = 0
    restorable: bool = False
    interest: float = 0.0
    verdict: str = ""
    reasons: list[Reason] = Factory(list)
    duplicates: list[Duplicate] = Factory(list)

    def lifespan_days(self) -> float:
        return (self.last - self.first) / DAY

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.path,
            "kind": self.kind,
            "runs": self.runs,
            "versions": self.versions,
            "first_run": self.first,
            "last_run": self.last,
            "lifespan_days": round(self.lifespan_days(), 3),
            "recent_runs": self.recent_runs,
            "run_seconds": round(self.seconds, 3),
            "consumers": self.consumers,
            "published": self.published,
            "latest": self.latest,
            "restorable": self.restorable,
            "restore": f"vestige restore {self.last_seq} {self.path}" if self.restorable else None,
            "interest": self.interest,
            "verdict": self.verdict,
            "reasons": [r.to_dict() for r in self.reasons],
            "duplicates": [d.to_dict() for d in self.duplicates],
        }


class Ledger(Record):
    """Every unit with a run in the window, highest interest first."""

    now: float
    since: float | None
    thresholds: Thresholds
    units: list[Unit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "since": self.since,
            "thresholds": self.thresholds.to_dict(),
            "units": [u.to_dict() for u in self.units],
        }


def interest(runs: int, versions: int, consumers: int, seconds: float) -> float:
    """What the unit's sloppiness costs in the window (docs/debt.md, "Interest")."""
    value = (
        runs
        + VERSION_WEIGHT * max(versions - 1, 0)
        + CONSUMER_WEIGHT * consumers
        + HOUR_WEIGHT * seconds / 3600.0
    )
    return round(value, 2)


def ledger(repo: Repo, now: float, since: float | None = None) -> Ledger:
    """The debt ledger at `now` over the runs started in [since, now] (all when None)."""
    th = Thresholds.from_config(repo.config)
    if since is not None and since > now:
        raise UsageError("--since is after now: give a window that ends now, like 90d")
    start = -math.inf if since is None else since
    index = repo.index
    rows = index.debt.units(start, now, now - th.recent_days * DAY)
    latest = index.debt.latest(now)
    scripts = _entry_scripts(index.debt.entries(start, now))
    units: list[Unit] = []
    for path, runs, versions, seconds, recent, first, last in rows:
        digest, seq, _run_id = latest.get(path, (None, 0, ""))
        if not path.endswith(CODE_SUFFIXES) or (digest == EMPTY_HASH and versions <= 1):
            continue
        kind = "notebook" if path.endswith(".ipynb") else "script" if path in scripts else "module"
        units.append(Unit(path, kind, int(runs), int(versions), float(seconds or 0.0),
                          int(recent), float(first), float(last), latest=digest,
                          last_seq=seq))  # fmt: skip
    consumers = index.debt.consumers(start, now)
    published = index.debt.published(now, settled(th, now))
    objects = repo.store.objects
    for u in units:
        u.consumers = consumers.get(u.path, 0)
        u.published = published.get(u.path, 0)
        u.restorable = u.latest is not None and objects.exists(u.latest)
        u.interest = interest(u.runs, u.versions, u.consumers, u.seconds)
    dupes = duplicates(repo, {u.path: u.latest for u in units if u.latest}, th)
    for u in units:
        u.duplicates = dupes.get(u.path, [])
        u.verdict, u.reasons = verdict(u, th, now)
    units.sort(key=lambda u: (-u.interest, u.path))
    return Ledger(now, since, th, units)


def settled(th: Thresholds, now: float) -> float:
    """A copy `vestige which` found outside the project counts as published once it has been
    known for `young_days`: looking a figure up is not sending it away, a copy still there
    weeks later was (`vestige publish` counts at once)."""
    return now - th.young_days * DAY


def verdict(u: Unit, th: Thresholds, now: float) -> tuple[str, list[Reason]]:
    """`archive`, `consolidate` or `fine sloppy`, with every rule's numbers (docs/debt.md)."""
    idle = (now - u.last) / DAY
    age = (now - u.first) / DAY
    lifespan = u.lifespan_days()
    unused = idle >= th.archive_days
    restore = f"`vestige restore {u.last_seq} {u.path}` brings it back"
    if unused and u.restorable:
        return "archive", [
            Reason("unused", True, f"last run {idle:.0f} days ago >= archive_days "
                   f"{th.archive_days:g}"),
            Reason("restorable", True, f"its latest version {(u.latest or '')[:12]} is in "
                   f"the store: deleting it loses nothing, {restore}"),
        ]  # fmt: skip
    reasons: list[Reason] = []
    if unused:
        why = "its latest version is not in the store (not kept): not safe to delete"
        reasons.append(Reason("unused", False, f"last run {idle:.0f} days ago, but {why}"))
    long_lived = lifespan >= th.long_lived_days and u.runs > th.few_runs
    reasons += [
        Reason("long-lived", long_lived, f"lifespan {lifespan:.1f} days (>= long_lived_days "
               f"{th.long_lived_days:g}) with {u.runs} runs (> few_runs {th.few_runs})"),
        Reason("many versions", u.versions >= th.many_versions,
               f"{u.versions} versions (>= many_versions {th.many_versions})"),
        Reason("many consumers", u.consumers >= th.many_consumers,
               f"{u.consumers} downstream runs read its outputs (>= many_consumers "
               f"{th.many_consumers})"),
        Reason("published", u.published > 0,
               f"{u.published} artefacts left the project (> 0)"),
    ]  # fmt: skip
    if any(r.fired for r in reasons):
        if u.duplicates:
            d = u.duplicates[0]
            reasons.append(Reason("duplicated", True, f"{d.shared:.0%} of its code is also in "
                                  f"{d.unit}: consolidate them together"))  # fmt: skip
        return "consolidate", sorted(reasons, key=lambda r: not r.fired)
    young = age < th.young_days
    few = u.runs <= th.few_runs
    reasons = [
        Reason("young", young, f"first run {age:.1f} days ago (< young_days {th.young_days:g})"),
        Reason("few runs", few, f"{u.runs} runs (<= few_runs {th.few_runs})"),
        *reasons,
    ]
    if not young and not few:
        reasons.insert(0, Reason("no consolidate rule", True, "none of the consolidate rules "
                                 "fires: it may stay sloppy for now"))  # fmt: skip
    return "fine sloppy", sorted(reasons, key=lambda r: not r.fired)


def _entry_scripts(rows: Iterable[tuple[str, str]]) -> set[str]:
    """Root-relative paths that runs started as their program (`python x.py`, `-m a.b`)."""
    out: set[str] = set()
    for argv_json, cwd in rows:
        try:
            argv = json.loads(argv_json)
        except ValueError:
            continue
        base = cwd if cwd and not cwd.startswith("/") else ""
        for i, arg in enumerate(argv[:6]):
            if not isinstance(arg, str):
                break
            if arg == "-m" and i + 1 < len(argv):
                mod = str(argv[i + 1]).replace(".", "/")
                out.update({f"{mod}.py", f"{mod}/__main__.py"})
                break
            if arg.endswith(CODE_SUFFIXES) and not arg.startswith("/"):
                out.add(posixpath.normpath(posixpath.join(base, arg)))
                break
    return out


# -- duplication ---------------------------------------------------------------------------


def code_tokens(data: bytes, path: str) -> list[str]:
    """The Python tokens of a code file (a notebook's code cells), without comments,
    layout or magics: renaming a variable changes tokens, reformatting does not."""
    import io
    import tokenize

    text = data.decode("utf-8", "replace")
    if path.endswith(".ipynb"):
        text = _notebook_source(text)
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
            tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}  # fmt: skip
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type not in skip:
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError):
        pass  # a file that does not tokenize to the end: its tokens so far
    return out


def _notebook_source(text: str) -> str:
    """The code cells of a notebook, IPython magics and shell lines dropped."""
    try:
        cells = json.loads(text).get("cells") or []
    except (ValueError, AttributeError):
        return ""
    lines: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source") or ""
        source = "".join(source) if isinstance(source, list) else str(source)
        lines += [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


def shingles(tokens: list[str], k: int) -> set[int]:
    """Hashes of every run of k consecutive tokens (the whole file when shorter).

    Each token becomes 64 bits of BLAKE2b, and a shingle the hash of their tuple: tuples
    of ints hash the same in every process (only str hashing is randomised)."""
    if not tokens:
        return set()
    import hashlib

    ids: dict[str, int] = {}
    seq: list[int] = []
    for t in tokens:
        h = ids.get(t)
        if h is None:
            raw = hashlib.blake2b(t.encode(), digest_size=8).digest()
            h = ids[t] = int.from_bytes(raw, "little", signed=True)
        seq.append(h)
    if len(seq) <= k:
        return {hash(tuple(seq))}
    return {hash(tuple(seq[i : i + k])) for i in range(len(seq) - k + 1)}


def shingle_algo(k: int) -> str:
    import sys

    return f"blake2b-tok{k}-py{sys.version_info[0]}.{sys.version_info[1]}"


def shingle_sets(repo: Repo, digests: Iterable[tuple[str, str]], k: int) -> dict[str, set[int]]:
    """{hash: shingles} for (path, hash) code versions: from the index's cache, else
    read from the store, tokenized, and cached."""
    from array import array

    wanted = dict((d, p) for p, d in digests)
    algo = shingle_algo(k)
    cached = repo.index.debt.shingles(list(wanted), algo)
    out: dict[str, set[int]] = {}
    fresh: list[tuple[str, str, int, bytes | None, str | None]] = []
    for digest, path in wanted.items():
        if digest in cached:
            data, _error = cached[digest]
            out[digest] = set(array("q", data)) if data else set()
            continue
        try:
            raw = repo.store.objects.read_bytes(digest, verify=True)
        except Exception as e:  # not kept, or corrupt: no shingles, and fsck will say why
            fresh.append((digest, algo, 0, None, str(e)[:200]))
            out[digest] = set()
            continue
        tokens = code_tokens(raw, path)
        found = shingles(tokens, k)
        fresh.append((digest, algo, len(tokens), array("q", sorted(found)).tobytes(), None))
        out[digest] = found
    if fresh:
        import sqlite3

        try:
            repo.index.debt.put_shingles(fresh)
        except sqlite3.OperationalError:
            pass  # a read-only or busy index: the cache is only a cache
    return out


def duplicates(repo: Repo, latest: dict[str, str], th: Thresholds) -> dict[str, list[Duplicate]]:
    """{unit: the units sharing at least `duplicate_min` of its shingles, most first}.

    Pairs are counted through an inverted index (shingle -> units), so the cost follows
    the shingles, not the square of the number of units."""
    from itertools import combinations

    names = sorted(latest)
    sets = shingle_sets(repo, ((n, latest[n]) for n in names), th.shingle_tokens)
    unit_sets = [sets.get(latest[n], set()) for n in names]
    owners: dict[int, list[int]] = {}
    for i, s in enumerate(unit_sets):
        for h in s:
            owners.setdefault(h, []).append(i)
    pairs: dict[tuple[int, int], int] = {}
    for units in owners.values():
        if 1 < len(units) <= BOILERPLATE_UNITS:
            for pair in combinations(units, 2):
                pairs[pair] = pairs.get(pair, 0) + 1
    found: dict[str, list[Duplicate]] = {}
    for (a, b), shared in pairs.items():
        na, nb = len(unit_sets[a]), len(unit_sets[b])
        jaccard = round(shared / (na + nb - shared), 3)
        for me, other, size in ((a, b, na), (b, a, nb)):
            fraction = round(shared / size, 3)
            if fraction >= th.duplicate_min:
                found.setdefault(names[me], []).append(Duplicate(names[other], fraction, jaccard))
    for dupes in found.values():
        dupes.sort(key=lambda d: (-d.shared, -d.jaccard, d.unit))
    return found


# -- one unit ------------------------------------------------------------------------------


def known_units(repo: Repo, now: float) -> list[str]:
    """Every code unit some run used up to now."""
    return sorted(p for p in repo.index.debt.latest(now) if p.endswith(CODE_SUFFIXES))


def resolve_unit(repo: Repo, text: str, now: float) -> str:
    """A unit from a path (relative to here or the root, or absolute) or a unique suffix."""
    from pathlib import Path

    from vestige.repo import path_forms

    units = known_units(repo, now)
    forms = path_forms(text, repo.store.root, Path.cwd())
    hits = [u for u in units if u in forms]
    if not hits:
        tail = text.strip("/").removeprefix("./")
        hits = [u for u in units if u == tail or u.endswith("/" + tail)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UsageError(f"{text!r} matches several code units ({', '.join(hits[:5])}); "
                         "give more of the path")  # fmt: skip
    import difflib

    close = difflib.get_close_matches(text, units, n=1)
    hint = f"; did you mean {close[0]}?" if close else "; `vestige debt` lists them"
    raise UsageError(f"no run used {text!r} as code (a script, an imported project module "
                     f"or a notebook){hint}")  # fmt: skip


class Detail(Record):
    """One unit in full: its row, runs over time, versions, consumers, published copies."""

    unit: Unit
    runs: list[dict[str, Any]]
    weeks: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    consumers: list[dict[str, Any]]
    published: list[dict[str, Any]]
    thresholds: Thresholds
    now: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.unit.to_dict(),
            "now": self.now,
            "thresholds": self.thresholds.to_dict(),
            "duplicates": [d.to_dict() for d in self.unit.duplicates],
            "history": self.runs,
            "weeks": self.weeks,
            "version_list": self.versions,
            "consumer_units": self.consumers,
            "published_list": self.published,
        }


def detail(repo: Repo, text: str, now: float, since: float | None = None) -> Detail:
    """`vestige debt UNIT`: the unit's ledger row with everything behind it."""
    path = resolve_unit(repo, text, now)
    book = ledger(repo, now, since)
    row = next((u for u in book.units if u.path == path), None)
    if row is None:
        raise UsageError(f"{path} has no run in the window; widen or drop --since")
    all_dupes = duplicates(repo, {u.path: u.latest for u in book.units if u.latest},
                           book.thresholds.replace(duplicate_min=0.0))  # fmt: skip
    row.duplicates = [d for d in all_dupes.get(path, []) if d.shared > 0]
    index = repo.index
    history = index.debt.unit_runs(path, now)
    runs = [
        {"run_id": r["id"], "seq": r["seq"], "started": r["started"], "status": r["status"],
         "duration": r["duration"], "hash": r["unit_hash"], "command": json.loads(r["argv"])}
        for r in history
    ]  # fmt: skip
    versions: dict[str, dict[str, Any]] = {}
    for r in runs:
        fresh = {"hash": r["hash"], "first_seen": r["started"], "last_seen": 0.0, "runs": 0}
        v = versions.setdefault(r["hash"] or "?", fresh)
        v["last_seen"] = r["started"]
        v["runs"] += 1
    weeks: dict[int, int] = {}
    for r in runs:
        week = int((now - r["started"]) // (7 * DAY))
        weeks[week] = weeks.get(week, 0) + 1
    week_rows = [{"weeks_ago": w, "runs": n} for w, n in sorted(weeks.items(), reverse=True)]
    consumer_rows = index.debt.consumer_runs(path, now)
    scripts = _entry_scripts((r["argv"], r["cwd"]) for r in consumer_rows)
    used = index.files.unit_paths_of([r["id"] for r in consumer_rows])
    groups: dict[str, dict[str, Any]] = {}
    for r in consumer_rows:
        mine = [p for p in used.get(r["id"], []) if p in scripts] or used.get(r["id"], [])
        name = mine[0] if mine else r["command"]
        g = groups.setdefault(name, {"unit": name, "runs": [], "files": []})
        if r["seq"] not in g["runs"]:
            g["runs"].append(r["seq"])
        if r["file_path"] not in g["files"]:
            g["files"].append(r["file_path"])
    made = index.files.made_by([r["run_id"] for r in runs])
    published = [
        {"hash": p["hash"], "dest": p["dest"], "t": p["t"], "how": p["how"],
         "run_id": p["run_id"], "source": p["source"]}
        for p in index.marks.published_of(made)
        if p["t"] <= now and (p["how"] != "which" or p["t"] <= settled(book.thresholds, now))
    ]  # fmt: skip
    return Detail(row, runs, week_rows, sorted(versions.values(), key=lambda v: v["first_seen"]),
                  list(groups.values()), published, book.thresholds, now)  # fmt: skip
