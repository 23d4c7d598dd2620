"""The click application: the command group and its subcommands, loaded on demand."""

from __future__ import annotations

import importlib
from typing import Any

import click

from vestige._version import __version__

#: name -> (module, help line); modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cmd_run", "Run a command; record all it reads, writes and prints."),
    "ls": ("cmd_ls", "List runs, newest first."),
    "show": ("cmd_show", "Show what a run read, wrote, printed and ran with."),
    "cat": ("cmd_cat", "Write a kept file of a run to stdout."),
    "log": ("cmd_log", "Print what a run printed (stdout, or --stderr)."),
    "which": ("cmd_which", "Find the runs that made a file's exact bytes."),
    "metrics": ("cmd_metrics", "Summarise a run's metrics, or print one series."),
    "cells": ("cmd_cells", "List the cells a notebook run executed, in order."),
    "extract": ("cmd_extract", "Write the cells that made one output as a runnable script."),
    "tag": ("cmd_tag", "Add, remove or list the tags of a run."),
    "note": ("cmd_note", "Add a note to a run, or print its notes."),
    "name": ("cmd_name", "Give a run a name to refer to it by, or print its name."),
    "diff": ("cmd_diff", "Show how two runs differ: code, params, env, files, metrics."),
    "compare": ("cmd_compare", "Compare the params and metrics of several runs."),
    "lineage": ("cmd_lineage", "Show the runs and files that led to a file's bytes."),
    "stale": ("cmd_stale", "List runs whose outputs no longer follow from the code."),
    "refresh": ("cmd_refresh", "Rerun the stale runs, upstream first (stale --run)."),
    "restore": ("cmd_restore", "Write a run's kept code, inputs or outputs back."),
    "rerun": ("cmd_rerun", "Re-make a run from what was kept; check its outputs."),
    "export": ("cmd_export", "Write a run as a self-contained folder to share."),
    "affected": ("cmd_affected", "List the runs and files that used a bad version."),
    "debt": ("cmd_debt", "List code by the debt it costs: consolidate, keep or archive."),
    "publish": ("cmd_publish", "Copy a run's output out of the project and record it."),
    "du": ("cmd_du", "Show what the store holds: logical and stored size, dedup ratio."),
    "gc": ("cmd_gc", "Free kept files of old runs that can be re-made."),
    "pin": ("cmd_pin", "Pin runs: gc never frees their files."),
    "unpin": ("cmd_unpin", "Unpin runs: gc's policy applies to them again."),
    "fsck": ("cmd_fsck", "Verify every object, manifest and ref in the store."),
    "reindex": ("cmd_reindex", "Rebuild the index from the store's manifests and refs."),
    "ui": ("cmd_ui", "Serve a web page over every run, figure and metric of the store."),
    "remote": ("cmd_remote", "Add, list or remove remotes; list a remote's runs."),
    "push": ("cmd_push", "Send runs to a remote (S3 or any fsspec URL)."),
    "pull": ("cmd_pull", "Bring runs from a remote; they keep their ids."),
    "adopt": ("cmd_adopt", "Adopt runs of MLflow, W&B or Hydra as vestige runs."),
    "export-mlflow": ("cmd_export_mlflow", "Write runs into an MLflow tracking server."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used, so `--help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"vestige.cli.{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, help_line) for name, (_mod, help_line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  vestige run python analyze.py --lr 0.1
  vestige ls --where 'params.lr < 0.01 and status = "ok"'
  vestige show @last
  vestige which paper/fig3.png
""",
)
@click.version_option(__version__, prog_name="vestige")
def app() -> None:
    """vestige keeps every artefact your code makes, tied to the exact code, inputs,
    parameters and environment that made it. No change to your code is needed."""
