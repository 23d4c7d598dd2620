"""Rerun: re-make a run from what was kept, and say per output whether it reproduced.

The kept code snapshot and inputs are written into a fresh folder (or, with in_place, the
project itself, only when git says it is clean), the same command runs there as a new run
with `rerun_of` set (recorded into the same store), then each output of the original is
compared with the new one: identical, close (numbers within rtol/atol), differs, missing;
outputs only the rerun made are `new`. With params changed, other bytes are expected:
`changed`, naming the param.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from vestige.errors import UsageError
from vestige.history.restore import unsafe_path
from vestige.records import Factory, Record, safe_recorded, safe_relative
from vestige.store.hashing import hash_if_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.records import FileRecord, Run
    from vestige.repo import Repo

#: Outputs larger than this are compared by hash only (identical or differs), as in diff.
COMPARE_MAX_BYTES = 64 * 1024 * 1024


class CannotRerun(UsageError):
    """Something the rerun needs is gone (an input only hashed, and changed since)."""


class Verdict(Record):
    """One output: how the rerun's bytes compare with the original's."""

    path: str
    verdict: str  # identical | close | differs | missing | new; changed (a param changed)
    summary: str = ""
    details: dict[str, Any] = Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "verdict": self.verdict, "summary": self.summary,
                "details": self.details}  # fmt: skip


class Plan(Record):
    """Where and how the rerun happens."""

    _frozen = False

    root: Path
    cwd: Path
    argv: list[str]
    files: list[tuple[str, str, int | None]] = Factory(list)  # (relative path, hash, mode)
    copies: list[tuple[str, Path]] = Factory(list)  # inputs only hashed: copied from their place
    in_place: bool = False


def substitute(argv: list[str], params: dict[str, str]) -> list[str]:
    """The command line with changed params: `--k v`, `--k=v`, `-k v` and `k=v` forms.

    A param that does not appear on the command line is an error (it may come from a
    config file or `vestige.param`, which a rerun cannot change)."""
    out = list(argv)
    for key, value in params.items():
        names = {f"--{key}", f"--{key.replace('_', '-')}", f"-{key}"}
        hit = False
        for i, arg in enumerate(out):
            if arg in names and i + 1 < len(out):
                out[i + 1] = value
                hit = True
            elif any(arg.startswith(n + "=") for n in names) or arg.startswith(f"{key}="):
                out[i] = arg.split("=", 1)[0] + "=" + value
                hit = True
        if not hit:
            raise UsageError(
                f"param {key!r} does not appear on the command line ({shlex.join(argv)}); "
                "a rerun can change command-line params only"
            )
    return out


def param_changes(argv: list[str], params: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{key: (the value on the original command line, the new one)} of the params that
    `substitute` changes to another value (in the forms it knows)."""
    out: dict[str, tuple[str, str]] = {}
    for key, value in params.items():
        names = {f"--{key}", f"--{key.replace('_', '-')}", f"-{key}"}
        for i, arg in enumerate(argv):
            if arg in names and i + 1 < len(argv):
                old = argv[i + 1]
            elif any(arg.startswith(n + "=") for n in names) or arg.startswith(f"{key}="):
                old = arg.split("=", 1)[1]
            else:
                continue
            if old != value:
                out[key] = (old, value)
            break
    return out


