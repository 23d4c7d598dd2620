"""`vestige gc`: free the kept files of old runs that `vestige rerun` can re-make."""

from __future__ import annotations

import click

from vestige.cli._common import open_repo, print_json
from vestige.units import size


@click.command("gc", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
A run is a candidate when it is not among the newest --keep-last runs, is older than
--older-than, and is neither pinned (`vestige pin`) nor tagged. Only its kept outputs,
inputs and artefact files are freed, and only those that a run which made them can
re-make (`vestige rerun`); code, logs, metrics and manifests always stay, and so does
anything a kept run needs. --max-size frees the oldest candidates' files first until
the store is under the size. When the store has remotes, a file no remote holds stays
until it is pushed (--force frees it all the same). A freed file leaves a record:
`vestige cat` names the run that re-makes it. Sizes: 50GB, 500MiB, 1e9; durations: 90d, 12w, 36h.
Examples:
  vestige gc --older-than 90d --keep-last 50 --dry-run
  vestige gc --max-size 50GB --min-size 1MB
""")  # fmt: skip
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N",
              help="Never touch the newest N runs.")  # fmt: skip
@click.option("--older-than", metavar="DURATION", help="Only runs started longer ago (90d).")
@click.option("--max-size", metavar="SIZE", help="Free oldest first until the store is under SIZE.")
@click.option("--min-size", metavar="SIZE", help="Free only files at least SIZE large.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Free payloads no remote holds, too.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (or result) as JSON.")
def command(
    keep_last: int | None, older_than: str | None, max_size: str | None, min_size: str | None,
    dry_run: bool, force: bool, as_json: bool,
) -> None:  # fmt: skip
    """Free kept files of old runs that can be re-made; keep what kept runs need."""
    from vestige import clock
    from vestige.upkeep.gc import Policy, collect

    policy = Policy(
        keep_last=keep_last,
        older_than=None if older_than is None else clock.parse_duration(older_than, "--older-than"),
        max_size=None if max_size is None else clock.parse_size(max_size, "--max-size"),
        min_size=0 if min_size is None else clock.parse_size(min_size, "--min-size"),
    )
    policy.check()
    now = clock.now()
    repo = open_repo()
    result = collect(repo, policy, now, dry_run=dry_run, force=force)
    seqs = repo.index.runs.seqs()
    data = result.to_dict(seqs)
    for line in data["warnings"]:
        click.echo(f"warning: {line}", err=True)
    if as_json:
        print_json(data)
        return
    verb = "would free" if dry_run else "freed"
    click.echo(f"gc{' (dry run)' if dry_run else ''}: {verb} {data['objects']} objects, "
               f"{size(data['bytes'])}, of {len(data['runs'])} runs ({data['candidates']} "
               f"candidates); store {size(data['stored_before'])} -> "
               f"{size(data['stored_after'])}")  # fmt: skip
    if data["runs"]:
        shown = " ".join(f"#{r['seq']}" for r in data["runs"][:30])
        more = f" and {len(data['runs']) - 30} more" if len(data["runs"]) > 30 else ""
        click.echo(f"  runs touched: {shown}{more}")
    temporary = data["temporary"]
    if temporary["files"]:
        click.echo(f"  {'would remove' if dry_run else 'removed'} {temporary['files']} "
                   f"leftover temporary file(s) of processes that died, "
                   f"{size(temporary['bytes'])}")  # fmt: skip
    for reason, n in data["kept"].items():
        click.echo(f"  kept {n['objects']} objects, {size(n['bytes'])}: {reason}")
    if data["objects"] and not dry_run:
        click.echo("  `vestige cat` and `vestige restore` name the run that re-makes a freed file")
