"""`vestige show RUN`: what a run read, wrote, printed and ran with."""

from __future__ import annotations

import os
import shlex
from typing import Any

import click

from vestige.cli._common import RUN_ARG_SETTINGS, fmt_number, iso, open_repo, print_json
from vestige.records import FileRecord
from vestige.units import duration, size


@click.command("show", context_settings=RUN_ARG_SETTINGS, epilog="""\b
RUN is a number (42 or #42), @last, -1 (the newest), -2, ..., or an id prefix.
Examples:
  vestige show @last
  vestige show 42 --json | jq .outputs
""")  # fmt: skip
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="The manifest, with the environment.")
def command(run: str, as_json: bool) -> None:
    """Show a run: command, status, code, params, inputs, outputs, environment."""
    repo = open_repo()
    record = repo.run(run)
    env = repo.environment(record)
    if as_json:
        data = record.to_dict()
        data["manifest"] = record.manifest
        data["environment"] = env
        print_json(data)
        return
    lines: list[str] = []
    add = lines.append
    add(f"run #{record.seq}  {record.id}  {record.status}")
    add(f"  command   {shlex.join(record.command)}")
    where = record.cwd if os.path.isabs(record.cwd) else f"{record.root}/{record.cwd}"
    add(f"  cwd       {where}".rstrip("/."))
    add(f"  started   {iso(record.started)}   took {duration(record.duration)}")
    if record.exit_code is not None:
        sig = f" ({record.signal})" if record.signal else ""
        add(f"  exit      {record.exit_code}{sig}")
    if record.parent:
        add(f"  parent    {record.parent}")
    if record.adopted:
        a = record.adopted
        named = ", ".join(f"{k} {a[k]}" for k in ("name", "experiment", "user") if a.get(k))
        add(f"  adopted   from {a.get('tool')} {a.get('source')}, run {a.get('id')}"
            + (f" ({named})" if named else ""))  # fmt: skip
    code = record.code or {}
    if code:
        git = code.get("git")
        if code.get("tree"):
            tree = str(code["tree"])[:12]
            snap = f"{code.get('files', 0)} files, {size(code.get('size'))}, tree {tree}"
        else:  # (an adopted run whose tool named its code but kept none this git has)
            snap = f"{code.get('program') or 'its code'}: not kept"
        add(f"  code      {snap}")
        if git:
            dirty = " (uncommitted changes included)" if git.get("dirty") else ""
            commit = str(git["commit"])[:12] if git.get("commit") else "no commit yet"
            branch = f" on {git['branch']}" if git.get("branch") else ""
            add(f"  git       {commit}{branch}{dirty}")
        for m in code.get("modules", []):
            add(f"  module    {m['path']} (outside the project)")
    _notebook(add, record)
    if record.tags:
        add(f"  tags      {', '.join(record.tags)}")
    if record.params:
        add("params")
        for key, value in record.params.items():
            add(f"  {key} = {value!r}")
    _sweep(add, repo, record)
    _metrics(add, record)
    freed = repo.index.marks.freed_hashes()  # (vestige gc: absent on purpose, re-makeable)
    _files(add, "inputs", record.inputs, freed)
    _files(add, "outputs", record.outputs, freed)
    _artefacts(add, record.artefacts, freed)
    for n in record.notes:
        add(f"note      {iso(n.get('t'))}  {n.get('text', '')}")
    for name, info in (("stdout", record.stdout), ("stderr", record.stderr)):
        if info and info.get("size"):
            add(f"{name:9} {info['lines']} lines, {size(info['size'])} (vestige log {record.seq}"
                f"{' --stderr' if name == 'stderr' else ''})")  # fmt: skip
    res = record.resources
    if res:
        add(f"resources cpu {res.get('cpu_user_s', 0) + res.get('cpu_system_s', 0):.2f}s, "
            f"peak rss {size(res.get('max_rss_bytes'))}")  # fmt: skip
    if env:
        _env(add, env)
    for w in record.warnings:
        add(f"warning   {w}")
    click.echo("\n".join(lines))


def _notebook(add: Any, record: Any) -> None:
    """A notebook or IPython session: its file, cells, kernel, and what `cells` shows."""
    nb = record.notebook
    if not nb:
        return
    errors = f", {nb['errors']} error(s)" if nb.get("errors") else ""
    where = nb.get("path") or "an IPython session"
    see = f" (vestige cells {record.seq})" if nb.get("count") else " (no code cell ran)"
    add(f"  notebook  {where}: {nb.get('count', 0)} cells run{errors}{see}")
    kernel = nb.get("kernel") or {}
    if kernel:
        versions = ", ".join(f"{k} {kernel[k]}" for k in ("python", "ipykernel") if kernel.get(k))
        add(
            f"  kernel    {kernel.get('kernel') or 'python3'}"
            + (f" ({versions})" if versions else "")
        )
    if nb.get("failed_step") is not None:  # (the number `vestige cells` gives it)
        add(f"  failed    cell {nb['failed_step']} (vestige cells {record.seq} --cell "
            f"{nb['failed_step']})")  # fmt: skip
    elif nb.get("failed_cell") is not None:  # (recorded before steps were)
        add(f"  failed    the executed notebook's cell index {nb['failed_cell']}")
    for key, label in (("source", "at start"), ("saved", "at end"), ("executed", "executed")):
        kept = nb.get(key)
        name = kept.get("artefact") if isinstance(kept, dict) else kept
        if name:
            add(f"  kept      {name} ({label})")


