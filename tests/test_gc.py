"""`vestige gc`, `du`, `pin`/`unpin`: a synthetic history of 500 runs over 120 simulated
days (built through the library, sealed like real runs), real CLI subprocesses with
VESTIGE_NOW, an oracle that recomputes what must stay from the manifests alone, real
concurrent `vestige run` processes racing gc, and a freed artefact re-made by rerun."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import clean_environment, git, vestige

from vestige.records import FileRecord, Run
from vestige.repo import Repo
from vestige.store.tree import TreeEntry, write_tree

DAY = 86400.0
T0 = 1_780_000_000.0  # the history starts here (simulated)
N_RUNS = 500
NOW = T0 + 120 * DAY
OLD = time.time() - 3 * DAY  # object mtimes: older than gc's grace


# -- the synthetic history -------------------------------------------------------------------


def build_history(root: Path) -> None:
    """500 runs of three scripts: `prep.py` reads raw data (never made by a run) and
    writes an intermediate; `train.py` reads an intermediate and writes a model and an
    artefact; `plot.py` writes a figure whose bytes repeat across runs; some runs fail,
    some are tagged, some pinned; one tree leaves a big file unkept."""
    rng = random.Random(7)
    repo = Repo.open(root, create=True)
    objects = repo.store.objects
    env = objects.put_json({"type": "env", "python": {"version": "3.11"}})
    trees = []
    for version in range(4):
        entries = [
            TreeEntry(name, 0o100644, len(body), objects.put_bytes(body), True)
            for name, body in (
                ("prep.py", f"# prep v{version}\n".encode()),
                ("train.py", f"# train v{version}\n".encode()),
                ("plot.py", f"# plot v{version}\n".encode()),
            )
        ]
        if version == 3:  # a snapshot with a file over keep.code_max_size: not re-makeable
            entries.append(TreeEntry("big.bin", 0o100644, 10**9, "ab" * 32, False))
        trees.append((write_tree(objects, entries), sum(e.size for e in entries)))
    raws = [objects.put_bytes(f"raw data {k}\n".encode() * (k + 1)) for k in range(5)]
    made: list[str] = []  # intermediates made so far
    runs = []
    for i in range(N_RUNS):
        started = T0 + i * (120 * DAY / N_RUNS)
        script = ("prep.py", "train.py", "plot.py")[i % 3] if made else "prep.py"
        tree, tree_size = trees[(i // 130) % 4]
        inputs, outputs, artefacts = [], [], []
        size = rng.choice([10, 1000, 50_000, 2_000_000]) if i % 7 else 3_000_000
        if script == "prep.py":
            k = rng.randrange(5)
            inputs.append(FileRecord(f"data/raw{k}.txt", raws[k], (k + 1) * 11, True))
            body = f"intermediate {i}\n".encode() * (size // 16 + 1)
            digest = objects.put_bytes(body)
            made.append(digest)
            outputs.append(FileRecord(f"work/inter{i}.bin", digest, len(body), True))
        elif script == "train.py":
            src = rng.choice(made)
            inputs.append(FileRecord("work/inter.bin", src, objects.path(src).stat().st_size,
                                     True))  # fmt: skip
            if i % 11 == 0:  # an input outside the project: its run cannot be re-made
                k = rng.randrange(5)
                inputs.append(FileRecord(f"/srv/raw{k}.txt", raws[k], (k + 1) * 11, True))
            body = f"model {i}\n".encode() * (size // 10 + 1)
            digest = objects.put_bytes(body)
            outputs.append(FileRecord("out/model.bin", digest, len(body), True))
            summary = json.dumps({"run": i, "loss": 1 / (i + 1)}).encode()
            artefacts.append({"name": "summary", "kind": "json", "t": started, "pid": 1,
                              "files": [{"path": "summary.json", "size": len(summary),
                                         "hash": objects.put_bytes(summary)}]})  # fmt: skip
        else:
            body = f"figure {i % 4}\n".encode() * 500  # the same four figures, over and over
            outputs.append(FileRecord("out/fig.png", objects.put_bytes(body), len(body), True))
        log = f"run {i}\n".encode()
        run = Run(
            id=f"01M8{i:022d}", seq=i + 1, status="failed" if i % 13 == 5 else "ok",
            command=["python", script], cwd=".", root=str(root), started=started,
            ended=started + 5, duration=5.0, exit_code=1 if i % 13 == 5 else 0,
            code={"tree": tree, "files": 3, "size": tree_size, "git": None, "modules": []},
            inputs=tuple(inputs), outputs=tuple(outputs),
            stdout={"hash": objects.put_bytes(log), "size": len(log), "lines": 1},
            env=env, artefacts=tuple(artefacts), tags=("paper",) if i % 50 == 7 else (),
        )  # fmt: skip
        digest = objects.put_json(run.to_dict())
        repo.store.refs.set(run.id, digest)
        runs.append(Run.from_dict(run.to_dict(), manifest=digest))
    repo.index.record.runs(runs)
    repo.close()
    backdate(root / ".vestige")


def backdate(store: Path) -> None:
    """Objects written days ago (gc never frees what was written recently)."""
    for path in (store / "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("history")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        root = base / "proj"
        root.mkdir()
        build_history(root)
        assert vestige("pin", "3", "4", "100", cwd=root).returncode == 0
        assert vestige("tag", "200", "keep-me", cwd=root).returncode == 0
        assert vestige("unpin", "4", cwd=root).returncode == 0
    return root


@pytest.fixture
def history(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the history for one test (same absolute paths inside manifests do
    not matter: nothing here reruns them)."""
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    backdate(root / ".vestige")
    return root


