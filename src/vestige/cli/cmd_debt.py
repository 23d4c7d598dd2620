"""`vestige debt [UNIT]`: the debt ledger (vestige/history/debt.py) -- which code proved long-lived
and should be rewritten, which may stay sloppy, and which can go."""

from __future__ import annotations

import time

import click

from vestige.cli._common import open_repo, print_json
from vestige.history.debt import VERDICTS
from vestige.units import duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.history.debt import Detail, Ledger, Unit


@click.command("debt", context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
A code unit is a script a run ran, a project module runs imported, or a notebook
runs read. Rows are sorted by interest = runs + 2 x (versions - 1) + 3 x consumers
+ hours of run time, all within the window. Verdicts: consolidate (long-lived,
many versions, many consumers, or artefacts that left the project), fine sloppy
(young or few runs), archive (unused for debt.archive_days and restorable from the
store). Thresholds: [debt] in the config; rules: docs/debt.md. VESTIGE_NOW sets
the clock (epoch seconds or an ISO date).
Examples:
  vestige debt
  vestige debt --since 90d --json
  vestige debt --verdict archive
  vestige debt analysis/plot_loss.py
""")  # fmt: skip
@click.argument("unit", required=False)
@click.option("--since", metavar="WHEN",
              help="Count only runs since WHEN: 90d, 12w, 36h, or a date.")  # fmt: skip
@click.option("--verdict", "only", type=click.Choice(VERDICTS),
              help="Only the units with this verdict.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def command(unit: str | None, since: str | None, only: str | None, as_json: bool) -> None:
    """List the code units by the interest their sloppiness costs, each with a verdict
    (consolidate, fine sloppy, archive) and its reasons; with UNIT, that unit in full."""
    from vestige import clock
    from vestige.history import debt

    now = clock.now()
    start = clock.parse_since(since, now) if since is not None else None
    if unit is not None and only is not None:
        from vestige.errors import UsageError

        raise UsageError("--verdict filters the ledger; leave it out with UNIT")
    repo = open_repo()
    if unit is not None:
        found = debt.detail(repo, unit, now, start)
        if as_json:
            print_json(found.to_dict())
        else:
            click.echo("\n".join(_detail_text(found)))
        return
    book = debt.ledger(repo, now, start)
    if only is not None:
        book = book.replace(units=[u for u in book.units if u.verdict == only])
    if as_json:
        print_json(book.to_dict())
    else:
        click.echo("\n".join(_ledger_text(book, since)))


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def _why(u: Unit) -> str:
    return ", ".join(r.rule for r in u.reasons if r.fired)


def _ledger_text(book: Ledger, since: str | None) -> list[str]:
    window = f"runs since {_day(book.since)}" if book.since is not None else "all runs"
    head = f"debt ledger at {_day(book.now)} over {window}"
    if not book.units:
        return [f"{head}: no code unit ran in the window"]
    headers = ["interest", "verdict", "unit", "runs", "vers", "lifespan", "last run", "30d",
               "cons", "pub", "shares most with", "why"]  # fmt: skip
    headers[7] = f"{book.thresholds.recent_days:g}d"
    rows = []
    for u in book.units:
        dup = f"{u.duplicates[0].unit} {u.duplicates[0].shared:.0%}" if u.duplicates else "-"
        rows.append([f"{u.interest:g}", u.verdict, u.path, str(u.runs), str(u.versions),
                     f"{u.lifespan_days():.1f}d", _day(u.last), str(u.recent_runs),
                     str(u.consumers), str(u.published), dup, _why(u)])  # fmt: skip
    right = {0, 3, 4, 5, 7, 8, 9}
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    counts: dict[str, int] = {}
    for u in book.units:
        counts[u.verdict] = counts.get(u.verdict, 0) + 1
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    tail = "`vestige debt UNIT` shows a unit's history and the numbers behind its verdict"
    return [f"{head}: {len(book.units)} code units ({summary})", "",
            line(headers), *map(line, rows), "", tail]  # fmt: skip


def _detail_text(d: Detail) -> list[str]:
    u = d.unit
    out = [
        f"{u.path} ({u.kind}): {u.verdict}, interest {u.interest:g}",
        f"  runs     {u.runs} in the window, {u.recent_runs} in the last "
        f"{d.thresholds.recent_days:g} days; first {_day(u.first)}, last {_day(u.last)}, "
        f"lifespan {u.lifespan_days():.1f} days; run time {duration(u.seconds)}",
        f"  versions {u.versions}, consumers {u.consumers}, published {u.published}",
        "why (+ fired, - did not):",
        *[f"  {'+' if r.fired else '-'} {r.rule}: {r.text}" for r in u.reasons],
    ]
    if u.restorable:
        out.append(f"restore: vestige restore {u.last_seq} {u.path}")
    out.append("runs over time (weeks before now):")
    for w in d.weeks:
        out.append(f"  {w['weeks_ago']:>3}w ago  {'#' * min(w['runs'], 40)} {w['runs']}")
    out.append(f"versions ({len(d.versions)}), oldest first:")
    for v in d.versions:
        out.append(f"  {(v['hash'] or '?')[:12]}  first {_day(v['first_seen'])}"
                   f"  last {_day(v['last_seen'])}  {v['runs']} runs")  # fmt: skip
    runs = sum(len(c["runs"]) for c in d.consumers)
    out.append(f"consumers: {runs} runs read its outputs" + (":" if runs else ""))
    for c in d.consumers:
        seqs = ", ".join(f"#{s}" for s in c["runs"][:10])
        more = f" and {len(c['runs']) - 10} more" if len(c["runs"]) > 10 else ""
        out.append(f"  {c['unit']}  runs {seqs}{more}  read {', '.join(c['files'][:5])}")
    out.append(f"left the project: {len(d.published)}" + (":" if d.published else ""))
    for p in d.published:
        how = "vestige publish" if p["how"] == "publish" else "seen by vestige which"
        out.append(f"  {p['dest']}  ({how}, {_day(p['t'])}; {p['source']})")
    out.append(f"shares code with: {len(u.duplicates)}" + (":" if u.duplicates else ""))
    for dup in u.duplicates[:10]:
        share = f"{dup.shared:.0%} of this unit's code (jaccard {dup.jaccard:.2f})"
        out.append(f"  {dup.unit}  {share}")
    return out
