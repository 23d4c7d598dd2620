"""`vestige rerun RUN`: re-make a run from its kept code and inputs, and check the outputs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from vestige.cli._common import RUN_ARG_SETTINGS, open_repo, print_json
from vestige.errors import UsageError


@click.command("rerun", context_settings=RUN_ARG_SETTINGS, epilog="""\b
The kept snapshot and inputs go into a new folder (a temp dir unless --dir), the
same command runs there as a new run, and each output gets a verdict: identical,
close (numbers within rtol/atol: CSV, JSON, .npy, .npz, parquet), differs, missing,
or new. Exit 0 only when every output is identical or close; 1 otherwise; 2 when the
rerun cannot start (an input only hashed and gone, a dirty tree for --in-place).
With --param, other bytes are expected: `changed` (naming the param), matched by role
(a path holding the old value is compared with the one holding the new), and exit 0
unless the rerun itself failed.
The temp dir is removed after the rerun (its outputs are kept in the store, `vestige
restore`): --keep keeps it; a folder given with --dir is always kept.
Examples:
  vestige rerun 42
  vestige rerun 42 --param lr=0.01 --dir /tmp/lr001
  vestige rerun @last --in-place --yes
""")  # fmt: skip
@click.argument("run")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              metavar="DIR", help="Rerun in DIR (new or empty) instead of a temp dir.")  # fmt: skip
@click.option("--in-place", is_flag=True, help="Rerun in the project (a clean git tree only).")
@click.option("--yes", is_flag=True, help="Do not ask before --in-place overwrites files.")
@click.option("--keep", is_flag=True, help="Keep the temp dir the rerun ran in.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Change a command-line param (repeatable).")  # fmt: skip
@click.option("--rtol", type=float, default=None, help="Relative tolerance for 'close'.")
@click.option("--atol", type=float, default=None, help="Absolute tolerance for 'close'.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
def command(
    run: str, directory: Path | None, in_place: bool, yes: bool, keep: bool,
    params: tuple[str, ...], rtol: float | None, atol: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Re-make RUN from its kept snapshot and inputs; say which outputs reproduced."""
    if directory is not None and in_place:
        raise UsageError("choose one of --dir and --in-place")
    if keep and (directory is not None or in_place):
        raise UsageError("--keep is for the temp dir: a --dir or --in-place folder is kept")
    ok = _rerun(run, directory, in_place, yes, keep, params, rtol, atol, as_json)
    if not ok:
        raise SystemExit(1)


def _rerun(
    run: str, directory: Path | None, in_place: bool, yes: bool, keep: bool,
    params: tuple[str, ...], rtol: float | None, atol: float | None, as_json: bool,
) -> bool:  # fmt: skip
    from vestige.history import rerun as rr

    changes: dict[str, str] = {}
    for item in params:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--param {item!r}: write it as KEY=VALUE")
        changes[key] = value
    repo = open_repo()
    old = repo.run(run)
    rtol = repo.config.compare_rtol if rtol is None else rtol
    atol = repo.config.compare_atol if atol is None else atol
    plan = rr.plan(repo, old, directory, in_place, changes)
    if in_place and not yes:
        if not sys.stdin.isatty():
            raise UsageError("--in-place overwrites project files; add --yes to confirm")
        click.confirm(f"Overwrite the project's files with run #{old.seq}'s snapshot?",
                      abort=True)  # fmt: skip
    temp = directory is None and not in_place
    try:
        rr.materialize(repo, plan)
        click.echo(f"vestige: rerunning #{old.seq} in {plan.cwd}: {shlex.join(plan.argv)}",
                   err=True)  # fmt: skip
        code, new_id = rr.execute(repo, old, plan, stdout_to_stderr=as_json)
        if new_id is None or repo.store.refs.get(new_id) is None:
            keep = True  # (nothing of it is in the store)
            raise UsageError(f"the rerun ran (exit {code}) in {plan.root} but was not recorded;"
                             " see the warnings")  # fmt: skip
        new = repo.run(new_id)
        unkept = [f.path for f in new.outputs if not f.kept]
        if temp and not keep and unkept:
            keep = True
            click.echo(f"vestige: {plan.root} is kept: {len(unkept)} output(s) of the rerun "
                       f"are not in the store ({unkept[0]}...)", err=True)  # fmt: skip
        changed = rr.param_changes(list(old.command), changes)
        items = rr.verdicts(repo, old, new, rtol=rtol, atol=atol, changes=changed)
    finally:
        if temp and not keep:
            import shutil

            shutil.rmtree(plan.root, ignore_errors=True)
    reproduced = rr.reproduced(items)
    # With a param changed, other outputs were asked for: only the rerun's failure fails.
    ok = new.status == "ok" if changed else reproduced
    where = str(plan.root) if not temp or keep else "a temp dir (removed; --keep keeps it)"
    if as_json:
        print_json({
            "run": old.id, "seq": old.seq, "rerun": new.id, "rerun_seq": new.seq,
            "dir": str(plan.root), "kept_dir": not temp or keep, "exit_code": new.exit_code,
            "reproduced": reproduced, "verdicts": [v.to_dict() for v in items],
            "changed_params": {k: list(pair) for k, pair in changed.items()},
        })  # fmt: skip
    else:
        click.echo(f"rerun of #{old.seq} is run #{new.seq} in {where} (exit {new.exit_code})")
        for v in items:
            click.echo(f"  {v.verdict:9} {v.path}" + (f"  {v.summary}" if v.summary else ""))
        good = sum(v.verdict in ("identical", "close") for v in items if v.verdict != "new")
        total = sum(v.verdict != "new" for v in items)
        if changed:
            which = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
            n = sum(v.verdict == "changed" for v in items)
            click.echo(f"param {which}: {n} of {total} outputs changed, {good} identical or "
                       "close" + ("" if ok else f"; the rerun {new.status}"))  # fmt: skip
        else:
            click.echo(("reproduced" if ok else "NOT reproduced")
                       + f": {good} of {total} outputs identical or close")  # fmt: skip
    return ok
