"""The debt ledger (`vestige debt`) and `vestige publish`, through the real CLI.

A small history made of real `vestige run` subprocesses placed in simulated time with
VESTIGE_NOW; a synthetic history of 500 runs over 120 days written through the library
(benchmarks/debt_gc.py), whose verdicts are checked against the rules of docs/debt.md
computed here independently, from the plan, without SQL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_environment, git, vestige

REPO = Path(__file__).resolve().parents[1]
DAY = 86400.0
NOW = 1772323200.0  # 2026-03-01T00:00:00Z

REPORT = """\
import os


def summarize(path):
    with open(path) as f:
        values = [float(line) for line in f if line.strip()]
    total = sum(values)
    mean = total / len(values)
    return {"total": total, "mean": mean, "count": len(values)}


stats = summarize("out/model.txt")
os.makedirs("out", exist_ok=True)
with open("out/report.txt", "w") as f:
    for key, value in sorted(stats.items()):
        f.write(f"{key}: {value}\\n")
"""
TRAIN = """\
import os

from lib.helper import scale

os.makedirs("out", exist_ok=True)
with open("out/model.txt", "w") as f:
    f.write(str(scale(3)) + "\\n")
"""
OLD = 'import os\nos.makedirs("out", exist_ok=True)\nopen("out/old.txt", "w").write("old\\n")\n'


def helper(version: int) -> str:
    return f"def scale(x):\n    return x * {version}\n"


def ok(*args: str, cwd: Path, now: float = NOW, code: int = 0) -> str:
    done = vestige(*args, cwd=cwd, env={"VESTIGE_NOW": str(now)})
    assert done.returncode == code, (args, done.stdout.decode(), done.stderr.decode())
    return done.stdout.decode()


def one_error_line(*args: str, cwd: Path, now: float = NOW) -> str:
    done = vestige(*args, cwd=cwd, env={"VESTIGE_NOW": str(now)})
    err = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2, (args, done.stdout.decode(), done.stderr.decode())
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def store_state(store: Path) -> list[tuple[str, int]]:
    """Every file of the store but the index (a cache), with its size."""
    return sorted(
        (str(p.relative_to(store)), p.stat().st_size)
        for p in store.rglob("*")
        if p.is_file() and not p.name.startswith("index.sqlite")
    )


def ledger(root: Path, *args: str, now: float = NOW) -> dict[str, dict[str, Any]]:
    data = json.loads(ok("debt", "--json", *args, cwd=root, now=now))
    return {u["unit"]: u for u in data["units"]}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A one-off script run twice; a helper imported by 12 runs over 40 days in 5 versions
    whose output 3 runs of another script read; a script untouched for 60 days."""
    base = tmp_path_factory.mktemp("debt")
    mp = pytest.MonkeyPatch()
    clean_environment(mp, base)
    root = base / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "analysis").mkdir()
    (root / "data").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "helper.py").write_text(helper(1))
    (root / "train.py").write_text(TRAIN)
    (root / "report.py").write_text(REPORT)
    oneoff = REPORT.replace("out/model.txt", "data/seed.txt").replace("report.txt", "one.txt")
    (root / "oneoff.py").write_text(oneoff + 'print("done")\n')
    (root / "data" / "seed.txt").write_text("1\n2\n")
    (root / "analysis" / "old.py").write_text(OLD)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    ok("run", "python", "analysis/old.py", cwd=root, now=NOW - 70 * DAY)
    ok("run", "python", "analysis/old.py", cwd=root, now=NOW - 60 * DAY)
    versions = [1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5]
    for k, v in enumerate(versions):  # days -45 .. -5: 40 days
        (root / "lib" / "helper.py").write_text(helper(v))
        ok("run", "python", "train.py", cwd=root, now=NOW - (45 - k * 40 / 11) * DAY)
    for d in (4, 3, 2):
        ok("run", "python", "report.py", cwd=root, now=NOW - d * DAY)
    for h in (30, 20):
        ok("run", "python", "oneoff.py", cwd=root, now=NOW - h * 3600)
    yield root
    mp.undo()


