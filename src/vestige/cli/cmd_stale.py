"""`vestige stale`: outputs whose code or inputs changed since, and what to rerun, in order;
with --run (or `vestige refresh`), rerun them."""

from __future__ import annotations

import threading

import click

from vestige.cli._common import open_repo, print_json
from vestige.errors import StoreReadOnly, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.history.refresh import Step


@click.command("stale", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
A run is stale when a file in the tree has its output's bytes, and since that run a
project file it ran or imported, or a file it read, has changed or gone, or an
input came from a stale run. Runs are listed producers first: rerun them in order.
Exit code 1 when something is stale (like `git diff --exit-code`), else 0.
--run reruns them (as `vestige refresh` does): see `vestige refresh --help`.
Examples:
  vestige stale
  vestige stale --json | jq '.[].command'
  vestige stale --run -j 2
""")  # fmt: skip
@click.option("--run", "run_them", is_flag=True, help="Rerun them, upstream first.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --run: up to N independent runs at once.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="With --run: print the order and the commands.")
@click.option("--keep-going", is_flag=True,
              help="With --run: after a failure, go on with what does not need it.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(
    run_them: bool, jobs: int | None, dry_run: bool, keep_going: bool, as_json: bool
) -> None:
    """List the runs whose outputs no longer follow from the project, in rerun order."""
    if not run_them:
        given = [name for name, on in (("-j", jobs is not None), ("--dry-run", dry_run),
                                       ("--keep-going", keep_going)) if on]  # fmt: skip
        if given:
            raise UsageError(f"{given[0]} goes with --run (or `vestige refresh {given[0]}`)")
        _list(as_json)
        return
    refresh(jobs or 1, dry_run, keep_going, as_json)


def _list(as_json: bool) -> None:
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


def refresh(jobs: int, dry_run: bool, keep_going: bool, as_json: bool) -> None:
    """Rerun the stale runs, upstream first (`stale --run` and `vestige refresh`); exit 1
    when one failed, 130 when interrupted."""
    from vestige.history import refresh as rf

    repo = open_repo()
    if repo.readonly and not dry_run:
        raise StoreReadOnly(
            f"the store {repo.store.path} is read-only (a read-only mount, or files this "
            "user may not write): a refresh records new runs"
        )
    steps = rf.plan(repo)
    if dry_run or not steps:
        if as_json:
            print_json([s.to_dict() for s in steps])
        elif not steps:
            click.echo("nothing is stale: every recorded output in the tree follows from its code")
        else:
            at_once = f", up to {jobs} at once" if jobs > 1 else ""
            click.echo(f"would refresh {len(steps)} stale run(s), in this order{at_once}:")
            for line in rf.dry_run_lines(steps):
                click.echo(line)
        return
    total = len(steps)
    order = {s.id: n for n, s in enumerate(steps, 1)}
    lock = threading.Lock()

    def say(text: str, err: bool = True) -> None:
        with lock:  # (lines of runs going on at once come from their threads)
            click.echo(text, err=err)

    def started(step: rf.Step) -> None:
        say(f"vestige: [{order[step.id]}/{total}] refreshing run #{step.seq}: {step.refresh}")

    def ended(step: rf.Step) -> None:
        if step.status != "ok":
            say(f"vestige: [{order[step.id]}/{total}] run #{step.seq} {step.status}: {step.why}")

    def line(step: rf.Step, text: str) -> None:
        say(f"#{step.seq} | {text}", err=as_json)

    output = rf.Output(on_line=line if jobs > 1 else None, stdout_to_stderr=as_json,
                       on_start=started, on_end=ended)  # fmt: skip
    interrupted = False
    try:
        rf.refresh(repo, steps, jobs=jobs, keep_going=keep_going, output=output)
    except KeyboardInterrupt:  # (each step has its end: the summary says what happened)
        interrupted = True
    if as_json:
        print_json([s.to_dict() for s in steps])
    else:
        _summary(steps)
        if all(s.status in ("ok", "fresh") for s in steps):
            from vestige.history import lineage

            left = lineage.stale(repo)  # e.g. a copy of an output its command does not re-make
            if left:
                seqs = ", ".join(f"#{i.seq}" for i in left[:10])
                click.echo(f"still stale: run(s) {seqs}; `vestige stale` says why")
    if interrupted:
        raise SystemExit(130)
    if any(s.status == "failed" for s in steps):
        raise SystemExit(1)


def _summary(steps: list[Step]) -> None:
    """One line of counts, then one per run: how it ended, its new run, its command."""
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    words = {"ok": "refreshed", "fresh": "fresh already"}
    parts = [f"{counts[k]} {words.get(k, k)}" for k in ("ok", "fresh", "failed", "skipped",
                                                       "not run") if counts.get(k)]  # fmt: skip
    click.echo(f"refresh: {', '.join(parts)} (of {len(steps)} stale runs)")
    for s in steps:
        new = f"-> run #{s.new_seq}" if s.new_seq is not None else ""
        why = f"  ({s.why})" if s.why else ""
        click.echo(f"  {s.status:8} run #{s.seq:<5} {new:12} {s.refresh}{why}")
