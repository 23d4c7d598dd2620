"""Hydra: `vestige adopt` of the job folders a real Hydra app wrote (`outputs/`, `multirun/`;
adopt/from_hydra.py), and a Hydra app's composed config recorded as params by `vestige run`
(capture/hydra.py, recording/seal.py). Every Hydra job here is the real app run by the real
Hydra in a subprocess; the job folders are made once per module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import pytest
from conftest import module_environment, vestige

from vestige.adopt.foreign import ForeignRun
from vestige.adopt.from_hydra import looks_like, read
from vestige.adopt.write import run_id_for
from vestige.capture.hydra import NO_READER, Yaml
from vestige.errors import UsageError
from vestige.repo import Repo

pytestmark = pytest.mark.timeout(300)

CONFIG = """\
defaults:
  - optimizer: adam
  - _self_
model:
  lr: 0.01
  name: small
seed: 1
fail: false
data:
  root: /data
  train: ${data.root}/train
out: ${hydra:runtime.output_dir}
"""
#: The app writes its result into its job folder (Hydra >= 1.2 leaves the working
#: directory alone) and logs its exception, as apps that keep a log do.
APP = """\
import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.fail:
            raise ValueError("asked to fail")
    except ValueError:
        log.exception("training failed")
        raise
    with open(f"{HydraConfig.get().runtime.output_dir}/result.txt", "w") as f:
        f.write(f"lr={cfg.model.lr}\\n")
    log.info("trained with lr=%s", cfg.model.lr)
    print("trained", cfg.model.lr)


if __name__ == "__main__":
    main()
"""
SINGLE = "outputs/2024-05-01/10-00-00"
FAILED = "outputs/2024-05-01/12-00-00"
SWEEP = "multirun/2024-05-01/11-00-00"
#: the params of the config as composed without overrides
BASE = {"model.lr": 0.01, "model.name": "small", "seed": 1, "fail": False,
        "data.root": "/data", "data.train": "/data/train",
        "out": "${hydra:runtime.output_dir}", "optimizer.name": "adam",
        "optimizer.beta": 0.9}  # fmt: skip


def write_app(root: Path) -> None:
    """The tiny Hydra app and its config in `root`."""
    (root / "conf" / "optimizer").mkdir(parents=True)
    (root / "conf" / "config.yaml").write_text(CONFIG)
    (root / "conf" / "optimizer" / "adam.yaml").write_text("name: adam\nbeta: 0.9\n")
    (root / "app.py").write_text(APP)


def run_app(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python app.py ARGS` in `root`, as a user runs it."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, "app.py", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose Hydra app ran once, once failing, and as a two-job multirun (run
    and sweep folders named as Hydra names them, at fixed times)."""
    with module_environment(tmp_path_factory, "hydra-jobs") as base:
        root = base / "proj"
        write_app(root)
        done = run_app(root, f"hydra.run.dir={SINGLE}")
        assert done.returncode == 0, done.stderr
        done = run_app(root, "--multirun", "model.lr=0.1,0.2", f"hydra.sweep.dir={SWEEP}")
        assert done.returncode == 0, done.stderr
        done = run_app(root, "fail=true", f"hydra.run.dir={FAILED}")
        assert done.returncode == 1 and "asked to fail" in done.stderr, done.stderr
        yield root


def by_id(runs: list[ForeignRun]) -> dict[str, ForeignRun]:
    return {r.foreign_id: r for r in runs}


def log_times(log: Path) -> tuple[float, float]:
    """The local times of the first and last lines of a job's log that Hydra's job logging
    format stamped (`[2024-05-01 10:00:00,123][__main__][INFO] - ...`; a traceback's lines
    have none)."""
    stamped = [ln for ln in log.read_text().splitlines() if ln.startswith("[20")]
    first, last = (
        datetime.strptime(ln[1:24], "%Y-%m-%d %H:%M:%S,%f") for ln in (stamped[0], stamped[-1])
    )
    return first.timestamp(), last.timestamp()


