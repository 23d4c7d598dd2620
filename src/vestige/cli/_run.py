"""The `vestige run` arguments, parsed without click: this is the start-up path.

Options go before the command; everything from the command on belongs to it.
"""

from __future__ import annotations

from vestige.errors import UsageError

TYPE_CHECKING = False  # importing typing costs ~4 ms on the start-up path
if TYPE_CHECKING:
    from typing import Any


#: `vestige run` options that take a value, and those that do not; all but --param make a sweep.
VALUE_OPTIONS = {
    "-p": "param", "--param": "param", "--each": "each", "--grid": "grid", "-j": "jobs",
    "--jobs": "jobs", "--executor": "executor", "--scheduler": "scheduler",
    "--slurm-partition": "slurm_partition", "--slurm-gpus": "slurm_gpus",
    "--slurm-time": "slurm_time", "--slurm-cpus": "slurm_cpus", "--slurm-mem": "slurm_mem",
    "--slurm-cluster": "slurm_cluster",
}  # fmt: skip
FLAG_OPTIONS = {"--fail-fast": "fail_fast", "--skip-done": "skip_done"}
TRACE = "\0trace"


#: `vestige run` flags that are not sweep options: how to learn the files (capture/trace.py)
TRACE_FLAGS = {"--trace": "always", "--no-trace": "never"}
#: `vestige run --name NAME`: comes back as this param (taken out by fast_run)
NAME = "\0name"
#: `vestige run --push REMOTE`: comes back as this param (taken out by fast_run)
PUSH = "\0push"


def parse(args: list[str]) -> tuple[dict[str, Any], list[str], dict[str, Any]] | None:
    """(params, command, sweep options) from `vestige run` arguments; None for --help. A
    --trace / --no-trace comes back as the param `\0trace` (taken out by fast_run)."""
    params: dict[str, Any] = {}
    raw_params: list[str] = []
    sweep: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in VALUE_OPTIONS:
            if eq:
                value = inline
            else:
                if i + 1 >= len(args):
                    raise UsageError(f"{arg} needs a value (see `vestige run --help`)")
                i += 1
                value = args[i]
            key = VALUE_OPTIONS[name]
            if key == "param":
                _add_param(params, value)
                raw_params.append(value)
            elif key == "each":
                sweep.setdefault("each", []).append(value)
            else:
                sweep[key] = value
            i += 1
            continue
        if name in FLAG_OPTIONS and not eq:
            sweep[FLAG_OPTIONS[name]] = True
            i += 1
            continue
        if arg in TRACE_FLAGS:
            params[TRACE] = TRACE_FLAGS[arg]
            i += 1
            continue
        if name == "--name":  # (not a sweep option: it names this one run)
            if not eq and i + 1 >= len(args):
                raise UsageError("--name needs a value, e.g. vestige run --name baseline ...")
            params[NAME] = inline if eq else args[i + 1]
            i += 1 if eq else 2
            continue
        if name == "--push":  # (the run, or a sweep's runs, pushed when it ends: issue 17)
            if not eq and i + 1 >= len(args):
                raise UsageError("--push needs a remote, e.g. vestige run --push origin ...")
            params[PUSH] = inline if eq else args[i + 1]
            i += 1 if eq else 2
            continue
        if arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg} for `vestige run`; options go before the command "
                "(see `vestige run --help`)"
            )
        break
    command = args[i:]
    if not command:
        raise UsageError("no command given; usage: vestige run [--param k=v] COMMAND [ARGS]...")
    if i == 0 or args[i - 1] != "--":  # (after `--`, the user said the rest is the command's)
        _warn_misplaced_param(command)
    if command[0].endswith(".ipynb") and raw_params:
        # `vestige run -p k=v x.ipynb`: the notebook's parameters, injected like its own -p
        # (recording them as params the notebook never received would be false provenance)
        injected = [part for value in raw_params for part in ("-p", value)]
        named = {k: params[k] for k in (NAME, PUSH) if k in params}
        return named, [command[0], *injected, *command[1:]], sweep
    return params, command, sweep


