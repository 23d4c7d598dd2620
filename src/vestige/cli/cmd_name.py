"""`vestige name RUN [NAME] [--clear]`: give a run a name, print it, or take it away."""

from __future__ import annotations

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo
from vestige.errors import StoreReadOnly, UsageError


@click.command("name", context_settings=RUN_ARG_SETTINGS, epilog="""\b
A name is a run reference like its number: `vestige show baseline` while one run has it
(names need not be unique: `ls --where 'name = baseline'` lists every run that has one).
Names are kept beside the sealed run, like tags and notes. Examples:
  vestige name 42 baseline
  vestige name 42
  vestige name baseline --clear
  vestige run --name baseline python train.py
""")  # fmt: skip
@click.argument("run")
@click.argument("name", required=False)
@click.option("--clear", is_flag=True, help="Take the run's name away.")
def command(run: str, name: str | None, clear: bool) -> None:
    """Give a run a name, print its name, or take it away (--clear)."""
    if clear and name is not None:
        raise UsageError("give a NAME or --clear, not both")
    repo = open_repo()
    if (clear or name is not None) and repo.readonly:
        raise StoreReadOnly(f"the store {repo.store.path} is read-only: `vestige name` must "
                            "write to it")  # fmt: skip
    if name is None and not clear:
        run_id = repo.resolve(run)
        seq = repo.index.runs.seq_of(run_id)
        current = repo.run_name(run_id)
        click.echo(current if current is not None else f"run #{seq} has no name")
        return
    run_id, before = repo.name(run, None if clear else name)
    seq = repo.index.runs.seq_of(run_id)
    if clear:
        click.echo(f"run #{seq}: name {before!r} removed" if before else f"run #{seq} had no name")
        return
    now = repo.run_name(run_id)
    others = [s for i, s in repo.index.runs.ids_by_name(now or "") if i != run_id]
    click.echo(f"run #{seq} is now named {now!r}")
    if others:  # (still a name: `ls --where 'name = ...'` finds them all)
        shown = ", ".join(f"#{s}" for s in others[:5])
        click.echo(f"note: {now!r} also names run(s) {shown}: refer to them by number", err=True)