def run_gc(root: Path, *args: str, now: float = NOW) -> dict:
    done = vestige("gc", *args, "--json", cwd=root, env={"VESTIGE_NOW": str(now)})
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def store_tree(store: Path) -> dict[str, str]:
    """Every file under the store but the index cache, with its bytes' digest and mtime."""
    out = {}
    for path in sorted(store.rglob("*")):
        if path.is_file() and not path.name.startswith("index.sqlite"):
            data = hashlib.sha256(path.read_bytes()).hexdigest()
            out[path.relative_to(store).as_posix()] = f"{data} {path.stat().st_mtime_ns}"
    return out


def present(store: Path) -> dict[str, int]:
    return {p.parent.name + p.name: p.stat().st_size
            for p in (store / "objects").glob("*/*")}  # fmt: skip


# -- the oracle: what gc must free, recomputed from manifests ---------------------------------


def manifests(store: Path) -> list[dict]:
    out = []
    for ref in sorted((store / "refs" / "runs").iterdir()):
        digest = ref.read_text().strip()
        m = json.loads((store / "objects" / digest[:2] / digest[2:]).read_bytes())
        m["_manifest"] = digest
        out.append(m)
    return sorted(out, key=lambda m: m["seq"])


def tree_info(store: Path, tree: str) -> tuple[set[str], bool]:
    entries = json.loads((store / "objects" / tree[:2] / tree[2:]).read_bytes())["entries"]
    return {e[3] for e in entries if e[4]}, all(e[4] for e in entries)


def payloads(m: dict) -> list[tuple[int, str, str]]:
    """(role order, path, hash) of a run's kept outputs, artefact files, inputs."""
    out = [(0, f["path"], f["hash"]) for f in m["outputs"] if f["kept"]]
    out += [(1, f["path"], f["hash"]) for a in m.get("artefacts") or [] for f in a["files"]]
    out += [(2, f["path"], f["hash"]) for f in m["inputs"] if f["kept"]]
    return sorted(out)