def plan(
    repo: Repo,
    run: Run,
    directory: Path | None,
    in_place: bool,
    params: dict[str, str],
    overlay: dict[str, Path] | None = None,
    replace: dict[str, str] | None = None,
) -> Plan:
    """Check that the run can be re-made and decide where; raise CannotRerun if not.

    `overlay` puts current files in place of snapshot files (a fixed module, for
    `affected --rerun`); `replace` maps old bytes to new ones (inputs an upstream rerun
    re-made)."""
    overlay = overlay or {}
    replace = replace or {}
    from vestige.store.tree import read_tree

    if run.status == "running":
        raise UsageError(f"run #{run.seq} is still running")
    argv = substitute(list(run.command), params)
    where = "the project" if in_place else str(directory or "the rerun's folder")
    if run.cwd not in ("", ".") and not safe_relative(run.cwd):
        raise unsafe_path(run, "cwd", run.cwd, where)
    for f in run.inputs:  # staged into the folder: checked before anything is written
        if not safe_recorded(f.path):
            raise unsafe_path(run, "inputs", f.path, where)
    files: list[tuple[str, str, int | None]] = []
    code = run.code or {}
    if code.get("tree"):
        for e in read_tree(repo.store.objects, code["tree"]):
            if not safe_relative(e.path):
                raise unsafe_path(run, "code", e.path, where)
            if not e.kept:
                raise CannotRerun(f"{e.path} of run #{run.seq}'s code was over the size limit "
                                  "and not kept; a rerun cannot rebuild the project")  # fmt: skip
            files.append((e.path, e.hash, e.mode))
    in_tree = {p for p, _h, _m in files}
    copies: list[tuple[str, Path]] = []
    for f in run.inputs:
        if f.hash in replace and not f.path.startswith("/"):
            files = [x for x in files if x[0] != f.path]
            files.append((f.path, replace[f.hash], f.mode))
            in_tree.add(f.path)
            continue
        source = _check_input(repo, run, f)
        if f.path.startswith("/") or f.path in in_tree or not f.hash:
            continue
        if source is None:
            files.append((f.path, f.hash, f.mode))
        else:
            copies.append((f.path, source))
        in_tree.add(f.path)
    for rel, current in overlay.items():
        files = [x for x in files if x[0] != rel]
        copies = [x for x in copies if x[0] != rel]
        copies.append((rel, current))
    if in_place:
        root = Path(run.root)
        _check_clean(root)
    else:
        import tempfile

        if directory is None:
            root = Path(tempfile.mkdtemp(prefix=f"vestige-rerun-{run.seq}-"))
        else:
            root = directory.resolve()
            if root.exists() and any(root.iterdir()):
                raise UsageError(f"--dir {directory}: not empty; give a new or empty folder")
    cwd = root / run.cwd if run.cwd not in ("", ".") else root
    return Plan(root=root, cwd=cwd, argv=argv, files=files, copies=copies, in_place=in_place)


def _check_input(repo: Repo, run: Run, f: FileRecord) -> Path | None:
    """An input must be kept (None: from the store), or still be at its place with the
    same bytes (that place, to copy it from)."""
    if f.hash is None:
        raise CannotRerun(f"input {f.path} of run #{run.seq} was never hashed; cannot rerun")
    if f.kept and repo.store.objects.available(f.hash):
        if f.path.startswith("/"):
            current = hash_if_file(f.path)
            if current != f.hash:
                raise CannotRerun(
                    f"input {f.path} (outside the project) has other bytes now or is gone; "
                    f"restore it first: vestige restore {run.seq} {f.path}"
                )
        return None
    where = Path(f.path) if f.path.startswith("/") else Path(run.root) / f.path
    current = hash_if_file(where)
    if current != f.hash and f.kept:
        freed = repo.freed_error(f"input {f.path} of run #{run.seq}", f.hash)
        if freed is not None:  # freed by gc: re-make it first
            raise CannotRerun(freed.message)
    if current != f.hash:
        why = "is gone" if current is None else "has other bytes now"
        raise CannotRerun(
            f"input {f.path} of run #{run.seq} was only hashed, not kept, and {why} "
            f"({where}); put the original back to rerun"
        )
    return where  # only hashed, but still there: copied from its place


def _check_clean(root: Path) -> None:
    import subprocess

    try:
        done = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is None or done.returncode != 0:
        raise UsageError("--in-place needs a git work tree (to know nothing would be lost)")
    if done.stdout.strip():
        raise UsageError("--in-place needs a clean git tree: commit or stash your changes first")


