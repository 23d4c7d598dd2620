"""`vestige stale`: outputs whose code or inputs changed since, and what to rerun, in order."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo, print_json


@click.command("stale", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
A run is stale when a file in the tree has its output's bytes, and since that run a
project file it ran or imported, or a file it read, has changed or gone, or an
input came from a stale run. Runs are listed producers first: rerun them in order.
Exit code 1 when something is stale (like `git diff --exit-code`), else 0.
Examples:
  vestige stale
  vestige stale --json | jq '.[].command'
""")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(as_json: bool) -> None:
    """List the runs whose outputs no longer follow from the project, in rerun order."""
    from vestige.history import lineage

    repo = open_repo()
    items = lineage.stale(repo)
    root = repo.store.root
    if as_json:
        print_json([{**i.to_dict(), "refresh": lineage.refresh_command(i, root)} for i in items])
    elif not items:
        click.echo("nothing is stale: every recorded output in the tree follows from its code")
    else:
        for n, item in enumerate(items, 1):
            click.echo(f"{n}. run #{item.seq}  made {', '.join(item.outputs) or '(upstream)'}")
            for reason in item.reasons:
                click.echo(f"     because {reason}")
            click.echo(f"     refresh: {lineage.refresh_command(item, root)}")
    if items:
        raise SystemExit(1)
