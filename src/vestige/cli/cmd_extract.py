"""`vestige extract RUN --output PATH | --artefact NAME | --cell N [-o FILE]`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo, print_json
from vestige.errors import UsageError


@click.command("extract", context_settings=RUN_ARG_SETTINGS, epilog="""\b
The script keeps only the cells the target needs, in the order they ran and as the
versions that ran (a cell edited and re-run counts as the version before the target);
IPython syntax becomes plain Python. Warnings say where the slice had to keep more
(exec, globals(), star imports) and which names it could not find.
Examples:
  vestige extract @last --output fig.png -o make_fig.py
  vestige extract 42 --artefact cell-7/output-1 -o plot.py
  vestige extract 42 --cell 17 --name df
""")  # fmt: skip
@click.argument("run")
@click.option("--output", "output", metavar="PATH", help="A file a cell wrote.")
@click.option("--artefact", metavar="NAME", help="An image a cell showed, or a kept artefact.")
@click.option("--cell", "cell", type=int, metavar="N", help="Cell N of `vestige cells`.")
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="VAR",
    help="Only what these variables need, as they were after the target cell.",
)
@click.option(
    "-o",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the script here (default: stdout).",
)
@click.option("--force", is_flag=True, help="Overwrite -o's file if it exists.")
@click.option("--json", "as_json", is_flag=True, help="The script and the slice as JSON.")
def command(
    run: str, output: str | None, artefact: str | None, cell: int | None,
    names: tuple[str, ...], out: Path | None, force: bool, as_json: bool,
) -> None:  # fmt: skip
    """Write the cells of a notebook run that made one output, as a runnable script."""
    from vestige.extract.script import extract

    repo = open_repo()
    record = repo.run(run)
    if out is not None and out.exists() and not force:
        raise UsageError(f"{out} exists; choose another -o or add --force")
    result = extract(repo, record, output=output, artefact=artefact, cell=cell,
                     names=list(names), cwd=Path.cwd())  # fmt: skip
    if as_json:
        print_json({"run": record.id, "seq": record.seq, "target": result.target,
                    "what": result.what, "steps": list(result.steps), "total": result.total,
                    "warnings": list(result.warnings), "needs": list(result.needs),
                    "script": result.script})  # fmt: skip
    elif out is None:
        sys.stdout.write(result.script)
    else:
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_text(result.script)
        os.replace(tmp, out)
    if not as_json:
        say = f"kept {len(result.steps)} of {result.total} cells for {result.what}"
        click.echo(say + (f"; wrote {out}" if out is not None else ""), err=True)
        for line in result.warnings:
            click.echo(f"warning: {line}", err=True)
        if result.needs:
            names = ", ".join(result.needs)
            click.echo(f"warning: defined by no cell before the cells that use them: {names}",
                       err=True)  # fmt: skip
