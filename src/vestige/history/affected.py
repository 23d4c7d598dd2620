"""Recall: every run that used a bad version of something, and everything made from it.

A version is a code file at a content hash (`utils.py@3f2a`, or `utils.py@42` for the
version run #42 ran), an input file at a content hash (`data/raw.csv@9c1e`, or `@42`), or
an installed package (`numpy==2.0.1`). The runs that ran or read it are found in the
index (code and input rows; packages from the runs' environment records); then lineage
is followed forward: a run that read bytes one of them wrote is affected too, and so on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vestige.errors import UsageError
from vestige.records import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.repo import Repo

_HEX = re.compile(r"^[0-9a-f]{4,64}$")


class Affected(Record):
    """One affected run: directly (it used the version) or downstream (through lineage)."""

    _frozen = False

    id: str
    seq: int
    command: list[str]
    started: float
    status: str
    why: str
    direct: bool
    outputs: list[dict[str, Any]] = Factory(list)  # path, hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "seq": self.seq, "command": self.command, "started": self.started,
            "status": self.status, "why": self.why, "direct": self.direct,
            "outputs": self.outputs,
        }  # fmt: skip


def _split(spec: str, what: str) -> tuple[str, str]:
    path, at, version = spec.rpartition("@")
    if not at or not path or not version:
        raise UsageError(f"--{what} {spec!r}: write PATH@VERSION (a hash prefix, or a run: @42)")
    return path, version


def _rel(repo: Repo, path: str) -> set[str]:
    """The forms a path may have in the index: as given, absolute, relative to the root."""
    from vestige.repo import path_forms

    return path_forms(path, repo.store.root, Path.cwd())


def _hashes(repo: Repo, roles: tuple[str, ...], forms: set[str], version: str) -> set[str]:
    """Full hashes of `path@version`: from the run named by version, or by hash prefix."""
    if not _HEX.match(version.lower()) or version.isdigit() or version.startswith(("#", "-")):
        run_id = repo.resolve(version.lstrip("@"))
        found = repo.index.files.hashes_in_run(run_id, roles, forms)
        if not found:
            seq = repo.run(run_id).seq
            raise UsageError(f"run #{seq} did not use {sorted(forms)[0]!r}")
        return found
    found = repo.index.files.hashes_by_prefix(roles, forms, version.lower())
    if not found:
        raise UsageError(f"no recorded run used {sorted(forms)[0]!r} at a version {version}...")
    return found


def find(
    repo: Repo, code: str | None = None, input: str | None = None, package: str | None = None
) -> tuple[str, list[Affected]]:
    """(what was asked, in words; the affected runs, direct ones first, each in time order)."""
    given = [x for x in (code, input, package) if x]
    if len(given) != 1:
        raise UsageError("give exactly one of --code PATH@VERSION, --input PATH@VERSION, "
                         "--package NAME==VERSION")  # fmt: skip
    direct: dict[str, str] = {}
    if code:
        path, version = _split(code, "code")
        forms = _rel(repo, path)
        hashes = _hashes(repo, ("code", "module"), forms, version)
        what = f"code {path} at {', '.join(h[:12] for h in sorted(hashes))}"
        for rid, p in repo.index.files.runs_with(("code", "module"), hashes, forms):
            direct.setdefault(rid, f"ran {p}")
    elif input:
        path, version = _split(input, "input")
        forms = _rel(repo, path)
        hashes = _hashes(repo, ("input",), forms, version)
        what = f"input {path} at {', '.join(h[:12] for h in sorted(hashes))}"
        for rid, p in repo.index.files.runs_with(("input",), hashes):  # those bytes, any name
            direct.setdefault(rid, f"read {p}")
    else:
        assert package is not None
        name, eq, version = package.partition("==")
        if not eq or not name or not version:
            raise UsageError(f"--package {package!r}: write NAME==VERSION, e.g. numpy==2.0.1")
        what = f"package {name}=={version}"
        for rid in _runs_with_package(repo, name, version):
            direct[rid] = f"ran with {name}=={version}"
        if not direct:  # as for --code and --input: a version no run used is bad input
            raise UsageError(f"no recorded run used package {name}=={version}; "
                             "`vestige show RUN --json` lists a run's packages")  # fmt: skip
    return what, _closure(repo, direct)


def _runs_with_package(repo: Repo, name: str, version: str) -> list[str]:
    """Runs whose environment record lists the distribution at that version."""
    want = (_norm(name), version)
    found: list[str] = []
    seen_env: dict[str, bool] = {}
    for run_id in repo.store.refs:
        digest = repo.store.refs.get(run_id)
        if digest is None:
            continue
        try:
            env_hash = repo.store.objects.read_json(digest).get("env")
        except Exception:
            continue
        if not env_hash:
            continue
        if env_hash not in seen_env:
            try:
                env = repo.store.objects.read_json(env_hash)
                dists = {(_norm(str(n)), str(v)) for n, v in env.get("distributions") or []}
            except Exception:
                dists = set()
            seen_env[env_hash] = want in dists
        if seen_env[env_hash]:
            found.append(run_id)
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(repo: Repo, direct: dict[str, str]) -> list[Affected]:
    """The direct runs, then every run downstream of them through lineage (read bytes an
    affected run wrote, after it started), with the outputs of each."""
    rows = {}
    for rid in direct:
        row = repo.index.runs.row(rid)
        if row is not None:
            rows[rid] = row
    why = dict(direct)
    queue = sorted(rows, key=lambda r: (rows[r]["started"], rows[r]["seq"]))
    while queue:
        rid = queue.pop(0)
        for _path, digest in repo.index.files.outputs_of(rid):
            for reader in repo.index.files.readers_of(digest):
                if reader["id"] in rows or reader["started"] < rows[rid]["started"]:
                    continue
                rows[reader["id"]] = reader
                why[reader["id"]] = f"read {reader['file_path']}, made by run #{rows[rid]['seq']}"
                queue.append(reader["id"])
    out = []
    for rid, row in rows.items():
        out.append(Affected(
            id=rid, seq=row["seq"], command=list(json.loads(row["argv"])),
            started=row["started"], status=row["status"], why=why[rid], direct=rid in direct,
            outputs=[{"path": p, "hash": h} for p, h in repo.index.files.outputs_of(rid)],
        ))  # fmt: skip
    out.sort(key=lambda a: (not a.direct, a.started, a.seq))
    return out
