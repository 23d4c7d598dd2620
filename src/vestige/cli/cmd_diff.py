"""`vestige diff A B`: what changed from run A to run B, section by section."""

from __future__ import annotations

from typing import Any

import click

from vestige.cli._common import RUN_ARG_SETTINGS, fmt_number, open_repo, print_json
from vestige.units import size

#: Lines listed per mapping (packages, environment variables) before "... and N more".
MAX_LINES = 20


@click.command("diff", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Shows only what differs: command, params, code (as a unified diff), environment,
inputs, outputs and artefacts (changed files compared by content: shape and largest
difference for CSV, JSON, .npy, .npz and parquet; pixels for images), metrics.
A and B are runs: a number (42 or #42), @last, -1 (the newest), -2, ..., or an id
prefix. Two sweeps are also compared child by child, matched by their values.
Examples:
  vestige diff 41 42
  vestige diff -2 -1 --no-code
  vestige diff 41 42 --json | jq .outputs
""")  # fmt: skip
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print the whole diff as JSON.")
@click.option("--no-code", is_flag=True, help="List changed code files without their diffs.")
def command(run_a: str, run_b: str, as_json: bool, no_code: bool) -> None:
    """Show how run B differs from run A: code, params, environment, files, metrics."""
    from vestige.history.diff import SECTIONS, diff_runs

    repo = open_repo()
    a, b = repo.run(run_a), repo.run(run_b)
    d = diff_runs(repo, a, b, code_diffs=not no_code)
    if as_json:
        print_json(d)
        return
    lines: list[str] = []
    add = lines.append
    add(f"{_run(d['a'])} -> {_run(d['b'])}")
    if (a.sweep is None) != (b.sweep is None):
        sweep, plain = (a, b) if a.sweep is not None else (b, a)
        add(f"  (#{sweep.seq} is a sweep and #{plain.seq} is not: a sweep has no code or "
            f"environment of its own; diff one of its children, vestige ls --sweep "
            f"{sweep.seq})")  # fmt: skip
    for name in d["differ"]:
        add(click.style(_title(name, d[name]), bold=True))
        SHOW[name](add, d[name])
    sections = (*SECTIONS, "children") if "children" in d else SECTIONS
    same = [s for s in sections if s not in d["differ"]]
    if same:
        add(f"runs #{a.seq} and #{b.seq} do not differ in {', '.join(same)}")
    click.echo("\n".join(lines))


def _run(r: dict[str, Any]) -> str:
    exit_code = f", exit {r['exit_code']}" if r["exit_code"] not in (None, 0) else ""
    return f"run #{r['seq']} ({r['id'][:10]}, {r['status']}{exit_code})"


def _title(name: str, section: Any) -> str:
    if name == "code":
        n = len(section["files"])
        return f"code ({n} file{'s' if n != 1 else ''} changed)"
    if name in ("inputs", "outputs", "artefacts", "children"):
        counts: dict[str, int] = {}
        for f in section:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        order = ("changed", "added", "removed", "same")
        return f"{name} ({', '.join(f'{counts[s]} {s}' for s in order if s in counts)})"
    return name


def _plus(text: str) -> str:
    return click.style(text, fg="green")


def _minus(text: str) -> str:
    return click.style(text, fg="red")


def _tilde(text: str) -> str:
    return click.style(text, fg="yellow")


def _command(add: Any, section: dict[str, Any]) -> None:
    import shlex

    add(_minus(f"  - {shlex.join(section['a'])}"))
    add(_plus(f"  + {shlex.join(section['b'])}"))


def _mapping(add: Any, d: dict[str, Any], show: Any = repr, prefix: str = "") -> None:
    """changed `name: a -> b`, added `+ name = b`, removed `- name = a`."""
    items = [_tilde(f"  ~ {prefix}{k}: {show(v['a'])} -> {show(v['b'])}")
             for k, v in d["changed"].items()]  # fmt: skip
    items += [_plus(f"  + {prefix}{k} = {show(v)}") for k, v in d["added"].items()]
    items += [_minus(f"  - {prefix}{k} = {show(v)}") for k, v in d["removed"].items()]
    for line in items[:MAX_LINES]:
        add(line)
    if len(items) > MAX_LINES:
        add(f"  ... and {len(items) - MAX_LINES} more (--json for all)")


def _params(add: Any, section: dict[str, Any]) -> None:
    _mapping(add, section)


def _code(add: Any, section: dict[str, Any]) -> None:
    ga, gb = section["git"]["a"] or {}, section["git"]["b"] or {}
    if ga.get("commit") != gb.get("commit") or ga.get("dirty") != gb.get("dirty"):
        add(f"  git  {_git(ga)} -> {_git(gb)}")
    for f in section["files"]:
        note = f"  ({f['note']})" if f["note"] else ""
        style = {"added": _plus, "removed": _minus}.get(f["status"], _tilde)
        add(style(f"  {f['status']:8}  {f['path']}") + note)
    for f in section["files"]:
        if f["diff"]:
            for line in f["diff"].rstrip("\n").split("\n"):
                add(_diff_line(line))
    data = section.get("data_files") or []
    if data:
        shown = ", ".join(data[:8]) + (" ..." if len(data) > 8 else "")
        add(f"  and {len(data)} data file(s) made by runs, left in the snapshot: {shown}")


def _git(g: dict[str, Any]) -> str:
    if not g:
        return "no git"
    dirty = " (dirty)" if g.get("dirty") else ""
    return f"{str(g.get('commit'))[:12]}{dirty}"


def _diff_line(line: str) -> str:
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    if line.startswith("+"):
        return _plus(line)
    if line.startswith("-"):
        return _minus(line)
    return line


def _env(add: Any, section: dict[str, Any]) -> None:
    for key in ("python", "platform", "host", "gpus"):
        v = section[key]
        if v["a"] != v["b"]:
            show = (lambda x: ", ".join(x) or "none") if key == "gpus" else str
            add(_tilde(f"  ~ {key}: {show(v['a'])} -> {show(v['b'])}"))
    _mapping(add, section["distributions"], show=str)
    _mapping(add, section["env_vars"], prefix="$")


def _files(add: Any, section: list[dict[str, Any]]) -> None:
    shown = [f for f in section if f["status"] != "same"]
    for f in shown[:200]:
        diff = f["diff"] or {}
        if f["status"] == "changed":
            text = f"{diff.get('kind')}, {diff.get('verdict')}: {diff.get('summary')}"
            line = _tilde(f"  changed  {f['path']}") + f"  {text}"
        elif f["status"] == "added":
            line = _plus(f"  added    {f['path']}") + f"  {size(f['sizes'][1])}"
        else:
            line = _minus(f"  removed  {f['path']}") + f"  {size(f['sizes'][0])}"
        add(line)
    if len(shown) > 200:
        add(f"  ... and {len(shown) - 200} more (--json for all)")


def _metrics(add: Any, section: dict[str, Any]) -> None:
    rows = [(k, m) for k, m in section.items() if m["status"] != "same"]
    width = max(len(k) for k, _m in rows)
    for k, m in rows[:200]:
        name = k.ljust(width)
        if m["status"] == "added":
            add(_plus(f"  + {name}  {fmt_number(m['b'])}"))
        elif m["status"] == "removed":
            add(_minus(f"  - {name}  {fmt_number(m['a'])}"))
        else:
            delta = m["delta"]
            change = ""
            if delta is not None:
                change = f"  ({'+' if delta > 0 else ''}{fmt_number(float(delta))})"
            add(_tilde(f"  ~ {name}  {fmt_number(m['a'])} -> {fmt_number(m['b'])}") + change)
    if len(rows) > 200:
        add(f"  ... and {len(rows) - 200} more (--json for all)")


def _children(add: Any, section: list[dict[str, Any]]) -> None:
    """A line per combination that differs: its values, its run on each side, and what
    changed (sections, up to 3 metrics `a -> b`)."""
    rows = [r for r in section if r["status"] != "same"]
    labels = [" ".join(f"{k}={v}" for k, v in r["values"].items()) or "(no values)" for r in rows]
    width = min(max((len(label) for label in labels), default=0), 40)
    for r, label in list(zip(rows, labels, strict=True))[:200]:
        name = label.ljust(width)
        if r["status"] == "added":
            add(_plus(f"  + {name}  {_child(r['b'])}") + "  (only in B)")
            continue
        if r["status"] == "removed":
            add(_minus(f"  - {name}  {_child(r['a'])}") + "  (only in A)")
            continue
        what = [s for s in r["differ"] if s != "metrics"]
        for k, m in list(r["metrics"].items())[:3]:
            what.append(f"{k} {fmt_number(m['a']) if m['a'] is not None else '-'} -> "
                        f"{fmt_number(m['b']) if m['b'] is not None else '-'}")  # fmt: skip
        if len(r["metrics"]) > 3:
            what.append(f"{len(r['metrics']) - 3} more metrics")
        change = f"  {', '.join(what)}" if what else ""
        add(_tilde(f"  ~ {name}  {_child(r['a'])} -> {_child(r['b'])}") + change)
    if len(rows) > 200:
        add(f"  ... and {len(rows) - 200} more (--json for all)")


def _child(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    run = f"#{c['seq']} " if c.get("seq") is not None else ""
    exit_code = f" (exit {c['exit_code']})" if c.get("exit_code") not in (None, 0) else ""
    return f"{run}{c.get('status')}{exit_code}"


SHOW = {
    "command": _command,
    "params": _params,
    "code": _code,
    "env": _env,
    "inputs": _files,
    "outputs": _files,
    "metrics": _metrics,
    "artefacts": _files,
    "children": _children,
}