def test_verdicts_of_a_real_history(history: Path) -> None:
    units = ledger(history)
    # the empty lib/__init__.py is no debt
    assert set(units) == {"lib/helper.py", "train.py", "report.py", "oneoff.py", "analysis/old.py"}
    h = units["lib/helper.py"]
    assert (h["kind"], h["runs"], h["versions"], h["consumers"]) == ("module", 12, 5, 3)
    assert h["verdict"] == "consolidate"
    fired = {r["rule"] for r in h["reasons"] if r["fired"]}
    assert {"long-lived", "many versions", "many consumers"} <= fired
    assert round(h["lifespan_days"]) == 40
    assert units["train.py"]["kind"] == "script"
    assert units["train.py"]["verdict"] == "consolidate"
    one = units["oneoff.py"]
    assert (one["runs"], one["verdict"], one["consumers"]) == (2, "fine sloppy", 0)
    assert {r["rule"] for r in one["reasons"] if r["fired"]} == {"young", "few runs"}
    assert units["report.py"]["verdict"] == "fine sloppy"
    old = units["analysis/old.py"]
    assert old["verdict"] == "archive" and old["restorable"]
    assert old["recent_runs"] == 0
    interests = [u["interest"] for u in json.loads(ok("debt", "--json", cwd=history))["units"]]
    assert interests == sorted(interests, reverse=True)
    # interest = runs + 2 (versions - 1) + 3 consumers + hours (docs/debt.md)
    assert h["interest"] == pytest.approx(12 + 2 * 4 + 3 * 3 + h["run_seconds"] / 3600, abs=0.01)


def test_duplicated_code_is_found_by_shingles(history: Path) -> None:
    one = ledger(history)["oneoff.py"]
    assert one["duplicates"][0]["unit"] == "report.py"
    assert one["duplicates"][0]["shared"] >= 0.6
    text = ok("debt", cwd=history)
    rows = [ln for ln in text.splitlines() if "oneoff.py" in ln and "report.py" in ln]
    assert any(ln.index("oneoff.py") < ln.index("report.py") for ln in rows)  # its own row


def test_the_window_and_the_clock(history: Path) -> None:
    recent = ledger(history, "--since", "10d")
    assert set(recent) == {"lib/helper.py", "train.py", "report.py", "oneoff.py"}
    assert recent["lib/helper.py"]["runs"] == 2  # days -8.6 and -5
    assert set(ledger(history, "--since", "2026-02-27")) == {"report.py", "oneoff.py"}
    # 50 days earlier, old.py was still in use and the helper had not started
    past = ledger(history, now=NOW - 50 * DAY)
    assert set(past) == {"analysis/old.py"}
    assert past["analysis/old.py"]["verdict"] == "fine sloppy"


def test_one_unit_in_detail(history: Path) -> None:
    data = json.loads(ok("debt", "lib/helper.py", "--json", cwd=history))
    assert data["unit"] == "lib/helper.py" and data["verdict"] == "consolidate"
    assert [v["runs"] for v in data["version_list"]] == [3, 3, 2, 2, 2]
    assert len(data["history"]) == 12
    assert [c["unit"] for c in data["consumer_units"]] == ["report.py"]
    assert len(data["consumer_units"][0]["runs"]) == 3
    assert data["consumer_units"][0]["files"] == ["out/model.txt"]
    assert data["thresholds"]["many_versions"] == 4
    text = ok("debt", "helper.py", cwd=history)  # a unique suffix is enough
    assert text.startswith("lib/helper.py (module): consolidate")
    assert "+ many versions: 5 versions (>= many_versions 4)" in text
    assert "report.py  runs #" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["debt", "--since", "yesterday"], "--since"),
        (["debt", "--since", "10x"], "--since"),
        (["debt", "nothing.py"], "nothing.py"),
        (["debt", "--verdict", "archive", "train.py"], "--verdict"),
        (["debt", "--verdict", "later"], "--verdict"),
    ],
)
def test_bad_debt_input(history: Path, args: list[str], needle: str) -> None:
    before = store_state(history / ".vestige")
    assert needle in one_error_line(*args, cwd=history)
    assert store_state(history / ".vestige") == before


def test_unknown_unit_hints(history: Path) -> None:
    assert "did you mean train.py" in one_error_line("debt", "trian.py", cwd=history)


def test_thresholds_come_from_the_config(history: Path) -> None:
    config = history / ".vestige" / "config.toml"
    try:
        config.write_text("[debt]\narchive_days = 100\nmany_versions = 6\nmany_consumers = 4\n")
        units = ledger(history)
        assert units["analysis/old.py"]["verdict"] == "fine sloppy"
        assert units["lib/helper.py"]["verdict"] == "consolidate"  # still long-lived
        assert {r["rule"] for r in units["lib/helper.py"]["reasons"] if r["fired"]} == {
            "long-lived"
        }
        config.write_text("[debt]\nfew_runs = -1\n")
        assert "debt.few_runs" in one_error_line("debt", cwd=history)
    finally:
        config.unlink()