def materialize(repo: Repo, p: Plan) -> None:
    """Write the snapshot and inputs into the plan's root (verified bytes, atomic writes)."""
    for rel, digest, mode in p.files:
        dest = p.root / rel
        if hash_if_file(dest) != digest:
            repo.store.objects.copy_to(digest, dest, mode)
    import shutil

    for rel, source in p.copies:
        dest = p.root / rel
        if dest.resolve() != source.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    p.cwd.mkdir(parents=True, exist_ok=True)


def execute(
    repo: Repo, run: Run, p: Plan, stdout_to_stderr: bool = False
) -> tuple[int, str | None]:
    """Run the command as a new run of the same store; (exit code, new run id or None).
    With stdout_to_stderr the command's stdout is shown on stderr (ours carries JSON)."""
    from vestige.recording.runner import Launch, RunOptions

    _DAMAGED[run.id] = _damaged(repo, run)  # before the rerun's seal re-makes them
    options = RunOptions(cwd=str(p.cwd), rerun_of=run.id, store=str(repo.store.path),
                         root=str(p.root))  # fmt: skip
    launch = Launch(p.argv, options)
    here = os.getcwd()
    saved = os.dup(1) if stdout_to_stderr else -1
    os.chdir(p.cwd)  # the command starts in our working directory (posix_spawn has no cwd)
    try:
        if saved >= 0:
            os.dup2(2, 1)
        code = launch.execute()
    finally:
        os.chdir(here)
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)
    new_id = getattr(launch, "run_id", None)
    digest = repo.store.refs.get(new_id) if new_id else None
    if digest is not None:  # outputs gc freed that the rerun made again: back in the store
        made = repo.store.objects.read_json(digest)
        repo.unfree([f["hash"] for f in made.get("outputs") or [] if f.get("hash")]
               + [f["hash"] for a in made.get("artefacts") or []
                  for f in a.get("files") or [] if f.get("hash")])  # fmt: skip
    return code, new_id


#: run id -> the hashes of its kept outputs whose stored copies were damaged when its
#: rerun started (execute), for verdicts to say so: the rerun's seal re-makes them.
_DAMAGED: dict[str, set[str]] = {}


def _files(run: Run) -> dict[str, tuple[str | None, int, bool]]:
    """A run's outputs and artefact files (`artefact:NAME`): path -> (hash, size, kept)."""
    out = {f.path: (f.hash, f.size, f.kept) for f in run.outputs}
    for a in run.artefacts:
        for f in a.get("files") or []:
            out["artefact:" + str(f["path"])] = (f.get("hash"), int(f.get("size") or 0),
                                                 bool(f.get("kept", True)))  # fmt: skip
    return out


def _damaged(repo: Repo, run: Run) -> set[str]:
    """The hashes of the run's kept outputs whose objects are there but do not hash to
    their names (checked through the stat cache: one stat each when known intact)."""
    from vestige.store.statcache import StatCache

    objects = repo.store.objects
    cache = StatCache(repo.index.conn)
    damaged = {h for h, _size, kept in _files(run).values()
               if kept and h and objects.exists(h) and not objects.intact(h, cache)}  # fmt: skip
    cache.flush()
    return damaged


def verdicts(
    repo: Repo, old: Run, new: Run, rtol: float = 1e-9, atol: float = 0.0,
    changes: dict[str, tuple[str, str]] | None = None,
) -> list[Verdict]:  # fmt: skip
    """Each output (and artefact file) of `old` against `new`, then those only `new` has.

    Outputs are compared by the hashes the manifests record, so one whose stored copy was
    damaged is still identical when the rerun made the recorded bytes (its seal re-made
    the object from them, and the verdict says so); with other bytes, a damaged copy is
    not compared by content: it differs.

    With `changes` (params the rerun changed: key -> (old, new) value), other bytes are
    what was asked for: `changed`, not `differs`; and an output is matched by its role,
    not only its path: one whose path holds the old value (`out-lr0.1.csv`) is compared
    with the rerun's output at the path with the new value (`out-lr0.01.csv`)."""
    from vestige.store.statcache import StatCache

    before, after = _files(old), _files(new)
    changes = changes or {}
    renamed = _renamed(before, after, changes)
    damaged = _DAMAGED.get(old.id, set())
    cache = StatCache(repo.index.conn)
    result: list[Verdict] = []
    for path, (h1, s1, k1) in sorted(before.items()):
        if path not in after and path not in renamed:
            result.append(Verdict(path, "missing", "the rerun did not make it"))
            continue
        v = _verdict(repo, path, (h1, s1, k1), after[renamed.get(path, path)], damaged, cache,
                     rtol, atol)  # fmt: skip
        result.append(_as_changed(v, changes, renamed.get(path)) if changes else v)
    for path in sorted(set(after) - set(before) - set(renamed.values())):
        result.append(Verdict(path, "new", "only the rerun made it"))
    cache.flush()
    return result


