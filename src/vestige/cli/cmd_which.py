"""`vestige which FILE`: the runs that wrote these exact bytes, wherever the file is now."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from vestige.cli._common import iso, open_repo, print_json


@click.command("which", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Found by content: the file may have been copied, renamed, or moved out of the
project, and the code that made it may be gone. Several runs can make the same
bytes: the first maker is listed first.
Examples:
  vestige which paper/fig3.png
  vestige which ~/Downloads/results.csv --json
""")  # fmt: skip
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def command(file: Path, as_json: bool) -> None:
    """Find the runs that made FILE's exact bytes (and the runs that read them)."""
    repo = open_repo()
    digest, makers, readers = repo.which(file)
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
    first, others = makers[0], makers[1:]
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