def _files(add: Any, title: str, files: tuple[FileRecord, ...], freed: set[str]) -> None:
    if not files:
        return
    add(f"{title} ({len(files)})")
    for f in files[:200]:
        flags = []
        if not f.kept:
            flags.append("not kept")
        elif f.hash in freed:
            flags.append("freed by gc: vestige rerun re-makes it")
        if f.ambiguous:
            flags.append("ambiguous: another run was going in this folder")
        elif not f.confirmed:
            flags.append("seen by scan only")
        extra = f"  [{', '.join(flags)}]" if flags else ""
        digest = (f.hash or "?")[:12]
        figure = f"  ({f.figure})" if f.figure else ""
        add(f"  {f.path}  {size(f.size)}  {digest}{figure}{extra}")
    if len(files) > 200:
        add(f"  ... and {len(files) - 200} more (--json for all)")


def _sweep(add: Any, repo: Any, record: Any) -> None:
    """A sweep's children: values, status, run number."""
    sweep = record.sweep or {}
    children = sweep.get("children") or []
    if not children:
        return
    counts: dict[str, int] = {}
    for c in children:
        counts[c.get("status")] = counts.get(c.get("status"), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    kids = "child" if len(children) == 1 else "children"
    add(f"sweep ({len(children)} {kids}: {summary}; vestige ls --sweep {record.seq})")
    for c in children[:200]:
        values = " ".join(f"{k}={v}" for k, v in (c.get("values") or {}).items())
        row = repo.index.runs.row(c["run_id"]) if c.get("run_id") else None
        seq = f"#{row['seq']}" if row is not None else "-"
        code = "" if c.get("exit_code") in (None, 0) else f" (exit {c['exit_code']})"
        add(f"  {seq:>6}  {c.get('status')}{code}  {values}")
    if len(children) > 200:
        add(f"  ... and {len(children) - 200} more (--json for all)")


def _metrics(add: Any, record: Any) -> None:
    keys = (record.metrics or {}).get("keys") or {}
    if not keys:
        return
    points = (record.metrics or {}).get("points", 0)
    add(f"metrics ({len(keys)} keys, {points} points; vestige metrics {record.seq})")
    for name, m in list(keys.items())[:50]:
        add(f"  {name} = {fmt_number(m.get('last'))}  (step {m.get('last_step')}, "
            f"min {fmt_number(m.get('min'))}, max {fmt_number(m.get('max'))}, "
            f"{m.get('count')} points)")  # fmt: skip
    if len(keys) > 50:
        add(f"  ... and {len(keys) - 50} more (vestige metrics {record.seq})")


def _artefacts(add: Any, artefacts: tuple[dict[str, Any], ...], freed: set[str]) -> None:
    if not artefacts:
        return
    add(f"artefacts ({len(artefacts)})")
    for a in artefacts[:200]:
        files = a.get("files") or []
        total = sum(int(f.get("size") or 0) for f in files)
        names = ", ".join(str(f.get("path")) for f in files[:4])
        if len(files) > 4:
            names += f", ... ({len(files)} files)"
        how = a.get("kind", "")
        if a.get("auto"):
            how += f", kept at {a['auto']}"
        if any(f.get("hash") in freed for f in files):
            how += ", freed by gc: vestige rerun re-makes it"
        add(f"  {a.get('name')}  [{how}]  {names}  {size(total)}")
    if len(artefacts) > 200:
        add(f"  ... and {len(artefacts) - 200} more (--json for all)")


def _env(add: Any, env: dict[str, Any]) -> None:
    py = env.get("python") or {}
    plat = env.get("platform") or {}
    parts = []
    if py:
        parts.append(f"Python {py.get('version')}")
    if plat:
        parts.append(f"{plat.get('system', '')} {plat.get('machine', '')}".strip())
    parts.append(f"host {env.get('host')}")
    cpu = env.get("cpu") or {}
    if cpu.get("count"):
        parts.append(f"{cpu['count']} CPUs")
    if env.get("memory_bytes"):
        parts.append(f"{size(env['memory_bytes'])} RAM")
    gpus = env.get("gpus") or []
    if gpus:
        parts.append(", ".join(g.get("name", "GPU") for g in gpus))
    dists = env.get("distributions") or []
    if dists:
        parts.append(f"{len(dists)} packages")
    add("env       " + ", ".join(p for p in parts if p))