def local(text: str) -> float:
    """`2024-05-01 10:00:00` as this machine's local time, as Hydra's `${now:...}` names."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()


def checkout(folder: Path, dest: Path, when: float = 2_000_000_000.0) -> Path:
    """A copy of `folder` at `dest` whose every file and folder has mtime `when`, as a git
    checkout of committed job folders leaves them (the checkout's time, not the job's)."""
    shutil.copytree(folder, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        os.utime(path, (when, when), follow_symlinks=False)
    return dest


# ---------------------------------------------------------------------------- the reader


def test_a_single_run_maps_every_field(jobs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(jobs)
    found = read("outputs")
    assert found.tool == "hydra" and found.skipped == []
    runs = by_id(found.runs)
    assert sorted(runs) == [SINGLE, FAILED]
    run = runs[SINGLE]
    folder = jobs / SINGLE
    assert run.tool == "hydra" and run.source == "outputs"
    assert run.name == "app" and run.experiment == "outputs/2024-05-01"
    assert run.params == BASE
    assert run.command == ("python", "app.py") and run.cwd == str(jobs.resolve())
    assert run.code == {"program": "app.py"}
    assert run.status == "ok" and run.exit_code is None
    assert (run.started, run.ended) == log_times(folder / "app.log")  # (the log's lines)
    assert [(f.name, f.source) for f in run.files] == [
        (f"{SINGLE}/app.log", str(folder / "app.log")),
        (f"{SINGLE}/result.txt", str(folder / "result.txt")),
    ]
    assert run.stdout == str(folder / "app.log")
    assert "trained with lr=0.01" in Path(run.stdout).read_text()
    assert run.extra == {"overrides": [], "choices": {"optimizer": "adam"},
                         "hydra_version": hydra.__version__, "times": "log"}  # fmt: skip
    assert run.metrics == {} and run.tags == () and run.notes == ()


def test_each_job_of_a_multirun_is_a_run(jobs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(jobs)
    found = read("multirun/")
    assert found.skipped == []
    runs = by_id(found.runs)
    assert sorted(runs) == [f"{SWEEP}/0", f"{SWEEP}/1"]  # (multirun.yaml is no job)
    for number, lr in ((0, 0.1), (1, 0.2)):
        run = runs[f"{SWEEP}/{number}"]
        assert run.name == f"app#{number}" and run.experiment == SWEEP
        assert run.params == {**BASE, "model.lr": lr}
        assert run.command == ("python", "app.py", f"model.lr={lr}")
        assert run.extra["overrides"] == [f"model.lr={lr}"]
        assert run.status == "ok" and run.source == "multirun/"
        assert [f.name for f in run.files] == [f"{SWEEP}/{number}/app.log",
                                               f"{SWEEP}/{number}/result.txt"]  # fmt: skip
        assert Path(run.files[1].source).read_text() == f"lr={lr}\n"


def test_a_job_whose_log_holds_its_traceback_failed(
    jobs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(jobs)
    run = by_id(read("outputs").runs)[FAILED]
    assert run.status == "failed"
    assert run.command == ("python", "app.py", "fail=true") and run.params["fail"] is True
    assert [f.name for f in run.files] == [f"{FAILED}/app.log"]  # (no result: it raised)
    assert "Traceback (most recent call last)" in Path(str(run.stdout)).read_text()


def test_a_job_has_one_id_whichever_folder_is_adopted(
    jobs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(jobs)
    parts = {**by_id(read("outputs").runs), **by_id(read("multirun").runs)}
    whole = by_id(read(".").runs)
    assert sorted(whole) == sorted(parts)
    assert {k: r.replace(source="") for k, r in whole.items()} == {
        k: r.replace(source="") for k, r in parts.items()
    }
    one = read(f"{SWEEP}/1")
    assert [r.foreign_id for r in one.runs] == [f"{SWEEP}/1"]
    # from elsewhere: the same ids; the files are named by their absolute paths
    monkeypatch.chdir(tmp_path)
    away = by_id(read(str(jobs / "multirun")).runs)
    assert sorted(away) == [f"{SWEEP}/0", f"{SWEEP}/1"]
    assert away[f"{SWEEP}/0"].files[0].name == str(jobs / SWEEP / "0" / "app.log")


def test_interpolations_are_resolved_where_they_can_be(jobs: Path) -> None:
    config = jobs / SINGLE / ".hydra" / "config.yaml"
    assert "${data.root}/train" in config.read_text()  # (Hydra saves it as written)
    assert Yaml(omegaconf=True).params(config) == BASE
    # PyYAML alone reads the same values, interpolations as written
    assert Yaml(omegaconf=False).params(config) == {**BASE, "data.train": "${data.root}/train"}


def test_looks_like_finds_job_folders_a_few_levels_down(jobs: Path, tmp_path: Path) -> None:
    for path in (jobs, jobs / "outputs", jobs / "multirun", jobs / SWEEP, jobs / SWEEP / "0"):
        assert looks_like(path), path
    for path in (jobs / "conf", tmp_path, jobs / "app.py"):
        assert not looks_like(path), path


def test_what_is_not_hydra_output_is_a_one_line_usage_error(jobs: Path, tmp_path: Path) -> None:
    cases = {
        str(tmp_path / "nowhere"): "no such file or folder",
        str(jobs / "app.py"): "not a folder",
        str(jobs / "conf"): "no Hydra job folder",
        str(tmp_path): "no Hydra job folder",
    }
    for source, said in cases.items():
        with pytest.raises(UsageError) as caught:
            read(source)
        message = str(caught.value)
        assert message.startswith(f"{source}: ") and said in message, message
        assert "\n" not in message


@pytest.fixture
def copied(jobs: Path, tmp_path: Path) -> Path:
    """A copy of the multirun folder, to break."""
    copy = tmp_path / "copy" / "multirun"
    shutil.copytree(jobs / "multirun", copy)
    return copy


def test_a_corrupt_config_skips_its_job_only(copied: Path) -> None:
    config = copied / "2024-05-01" / "11-00-00" / "0" / ".hydra" / "config.yaml"
    config.write_text("model: {lr: 0.1\nseed: [1,\n")
    found = read(str(copied))
    assert [r.foreign_id for r in found.runs] == [f"{SWEEP}/1"]
    assert [s.where for s in found.skipped] == [str(config)]
    assert found.skipped[0].why.startswith("invalid YAML: ")
    assert "\n" not in found.skipped[0].why


def test_a_job_without_hydra_yaml_is_adopted_with_what_is_known(copied: Path) -> None:
    sweep = copied / "2024-05-01" / "11-00-00"
    (sweep / "1" / ".hydra" / "hydra.yaml").unlink()
    (sweep / "0" / ".hydra" / "hydra.yaml").unlink()
    (sweep / "0" / "app.log").unlink()
    broken = copied / "2024-05-02" / "09-00-00" / "0"
    (broken / ".hydra").mkdir(parents=True)
    (broken / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    found = read(str(copied))
    runs = by_id(found.runs)
    # the name from its log, its number from the sweep folder, no hydra.yaml to say more
    one = runs["2024-05-01/11-00-00/1"]
    assert one.name == "app#1" and one.command == ("python", "app.py", "model.lr=0.2")
    assert one.params == {**BASE, "model.lr": 0.2} and one.cwd == ""
    assert one.experiment == str(sweep) and one.stdout == str(sweep / "1" / "app.log")
    assert one.extra == {"overrides": ["model.lr=0.2"], "times": "log"}
    # no log either: named after its folder, no command
    zero = runs["2024-05-01/11-00-00/0"]
    assert zero.name == "11-00-00#0" and zero.command == () and zero.code == {}
    assert zero.stdout is None and zero.params["model.lr"] == 0.1
    # no log to time it: the sweep's folder name (multirun/<date>/<time>/<n>) does
    assert (zero.started, zero.ended) == (local("2024-05-01 11:00:00"), None)
    assert zero.extra == {"overrides": ["model.lr=0.1"], "times": "folder name"}
    # a .hydra folder without its config.yaml is no whole job
    assert [(s.where, s.why.split(":")[0]) for s in found.skipped] == [
        (str(broken / ".hydra"), "no config.yaml in it")
    ]


def test_a_checkout_of_committed_jobs_keeps_their_times_and_ids(
    jobs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (P4: a git checkout sets every file's mtime to the checkout's time; the jobs' times,
    # and so their vestige run ids, are their logs' and the same in every checkout)
    clone = tmp_path / "clone"
    for top in ("outputs", "multirun"):
        checkout(jobs / top, clone / top)
    monkeypatch.chdir(jobs)
    here = by_id(read(".").runs)
    monkeypatch.chdir(clone)
    there = by_id(read(".").runs)
    assert sorted(there) == sorted(here) == sorted([SINGLE, FAILED, f"{SWEEP}/0", f"{SWEEP}/1"])
    for foreign_id, run in there.items():
        assert (run.started, run.ended) == log_times(clone / foreign_id / "app.log")
        assert run.started > local("2024-05-01 00:00:00") and run.started < 2_000_000_000
        assert run.extra["times"] == "log"
        assert run_id_for(run) == run_id_for(here[foreign_id])
        assert (run.started, run.ended) == (here[foreign_id].started, here[foreign_id].ended)


def moved(clone: Path, rel: str, run_dir: str) -> str:
    """The single run's job folder of `clone` copied to `clone/rel`, its hydra.yaml saying it
    was named `rel` by `run_dir` (`hydra.run.dir`, saved as written: `${now:...}` unresolved)."""
    shutil.copytree(clone / SINGLE, clone / rel)
    hydra_yaml = clone / rel / ".hydra" / "hydra.yaml"
    text = hydra_yaml.read_text()
    assert f"dir: {SINGLE}\n" in text and f"/{SINGLE}\n" in text  # (run.dir, output_dir)
    hydra_yaml.write_text(text.replace(f"dir: {SINGLE}\n", f"dir: {run_dir}\n")
                          .replace(f"/{SINGLE}\n", f"/{rel}\n"))  # fmt: skip
    return rel


def test_without_log_times_the_folder_name_gives_the_start(
    jobs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "clone"
    for top in ("outputs", "multirun"):
        checkout(jobs / top, clone / top)
    (clone / SINGLE / "app.log").write_text("")  # (what Hydra leaves when nothing is logged)
    for number in ("0", "1"):
        (clone / SWEEP / number / "app.log").unlink()
    # a job run without hydra.run.dir (hydra.yaml has Hydra's default), its outputs/ renamed
    default = moved(
        clone, "old-runs/2021-08-14/18-54-50", "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"
    )
    # an app's own run.dir, as chris-santiago/vime's `outputs/<model>/<job>/<date>/<time>`
    vime = "outputs/${model.name}/${hydra.job.name}/${now:%Y-%m-%d}/${now:%H-%M-%S}"
    own = moved(clone, "outputs/small/app/2023-06-06/22-40-07", vime)
    monkeypatch.chdir(clone)
    runs = by_id(read(".").runs)
    expected = {
        SINGLE: "2024-05-01 10:00:00",
        f"{SWEEP}/0": "2024-05-01 11:00:00",  # (a sweep's jobs: the sweep's start)
        f"{SWEEP}/1": "2024-05-01 11:00:00",
        default: "2021-08-14 18:54:50",
        own: "2023-06-06 22:40:07",
    }
    for foreign_id, when in expected.items():
        run = runs[foreign_id]
        assert (run.started, run.ended) == (local(when), None), foreign_id
        assert run.extra["times"] == "folder name"
    assert runs[FAILED].extra["times"] == "log"  # (its log still has its lines)


def test_with_neither_the_file_times_are_said(jobs: Path, tmp_path: Path) -> None:
    job = checkout(jobs / SINGLE, tmp_path / "runs" / "baseline", when=1_700_000_000.0)
    (job / "app.log").unlink()
    os.utime(job / "result.txt", (1_700_000_060.0, 1_700_000_060.0))
    (run,) = read(str(job)).runs
    assert (run.started, run.ended) == (1_700_000_000.0, 1_700_000_060.0)
    assert run.extra["times"] == "file times"


WANDB_APP = """\
import hydra
import wandb
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run = wandb.init(project="demo", config={"lr": cfg.model.lr})
    run.log({"loss": 0.5})
    with open("result.txt", "w") as f:
        f.write("done\\n")
    run.finish()


