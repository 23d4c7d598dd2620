"""The verbs over a remote: push, pull, the remote's runs; and adding or removing one.

Each opens the remote named in the config, calls `transfer` and does what the verb needs
around it: push chooses local runs; pull chooses the remote's, numbers them on arrival
(`refs/arrivals/`, before their refs: store/arrivals.py) and writes their index rows.
"""

from __future__ import annotations

from vestige import clock
from vestige.config import add_remote, check_remote_name, remove_remote
from vestige.errors import AmbiguousRun, RunNotFound, UsageError
from vestige.records import Run
from vestige.remote.location import check_url, configured, open_side
from vestige.remote.sides import LocalSide
from vestige.remote.transfer import Progress, Transferred, manifests_of, transfer
from vestige.store.arrivals import arrivals, local_seq, record_arrivals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from vestige.remote.sides import Side
    from vestige.repo import Repo


def add(repo: Repo, name: str, url: str, settings: dict[str, Any]) -> None:
    """Record a remote in the store's config.toml (`vestige remote add`)."""
    check_remote_name(name)
    check_url(url)
    add_remote(repo.store.path, name, {"url": url, **settings})


def remove(repo: Repo, name: str) -> None:
    """Remove a remote from the store's config.toml (`vestige remote rm`)."""
    configured(repo.config, name)
    remove_remote(repo.store.path, name)


def _local(repo: Repo) -> LocalSide:
    return LocalSide(repo.store.path, f"the store {repo.store.path}")


def push(
    repo: Repo, name: str | None, runs: Sequence[str] = (), every: bool = False,
    progress: Progress | None = None,
) -> tuple[str, Transferred]:  # fmt: skip
    """Send runs to a remote: `runs` (references), `every` run (checking those already
    there for missing objects), else the runs the remote lacks. (name, what was done)."""
    name, remote = open_side(repo.config, name, repo.store.path)
    local = _local(repo)
    ids: list[str] | None = None
    if runs:
        ids = []
        for ref in runs:
            run_id = repo.resolve(ref)
            if repo.store.refs.get(run_id) is None:
                raise UsageError(f"run {ref} is not sealed yet (still running); push it when "
                                 "it ends")  # fmt: skip
            ids.append(run_id)
    elif every:
        ids = list(repo.store.refs)
    return name, transfer(local, remote, ids, recheck=every or bool(runs), progress=progress)


def pull(
    repo: Repo, name: str | None, runs: Sequence[str] = (), every: bool = False,
    where: str | None = None, progress: Progress | None = None,
) -> tuple[str, Transferred]:  # fmt: skip
    """Bring runs from a remote: `runs` (id prefixes), those matching `where`, `every`
    run, else those this store lacks. They keep their ids and get local numbers."""
    name, remote = open_side(repo.config, name, repo.store.path)
    if not remote.exists():
        raise UsageError(f"{remote.label} holds no vestige store yet; push to it first")
    ids: list[str] | None = None
    if runs:
        ids = _by_prefix(remote, runs)
    elif where:
        ids = [r["id"] for r in remote_runs(repo, name, where, side=remote)]
    elif every:
        ids = sorted(remote.ref_names("runs"))

    def number(new: list[str], manifests: dict[str, dict[str, Any]]) -> None:
        from vestige.index.arrivals import reserve

        order = sorted(new, key=lambda r: (float(manifests[r].get("started") or 0), r))
        first = reserve(repo.index, len(order))
        seqs = {run_id: first + offset for offset, run_id in enumerate(order)}
        record_arrivals(repo.store, seqs, name, clock.now())

    done = transfer(remote, _local(repo), ids, recheck=every or bool(runs), before_refs=number,
                    progress=progress)  # fmt: skip
    index_arrivals(repo)
    return name, done


def index_arrivals(repo: Repo) -> int:
    """Write the index rows of pulled runs that have a ref but no row yet (this pull's, or
    those of a pull that died after writing refs); the number written."""
    from vestige.store.annotations import Annotations

    arrived = arrivals(repo.store)
    known = set(repo.index.runs.ids())
    runs: list[Run] = []
    for run_id in sorted(set(arrived) - known):
        digest = repo.store.refs.get(run_id)
        if digest is None:
            continue  # (numbered, but its ref never landed: pulled again later)
        runs.append(Run.from_dict(repo.store.objects.read_json(digest), manifest=digest))
    annotations = Annotations(repo.store)
    runs = [annotations.apply(r) for r in local_seq(repo.store, runs)]
    if runs:
        repo.index.record.runs(runs)
    return len(runs)


def _by_prefix(remote: Side, refs: Sequence[str]) -> list[str]:
    """Remote run ids from id prefixes (at least 4 characters)."""
    names = sorted(remote.ref_names("runs"))
    out: list[str] = []
    for ref in refs:
        prefix = ref.strip().upper()
        if len(prefix) < 4:
            raise UsageError(f"{ref!r}: name a remote run by its id (at least 4 characters; "
                             "`vestige remote ls` lists them)")  # fmt: skip
        found = [n for n in names if n.startswith(prefix)]
        if not found:
            raise RunNotFound(f"{remote.label} has no run {ref!r}; see `vestige remote ls`")
        if len(found) > 1:
            shown = ", ".join(f[:10] for f in found[:5])
            raise AmbiguousRun(f"{ref!r} matches several remote runs ({shown}); give more")
        out.append(found[0])
    return out


def remote_runs(
    repo: Repo, name: str | None, where: str | None = None, side: Side | None = None
) -> list[dict[str, Any]]:
    """The runs a remote holds, newest first, as `ls --json` prints them, plus `host`
    and `pulled` (whether this store has it): read from their manifests."""
    from vestige.index.arrivals import in_memory
    from vestige.repo import Repo as RepoClass

    if side is None:
        name, side = open_side(repo.config, name, repo.store.path)
    if not side.exists():
        return []
    found = manifests_of(side, sorted(side.ref_names("runs")))
    index = in_memory()
    try:
        index.record.runs(Run.from_dict(m, manifest=d) for d, m in found.values())
        listed = RepoClass(repo.store, repo.config, index).runs(where=where)
    finally:
        index.close()
    here = set(repo.store.refs)
    for row in listed:
        manifest = found[row["id"]][1]
        row["host"] = manifest.get("host", "")
        row["pulled"] = row["id"] in here
    return listed
