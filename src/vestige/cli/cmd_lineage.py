"""`vestige lineage FILE`: the runs and files that led to a file's bytes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from vestige.cli._common import iso, open_repo, print_json
from vestige.errors import PathMissing, UsageError


@click.command("lineage", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Found by content, like `which`: each file is linked to the run that made its
bytes (the latest before the run that read them); a file no run made is a source.
Examples:
  vestige lineage paper/fig3.png
  vestige lineage out/model.pkl --json
  vestige lineage paper/fig3.png --dot | dot -Tsvg > lineage.svg
""")  # fmt: skip
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the tree as JSON.")
@click.option("--dot", "as_dot", is_flag=True, help="Print a Graphviz digraph.")
def command(file: Path, as_json: bool, as_dot: bool) -> None:
    """Show the ancestry of FILE: the run that made it, what that run read, and so on."""
    if as_json and as_dot:
        raise UsageError("choose one of --json and --dot")
    if not file.is_file():
        raise PathMissing(f"no such file: {file}")
    from vestige.history import lineage
    from vestige.store.hashing import hash_file

    repo = open_repo()
    root = lineage.tree(repo, str(file), hash_file(file))
    if as_json:
        print_json(root.to_dict())
    elif as_dot:
        click.echo(_dot(root))
    else:
        lines: list[str] = []
        _text(root, lines, "", "", True)
        click.echo("\n".join(lines))
    if root.made_by is None:
        raise SystemExit(1)


def _label(f: Any) -> str:
    digest = (f.hash or "?")[:12]
    if f.made_by is None:
        why = f.note or "source: no recorded run made these bytes"
        return f"{f.path}  {digest}  ({why})"
    return f"{f.path}  {digest}"


def _run_label(r: Any) -> str:
    again = "  (shown above)" if r.seen else ""
    return f"run #{r.seq}  {shlex.join(r.command)}  [{r.status}, {iso(r.started)}]{again}"


def _text(f: Any, lines: list[str], first: str, rest: str, top: bool) -> None:
    lines.append(first + _label(f))
    r = f.made_by
    if r is None:
        return
    lines.append(rest + "└─ made by " + _run_label(r))
    inner = rest + "   "
    for i, child in enumerate(r.inputs):
        last = i == len(r.inputs) - 1
        _text(child, lines, inner + ("└─ read " if last else "├─ read "),
              inner + ("   " if last else "│  "), False)  # fmt: skip


def _dot(root: Any) -> str:
    out = ["digraph lineage {", "  rankdir=LR;", "  node [fontname=Helvetica, fontsize=10];"]
    seen: set[str] = set()

    def q(text: str) -> str:
        return json.dumps(text)

    def visit(f: Any) -> str:
        fid = "f_" + (f.hash or f.path)[:16]
        if fid not in seen:
            seen.add(fid)
            out.append(f"  {q(fid)} [shape=note, label={q(f.path)}];")
        r = f.made_by
        if r is not None:
            rid = "r_" + r.id
            if rid not in seen:
                seen.add(rid)
                label = q(f"#{r.seq} " + shlex.join(r.command))
                out.append(f"  {q(rid)} [shape=box, label={label}];")
            out.append(f"  {q(rid)} -> {q(fid)};")
            for child in r.inputs:
                out.append(f"  {q(visit(child))} -> {q(rid)};")
        return fid

    visit(root)
    out.append("}")
    return "\n".join(dict.fromkeys(out))  # an edge met twice is drawn once