if __name__ == "__main__":
    main()
"""


def test_a_wandb_run_in_a_job_folder_is_left_to_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    root = tmp_path / "proj"
    write_app(root)
    (root / "train.py").write_text(WANDB_APP)
    # the job's working directory is its folder (Hydra < 1.2's default, as in
    # 1ayham1/genre_classification), so W&B's wandb/ is in the job folder
    job = "outputs/2024-05-02/09-00-00"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = [sys.executable, "train.py", f"hydra.run.dir={job}", "hydra.job.chdir=True"]
    done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = list((root / job / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    monkeypatch.chdir(root)
    (run,) = read("outputs").runs
    assert [f.name for f in run.files] == [f"{job}/result.txt", f"{job}/train.log"]
    assert run.extra["wandb"] == f"{job}/wandb"
    # an app's own folder named wandb (no W&B run in it) is the job's output
    (root / job / "wandb").rename(root / "elsewhere")
    (root / job / "wandb" / "plots").mkdir(parents=True)
    (root / job / "wandb" / "plots" / "loss.csv").write_text("step,loss\n0,0.5\n")
    (run,) = read("outputs").runs
    assert f"{job}/wandb/plots/loss.csv" in [f.name for f in run.files]
    assert "wandb" not in run.extra


def test_without_a_yaml_reader_a_one_line_error_names_the_extra(jobs: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["omegaconf"] = sys.modules["yaml"] = None  # (neither imports)
        from pathlib import Path
        from vestige.adopt.from_hydra import read
        from vestige.capture.hydra import run_params
        from vestige.errors import UsageError
        warnings = []
        assert run_params(Path({str(jobs)!r}), ["{SINGLE}/.hydra/config.yaml"], warnings) == {{}}
        print(warnings)
        try:
            read({str(jobs / "outputs")!r})
        except UsageError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        repr([NO_READER]),
        "adopting Hydra outputs needs PyYAML or OmegaConf: pip install 'vestige[hydra]'",
    ]


# ---------------------------------------------------------------------------- the capture


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project where `vestige run` ran the Hydra app: once with an override, once as a
    two-job multirun, once with a `--param` over the config."""
    with module_environment(tmp_path_factory, "hydra-run") as base:
        root = base / "proj"
        write_app(root)
        for args in (["model.lr=0.05"], ["--multirun", "model.lr=0.1,0.2"], ["seed=3"]):
            params = ["--param", "seed=7"] if args == ["seed=3"] else []
            done = vestige("run", *params, sys.executable, "app.py", *args, cwd=root)
            assert done.returncode == 0, done.stderr
        yield root