def test_archive_then_restore_byte_identical(history: Path) -> None:
    """Runs last: it deletes the archived script (and brings it back)."""
    old = ledger(history)["analysis/old.py"]
    original = (history / "analysis" / "old.py").read_bytes()
    (history / "analysis" / "old.py").unlink()
    argv = old["restore"].split()
    assert argv[:2] == ["vestige", "restore"]
    ok(*argv[1:], cwd=history)
    assert (history / "analysis" / "old.py").read_bytes() == original


# -- a synthetic history -------------------------------------------------------------------


def expected_verdicts(plan: dict[str, Any], th: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The rules of docs/debt.md over the plan, by brute force (no index, no SQL)."""
    now = plan["now"]
    runs = [r for r in plan["runs"] if r["started"] <= now]
    out: dict[str, dict[str, Any]] = {}
    for unit in plan["units"]:
        mine = [r for r in runs if unit in r["code"]]
        if not mine:
            continue
        first = min(r["started"] for r in mine)
        last = max(r["started"] for r in mine)
        versions = len({r["code"][unit] for r in mine})
        consumers = {
            c["id"] for c in runs if unit not in c["code"] and any(
                p["started"] < c["started"] and set(p["outputs"]) & set(c["inputs"])
                for p in mine)
        }  # fmt: skip
        made = {h for r in mine for h in r["outputs"]}
        published = {e["dest"] for e in plan["published"] if e["t"] <= now and e["hash"] in made}
        if (now - last) / DAY >= th["archive_days"]:
            verdict = "archive"
        elif (
            ((last - first) / DAY >= th["long_lived_days"] and len(mine) > th["few_runs"])
            or versions >= th["many_versions"]
            or len(consumers) >= th["many_consumers"]
            or published
        ):
            verdict = "consolidate"
        else:
            verdict = "fine sloppy"
        out[unit] = {"runs": len(mine), "versions": versions, "consumers": len(consumers),
                     "published": len(published), "verdict": verdict}  # fmt: skip
    return out


def test_synthetic_history_of_500_runs(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from debt_gc import NOW as BENCH_NOW
        from debt_gc import synthetic_history
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from vestige.repo import Repo

    root = tmp_path / "synthetic"
    root.mkdir()
    repo = Repo.open(root, create=True)
    try:
        plan = synthetic_history(repo, 500, 60, days=120.0, now=BENCH_NOW, seed=11)
        th = repo.config
    finally:
        repo.close()
    thresholds = {k: getattr(th, f"debt_{k}") for k in
                  ("archive_days", "long_lived_days", "few_runs", "many_versions",
                   "many_consumers")}  # fmt: skip
    want = expected_verdicts(plan, thresholds)
    got = ledger(root, now=BENCH_NOW)
    assert len(plan["runs"]) == 500
    assert set(got) == set(want)
    for unit, expect in want.items():
        row = got[unit]
        assert {k: row[k] for k in expect} == expect, unit
    verdicts = {u["verdict"] for u in got.values()}
    assert verdicts == {"consolidate", "fine sloppy", "archive"}  # the plan exercises all three
    assert any(u["duplicates"] for u in got.values())  # it copy-pastes between units


# -- publish -------------------------------------------------------------------------------

MAKE = 'import os\nos.makedirs("out", exist_ok=True)\nopen("out/fig.png", "wb").write(b"PNG-1")\n'


@pytest.fixture
def made(project: Path) -> Path:
    (project / "make.py").write_text(MAKE)
    (project / "data.txt").write_text("input\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "make")
    ok("run", "python", "make.py", cwd=project, now=NOW - DAY)
    return project


def test_publish_copies_and_which_names_the_origin(made: Path, tmp_path: Path) -> None:
    dest = tmp_path / "paper" / "fig3.png"
    out = ok("publish", "out/fig.png", str(dest), cwd=made)
    assert out.startswith("copied out/fig.png (run #1")
    assert dest.read_bytes() == b"PNG-1"
    which = json.loads(ok("which", str(dest), "--json", cwd=made))
    assert [m["seq"] for m in which["made_by"]] == [1]
    assert f"left the project: {dest} (published by `vestige publish`" in ok(
        "which", str(dest), cwd=made
    )
    unit = ledger(made)["make.py"]
    assert unit["published"] == 1
    assert unit["verdict"] == "consolidate"
    assert "published" in {r["rule"] for r in unit["reasons"] if r["fired"]}
    assert "ok" in ok("fsck", cwd=made)
    # the same publish again: nothing copied, nothing recorded twice
    again = ok("publish", "out/fig.png", str(dest), cwd=made)
    assert again.startswith("already there:") and "already recorded" in again
    # into a folder, by RUN:path
    folder = tmp_path / "shared"
    folder.mkdir()
    data = json.loads(ok("publish", "1:out/fig.png", str(folder), "--json", cwd=made))
    assert data["status"] == "copied" and data["dest"] == str(folder / "fig.png")
    assert ledger(made)["make.py"]["published"] == 2


def test_publish_never_clobbers_without_force(made: Path, tmp_path: Path) -> None:
    dest = tmp_path / "fig.png"
    dest.write_bytes(b"my own figure")
    before = store_state(made / ".vestige")
    line = one_error_line("publish", "out/fig.png", str(dest), cwd=made)
    assert "--force" in line
    assert dest.read_bytes() == b"my own figure"
    assert store_state(made / ".vestige") == before
    data = json.loads(ok("publish", "out/fig.png", str(dest), "--force", "--json", cwd=made))
    assert data["status"] == "replaced"
    assert dest.read_bytes() == b"PNG-1"


def test_reindex_keeps_what_was_published(made: Path, tmp_path: Path) -> None:
    dest = tmp_path / "fig.png"
    ok("publish", "out/fig.png", str(dest), cwd=made)
    ok("reindex", cwd=made)
    assert ledger(made)["make.py"]["published"] == 1
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (made / ".vestige" / name).unlink(missing_ok=True)
    assert ledger(made)["make.py"]["published"] == 1
    assert "published by `vestige publish`" in ok("which", str(dest), cwd=made)


def test_which_of_a_copy_is_not_a_publish_until_the_copy_is_old(
    project: Path, tmp_path: Path
) -> None:
    """Looking up a copy of a figure five minutes after the run does not make its code
    `consolidate`; the copy counts once it has been known for young_days (14), and a
    `vestige publish` counts at once."""
    (project / "make.py").write_text(MAKE)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "make")
    ok("run", "python", "make.py", cwd=project, now=NOW)
    copy = tmp_path / "Downloads" / "figure.png"
    copy.parent.mkdir()
    copy.write_bytes((project / "out" / "fig.png").read_bytes())
    ok("which", str(copy), cwd=project, now=NOW + 300)
    assert f"left the project: {copy} (seen by `which`" in ok(
        "which", str(copy), cwd=project, now=NOW + 400
    )
    ok("which", "out/fig.png", cwd=project, now=NOW + 500)  # inside the project: nothing left
    unit = ledger(project, now=NOW + 600)["make.py"]
    assert unit["published"] == 0 and unit["verdict"] == "fine sloppy", unit
    detail = json.loads(ok("debt", "make.py", "--json", cwd=project, now=NOW + 600))
    assert detail["published_list"] == []
    later = NOW + 300 + 14 * DAY
    unit = ledger(project, now=later)["make.py"]
    assert unit["published"] == 1 and unit["verdict"] == "consolidate", unit
    detail = json.loads(ok("debt", "make.py", "--json", cwd=project, now=later))
    assert [p["how"] for p in detail["published_list"]] == ["which"]
    ok("publish", "out/fig.png", str(tmp_path / "paper" / "fig.png"), cwd=project, now=NOW + 700)
    assert ledger(project, now=NOW + 800)["make.py"]["published"] == 1  # the publish, at once


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["publish", "missing.png", "DEST/x.png"], "no such file"),
        (["publish", "data.txt", "DEST/x.png"], "no recorded run made these bytes"),
        (["publish", "9:out/fig.png", "DEST/x.png"], "no run #9"),
        (["publish", "1:nothing.png", "DEST/x.png"], "nothing.png"),
        (["publish", "out/fig.png", ".vestige/fig.png"], "inside the store"),
        (["publish", "out/fig.png"], "DEST"),
    ],
)
def test_bad_publish_input(made: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    args = [a.replace("DEST", str(tmp_path / "dest")) for a in args]
    before = store_state(made / ".vestige")
    assert needle in one_error_line(*args, cwd=made)
    assert store_state(made / ".vestige") == before
    assert not (tmp_path / "dest").exists()


def test_publish_an_input_is_refused(made: Path, tmp_path: Path) -> None:
    (made / "read.py").write_text('print(open("data.txt").read())\n')
    ok("run", "python", "read.py", cwd=made)
    assert "not something it made" in one_error_line(
        "publish", "2:data.txt", str(tmp_path / "d.txt"), cwd=made
    )
