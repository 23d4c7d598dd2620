"""`vestige fsck`: verify the store's invariants (docs/format.md); exit 1 on any broken one."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo
from vestige.errors import FsckFailed
from vestige.upkeep.fsck import fsck


@click.command(
    "fsck",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Checks the invariants of docs/format.md: every object's bytes match its name, every
ref names a valid manifest, every object a manifest or tree needs exists. Problems
that `vestige reindex` repairs, or leftovers that are harmless, are printed as notes.
Exit status: 0 when the store is sound, 1 when something is broken (each named).
Examples:
  vestige fsck
  vestige fsck || echo "the store needs attention"
""",
)
def command() -> None:
    """Re-hash every object and check every manifest, tree and ref."""
    repo = open_repo()
    problems = fsck(repo)
    must = [p for p in problems if p.severity == "must"]
    for p in problems:
        click.echo(f"{'error' if p.severity == 'must' else 'note'}: {p}", err=p.severity == "must")
    if must:
        raise FsckFailed(
            f"{len(must)} problem{'s' if len(must) != 1 else ''} found in {repo.store.path}"
        )
    runs = sum(1 for _ in repo.store.refs)
    click.echo(f"ok: {runs} runs checked in {repo.store.path}")