def ls(root: Path, *args: str) -> list[dict[str, Any]]:
    done = vestige("ls", "--json", *args, cwd=root)
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def test_vestige_run_records_the_hydra_config_as_params(recorded: Path) -> None:
    runs = {r["seq"]: r for r in ls(recorded)}
    assert runs[1]["params"] == {**BASE, "model.lr": 0.05}  # (not Hydra's own argparse values)
    assert [r["seq"] for r in ls(recorded, "--where", "params.model.lr < 0.1")] == [3, 1]
    assert [r["seq"] for r in ls(recorded, "--where", "params.model.name = small")] == [3, 1]
    # `--param` wins over the config and the command line
    assert runs[3]["params"]["seed"] == 7 and runs[3]["params"]["model.lr"] == 0.01
    shown = json.loads(vestige("show", "1", "--json", cwd=recorded).stdout)
    assert shown["warnings"] == []
    assert any(o["path"].endswith("/.hydra/config.yaml") for o in shown["outputs"])


def test_a_multirun_under_one_run_keeps_only_the_command_line(recorded: Path) -> None:
    shown = json.loads(vestige("show", "2", "--json", cwd=recorded).stdout)
    configs = [o["path"] for o in shown["outputs"] if o["path"].endswith("/.hydra/config.yaml")]
    assert len(configs) == 2
    params = shown["params"]
    assert "model.name" not in params and "seed" not in params  # (no one job's config)
    assert not {"overrides", "cfg", "config_name"} & set(params)  # (nor Hydra's argparse)
    assert shown["warnings"] == []


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def adopted(jobs: Path) -> Path:
    """The Hydra project adopted into its own store by the real CLI, after a dry run
    (whose report is left in `dry-run.txt` beside the project)."""
    Repo.open(jobs, create=True).close()
    dry = vestige("adopt", "multirun/", "outputs/", "--dry-run", cwd=jobs)
    assert dry.returncode == 0, dry.stderr
    (jobs.parent / "dry-run.txt").write_bytes(dry.stdout)
    assert not list((jobs / ".vestige" / "refs" / "runs").glob("*"))
    done = vestige("adopt", "multirun/", "outputs/", cwd=jobs)
    assert done.returncode == 0, done.stderr
    return jobs


