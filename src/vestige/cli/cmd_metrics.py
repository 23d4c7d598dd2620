"""`vestige metrics RUN [KEY...]`: a run's metrics, summarised, or series as CSV."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from vestige.cli._common import RUN_ARG_SETTINGS, fmt_number, open_repo, print_json
from vestige.errors import UsageError


@click.command("metrics", context_settings=RUN_ARG_SETTINGS, epilog="""\b
Without KEY: one line per metric (count, last value and its step, min, max).
With KEYs: every point, as CSV (step,seconds,value; with several keys
key,step,seconds,value), seconds counted from the run's start; on a terminal
(without --csv), a one-line summary and a sparkline of each series instead.
A running run is read from its journals: what was flushed so far (at most 1 s old).
Examples:
  vestige metrics @last
  vestige metrics 42 loss > loss.csv
  vestige metrics 42 --json | jq .loss.last
""")  # fmt: skip
@click.argument("run")
@click.argument("keys", nargs=-1)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every point of every key).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: summaries, or the series.")
def command(run: str, keys: tuple[str, ...], as_csv: bool, as_json: bool) -> None:
    """Summarise a run's metrics, or print the series of some keys."""
    if as_csv and as_json:
        raise UsageError("choose one of --csv and --json")
    repo = open_repo()
    record = repo.run(run)
    series = repo.metrics(record)
    missing = [k for k in keys if k not in series]
    if missing:
        have = ", ".join(sorted(series)[:20]) or "none"
        raise UsageError(f"run #{record.seq} has no metric {missing[0]!r} (it has: {have})")
    if keys or as_csv:
        chosen = list(keys) or sorted(series)
        if as_json:
            print_json({k: _series_json(series[k]) for k in chosen})
        elif keys and not as_csv and sys.stdout.isatty():  # a person reading: draw it
            _sparklines(series, chosen, record.started)
        else:
            _csv(series, chosen, record.started)
        return
    from vestige.store import metrics

    if as_json:
        print_json({k: metrics.summary_json(series[k]) for k in sorted(series)})
        return
    summaries = {k: metrics.summarize(series[k]) for k in sorted(series)}
    if not summaries:
        click.echo(f"run #{record.seq} logged no metrics (vestige.log(step=..., loss=...))")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("metric", "count", "last", "step", "min", "max"):
        table.add_column(name, justify="left" if name == "metric" else "right", no_wrap=True)
    for k, m in summaries.items():
        table.add_row(k, str(m["count"]), fmt_number(m["last"]), fmt_number(m["last_step"]),
                      fmt_number(m["min"]), fmt_number(m["max"]))  # fmt: skip
    Console(highlight=False, width=None if sys.stdout.isatty() else 10_000).print(table)


#: eight heights of a sparkline's bar, lowest first
BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def _sparklines(series: dict[str, Any], keys: list[str], started: float) -> None:
    """For each key: a one-line summary, then its series drawn as a sparkline across the
    terminal (each bar the mean of the points it covers; a gap where all were NaN)."""
    from rich.console import Console
    from rich.markup import escape

    from vestige.store import metrics

    console = Console(highlight=False)
    for k in keys:
        s = series[k]
        m = metrics.summarize(s)
        took = f", {s.times[-1] - started:.3f} s in" if len(s.times) else ""
        console.print(
            f"[bold]{escape(k)}[/]: {m['count']} points{took}, last {fmt_number(m['last'])} "
            f"at step {fmt_number(m['last_step'])}, min {fmt_number(m['min'])}, "
            f"max {fmt_number(m['max'])}",
            soft_wrap=True,  # one line, however narrow the terminal
        )
        console.print("  " + sparkline(list(s.values), max(console.width - 2, 10)),
                      style="cyan")  # fmt: skip


def sparkline(values: list[float], width: int) -> str:
    """`values` as at most `width` bars of eight heights, scaled from their min to max."""
    import math

    n = min(len(values), width)
    if n == 0:
        return ""
    means: list[float | None] = []
    for i in range(n):  # bar i covers points [i*len/n, (i+1)*len/n)
        chunk = [v for v in values[i * len(values) // n : (i + 1) * len(values) // n]
                 if math.isfinite(v)]  # fmt: skip
        means.append(sum(chunk) / len(chunk) if chunk else None)
    known = [v for v in means if v is not None]
    if not known:
        return " " * n
    low, high = min(known), max(known)
    span = high - low
    bars = []
    for v in means:
        if v is None:
            bars.append(" ")
        elif span == 0:
            bars.append(BARS[3])
        else:
            bars.append(BARS[min(7, int((v - low) / span * 8))])
    return "".join(bars)


def _csv(series: dict[str, Any], keys: list[str], started: float) -> None:
    """Every point of `keys` as CSV, its time as seconds since the run started (what a
    reader wants of a curve; `--json` keeps the epoch times)."""
    out = csv.writer(sys.stdout, lineterminator="\n")
    several = len(keys) > 1
    out.writerow((["key"] if several else []) + ["step", "seconds", "value"])
    for k in keys:
        s = series[k]
        prefix = [k] if several else []
        for step, t, v in zip(s.steps, s.times, s.values, strict=True):
            out.writerow([*prefix, fmt_number(step), f"{t - started:.3f}", repr(v)])


def _series_json(s: Any) -> dict[str, list[Any]]:
    from vestige.store.metrics import int_if_whole, to_json_number

    return {
        "step": [int_if_whole(x) for x in s.steps],
        "time": list(s.times),
        "value": [to_json_number(v) for v in s.values],
    }
