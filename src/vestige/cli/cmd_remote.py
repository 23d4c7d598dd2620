"""`vestige remote add|ls|rm`: the remotes runs are pushed to and pulled from (issue 17);
also the progress bar and the summary that `vestige push` and `vestige pull` print."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from vestige.cli._common import open_repo, print_json, status_style, when
from vestige.errors import StoreReadOnly
from vestige.remote.transfer import Progress, Transferred
from vestige.repo import Repo
from vestige.units import size

EPILOG = """\b
A remote is the store's own layout on another filesystem: any fsspec URL (s3://,
gs://, az://, sftp://, file:///shared/folder). Its settings go to .vestige/config.toml
as [remote.NAME]; credentials never do: S3 uses the standard AWS variables and
profiles (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL).
Examples:
  vestige remote add origin s3://lab-bucket/vestige
  vestige remote add minio s3://runs/team --endpoint-url http://127.0.0.1:9000
  vestige remote add shared file:///mnt/team/vestige
  vestige remote ls
  vestige remote ls origin --where 'params.lr < 0.01'
  vestige remote rm minio
"""
SETTINGS = {"help_option_names": ["-h", "--help"]}


def open_writable() -> Repo:
    """The repo for the current directory, made if missing (a fresh clone pulls into a
    new store); refused when the store cannot be written."""
    from vestige.recording.recover import recover

    repo = Repo.open(create=True, notice=True)
    if repo.readonly:
        repo.close()
        raise StoreReadOnly(f"the store {repo.store.path} is read-only: this command must "
                            "write to it")  # fmt: skip
    recover(repo)
    return repo


@click.group("remote", epilog=EPILOG, context_settings=SETTINGS)
def command() -> None:
    """Add, list or remove remotes; list a remote's runs."""


@command.command("add", context_settings=SETTINGS)
@click.argument("name")
@click.argument("url")
@click.option("--endpoint-url", metavar="URL", help="An S3-compatible server (MinIO, moto).")
@click.option("--profile", metavar="NAME", help="The AWS profile whose credentials to use.")
@click.option("--region", metavar="NAME", help="The bucket's region.")
def add(name: str, url: str, endpoint_url: str | None, profile: str | None,
        region: str | None) -> None:  # fmt: skip
    """Add a remote NAME at URL (any fsspec URL)."""
    from vestige.remote.sync import add as add_remote

    repo = open_writable()
    settings = {"endpoint_url": endpoint_url, "profile": profile, "region": region}
    add_remote(repo, name, url, {k: v for k, v in settings.items() if v})
    click.echo(f"added remote {name}: {url}")


@command.command("rm", context_settings=SETTINGS)
@click.argument("name")
def rm(name: str) -> None:
    """Remove the remote NAME (nothing on the remote is touched)."""
    from vestige.remote.sync import remove

    repo = open_writable()
    remove(repo, name)
    click.echo(f"removed remote {name}")


@command.command("ls", context_settings=SETTINGS)
@click.argument("name", required=False)
@click.option("--where", metavar="EXPR", help="Only the remote's runs matching (as `ls`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(name: str | None, where: str | None, as_json: bool) -> None:
    """List the remotes, or the runs the remote NAME holds (who, when, what)."""
    repo = open_repo()
    if name is None and where is None:
        remotes = repo.config.remotes
        if as_json:
            print_json({n: {k: v for k, v in s.items()} for n, s in remotes.items()})
        elif not remotes:
            click.echo("no remotes yet: vestige remote add origin s3://bucket/path")
        for n, s in sorted(remotes.items()):
            if not as_json:
                click.echo(f"{n}\t{s['url']}")
        return
    from vestige.remote.sync import remote_runs

    runs = remote_runs(repo, name, where)
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs match" if where else "the remote holds no runs yet")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "status", "started", "host", "here", "command"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for r in runs:
        table.add_row(r["id"][:10], f"[{status_style(r['status'])}]{r['status']}[/]",
                      when(r["started"]), r["host"], "yes" if r["pulled"] else "",
                      shlex.join(r["command"]))  # fmt: skip
    Console(highlight=False, width=None if sys.stdout.isatty() else 10_000).print(table)


class Bar(Progress):
    """A rich progress bar on stderr (objects and bytes, rate, ETA), when it is a terminal."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.bar: Any = None
        self.task: Any = None
        self.objects = 0
        self.total = 0

    def start(self, objects: int, size: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self.total = objects
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(),
                                transient=True)  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task(self._text(), total=size or 1)

    def _text(self) -> str:
        return f"{self.verb} {self.objects}/{self.total} objects"

    def advance(self, objects: int, size: int) -> None:
        if self.bar is not None:
            self.objects += objects
            self.bar.update(self.task, advance=size, description=self._text())

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def progress_for(verb: str, as_json: bool) -> Bar | None:
    """The bar when a person watches (stderr a terminal, no --json), else None (quiet)."""
    return None if as_json or not sys.stderr.isatty() else Bar(verb)


def _listed(run_ids: list[str], seqs: dict[str, int]) -> tuple[str, str]:
    """("3 runs", "#4 #5 #6"): a count, and the first 20 by number here (else id prefix)."""
    shown = " ".join(f"#{seqs[r]}" if r in seqs else r[:10] for r in run_ids[:20])
    more = f" and {len(run_ids) - 20} more" if len(run_ids) > 20 else ""
    return f"{len(run_ids)} run{'s' if len(run_ids) != 1 else ''}", shown + more


def report(done: Transferred, verb: str, name: str, as_json: bool, repo: Repo) -> None:
    """Print what a push or pull did; exit 1 when it left runs out (named on stderr)."""
    seqs = repo.index.runs.seqs() if verb == "pulled" else {}
    marked = list(done.marked)
    if as_json:

        def listed(run_ids: list[str]) -> list[dict[str, Any]]:
            """Each run's id, with its number here when the runs are here (a pull)."""
            return [{"id": r, "seq": seqs.get(r)} if seqs else {"id": r} for r in run_ids]

        print_json({"remote": name, verb: listed(done.runs), "objects": done.objects,
                    "bytes": done.bytes, "marks_merged": listed(marked), "asked": done.asked,
                    "left_out": [{"id": r, "why": w} for r, w in done.left_out]})  # fmt: skip
    else:
        seqs = seqs or repo.index.runs.seqs()  # (pushed runs by their numbers here, too)
        there = "the remote" if verb == "pushed" else "this store"
        if done.runs or done.objects:
            word = "to" if verb == "pushed" else "from"
            runs, shown = _listed(done.runs, seqs)
            click.echo(f"{verb} {runs} {word} {name} ({done.objects} objects, "
                       f"{size(done.bytes)}){': ' + shown if done.runs else ''}")  # fmt: skip
        elif not done.asked:  # (known.py: not asked; --all asks)
            click.echo(f"nothing to push: every run and mark here reached {name} by an "
                       "earlier push or pull (`vestige push --all` checks the remote)")  # fmt: skip
        elif not marked:
            click.echo(f"nothing to {verb[:-2]}: {there} has every run ({name})")
        if marked:
            runs, shown = _listed(marked, seqs)
            click.echo(f"merged the tags, notes, names or pins of {runs} into {there} "
                       f"({name}): {shown}")  # fmt: skip
    for run_id, why in done.left_out:
        click.echo(f"warning: run {run_id} left out: {why}", err=True)
    if done.left_out:
        raise click.exceptions.Exit(1)