def test_adopt_dry_run_says_what_it_would_do(adopted: Path) -> None:
    said = (adopted.parent / "dry-run.txt").read_text().splitlines()
    assert said[0].startswith("multirun/ (hydra): would adopt 2 runs, 4 files")
    assert said[1].startswith("outputs/ (hydra): would adopt 2 runs, 3 files")


def test_adopted_hydra_jobs_are_runs(adopted: Path) -> None:
    runs = ls(adopted)
    assert len(runs) == 4 and {r["adopted"] for r in runs} == {"hydra"}
    assert sorted(r["status"] for r in runs) == ["failed", "ok", "ok", "ok"]
    lrs = sorted(r["params"]["model.lr"] for r in ls(adopted, "--where", "params.model.lr > 0.05"))
    assert lrs == [0.1, 0.2]
    failed = ls(adopted, "--where", "status = failed")
    assert len(failed) == 1 and failed[0]["params"]["fail"] is True

    shown = json.loads(vestige("show", str(failed[0]["seq"]), "--json", cwd=adopted).stdout)
    assert shown["adopted"]["tool"] == "hydra" and shown["adopted"]["id"] == FAILED
    assert shown["adopted"]["name"] == "app"
    assert shown["adopted"]["experiment"] == "outputs/2024-05-01"
    assert shown["adopted"]["extra"]["overrides"] == ["fail=true"]
    assert shown["command"] == ["python", "app.py", "fail=true"] and shown["cwd"] == "."
    assert shown["code"]["program"] == "app.py"
    assert [o["path"] for o in shown["outputs"]] == [f"{FAILED}/app.log"]
    log = vestige("log", str(failed[0]["seq"]), cwd=adopted)
    assert b"asked to fail" in log.stdout


