"""The `vestige run` arguments, parsed without click: this is the start-up path.

Options go before the command; everything from the command on belongs to it.
"""

from __future__ import annotations

from vestige.errors import UsageError

TYPE_CHECKING = False  # importing typing costs ~4 ms on the start-up path
if TYPE_CHECKING:
    from typing import Any


def parse(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """(params, command) from `vestige run` arguments; None when help was asked for."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if arg in ("-p", "--param") or arg.startswith("--param="):
            if "=" in arg and arg.startswith("--param="):
                value = arg.split("=", 1)[1]
            else:
                if i + 1 >= len(args):
                    raise UsageError(f"{arg} needs a value: {arg} name=value")
                i += 1
                value = args[i]
            from vestige.capture.params import parse_param_option

            try:
                key, parsed = parse_param_option(value)
            except ValueError:
                raise UsageError(
                    f"--param {value!r} is not name=value; write e.g. --param lr=0.1"
                ) from None
            params[key] = parsed
            i += 1
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
    return params, command


def fast_run(args: list[str]) -> int | None:
    """Run without importing click; None means `--help` (left to click)."""
    parsed = parse(args)
    if parsed is None:
        return None
    params, command = parsed
    from vestige.runner import Launch, RunOptions, die_like

    code = Launch(command, RunOptions(params=params)).execute()
    return die_like(code)