def expected_freed(store: Path, now: float, keep_last: int | None = None,
                   older: float | None = None, max_size: int | None = None,
                   min_size: int = 0) -> set[str]:  # fmt: skip
    """The objects the documented rules free, computed without gc's code or the index."""
    ms = manifests(store)
    pins = {p.name for p in (store / "refs" / "pins").iterdir()}
    tagged = {m["id"] for m in ms if m.get("tags")}
    ann = store / "refs" / "annotations"
    for ref in ann.iterdir() if ann.is_dir() else []:
        digest = ref.read_text().strip()
        if json.loads((store / "objects" / digest[:2] / digest[2:]).read_bytes())["added"]:
            tagged.add(ref.name)
    newest = {m["id"] for m in sorted(ms, key=lambda m: -m["seq"])[: keep_last or 0]}
    cands = [m for m in ms if m["id"] not in pins | tagged | newest
             and (older is None or m["started"] <= now - older)]  # fmt: skip
    cand_ids = {m["id"] for m in cands}
    keep: set[str] = set()
    for m in ms:
        keep |= {m["_manifest"], m["env"], m["stdout"]["hash"], m["code"]["tree"]}
        keep |= tree_info(store, m["code"]["tree"])[0]
        if m["id"] not in cand_ids:
            keep |= {h for _o, _p, h in payloads(m)}
    makers: dict[str, list[dict]] = {}
    for m in ms:
        for f in [*m["outputs"], *(f for a in m.get("artefacts") or [] for f in a["files"])]:
            makers.setdefault(f["hash"], []).append(m)
    sizes = present(store)
    stored = sum(sizes.values())
    freed = {p.name for p in (store / "refs" / "freed").glob("*")}
    ids = {m["id"]: m for m in ms}
    needed = {f["hash"] for p in (store / "refs" / "freed").glob("*")
              for f in ids[json.loads(p.read_text())["run"]]["inputs"]}  # fmt: skip
    seen: set[str] = set()
    for m in sorted(cands, key=lambda m: (m["started"], m["seq"])):
        for _o, _p, h in payloads(m):
            if h in seen or h not in sizes:
                continue
            seen.add(h)
            if h in keep or (max_size is not None and stored <= max_size):
                continue
            if sizes[h] < min_size or h in needed or h not in makers:
                continue
            for maker in sorted(makers[h], key=lambda x: (x["started"], x["id"])):
                ins = maker["inputs"]
                if (maker["status"] == "ok" and tree_info(store, maker["code"]["tree"])[1]
                        and all(f["kept"] and f["hash"] != h and f["hash"] not in freed
                                and not f["path"].startswith("/") for f in ins)):  # fmt: skip
                    freed.add(h)
                    needed |= {f["hash"] for f in ins}
                    stored -= sizes[h]
                    break
    return freed - {p.name for p in (store / "refs" / "freed").glob("*")}


def check_after_gc(root: Path, before: dict[str, int], freed: set[str]) -> None:
    store = root / ".vestige"
    after = present(store)
    assert set(before) - set(after) == freed
    records = {p.name: json.loads(p.read_text()) for p in (store / "refs" / "freed").iterdir()}
    assert set(records) == freed
    ms = {m["id"]: m for m in manifests(store)}
    for digest, record in records.items():
        assert record["size"] == before[digest]
        maker = ms[record["run"]]
        made = {f["hash"]: f["path"] for f in maker["outputs"]}
        made |= {f["hash"]: f["path"] for a in maker.get("artefacts") or [] for f in a["files"]}
        assert made[digest] == record["path"]
    done = vestige("fsck", cwd=root)
    assert done.returncode == 0, done.stderr.decode()


POLICIES = [
    ("older-than", ["--older-than", "60d"], {"older": 60 * DAY}),
    ("keep-last", ["--keep-last", "120"], {"keep_last": 120}),
    ("max-size", ["--max-size", "150MB"], {"max_size": 150_000_000}),
    ("min-size", ["--older-than", "10d", "--min-size", "1MiB"],
     {"older": 10 * DAY, "min_size": 1 << 20}),
    ("combined", ["--older-than", "12w", "--keep-last", "50", "--max-size", "0.2GB",
                  "--min-size", "4k"],
     {"older": 84 * DAY, "keep_last": 50, "max_size": 200_000_000, "min_size": 4000}),
]  # fmt: skip


