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
from vestige.remote.known import known, remember, remember_sent, remote_key, state
from vestige.remote.lazy import LEAVE_ABOVE
from vestige.remote.location import check_url, configured, open_side
from vestige.remote.marks import Merged, merge_marks
from vestige.remote.sides import LocalSide
from vestige.remote.transfer import Progress, Transferred, manifests_of, transfer
from vestige.store.arrivals import arrivals, local_seq, record_arrivals
from vestige.store.elsewhere import drop_elsewhere, elsewhere_records, record_elsewhere

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
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
    there for missing objects), else the runs the remote lacks. (name, what was done).
    Without runs, a store whose every run and mark reached that remote by an earlier push
    or pull (known.py) sends nothing without asking the remote (`done.asked` is False)."""
    name, settings = configured(repo.config, name)
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
    key = remote_key(settings, repo.store.path.parent)
    local = _local(repo)
    mine = state(local, ids)  # (before the transfer: a run sealed meanwhile waits)
    if ids is None and mine and set().union(*mine.values()) <= known(repo.store.path, key):
        return name, Transferred(runs=[], manifests={}, left_out=[], asked=False)
    name, remote = open_side(repo.config, name, repo.store.path)
    done = transfer(local, remote, ids, recheck=every or bool(runs), progress=progress)
    merged = merge_marks(local, remote, ids, done.held)  # tags, notes, names, pins: as sets
    done.marked = sorted({*merged.annotated, *merged.pinned})
    remember_sent(repo.store.path, key, mine, done.left_out)
    return name, done


def pull(
    repo: Repo, name: str | None, runs: Sequence[str] = (), every: bool = False,
    where: str | None = None, progress: Progress | None = None, metadata_only: bool = False,
) -> tuple[str, Transferred]:  # fmt: skip
    """Bring runs from a remote: `runs` (id prefixes), those matching `where`, `every`
    run, else those this store lacks. They keep their ids and get local numbers.
    `metadata_only`: files over lazy.LEAVE_ABOVE stay on the remote, fetched when read."""
    name, settings = configured(repo.config, name)
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
        origins = {r: _made_where(repo, manifests[r]) for r in order}
        record_arrivals(repo.store, seqs, name, clock.now(), origins)

    def note(left: dict[str, int]) -> None:  # (before the refs that name them)
        record_elsewhere(repo.store.path, name, left, clock.now())

    local = _local(repo)
    leave = (LEAVE_ABOVE, note) if metadata_only else None
    done = transfer(remote, local, ids, recheck=every or bool(runs), before_refs=number,
                    progress=progress, leave=leave)  # fmt: skip
    back = [d for d in elsewhere_records(repo.store.path) if repo.store.objects.exists(d)]
    drop_elsewhere(repo.store.path, back)  # (brought by this pull, or by a run since)
    index_arrivals(repo)
    merged = merge_marks(remote, local, ids)
    index_marks(repo, merged)
    done.marked = sorted({*merged.annotated, *merged.pinned})
    key = remote_key(settings, repo.store.path.parent)
    remember(repo.store.path, key, [*(f"run {r}" for r in done.runs), *merged.agreed])
    return name, done


def usage(repo: Repo, name: str | None) -> dict[str, Any]:
    """What a remote holds (`vestige du --remote`): its runs, objects and bytes, and what
    only one side has (what a push would send, what a pull would bring). One listing of
    each side's refs and objects."""
    name, remote = open_side(repo.config, name, repo.store.path)
    here = _local(repo)
    exists = remote.exists()  # (a remote nobody pushed to yet holds nothing)
    theirs_runs = remote.ref_names("runs") if exists else set()
    there = remote.sizes(remote.object_names()) if exists else {}
    ours = here.sizes(here.object_names())
    our_runs = here.ref_names("runs")

    def part(runs: set[str], objects: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        only = objects.keys() - other.keys()
        return {"runs": len(runs), "objects": len(only), "bytes": sum(objects[h] for h in only)}

    return {
        "remote": name,
        "url": remote.label,
        "runs": len(theirs_runs),
        "objects": len(there),
        "stored": sum(there.values()),
        "only_here": part(our_runs - theirs_runs, ours, there),
        "only_there": part(theirs_runs - our_runs, there, ours),
    }


def index_marks(repo: Repo, merged: Merged) -> None:
    """The index rows of what a pull merged into this store: tags, notes and names of the
    runs whose annotations changed, and the pins it added."""
    from vestige.store.annotations import Annotations

    annotations = Annotations(repo.store)
    indexed = repo.index.runs.seqs()
    for run_id in merged.annotated:
        if run_id not in indexed:
            continue  # (not indexed yet: its row is written with them)
        run = repo.run(run_id)
        repo.index.record.tags(run_id, run.tags)
        repo.index.record.notes(run_id, run.notes)
        repo.index.record.name(run_id, annotations.get(run_id)["name"])
    if merged.pinned:
        repo.index.marks.set_pins(dict(merged.pinned))


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
        # Numbers made by different stores collide (every scratch store of a sweep's
        # workers gives #1): the index in memory numbers them afresh; rows show their own.
        ordered = sorted(found.values(), key=lambda dm: (float(dm[1].get("started") or 0),
                                                          str(dm[1].get("id"))))  # fmt: skip
        index.record.runs(Run.from_dict(m, manifest=d).replace(seq=n)
                          for n, (d, m) in enumerate(ordered, 1))  # fmt: skip
        listed = RepoClass(repo.store, repo.config, index).runs(where=where)
    finally:
        index.close()
    here = set(repo.store.refs)
    for row in listed:
        manifest = found[row["id"]][1]
        row["seq"] = manifest.get("seq")
        row["host"] = manifest.get("host", "")
        row["pulled"] = row["id"] in here
    return listed


#: Environment variables that name the user who ran a command, in the order trusted.
USER_VARS = ("USER", "LOGNAME", "USERNAME")


def _made_where(repo: Repo, manifest: dict[str, Any]) -> dict[str, str]:
    """{"host", "user"} of a pulled run: its manifest's host, the user from its recorded
    environment (its env object, here by now: objects land before refs)."""
    out = {"host": str(manifest.get("host") or "")}
    digest = manifest.get("env")
    try:
        env = repo.store.objects.read_json(digest) if isinstance(digest, str) else {}
    except (OSError, ValueError):  # (freed at the source: no user to tell)
        env = {}
    names = env.get("env_vars") if isinstance(env, dict) else None
    names = names if isinstance(names, dict) else {}
    out["user"] = next((str(names[k]) for k in USER_VARS if names.get(k)), "")
    return out


def origins(repo: Repo, runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{run id: {"remote", "host", "user", "pulled"}} of the pulled runs among `runs` (`ls`
    rows): from their arrival records (one small read each, only when refs/arrivals/ has
    any); a record from before host and user were kept falls back to the manifest."""
    from vestige.store.arrivals import arrival, arrivals_dir

    if not arrivals_dir(repo.store).is_dir():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for row in runs:
        record = arrival(repo.store, row["id"])
        if record is None:
            continue
        if "host" not in record and row.get("manifest"):
            record = {**_made_where(repo, repo.store.objects.read_json(row["manifest"])),
                      **record}  # fmt: skip
        out[row["id"]] = {"remote": record.get("remote"), "host": record.get("host") or "",
                          "user": record.get("user") or "", "pulled": record.get("t")}  # fmt: skip
    return out


def push_store(
    store_path: Path, run_ids: Sequence[str], remote: dict[str, Any], base: Path
) -> Transferred:
    """Send runs of the store at `store_path` to a shipped remote (`location.shipped`): a
    sweep's child pushing from the worker it ran on, with no config or index of its own."""
    from vestige.remote.location import side_at

    side = side_at(remote["name"], remote["settings"], base)
    local = LocalSide(store_path, f"the store {store_path}")
    mine = state(local, run_ids)
    done = transfer(local, side, list(run_ids), recheck=True)
    merge_marks(local, side, run_ids, done.held)  # (`run --name x --push`: the name goes too)
    remember_sent(store_path, remote_key(remote["settings"], base), mine, done.left_out)
    return done


def which_remote(repo: Repo, name: str | None, path: Path) -> dict[str, Any]:
    """The runs of a remote that made (or read) the bytes of the file `path`, without
    pulling anything: the remote's run refs and manifests are read once (as `remote ls`).
    Makers oldest first; each says whether this store has the run already (`here`)."""
    from vestige.store.hashing import hash_file

    try:
        digest = hash_file(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give a file") from None
    name, side = open_side(repo.config, name, repo.store.path)
    found = manifests_of(side, sorted(side.ref_names("runs"))) if side.exists() else {}
    here = set(repo.store.refs)
    made: list[dict[str, Any]] = []
    read: list[dict[str, Any]] = []
    for run_id, (_manifest, m) in found.items():
        row = {"run_id": run_id, "remote_seq": m.get("seq"), "started": m.get("started"),
               "command": list(m.get("command") or []), "status": m.get("status"),
               "host": m.get("host") or "", "here": run_id in here}  # fmt: skip
        wrote = _paths_with(m, digest, ("outputs",)) + _artefact_paths(m, digest)
        if wrote:
            made.append({**row, "path": wrote[0]})
        seen = _paths_with(m, digest, ("inputs",))
        if seen:
            read.append({**row, "path": seen[0]})
    made.sort(key=lambda r: (float(r["started"] or 0), r["run_id"]))
    read.sort(key=lambda r: (float(r["started"] or 0), r["run_id"]))
    return {"path": str(path), "hash": digest, "remote": name, "searched": len(found),
            "made_by": made, "read_by": read}  # fmt: skip


def _paths_with(m: dict[str, Any], digest: str, roles: tuple[str, ...]) -> list[str]:
    return [str(f.get("path")) for role in roles for f in m.get(role) or ()
            if isinstance(f, dict) and f.get("hash") == digest]  # fmt: skip


def _artefact_paths(m: dict[str, Any], digest: str) -> list[str]:
    out: list[str] = []
    for a in m.get("artefacts") or ():
        for f in (a.get("files") or ()) if isinstance(a, dict) else ():
            if isinstance(f, dict) and f.get("hash") == digest:
                out.append(str(f.get("path") or a.get("name")))
    return out
