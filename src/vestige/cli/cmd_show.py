"""`vestige show RUN`: what a run read, wrote, printed and ran with."""

from __future__ import annotations

import shlex
from typing import Any

import click

from vestige.cli._common import (
    RUN_ARG_SETTINGS,
    duration,
    iso,
    open_repo,
    print_json,
    size,
)
from vestige.records import FileRecord


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
    add(f"  cwd       {record.root}/{record.cwd}".rstrip("/."))
    add(f"  started   {iso(record.started)}   took {duration(record.duration)}")
    if record.exit_code is not None:
        sig = f" ({record.signal})" if record.signal else ""
        add(f"  exit      {record.exit_code}{sig}")
    if record.parent:
        add(f"  parent    {record.parent}")
    code = record.code or {}
    if code:
        git = code.get("git")
        tree = str(code.get("tree"))[:12]
        snap = f"{code.get('files', 0)} files, {size(code.get('size'))}, tree {tree}"
        add(f"  code      {snap}")
        if git:
            dirty = " (uncommitted changes included)" if git.get("dirty") else ""
            add(f"  git       {str(git.get('commit'))[:12]} on {git.get('branch')}{dirty}")
        for m in code.get("modules", []):
            add(f"  module    {m['path']} (outside the project)")
    if record.params:
        add("params")
        for key, value in record.params.items():
            add(f"  {key} = {value!r}")
    _files(add, "inputs", record.inputs)
    _files(add, "outputs", record.outputs)
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


def _files(add: Any, title: str, files: tuple[FileRecord, ...]) -> None:
    if not files:
        return
    add(f"{title} ({len(files)})")
    for f in files[:200]:
        flags = []
        if not f.kept:
            flags.append("not kept")
        if not f.confirmed:
            flags.append("seen by scan only")
        extra = f"  [{', '.join(flags)}]" if flags else ""
        digest = (f.hash or "?")[:12]
        add(f"  {f.path}  {size(f.size)}  {digest}{extra}")
    if len(files) > 200:
        add(f"  ... and {len(files) - 200} more (--json for all)")


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