@pytest.mark.parametrize(("args", "rules"), [p[1:] for p in POLICIES], ids=[p[0] for p in POLICIES])
def test_gc_frees_exactly_what_the_rules_allow(history: Path, args: list[str], rules: dict) -> None:
    store = history / ".vestige"
    want = expected_freed(store, NOW, **rules)
    assert want, "the policy should free something in this history"
    before = present(store)
    plan = run_gc(history, *args, "--dry-run")
    assert {i["hash"] for i in plan["items"]} == want
    result = run_gc(history, *args)
    assert {i["hash"] for i in result["items"]} == want
    assert result["bytes"] == sum(before[h] for h in want)
    check_after_gc(history, before, want)
    if "max_size" in rules:  # it stopped as soon as the store was under the size
        last = result["items"][-1]["size"]
        assert sum(present(store).values()) + last > rules["max_size"]
    assert run_gc(history, *args)["objects"] == 0  # a second gc finds nothing more
    assert expected_freed(store, NOW, **rules) == set()


def test_pinned_tagged_and_unmade_inputs_stay(history: Path) -> None:
    store = history / ".vestige"
    ms = {m["seq"]: m for m in manifests(store)}
    run_gc(history, "--older-than", "1d")
    after = present(store)
    for seq in (3, 100, 200, 8):  # pinned, pinned, tagged by `vestige tag`, tagged in the run
        for _o, _p, h in payloads(ms[seq]):
            assert h in after, (seq, _p)
    assert any(h not in after for _o, _p, h in payloads(ms[4])), "unpinned: freed again"
    raws = {f["hash"] for m in ms.values() for f in m["inputs"] if "raw" in f["path"]}
    assert raws <= set(after)  # inputs no run made: never freed
    listed = json.loads(vestige("ls", "--where", "pinned = true", "--json", cwd=history).stdout)
    assert sorted(r["seq"] for r in listed) == [3, 100]
    assert all(r["pinned"] for r in listed)


def test_with_a_remote_gc_frees_only_what_a_remote_holds(history: Path, tmp_path: Path) -> None:
    """Issue 17: a payload that exists only here stays until it is pushed; --force frees
    it all the same; once pushed, gc frees exactly what it would without a remote."""
    store = history / ".vestige"
    want = expected_freed(store, NOW, older=30 * DAY)
    remote = tmp_path / "team"
    assert vestige("remote", "add", "origin", f"file://{remote}", cwd=history).returncode == 0
    kept = run_gc(history, "--older-than", "30d", "--dry-run")  # nothing pushed yet
    assert kept["objects"] == 0
    unpushed = kept["kept"]["on no remote yet (`vestige push` it, or gc --force)"]
    assert unpushed["objects"] >= len(want)  # (and inputs that freeing them would have needed)
    forced = run_gc(history, "--older-than", "30d", "--dry-run", "--force")
    assert {i["hash"] for i in forced["items"]} == want
    # Push only some runs: their payloads may go, the others' stay.
    sent = [str(seq) for seq in range(1, 200)]
    assert vestige("push", "origin", *sent, cwd=history).returncode == 0
    on_remote = {p.parent.name + p.name for p in (remote / "objects").glob("*/*")}
    some = run_gc(history, "--older-than", "30d")
    assert {i["hash"] for i in some["items"]} == want & on_remote
    assert want - on_remote, "some payloads should be only here"
    assert (want - on_remote) <= set(present(store))
    assert vestige("push", cwd=history).returncode == 0
    rest = run_gc(history, "--older-than", "30d")
    assert {i["hash"] for i in rest["items"]} == want - on_remote
    assert not set(present(store)) & want