def _add_param(params: dict[str, Any], value: str) -> None:
    from vestige.capture.params import parse_param_option

    try:
        key, parsed = parse_param_option(value)
    except ValueError:
        raise UsageError(
            f"--param {value!r} is not name=value; write e.g. --param lr=0.1"
        ) from None
    params[key] = parsed


def _warn_misplaced_param(command: list[str]) -> None:
    """`vestige run true --param i=5` hands `--param i=5` to the command, which then records
    `param='i=5'` as its own argument: likely meant for vestige. One line on stderr; the run
    goes on as typed (the command may take such an option itself)."""
    if command[0].endswith(".ipynb"):  # its -p k=v are the notebook's own parameters
        return
    rest = command[1:]
    for j, arg in enumerate(rest):
        if arg in ("-p", "--param") and j + 1 < len(rest):
            option, value = arg, rest[j + 1]
        elif arg.startswith("--param="):
            option, value = "--param", arg.partition("=")[2]
        else:
            continue
        key, eq, _ = value.partition("=")
        if eq and key[:1].isalpha() and all(c.isalnum() or c in "_.-" for c in key):
            from vestige.fastpath import warn

            warn(f"{option} {value} goes to {command[0]} as its own argument, not to vestige; "
                 f"put vestige's options before the command: vestige run {option} {value} "
                 f"{command[0]} ...")  # fmt: skip
            return


def fast_run(args: list[str]) -> int | None:
    """Run without importing click; None means `--help` (left to click)."""
    parsed = parse(args)
    if parsed is None:
        return None
    params, command, sweep = parsed
    trace = params.pop(TRACE, None)
    name = params.pop(NAME, None)
    if name is not None:
        from vestige.store.annotations import check_name

        name = check_name(name)  # (bad input: exit 2 before anything runs)
        if sweep:
            raise UsageError("--name names one run, not a sweep; find a sweep's runs with "
                             "`vestige ls --sweep RUN`")  # fmt: skip
    push = params.pop(PUSH, None)
    remote = _push_target(push) if push is not None else None  # (bad input: before running)
    if sweep:
        return _sweep(params, command, sweep, args, trace, remote)
    from vestige.recording.process import die_like
    from vestige.recording.runner import Launch, RunOptions

    options = RunOptions(params=params, trace=trace)
    launch = Launch(command, options)
    if name is not None:
        options.on_spawn = lambda _pid: _name_run(launch, name)
    code = launch.execute()
    if remote is not None:
        _push_run(launch, remote)
    return die_like(code)


def _push_target(name: str) -> dict[str, Any]:
    """`run --push NAME`: the remote, checked before anything runs (an unknown name or a bad
    URL is exit 2), as a plain dict a sweep can ship to its workers."""
    from pathlib import Path

    from vestige.config import load_config
    from vestige.remote.location import shipped
    from vestige.store.layout import locate

    store, root = locate()
    return shipped(load_config(Path(store), Path(root)), name, Path(store))


def _push_run(launch: Any, remote: dict[str, Any]) -> None:
    """Push the run that just ended; a failure is a warning (the run is kept here, and
    its exit code stays the command's), naming the `vestige push` that sends it later."""
    from vestige.fastpath import warn

    name = remote["name"]
    run_id = getattr(launch, "run_id", None)
    try:
        from pathlib import Path

        from vestige.remote.sync import push_store

        if run_id is None:
            raise RuntimeError("vestige did not record the run")
        done = push_store(Path(launch.store), [run_id], remote, Path(launch.root))
        if done.left_out:
            raise RuntimeError(done.left_out[0][1])
        _note(f"vestige: pushed the run to {name} ({done.objects} objects)\n")
    except Exception as e:
        from vestige.remote.failures import scrub

        warn(f"the run was not pushed to {name} ({scrub(str(e)) or type(e).__name__}); "
             f"`vestige push {name} {run_id or '@last'}` sends it")  # fmt: skip