def test_which_finds_an_adopted_jobs_output_copied_elsewhere(adopted: Path, tmp_path: Path) -> None:
    copy = tmp_path / "result.txt"
    copy.write_bytes((adopted / SWEEP / "1" / "result.txt").read_bytes())
    seq = ls(adopted, "--where", "params.model.lr = 0.2")[0]["seq"]
    which = vestige("which", str(copy), cwd=adopted)
    assert which.returncode == 0, which.stderr
    assert f"made by run #{seq}".encode() in which.stdout, which.stdout


def test_adopting_again_adds_nothing(adopted: Path) -> None:
    before = sorted(p.name for p in (adopted / ".vestige" / "refs" / "runs").iterdir())
    again = vestige("adopt", "multirun/", "outputs/", cwd=adopted)
    assert again.returncode == 0, again.stderr
    assert b"adopted 0 runs; 2 already adopted" in again.stdout
    # the same jobs named from the project: the same runs, nothing new (however the
    # source is named, a job's id is its folder as Hydra named it)
    whole = vestige("adopt", ".", cwd=adopted)
    assert whole.returncode == 0 and b"adopted 0 runs; 4 already adopted" in whole.stdout, (
        whole.stdout
    )
    assert sorted(p.name for p in (adopted / ".vestige" / "refs" / "runs").iterdir()) == before
    assert vestige("fsck", cwd=adopted).returncode == 0


def test_a_later_checkout_of_the_jobs_is_the_same_runs(adopted: Path, tmp_path: Path) -> None:
    refs = adopted / ".vestige" / "refs" / "runs"
    before = sorted(p.name for p in refs.iterdir())
    clone = tmp_path / "clone"
    for top in ("outputs", "multirun"):
        checkout(adopted / top, clone / top)
    done = vestige("adopt", str(clone / "outputs"), str(clone / "multirun"), cwd=adopted)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in refs.iterdir()) == before, done.stdout  # (no new run)
    # each job is the run adopted before: unchanged, or updated (the writer's fingerprint
    # holds the files' mtimes), never new
    for line in done.stdout.decode().splitlines():
        assert re.search(r": adopted (0 runs|(\d+) runs \(\2 updated\))", line), line


def test_adopt_says_what_it_skipped_and_exits_1(adopted: Path, tmp_path: Path) -> None:
    copy = tmp_path / "multirun"
    shutil.copytree(adopted / "multirun", copy)
    config = copy / "2024-05-01" / "11-00-00" / "0" / ".hydra" / "config.yaml"
    config.write_text("model: [\n")
    done = vestige("adopt", str(copy), "--dry-run", cwd=adopted)
    assert done.returncode == 1
    assert done.stderr.decode().startswith(f"skipped: {config}: invalid YAML: ")
    nothing = vestige("adopt", str(adopted / "conf"), cwd=adopted)
    assert nothing.returncode == 2 and nothing.stderr.count(b"\n") == 1, nothing.stderr