def test_dry_run_changes_nothing(history: Path) -> None:
    store = history / ".vestige"
    before = store_tree(store)
    plan = run_gc(history, "--older-than", "30d", "--dry-run")
    assert plan["dry_run"] and plan["objects"] > 0
    text = vestige("gc", "--keep-last", "10", "--dry-run", cwd=history,
                   env={"VESTIGE_NOW": str(NOW)})  # fmt: skip
    assert text.returncode == 0 and b"would free" in text.stdout
    assert store_tree(store) == before


def test_du_numbers_are_the_sums(history: Path) -> None:
    store = history / ".vestige"
    sizes = present(store)
    ms = manifests(store)
    by_kind: dict[str, int] = {}
    for m in ms:
        for kind, size in (
            ("output", sum(f["size"] for f in m["outputs"] if f["kept"])),
            ("input", sum(f["size"] for f in m["inputs"] if f["kept"])),
            ("artefact", sum(f["size"] for a in m["artefacts"] for f in a["files"])),
            ("code", m["code"]["size"]), ("log", m["stdout"]["size"]),
            ("env", sizes[m["env"]]), ("manifest", sizes[m["_manifest"]]),
        ):  # fmt: skip
            by_kind[kind] = by_kind.get(kind, 0) + size
    data = json.loads(vestige("du", "--by", "kind", "--json", cwd=history).stdout)
    assert data["stored"] == sum(sizes.values())
    assert data["objects"] == len(sizes)
    assert data["logical"] == sum(by_kind.values())
    assert data["dedup_ratio"] == round(data["logical"] / data["stored"], 3)
    assert {g["group"]: g["logical"] for g in data["groups"]} == by_kind
    scripts = json.loads(vestige("du", "--by", "script", "--json", cwd=history).stdout)
    assert {g["group"]: g["runs"] for g in scripts["groups"]} == {
        s: sum(m["command"][1] == s for m in ms) for s in ("prep.py", "train.py", "plot.py")
    }
    runs = json.loads(vestige("du", "--by", "run", "--json", cwd=history).stdout)
    assert len(runs["groups"]) == N_RUNS
    one = next(g for g in runs["groups"] if g["group"] == "#2")
    m = ms[1]
    assert one["logical"] == (sum(f["size"] for f in m["inputs"] + m["outputs"])
                              + sum(f["size"] for a in m["artefacts"] for f in a["files"])
                              + m["code"]["size"] + m["stdout"]["size"] + sizes[m["env"]]
                              + sizes[m["_manifest"]])  # fmt: skip
    freed = run_gc(history, "--older-than", "30d")
    after = json.loads(vestige("du", "--json", cwd=history).stdout)
    assert after["freed"] == {"objects": freed["objects"], "bytes": freed["bytes"]}
    assert after["stored"] == data["stored"] - freed["bytes"]
    assert after["logical"] == data["logical"]