def _note(text: str) -> None:
    """A line on stderr (after the command's own output: it has ended)."""
    import sys

    sys.stderr.write(text)
    sys.stderr.flush()


def _name_run(launch: Any, name: str) -> None:
    """`run --name`: name the run once its command has started (so the name costs the
    command's start nothing), in the store (its annotations) and the index, as `vestige
    name` does; a failure is a warning, never the run's."""
    try:
        import os

        from vestige.capture.redact import Redactor
        from vestige.index.db import Index
        from vestige.store.annotations import Annotations
        from vestige.store.local import Store

        store = Store.at(launch.store, launch.root)
        redactor = Redactor(store.secret_key())  # typed in the shell: redacted like a tag
        redactor.redact_env(os.environ)
        name = redactor.scrub_text(name)
        Annotations(store).update(launch.run_id, name=name)
        index, _fresh = Index.open(store.index_path, store=store.path)
        try:
            index.record.name(launch.run_id, name)
        finally:
            index.close()
    except Exception as e:
        from vestige.fastpath import warn

        warn(f"the run was not named {name!r} ({type(e).__name__}: {e}); "
             f"`vestige name {getattr(launch, 'run_id', '@last')} {name}` names it")  # fmt: skip


def _sweep(params: dict[str, Any], command: list[str], sweep: dict[str, Any],
           args: list[str], trace: str | None = None,
           remote: dict[str, Any] | None = None) -> int:  # fmt: skip
    """A sweep (--each, --grid): not on the fast path, it may import what it needs."""
    from vestige.sweep.run import main
    from vestige.sweep.spec import SweepOptions

    if not sweep.get("each") and not sweep.get("grid"):
        given = ", ".join(sorted(sweep))
        raise UsageError(f"--{given.replace('_', '-')} goes with --each or --grid (a sweep)")
    sweep = {**_configured(), **sweep}  # the command line wins over [executor] settings
    slurm = {}
    for key in ("partition", "gpus", "time", "cpus", "mem", "cluster"):
        value = sweep.get(f"slurm_{key}")
        if value is not None:
            slurm[key] = value if key in ("partition", "cluster") else _int(f"--slurm-{key}", value)
    options = SweepOptions(
        each=list(sweep.get("each", [])), grid=sweep.get("grid"),
        jobs=_int("-j", sweep.get("jobs", 1)), fail_fast=bool(sweep.get("fail_fast")),
        skip_done=bool(sweep.get("skip_done")), executor=sweep.get("executor", "local"),
        scheduler=sweep.get("scheduler"), slurm=slurm, params=params, trace=trace,
        push=remote,
    )  # fmt: skip
    return main(options, command, args)


def _configured() -> dict[str, Any]:
    """Sweep settings from the config files ([executor] in .vestige/config.toml or
    [tool.vestige.executor] in pyproject.toml), as command-line keys."""
    from pathlib import Path

    from vestige.config import load_config
    from vestige.store.layout import locate

    store, root = locate()
    c = load_config(Path(store), Path(root))
    out: dict[str, Any] = {}
    if c.executor_default != "local":
        out["executor"] = c.executor_default
    if c.executor_jobs != 1:
        out["jobs"] = c.executor_jobs
    if c.executor_dask_scheduler:
        out["scheduler"] = c.executor_dask_scheduler
    for key in ("partition", "gpus", "time", "cpus", "mem"):
        value = getattr(c, f"executor_slurm_{key}")
        if value is not None:
            out[f"slurm_{key}"] = value
    return out


def _int(name: str, value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} {value!r}: expected a whole number") from None
    if n < 1:
        raise UsageError(f"{name} {value!r}: expected 1 or more")
    return n
