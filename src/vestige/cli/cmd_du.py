"""`vestige du`: what the store holds, what the runs recorded, and the dedup ratio."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo, print_json
from vestige.errors import UsageError
from vestige.units import size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.repo import Repo


@click.command("du", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Logical size: what the runs recorded (files as sized then, code snapshots, logs,
metrics, environments, manifests), counted once per run. Stored size: the bytes in
.vestige/objects. Their ratio is what deduplication saves. With --by, per group:
logical bytes, stored bytes of the objects it names, and the exclusive part (named by
no other group: what freeing the group could give back).
With --remote NAME: the remote's runs, objects and bytes, and what only this store
or only the remote holds (what `vestige push` or `vestige pull` would move).
Examples:
  vestige du
  vestige du --by kind
  vestige du --by script --json
  vestige du --remote origin
""")  # fmt: skip
@click.option("--by", type=click.Choice(["run", "kind", "script"]), help="Group the sizes.")
@click.option("--remote", "remote", metavar="NAME", help="The size of this remote instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def command(by: str | None, remote: str | None, as_json: bool) -> None:
    """Show the store's logical and stored size and the dedup ratio."""
    from vestige.upkeep.du import du

    repo = open_repo()
    if remote is not None:
        if by is not None:
            raise UsageError("--by groups this store's sizes; leave it out with --remote")
        _remote(repo, remote, as_json)
        return
    data = du(repo, by)
    if as_json:
        print_json(data)
        return
    ratio = f"{data['dedup_ratio']:.2f}x" if data["dedup_ratio"] else "-"
    stored = f"{size(data['stored'])} in {data['objects']} objects"
    click.echo(f"logical {size(data['logical'])} recorded by {data['runs']} runs; "
               f"stored {stored}; dedup ratio {ratio}")  # fmt: skip
    if data["unreferenced"]:
        click.echo(f"  {size(data['unreferenced'])} in objects no run names (annotations, "
                   "records, leftovers of killed processes)")  # fmt: skip
    if data["freed"]["objects"]:
        click.echo(f"  freed by gc: {data['freed']['objects']} objects, "
                   f"{size(data['freed']['bytes'])} (re-made by `vestige rerun`)")  # fmt: skip
    if by is None:
        return
    rows = data["groups"]
    width = max([len(by), *(len(r["group"]) for r in rows)])
    click.echo(f"{by:<{width}}  {'runs':>6}  {'logical':>11}  {'stored':>11}  {'exclusive':>11}")
    for r in rows:
        click.echo(f"{r['group']:<{width}}  {r['runs']:>6}  {size(r['logical']):>11}  "
                   f"{size(r['stored']):>11}  {size(r['exclusive']):>11}")  # fmt: skip


def _remote(repo: Repo, name: str, as_json: bool) -> None:
    """`du --remote NAME`: what the remote holds, and what only one side has."""
    from vestige.remote.sync import usage

    data = usage(repo, name)
    if as_json:
        print_json(data)
        return
    click.echo(f"{data['url']}: {data['runs']} runs; stored {size(data['stored'])} in "
               f"{data['objects']} objects")  # fmt: skip
    for key, side, verb in (("only_here", "only here", "push"), ("only_there", "only there",
                                                                  "pull")):  # fmt: skip
        part = data[key]
        if part["runs"] or part["objects"]:
            click.echo(f"  {side}: {part['runs']} runs, {part['objects']} objects, "
                       f"{size(part['bytes'])} (`vestige {verb}` moves them)")  # fmt: skip