def test_reindex_rebuilds_pins_and_freed(history: Path) -> None:
    freed = run_gc(history, "--older-than", "30d")
    (history / ".vestige" / "index.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (history / ".vestige" / f"index.sqlite{suffix}").unlink(missing_ok=True)
    assert vestige("reindex", cwd=history).returncode == 0
    listed = json.loads(vestige("ls", "--where", "pinned = true", "--json", cwd=history).stdout)
    assert sorted(r["seq"] for r in listed) == [3, 100]
    after = json.loads(vestige("du", "--json", cwd=history).stdout)
    assert after["freed"]["objects"] == freed["objects"]


BAD = [
    (["gc", "--max-size", "12XB"], "--max-size"),
    (["gc", "--older-than", "90x"], "--older-than"),
    (["gc", "--older-than", "-3d"], "--older-than"),
    (["gc", "--min-size", "lots", "--keep-last", "3"], "--min-size"),
    (["gc", "--keep-last", "-1"], "--keep-last"),
    (["gc"], "policy"),
    (["du", "--by", "colour"], "colour"),
    (["pin", "9999"], "9999"),
    (["unpin", "3", "nosuchrun"], "nosuchrun"),
    (["ls", "--where", "pinned = 3"], "pinned"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_exits_2_and_changes_nothing(history: Path, args: list[str],
                                               needle: str) -> None:  # fmt: skip
    before = store_tree(history / ".vestige")
    done = vestige(*args, cwd=history, env={"VESTIGE_NOW": str(NOW)})
    err = done.stderr.decode().splitlines()
    assert done.returncode == 2, (done.returncode, err)
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert store_tree(history / ".vestige") == before


def test_bad_vestige_now_exits_2(history: Path) -> None:
    done = vestige("gc", "--keep-last", "1", cwd=history, env={"VESTIGE_NOW": "soon"})
    assert done.returncode == 2
    assert "VESTIGE_NOW" in done.stderr.decode()


# -- real runs: rerun re-makes a freed artefact; gc racing concurrent runs ---------------------

KEEPER = """\
import os
import sys
import vestige
os.makedirs("out", exist_ok=True)
data = open("data/raw.txt").read()
vestige.keep({"rows": len(data.splitlines()), "n": int(sys.argv[1])}, "summary")
open("out/result.txt", "w").write(data.upper() * int(sys.argv[1]))
"""


def real_project(base: Path) -> Path:
    root = base / "real"
    (root / "data").mkdir(parents=True)
    (root / "out").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "data" / "raw.txt").write_text("a,b\n1,2\n")
    (root / "keeper.py").write_text(KEEPER)
    (root / ".gitignore").write_text("out/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


def test_rerun_remakes_a_freed_artefact_and_cat_works_again(tmp_path: Path) -> None:
    root = real_project(tmp_path)
    old = {"VESTIGE_NOW": "2026-01-01"}
    assert vestige("run", sys.executable, "keeper.py", "3", cwd=root, env=old).returncode == 0
    show = json.loads(vestige("show", "1", "--json", cwd=root).stdout)
    art = show["artefacts"][0]["files"][0]
    kept = vestige("cat", "1", "summary.json", cwd=root).stdout
    backdate(root / ".vestige")
    result = run_gc(root, "--older-than", "30d", now=time.time())
    assert art["hash"] in {i["hash"] for i in result["items"]}
    done = vestige("cat", "1", "summary.json", cwd=root)
    assert done.returncode == 2
    assert "freed by gc on" in done.stderr.decode() and "vestige rerun 1" in done.stderr.decode()
    shown = vestige("show", "1", cwd=root).stdout.decode()
    assert "freed by gc: vestige rerun re-makes it" in shown, shown
    done = vestige("restore", "1", "summary.json", "--to", str(tmp_path / "r"), cwd=root)
    assert done.returncode == 2 and "vestige rerun 1" in done.stderr.decode()
    assert vestige("fsck", cwd=root).returncode == 0
    again = vestige("rerun", "1", "--json", cwd=root)
    assert again.returncode == 0, again.stderr.decode()
    verdicts = {v["path"]: v["verdict"] for v in json.loads(again.stdout)["verdicts"]}
    assert verdicts["artefact:summary.json"] == "identical"
    assert vestige("cat", "1", "summary.json", cwd=root).stdout == kept
    assert "freed by gc" not in vestige("show", "1", cwd=root).stdout.decode()
    assert not (root / ".vestige" / "refs" / "freed" / art["hash"]).exists()
    fsck = vestige("fsck", cwd=root)
    assert fsck.returncode == 0 and b"F2" not in fsck.stdout


RACER = textwrap.dedent("""\
    import subprocess, sys
    for i in range(int(sys.argv[2])):
        n = str(1 + (int(sys.argv[1]) + i) % 4)
        argv = [sys.executable, "-m", "vestige", "run", sys.executable, "keeper.py", n]
        done = subprocess.run(argv, capture_output=True)
        if done.returncode != 0:
            sys.exit(done.stderr.decode())
""")


def test_gc_racing_concurrent_runs_loses_nothing(tmp_path: Path) -> None:
    """Old runs made bytes that 4 concurrent runs make again (dedup: the objects exist)
    and others; gc frees the old runs' files over and over meanwhile. Every new run must
    find all its objects; old runs' missing objects must be freed records."""
    root = real_project(tmp_path)
    for n in range(1, 9):  # 1-4: made again by the racers (contested); 5-8: free to go
        old = {"VESTIGE_NOW": f"2026-01-0{n}"}
        done = vestige("run", sys.executable, "keeper.py", str(n), cwd=root, env=old)
        assert done.returncode == 0, done.stderr.decode()
    backdate(root / ".vestige")
    (root / "racer.py").write_text(RACER)
    racers = [subprocess.Popen([sys.executable, "racer.py", str(k), "3"], cwd=root,
                               stderr=subprocess.PIPE) for k in range(4)]  # fmt: skip
    rounds = freed_total = 0
    while any(p.poll() is None for p in racers) or rounds < 2:
        rounds += 1
        freed_total += run_gc(root, "--older-than", "30d", now=time.time())["objects"]
    for p in racers:
        _out, err = p.communicate()
        assert p.returncode == 0, err.decode()
    assert freed_total > 0, "gc never freed anything: the race was not exercised"
    store = root / ".vestige"
    ms = manifests(store)
    assert len(ms) == 8 + 12
    have = present(store)
    freed = {p.name for p in (store / "refs" / "freed").iterdir()}
    for m in ms:
        hashes = [f["hash"] for f in m["outputs"] + m["inputs"]]
        hashes += [f["hash"] for a in m["artefacts"] for f in a["files"]]
        hashes += [m["env"], m["code"]["tree"], m["_manifest"]]
        for h in hashes:
            if m["seq"] <= 8:
                assert h in have or h in freed, (m["seq"], h)
            else:
                assert h in have, (m["seq"], h)  # a new run: nothing of it may be gone
    done = vestige("fsck", cwd=root)
    assert done.returncode == 0, done.stderr.decode()


DIES_IN_QUARANTINE = textwrap.dedent("""\
    import os, sys
    from vestige.store.freed import freed_dir
    from vestige.upkeep.gc import Item, _quarantine
    from vestige.repo import Repo
    repo = Repo.open_at(sys.argv[1], sys.argv[2])
    freed_dir(repo.store).mkdir(parents=True, exist_ok=True)  # (as gc's collect does)
    digest, size, run = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    item = Item(digest, size, run, "out/result.txt", "output", run, "out/result.txt", "output")
    _quarantine(repo, item, 0.0)  # the record written, the object moved aside...
    os._exit(9)  # ...and gc dies before it put back or deleted anything
""")


def test_objects_a_dead_gc_moved_aside_are_put_back(tmp_path: Path) -> None:
    """gc moves an object aside before deciding (a run sealed meanwhile may name it). A
    gc that died there left a run's output in tmp/: the next command puts it back."""
    root = real_project(tmp_path)
    assert vestige("run", sys.executable, "keeper.py", "2", cwd=root).returncode == 0
    show = json.loads(vestige("show", "1", "--json", cwd=root).stdout)
    out = next(f for f in show["outputs"] if f["path"] == "out/result.txt")
    store = root / ".vestige"
    script = tmp_path / "dies.py"
    script.write_text(DIES_IN_QUARANTINE)
    done = subprocess.run([sys.executable, str(script), str(store), str(root), out["hash"],
                           str(out["size"]), show["id"]], capture_output=True)  # fmt: skip
    assert done.returncode == 9, done.stderr.decode()
    aside = [n for n in os.listdir(store / "tmp") if n.startswith("gc-")]
    assert len(aside) == 1 and aside[0].endswith(f"-{out['hash']}")
    assert (store / "refs" / "freed" / out["hash"]).exists()
    # a half-written freed record under the same kind of name, and a live gc's file
    dead = aside[0].split("-")[1]
    other = "ab" * 32
    (store / "tmp" / f"gc-{dead}-{other}").write_text('{"by":"gc","hash":"' + other + '"')
    (store / "tmp" / f"gc-{os.getpid()}-{'cd' * 32}").write_bytes(b"a gc at work")

    cat = vestige("cat", "1", "out/result.txt", cwd=root)  # any command recovers first
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == b"A,B\n1,2\n" * 2
    assert not (store / "refs" / "freed" / out["hash"]).exists()
    assert sorted(os.listdir(store / "tmp")) == [f"gc-{os.getpid()}-{'cd' * 32}"]
    assert not (store / "objects" / other[:2] / other[2:]).exists()
    (store / "tmp" / f"gc-{os.getpid()}-{'cd' * 32}").unlink()
    fsck = vestige("fsck", cwd=root)
    assert fsck.returncode == 0 and b"X1" not in fsck.stdout, fsck.stdout.decode()


def test_gc_removes_what_dead_writers_left_in_tmp(tmp_path: Path) -> None:
    root = real_project(tmp_path)
    assert vestige("run", sys.executable, "keeper.py", "1", cwd=root).returncode == 0
    tmp = root / ".vestige" / "tmp"
    tmp.mkdir(exist_ok=True)
    hour_ago = time.time() - 3700
    (tmp / "obj-dead1234").write_bytes(b"x" * 1000)  # a half-written object, kill -9
    os.utime(tmp / "obj-dead1234", (hour_ago, hour_ago))
    (tmp / "old-folder").mkdir()
    (tmp / "old-folder" / "part").write_bytes(b"y")
    os.utime(tmp / "old-folder", (hour_ago, hour_ago))
    (tmp / "obj-writing").write_bytes(b"z" * 10)  # a write in progress: touched just now
    fsck = vestige("fsck", cwd=root).stdout.decode()
    assert "tmp/obj-dead1234 (vestige gc removes it when no write has touched it" in fsck
    (tmp / "w-1-abc").write_bytes(b"w" * 24)  # layout.write_atomic's, dead an hour ago
    os.utime(tmp / "w-1-abc", (hour_ago, hour_ago))
    (tmp / "notes.txt").write_bytes(b"not a store write's")  # someone else's: stays
    os.utime(tmp / "notes.txt", (hour_ago, hour_ago))

    plan = run_gc(root, "--keep-last", "100", "--dry-run", now=time.time())
    assert plan["temporary"] == {"files": 2, "bytes": 1024}
    assert len(os.listdir(tmp)) == 5
    text = vestige("gc", "--keep-last", "100", cwd=root).stdout.decode()
    assert "removed 2 leftover temporary file(s) of processes that died" in text
    # a folder (a Slurm sweep's job folder, whose top level a long job may not touch
    # for hours) is never removed, however old
    assert sorted(os.listdir(tmp)) == ["notes.txt", "obj-writing", "old-folder"]


def test_gc_without_a_policy_says_how_to_give_one(project: Path) -> None:
    """There is no default policy (docs/cli.md): `gc --dry-run` alone is one error line
    that says how to give one, with an example to copy; nothing changes."""
    (project / "w.py").write_text('open("out.txt", "w").write("x")\n')
    assert vestige("run", "w.py", cwd=project).returncode == 0
    for args in (["gc", "--dry-run"], ["gc"]):
        done = vestige(*args, cwd=project)
        assert done.returncode == 2 and done.stdout == b""
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: gc needs a policy"), lines
        assert "e.g. vestige gc --older-than 90d --keep-last 50 --dry-run" in lines[0]
    assert vestige("cat", "1", "out.txt", cwd=project).stdout == b"x"
