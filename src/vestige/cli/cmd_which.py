"""`vestige which FILE`: the runs that wrote these exact bytes, wherever the file is now;
with --similar, the kept images that look like FILE (vestige/history/similar.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from vestige.cli._common import iso, open_repo, print_json
from vestige.errors import NoStore, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.history.similar import Lookup
    from vestige.repo import Maker, Repo

#: `which --similar` says on stderr that it is hashing when there are at least this many.
HASHING_NOTICE = 20


@click.command("which", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Found by content: the file may have been copied, renamed, or moved out of the
project, and the code that made it may be gone. Several runs can make the same
bytes: the first maker is listed first. With --similar, FILE is an image that
was resized, re-encoded or screenshotted: the kept images nearest to it by
perceptual hash are listed with their runs (needs `vestige[similar]`).
Outside a project (or with --all-stores), every store this user has recorded
into is searched (the list: docs/format.md), each run named with its project.
Examples:
  vestige which paper/fig3.png
  vestige which ~/Downloads/results.csv --json
  vestige which --similar slide-shot.png
  vestige which --similar slide-shot.jpg --limit 10 --json
  vestige which --path out/model.pkl
  cd ~/paper && vestige which fig3.png     (searches all stores)
  vestige which fig3.png --remote origin   (the team's runs, not pulled)
""")  # fmt: skip
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--similar",
    is_flag=True,
    help="FILE is an image: list the kept images that look like it, nearest first.",
)
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=None, metavar="N",
    help="With --similar: at most N images (default 5).",
)  # fmt: skip
@click.option(
    "--path", "by_path", is_flag=True,
    help="The history of the path FILE instead: every run that read or wrote it.",
)  # fmt: skip
@click.option(
    "--all-stores", "all_stores", is_flag=True,
    help="Search every store this user has recorded into (the default outside a project).",
)  # fmt: skip
@click.option(
    "--remote", "remote", metavar="NAME",
    help="Search the runs of the remote NAME instead (nothing is pulled).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def command(
    file: Path, similar: bool, limit: int | None, by_path: bool, all_stores: bool,
    remote: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Find the runs that made FILE's exact bytes (and the runs that read them); with
    --similar, the kept images that look like FILE, with their runs."""
    if remote is not None:
        _on_remote(file, remote, (similar, by_path, all_stores), as_json)
        return
    if limit is not None and not similar:
        raise UsageError("--limit goes with --similar")
    if by_path and similar:
        raise UsageError("choose one of --path and --similar")
    if all_stores and (by_path or similar):
        raise UsageError("--all-stores finds exact bytes only: drop --path or --similar")
    here = _store_here()
    if all_stores or (here is None and not (by_path or similar)):
        _everywhere(file, here, as_json)
        return
    repo = open_repo()
    if by_path:
        _history(repo, file, as_json)
        return
    if similar:
        _similar(repo, file, 5 if limit is None else limit, as_json)
        return
    digest, makers, readers = repo.which(file)
    published = _published(repo, file, digest, makers)
    if as_json:
        print_json({
            "path": str(file),
            "hash": digest,
            "made_by": [m.to_dict() for m in makers],
            "read_by": [r.to_dict() for r in readers],
        })  # fmt: skip
        if not makers:
            raise SystemExit(1)
        return
    if not makers:
        seen = f"; it was read by run #{readers[0].seq}" if readers else ""
        click.echo(f"{file}: no recorded run made these bytes (blake3 {digest[:12]}){seen}")
        raise SystemExit(1)
    first = makers[0]
    from vestige.repo import one_per_run

    others = one_per_run([m for m in makers if m.run_id != first.run_id])
    click.echo(f"{file}: made by run #{first.seq} ({first.run_id[:10]}), {iso(first.started)}")
    click.echo(f"  as     {first.path}")
    click.echo(f"  by     {first.command}")
    click.echo(f"  status {first.status}" + ("" if first.confirmed else "  (seen by scan only)"))
    if others:
        click.echo(f"also made by {len(others)} later run{'s' if len(others) > 1 else ''}:")
        for m in others:
            click.echo(f"  #{m.seq} {iso(m.started)} {m.path}  {shlex.quote(m.command)[:80]}")
    if readers:
        seqs = ", ".join(f"#{r.seq}" for r in readers[:10])
        click.echo(f"read by {seqs}")
    for p in published:
        how = "published by `vestige publish`" if p["how"] == "publish" else "seen by `which`"
        click.echo(f"left the project: {p['dest']} ({how}, {iso(p['t'])})")


def _on_remote(file: Path, name: str, others: tuple[bool, ...], as_json: bool) -> None:
    """`which --remote NAME`: the remote's runs that made FILE's bytes, from their manifests
    (read once; nothing pulled), each with the `vestige pull` that brings it (issue 17)."""
    from vestige.remote.sync import which_remote

    if any(others):
        raise UsageError("--remote finds exact bytes on one remote: drop --similar, --path "
                         "and --all-stores")  # fmt: skip
    repo = open_repo()
    found = which_remote(repo, name, file)
    made, read = found["made_by"], found["read_by"]
    remote = found["remote"]
    if as_json:
        print_json(found)
        if not made:
            raise SystemExit(1)
        return
    if not made:
        seen = f"; it was read by run {read[0]['run_id'][:10]}" if read else ""
        click.echo(f"{file}: no run of remote {remote} made these bytes ({found['searched']} "
                   f"runs searched, blake3 {found['hash'][:12]}){seen}")  # fmt: skip
        raise SystemExit(1)
    for n, m in enumerate(made):
        head = f"{file}: made by" if n == 0 else "also made by"
        click.echo(f"{head} run {m['run_id'][:10]} of remote {remote} (on {m['host'] or '?'}), "
                   f"{iso(m['started'])}")  # fmt: skip
        click.echo(f"  as     {m['path']}")
        click.echo(f"  by     {shlex.join(m['command'])}")
        click.echo(f"  status {m['status']}")
        if m["here"]:
            click.echo("  here   this store has it: `vestige which` without --remote shows it")
        else:
            click.echo(f"  pull   vestige pull {remote} {m['run_id']}")
    if read:
        click.echo("read by " + ", ".join(r["run_id"][:10] for r in read[:10]))


def _store_here() -> str | None:
    """The store found from the current folder, or None when there is none."""
    from vestige.store import layout

    store, _root = layout.locate()
    return store if layout.exists(store) else None


def _everywhere(file: Path, here: str | None, as_json: bool) -> None:
    """`which --all-stores` (the default outside a project): every store on the user's list
    (and the one here), each hit named by its project; unreadable stores are skipped with a
    note on stderr."""
    from vestige.history.everywhere import which_everywhere
    from vestige.store.known import list_path

    if here is not None:
        open_repo().close()  # (this project's runs a killed vestige left: sealed, as `which`)
    found = which_everywhere(file, here)
    if not found.searched:  # (as before the list: nothing to search is a usage error)
        raise NoStore(
            f"no vestige store here, and this user has recorded into none yet "
            f"({list_path()} lists none); record a run with `vestige run` first"
        )
    for store, why in found.skipped:
        click.echo(f"vestige: skipped the store {store}: {why}", err=True)
    made = [h for h in found.found if h.made_by]
    if as_json:
        print_json({
            "path": str(file),
            "hash": found.hash,
            "made_by": [{**m.to_dict(), "project": h.project, "store": h.store}
                        for h in found.found for m in h.made_by],
            "read_by": [{**m.to_dict(), "project": h.project, "store": h.store}
                        for h in found.found for m in h.read_by],
            "stores": found.searched,
            "skipped": [{"store": s, "why": w} for s, w in found.skipped],
        })  # fmt: skip
        if not made:
            raise SystemExit(1)
        return
    if not made:
        seen = ""
        if found.found:
            r, h = found.found[0].read_by[0], found.found[0]
            seen = f"; it was read by run #{r.seq} of {h.project}"
        n = len(found.searched)
        stores = f"{n} store{'s' if n != 1 else ''}"
        click.echo(f"{file}: no recorded run made these bytes in the {stores} searched"
                   f" (blake3 {found.hash[:12]}){seen}")  # fmt: skip
        raise SystemExit(1)
    for h in made:
        first = h.made_by[0]
        from vestige.repo import one_per_run

        others = one_per_run([m for m in h.made_by if m.run_id != first.run_id])
        click.echo(f"{file}: made by run #{first.seq} ({first.run_id[:10]}) of {h.project},"
                   f" {iso(first.started)}")  # fmt: skip
        click.echo(f"  as     {first.path}")
        click.echo(f"  by     {first.command}")
        click.echo(
            f"  status {first.status}" + ("" if first.confirmed else "  (seen by scan only)")
        )
        if others:
            click.echo(f"  also made by {', '.join(f'#{m.seq}' for m in others[:10])}")
        if h.read_by:
            click.echo(f"  read by {', '.join(f'#{r.seq}' for r in h.read_by[:10])}")
        for p in _published_in(h.store, h.project, file, found.hash, h.made_by):
            how = "published by `vestige publish`" if p["how"] == "publish" else "seen by `which`"
            click.echo(f"  left the project: {p['dest']} ({how}, {iso(p['t'])})")


def _published_in(
    store: str, project: str, file: Path, digest: str, makers: list[Maker]
) -> list[dict[str, Any]]:
    """The debt ledger's hook (as `_published`) in another project's store: best effort,
    a store that cannot be opened now shows no copies."""
    import sqlite3

    from vestige.errors import VestigeError
    from vestige.repo import Repo

    try:
        repo = Repo.open_at(store, project)
    except (VestigeError, OSError, sqlite3.Error):
        return []
    try:
        return _published(repo, file, digest, makers)
    finally:
        repo.close()


def _published(repo: Repo, file: Path, digest: str, makers: list[Maker]) -> list[dict[str, Any]]:
    """The debt ledger's hook (vestige/upkeep/publish.py, docs/debt.md): a run's bytes found
    outside the project are recorded as seen there (they count as published only once they
    have been known for `debt.young_days`); every such record is shown."""
    from vestige.clock import now
    from vestige.upkeep.publish import note_which

    return note_which(repo, file, digest, makers, now())


def _similar(repo: Repo, file: Path, limit: int, as_json: bool) -> None:
    from vestige.history import similar

    def notice(count: int) -> None:
        if count >= HASHING_NOTICE:
            click.echo(
                f"vestige: hashing {count} kept images once (the index keeps them)", err=True
            )

    found = similar.similar(repo, file, limit=limit, progress=notice)
    if as_json:
        print_json(found.to_dict())
    else:
        click.echo("\n".join(_similar_text(found, similar.BITS)))
    if not found.matches:
        raise SystemExit(1)


def _similar_text(found: Lookup, bits: int) -> list[str]:
    scale = f"distance = differing bits of {bits}, similar up to {found.threshold}"
    tail = []
    if found.skipped:
        tail.append(
            f"{_count(found.skipped, 'kept image')} not compared"
            " (undecodable, or SVG/PDF without cairosvg/pdftoppm)"
        )
    if not found.compared:
        return [f"{found.path}: the store keeps no image to compare it with", *tail]
    if not found.matches:
        return [
            f"{found.path}: no kept image looks like it ({found.compared} compared;"
            f" the nearest is at distance {found.nearest}; {scale})",
            *tail,
        ]
    n = len(found.matches)
    verb = "looks" if n == 1 else "look"
    lines = [f"{found.path}: {_count(n, 'kept image')} {verb} like it"
             f" ({found.compared} compared; {scale})"]  # fmt: skip
    for m in found.matches:
        same = " (the same bytes)" if m.hash == found.hash else ""
        how, runs = ("made", m.made_by) if m.made_by else ("read", m.read_by)
        first = runs[0]
        lines += [
            f"distance {m.distance}{same}: {how} by run #{first.seq} ({first.run_id[:10]}),"
            f" {iso(first.started)}",
            f"  as     {first.path}",
            f"  by     {first.command}",
            f"  status {first.status}",
        ]
        if runs[1:]:
            lines.append(f"  also {how} by {_seqs(runs[1:])}")
        if m.made_by and m.read_by:
            lines.append(f"  read by {_seqs(m.read_by)}")
    return [*lines, *tail]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _seqs(runs: list[Maker], most: int = 10) -> str:
    shown = ", ".join(f"#{r.seq}" for r in runs[:most])
    return shown + (f" and {len(runs) - most} more" if len(runs) > most else "")


_VERBS = {"output": "wrote", "input": "read", "artefact": "kept", "code": "ran", "module": "ran"}


def _history(repo: Repo, file: Path, as_json: bool) -> None:
    """`which --path`: every run that read, wrote, ran or kept this path, oldest first; the
    file need not exist any more."""
    import json

    from vestige.repo import path_forms
    from vestige.store.hashing import hash_file

    root = repo.store.root
    forms = sorted(path_forms(str(file), root, Path.cwd()))
    rows = repo.index.files.history_of(forms)
    current = hash_file(file) if file.is_file() else None
    history = [
        {
            "run_id": r[0],
            "seq": r[1],
            "started": r[2],
            "command": json.loads(r[3]),
            "status": r[4],
            "role": r[5],
            "path": r[6],
            "hash": r[7],
            "size": r[8],
            "current": current is not None and r[7] == current,
        }
        for r in rows
    ]
    if as_json:
        print_json({"path": str(file), "hash": current, "history": history})
    elif not history:
        click.echo(f"{file}: no recorded run read or wrote this path")
    else:
        click.echo(f"{file}: {len(history)} record(s), oldest first"
                   + ("" if current else " (the file is not there now)"))  # fmt: skip
        for h in history:
            mark = "  <- the bytes there now" if h["current"] else ""
            digest = (h["hash"] or "?")[:12]
            verb = _VERBS.get(h["role"], h["role"])
            cmd = shlex.join(h["command"])[:60]
            click.echo(f"  #{h['seq']:<4} {iso(h['started'])}  {verb:5}  {digest}  {cmd}{mark}")
    if not history:
        raise SystemExit(1)
