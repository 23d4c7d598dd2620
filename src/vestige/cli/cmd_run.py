"""`vestige run [OPTIONS] COMMAND [ARGS]...`: run and record a command."""

from __future__ import annotations

import click

from vestige.cli._run import fast_run

HELP = """Run COMMAND and record everything it reads, writes and prints.

\b
Options go before the command; everything from the command on is passed to it as is.
A first argument ending in .py runs with the current Python (the active virtualenv's
or conda env's, else vestige's own).

\b
Examples:
  vestige run python analyze.py --lr 0.1
  vestige run analyze.py --model vit
  vestige run --param note=baseline bash make_figs.sh
  vestige run --each model=resnet,vit,mlp -j 3 -- python analyze.py --model {model}
  vestige run --each ckpt=glob:checkpoints/*.pt -- python eval.py {ckpt}
"""


@click.command(
    "run",
    help=HELP,
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Record a param (overrides what the command's own parsing found).")  # fmt: skip
@click.option("--name", metavar="NAME", help="Name the run: `vestige show NAME` finds it.")
@click.option("--push", metavar="REMOTE", help="Push the run (or sweep) to REMOTE when it ends.")
@click.option(
    "--each",
    multiple=True,
    metavar="NAME=V1,V2",
    help="Sweep: run once per value (\\, is a comma in a value; or NAME=glob:PATTERN); "
    "repeat for a grid.",
)
@click.option("--grid", metavar="FILE", help="Sweep over a JSON/YAML grid of values.")
@click.option("-j", "--jobs", metavar="N", help="Sweep: children at once (default 1).")
@click.option("--fail-fast", is_flag=True, help="Sweep: stop at the first failed child.")
@click.option(
    "--skip-done",
    is_flag=True,
    help="Sweep: skip children with an ok run of the same code and inputs.",
)
@click.option("--executor", metavar="NAME", help="Sweep: local (default), dask or slurm.")
@click.option("--scheduler", metavar="ADDR", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option("--slurm-partition", metavar="P", help="Slurm partition.")
@click.option("--slurm-gpus", metavar="N", help="Slurm GPUs per child.")
@click.option("--slurm-time", metavar="MIN", help="Slurm time limit per child (minutes).")
@click.option("--slurm-cpus", metavar="N", help="Slurm CPUs per child.")
@click.option("--slurm-mem", metavar="GB", help="Slurm memory per child (GB).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def command(command: tuple[str, ...], **opts: object) -> int:
    args: list[str] = []
    for p in opts.pop("params") or ():  # type: ignore[attr-defined]
        args += ["--param", str(p)]
    for e in opts.pop("each") or ():  # type: ignore[attr-defined]
        args += ["--each", str(e)]
    for name, value in opts.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    code = fast_run([*args, "--", *command])
    raise SystemExit(code or 0)
