"""`vestige affected`: every run and artefact that used a bad version (a recall)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from vestige.cli._common import iso, open_repo, print_json


@click.command("affected", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
VERSION is a content-hash prefix (4+ hex digits, as `vestige show` prints them) or a
run (@42, @last): the version that run used. Runs that used it are listed first, then
every run downstream through lineage (it read bytes an affected run wrote), with the
files each made. --rerun re-makes them in order, each in a temp dir: with the current
version of the code file (--code) or input (--input), downstream runs reading what the
reruns made; it prints each rerun's verdicts.
Examples:
  vestige affected --code utils.py@3f2a9c
  vestige affected --code train.py@12 --rerun
  vestige affected --input data/raw.csv@9c1e --json
  vestige affected --package numpy==2.0.1
""")  # fmt: skip
@click.option("--code", "code", metavar="PATH@VERSION", help="A version of a project code file.")
@click.option("--input", "input_", metavar="PATH@VERSION", help="A version of an input file.")
@click.option("--package", metavar="NAME==VERSION", help="An installed package version.")
@click.option("--rerun", "rerun", is_flag=True, help="Re-make the affected runs, in order.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(
    code: str | None, input_: str | None, package: str | None, rerun: bool, as_json: bool
) -> None:
    """List the runs that used a version of a code file, an input or a package, and all
    that was made from them."""
    from vestige.history import affected

    repo = open_repo()
    what, items = affected.find(repo, code=code, input=input_, package=package)
    results: list[dict[str, Any]] = []
    if rerun and items:
        results = _rerun(repo, items, code, input_, quiet=as_json)
    if as_json:
        print_json({"what": what, "runs": [a.to_dict() for a in items], "reruns": results})
    else:
        if not items:
            click.echo(f"no recorded run used {what}")
        direct = [a for a in items if a.direct]
        down = [a for a in items if not a.direct]
        if direct:
            click.echo(f"{len(direct)} run(s) used {what}:")
            for a in direct:
                _line(a)
        if down:
            click.echo(f"{len(down)} run(s) downstream of them:")
            for a in down:
                _line(a)
        files = sorted({o["path"] for a in items for o in a.outputs})
        if files:
            click.echo(f"{len(files)} file(s) made by affected runs: " + ", ".join(files[:20])
                       + (" ..." if len(files) > 20 else ""))  # fmt: skip
        for r in results:
            click.echo(f"rerun of #{r['seq']}: run #{r['rerun_seq']} (exit {r['exit_code']}) in "
                       f"{r['dir']}")  # fmt: skip
            for v in r["verdicts"]:
                click.echo(f"  {v['verdict']:9} {v['path']}  {v['summary']}")
    if results and any(r["exit_code"] != 0 for r in results):
        raise SystemExit(1)


def _line(a: Any) -> None:
    click.echo(f"  #{a.seq}  {iso(a.started)}  {shlex.join(a.command)}  [{a.status}]  {a.why}")


def _rerun(repo: Any, items: list[Any], code: str | None, input_: str | None,
           quiet: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Rerun every affected run in time order, chaining re-made outputs downstream."""
    from vestige.history import rerun as rr

    fixed: Path | None = None
    fixed_rel = None
    spec = code or input_
    if spec:
        path = spec.rpartition("@")[0]
        fixed = (Path.cwd() / path).resolve()
        try:
            fixed_rel = fixed.relative_to(repo.store.root.resolve()).as_posix()
        except ValueError:
            fixed_rel = None
    replace: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for a in sorted(items, key=lambda a: (a.started, a.seq)):
        old = repo.run(a.id)
        overlay = {}
        if fixed_rel and fixed is not None and fixed.is_file():
            used = (old.code or {}).get("imported") or []
            read = [f.path for f in old.inputs]
            if fixed_rel in used or fixed_rel in read:
                overlay[fixed_rel] = fixed
        plan = rr.plan(repo, old, None, False, {}, overlay=overlay, replace=replace)
        rr.materialize(repo, plan)
        exit_code, new_id = rr.execute(repo, old, plan, stdout_to_stderr=quiet)
        if new_id is None or repo.store.refs.get(new_id) is None:
            out.append({"seq": old.seq, "rerun_seq": None, "exit_code": exit_code,
                        "dir": str(plan.root), "verdicts": []})  # fmt: skip
            continue
        new = repo.run(new_id)
        verdicts = rr.verdicts(repo, old, new)
        new_by_path = {f.path: f.hash for f in new.outputs}
        for f in old.outputs:
            if f.hash and new_by_path.get(f.path):
                replace[f.hash] = new_by_path[f.path]  # type: ignore[assignment]
        out.append({"seq": old.seq, "rerun_seq": new.seq, "exit_code": new.exit_code,
                    "dir": str(plan.root),
                    "verdicts": [v.to_dict() for v in verdicts]})  # fmt: skip
    return out