def _renamed(
    before: dict[str, Any], after: dict[str, Any], changes: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """{original's path: the rerun's path} for outputs whose path holds a changed param's
    old value, where the rerun made the path with the new value instead."""
    out: dict[str, str] = {}
    for path in before:
        if path in after:
            continue
        for was, now in changes.values():
            twin = path.replace(was, now) if was else path
            if twin != path and twin in after and twin not in before:
                out[path] = twin
                break
    return out


def _as_changed(v: Verdict, changes: dict[str, tuple[str, str]], twin: str | None) -> Verdict:
    """A verdict under changed params: other bytes are `changed`, saying which param."""
    which = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changes.items()))
    where = f"; the rerun's {twin}" if twin else ""
    if v.verdict in ("identical", "close"):
        return Verdict(v.path, v.verdict, f"{v.summary} (param {which}){where}", v.details)
    return Verdict(v.path, "changed", f"param {which} changed: {v.summary}{where}", v.details)


def _verdict(
    repo: Repo, path: str, was: tuple[str | None, int, bool], now: tuple[str | None, int, bool],
    damaged: set[str], cache: Any, rtol: float, atol: float,
) -> Verdict:  # fmt: skip
    """One output's bytes in the original (`was`) against the rerun's (`now`)."""
    from vestige.history.filediff import compare_bytes

    objects = repo.store.objects
    (h1, s1, k1), (h2, s2, k2) = was, now
    if h1 is not None and h1 == h2:
        summary = "same bytes"
        if h1 in damaged:
            summary += (
                "; the original's stored copy was damaged: re-made from the rerun's bytes"
                if objects.intact(h1, cache)
                else "; the stored copy is damaged (see `vestige fsck`)"
            )
        return Verdict(path, "identical", summary)
    readable = bool(k1 and k2 and h1 and h2 and max(s1, s2) <= COMPARE_MAX_BYTES)
    readable = readable and objects.available(h1) and objects.available(h2)  # type: ignore[arg-type]
    for h in (h1, h2) if readable else ():
        if not objects.exists(h):  # type: ignore[arg-type]
            objects.verify(h)  # type: ignore[arg-type]  # (fetches it: pull --metadata-only)
    if readable and not objects.intact(h1, cache):  # type: ignore[arg-type]
        return Verdict(path, "differs", f"other bytes ({s1} -> {s2} bytes); the original's "
                       "stored copy is damaged (see `vestige fsck`), so only hashes were "
                       "compared", {"hashes": [h1, h2]})  # fmt: skip
    if not readable:
        return Verdict(path, "differs", f"other bytes ({s1} -> {s2} bytes)",
                       {"hashes": [h1, h2]})  # fmt: skip
    a = objects.read_bytes(h1, verify=True)  # type: ignore[arg-type]
    b = objects.read_bytes(h2, verify=True)  # type: ignore[arg-type]
    d = compare_bytes(path.removeprefix("artefact:"), a, b, rtol=rtol, atol=atol)
    return Verdict(path, d.verdict, d.summary, dict(d.details))


def reproduced(items: list[Verdict]) -> bool:
    """True when every output of the original came back identical or close."""
    return all(v.verdict in ("identical", "close", "new") for v in items)
