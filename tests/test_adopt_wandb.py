"""The W&B reader of `vestige adopt` (issue 18) on runs wandb itself wrote, offline.

One subprocess runs `train.py` (two W&B runs: config, tags, notes, a wandb.log loop with a
nested key and non-numbers, an image, a wandb.save'd CSV, a summary value; the second ends
with exit code 1) in a git project; every test reads those runs, or a damaged copy of one,
and the last ones adopt them with the real `vestige adopt`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import git, module_environment, vestige

from vestige.adopt import from_wandb
from vestige.adopt.foreign import ForeignRun
from vestige.errors import UsageError
from vestige.repo import Repo

pytest.importorskip("wandb")

STEPS = (300, 5)  # 300 rows make a record file of several 32 KiB blocks
LRS = (0.01, 0.1)
TRAIN = f"""\
    import numpy as np
    import wandb

    for i, (lr, steps, code) in enumerate(zip({LRS}, {STEPS}, (0, 1))):
        run = wandb.init(
            project="demo",
            name=f"trial-{{i}}",
            config={{"lr": lr, "model": "mlp", "opt": {{"name": "adam"}}}},
            tags=["baseline", "two words"],
            notes=f"try {{i}}",
            save_code=True,
        )
        for step in range(steps):
            loss, acc = 1.0 / (step + 1) + lr, step / steps
            wandb.log({{"loss": loss, "acc": acc, "opt": {{"lr_now": lr}}, "up": True, "at": "x"}})
        wandb.log({{"sample": wandb.Image(np.full((4, 4, 3), 40 * i, dtype=np.uint8))}})
        with open(f"preds_{{i}}.csv", "w") as f:
            f.write(f"x,y\\n{{i}},{{lr}}\\n")
        wandb.save(f"preds_{{i}}.csv")
        run.summary["best_acc"] = 0.5 + i
        print(f"run {{i}} done")
        wandb.finish(exit_code=code)
"""


@dataclass
class Lab:
    """The project wandb ran in, its two run folders (oldest first) and when it ran."""

    project: Path
    folders: list[Path]
    before: float
    after: float

    @property
    def wandb_dir(self) -> Path:
        return self.project / "wandb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A git project (one commit, a remote) where train.py made two offline W&B runs."""
    with module_environment(tmp_path_factory, "wandb") as base:
        project = base / "proj"
        project.mkdir()
        git(project, "init", "-q", "-b", "main")
        (project / "train.py").write_text(textwrap.dedent(TRAIN))
        git(project, "add", "-A")
        git(project, "commit", "-qm", "start")
        git(project, "remote", "add", "origin", "https://example.org/team/proj.git")
        env = {
            **os.environ,
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(project),
            "WANDB_SILENT": "true",
            "WANDB_USERNAME": "alice",
        }
        before = time.time()
        done = subprocess.run(
            [sys.executable, "train.py", "--epochs", "3"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        after = time.time()
        assert done.returncode == 0, done.stderr
        folders = sorted(p for p in (project / "wandb").glob("offline-run-*"))
        assert len(folders) == 2
        yield Lab(project, folders, before, after)


def read_runs(lab: Lab) -> list[ForeignRun]:
    """Both runs, read from the wandb/ folder with nothing skipped."""
    found = from_wandb.read(str(lab.wandb_dir))
    assert found.tool == "wandb"
    assert found.skipped == []
    assert len(found.runs) == 2
    return found.runs


def copy_run(lab: Lab, index: int, dest: Path) -> Path:
    """A copy of one run folder under `dest` (wandb.save's links stay links)."""
    target = dest / lab.folders[index].name
    shutil.copytree(lab.folders[index], target, symlinks=True)
    return target


def record_file(folder: Path) -> Path:
    """The run-<id>.wandb file of a run folder."""
    (path,) = folder.glob("run-*.wandb")
    return path


def rewrite_records(folder: Path, change: Callable[[Any], bool]) -> None:
    """Rewrite a run folder's record file, each record passed to `change` (which edits it
    in place, and says whether to keep it), framed as wandb writes it: the `:W&B` header,
    then leveldb log chunks (CRC-32 of type and data) that never cross a 32 KiB block."""
    from wandb.proto.wandb_internal_pb2 import Record

    path = record_file(folder)
    with path.open("rb") as handle:
        payloads = list(from_wandb._payloads(handle, path))
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for payload in payloads:
        record = Record()
        record.ParseFromString(payload)
        if not change(record):
            continue
        data, first = record.SerializeToString(), True
        while first or data:
            room = 32768 - len(out) % 32768
            if room < 7:  # a block's last bytes are zero padding
                out += bytes(room)
                continue
            piece, data = data[: room - 7], data[room - 7 :]
            kind = (1 if not data else 2) if first else (4 if not data else 3)
            crc = zlib.crc32(piece, zlib.crc32(bytes([kind])))
            out += struct.pack("<IHB", crc, len(piece), kind) + piece
            first = False
    path.write_bytes(bytes(out))


def write_metadata(folder: Path, meta: dict[str, Any]) -> None:
    """files/wandb-metadata.json holding `meta`, indented as wandb before 0.18 wrote it."""
    (folder / "files" / "wandb-metadata.json").write_text(json.dumps(meta, indent=4))


# -- detection ------------------------------------------------------------------------------


def test_looks_like(lab: Lab, tmp_path: Path) -> None:
    assert from_wandb.looks_like(lab.wandb_dir)
    assert from_wandb.looks_like(lab.folders[0])
    assert not from_wandb.looks_like(lab.wandb_dir / "latest-run")  # the link is skipped
    assert not from_wandb.looks_like(lab.project)  # wandb/ is one level down
    assert not from_wandb.looks_like(tmp_path)
    assert not from_wandb.looks_like(lab.project / "train.py")
    assert not from_wandb.looks_like(tmp_path / "nowhere")


# -- the record file: every mapped field ------------------------------------------------------


def test_identity_status_and_times(lab: Lab) -> None:
    runs = read_runs(lab)
    for i, (run, folder) in enumerate(zip(runs, lab.folders, strict=True)):
        assert run.tool == "wandb"
        assert run.source == str(lab.wandb_dir)
        assert folder.name.endswith(f"-{run.foreign_id}")
        assert record_file(folder).name == f"run-{run.foreign_id}.wandb"
        assert run.name == f"trial-{i}"
        assert run.experiment == "demo"
        assert run.extra["folder"] == folder.name
        assert lab.before <= run.started <= run.ended <= lab.after
    assert runs[0].ended <= runs[1].started
    assert (runs[0].status, runs[0].exit_code) == ("ok", 0)
    assert (runs[1].status, runs[1].exit_code) == ("failed", 1)


def test_config_becomes_flat_params(lab: Lab) -> None:
    for run, lr in zip(read_runs(lab), LRS, strict=True):
        assert run.params == {"lr": lr, "model": "mlp", "opt.name": "adam"}  # no _wandb


def test_history_becomes_full_series(lab: Lab) -> None:
    for run, lr, steps in zip(read_runs(lab), LRS, STEPS, strict=True):
        # nested keys dotted; no _step, _runtime, media, booleans or strings
        assert set(run.metrics) == {"loss", "acc", "opt.lr_now", "best_acc"}
        assert {p[2] for p in run.metrics["opt.lr_now"]} == {lr}
        loss, acc = run.metrics["loss"], run.metrics["acc"]
        assert [p[0] for p in loss] == list(range(steps))
        assert [p[2] for p in loss] == [1.0 / (s + 1) + lr for s in range(steps)]
        assert [p[2] for p in acc] == [s / steps for s in range(steps)]
        times = [p[1] for p in loss]
        assert times == sorted(times)
        assert run.started <= times[0] and times[-1] <= run.ended
        # a summary value no row logged is one point, at the summary's last step
        ((step, t, value),) = run.metrics["best_acc"]
        assert (step, value) == (steps, 0.5 + LRS.index(lr))
        assert times[-1] <= t <= run.ended


def test_tags_and_notes(lab: Lab) -> None:
    for i, run in enumerate(read_runs(lab)):
        assert run.tags == ("baseline",)
        assert run.extra["tags"] == ["two words"]  # not a vestige tag: kept as said
        assert run.notes == (f"try {i}",)


def test_environment_command_and_code(lab: Lab) -> None:
    commit = git(lab.project, "rev-parse", "HEAD").strip()
    for run in read_runs(lab):
        assert run.command == ("python", "train.py", "--epochs", "3")
        assert run.cwd == str(lab.project.resolve())
        assert run.host == socket.gethostname()
        assert run.user == "alice"
        assert run.code["commit"] == commit
        assert run.code["repo"] == "https://example.org/team/proj.git"
        assert run.code["program"] == "train.py"
        (saved,) = run.code["files"]
        assert saved.name == "train.py"
        assert Path(saved.source).read_bytes() == (lab.project / "train.py").read_bytes()
        assert run.extra["python"].startswith("CPython")
        assert any(line.startswith("wandb==") for line in run.extra["requirements"])


def test_files_named_from_the_current_directory(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(lab.project)
    for i, (run, folder) in enumerate(zip(read_runs(lab), lab.folders, strict=True)):
        prefix = f"wandb/{folder.name}/files"
        names = sorted(f.name for f in run.files)
        assert len(names) == 2
        assert names[0].startswith(f"{prefix}/media/images/sample_") and names[0].endswith(".png")
        assert names[1] == f"{prefix}/preds_{i}.csv"
        for f in run.files:
            assert Path(f.source).is_absolute()
        csv = next(f for f in run.files if f.name.endswith(".csv"))
        assert Path(csv.source).read_text() == f"x,y\n{i},{LRS[i]}\n"
        # output.log is the run's stdout, not one of its files
        assert run.stdout == str(folder / "files" / "output.log")
        assert f"run {i} done" in Path(run.stdout).read_text()
    monkeypatch.chdir(tmp_path)  # outside the project: absolute names
    run = read_runs(lab)[0]
    assert {f.name for f in run.files} == {f.source for f in run.files}


def test_one_run_folder_as_the_source(lab: Lab) -> None:
    found = from_wandb.read(str(lab.folders[1]))
    (run,) = found.runs
    assert run.source == str(lab.folders[1])
    assert run.name == "trial-1"


def test_a_script_started_without_arguments(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)

    def no_args(record: Any) -> bool:
        if record.WhichOneof("record_type") == "environment":
            record.environment.ClearField("args")  # what `python train.py` leaves
        return True

    rewrite_records(folder, no_args)
    found = from_wandb.read(str(folder))
    assert found.skipped == []
    (run,) = found.runs
    assert run.command == ("python", "train.py")
    assert run.metrics["loss"] == read_runs(lab)[0].metrics["loss"]  # (the rewrite kept all)


def test_before_wandb_0_18_the_environment_is_in_the_metadata_file(
    lab: Lab, tmp_path: Path
) -> None:
    """wandb 0.15 (chris-santiago/vime) wrote no environment record: program, args, root
    and host are only in files/wandb-metadata.json, while the run record has the git."""
    folder = copy_run(lab, 0, tmp_path)
    rewrite_records(folder, lambda r: r.WhichOneof("record_type") != "environment")
    commit = git(lab.project, "rev-parse", "HEAD").strip()
    root = "/Users/chris/GitHub/vime"
    write_metadata(
        folder,
        {
            "os": "macOS-13.4-arm64-arm-64bit",
            "python": "3.10.11",
            "heartbeatAt": "2023-05-30T03:31:00.988827",
            "startedAt": "2023-05-30T03:31:00.490264",
            "docker": None,
            "args": ["model=learner", "--", "data.n_labeled=.2"],
            "state": "running",
            "program": f"{root}/vime/train_semi.py",
            "codePath": "vime/train_semi.py",
            "git": {"remote": "https://github.com/chris-santiago/vime.git", "commit": "5e" * 20},
            "root": root,
            "host": "257-M2Pro.local",
            "username": "chris",
            "executable": "/opt/envs/vime/bin/python",
            "cpu_count": 10,
        },
    )
    found = from_wandb.read(str(folder))
    assert found.skipped == []
    (run,) = found.runs
    assert run.command == (
        "python",
        "vime/train_semi.py",
        "model=learner",
        "--",
        "data.n_labeled=.2",
    )
    assert (run.cwd, run.host, run.user) == (root, "257-M2Pro.local", "chris")
    assert run.code["program"] == "vime/train_semi.py"
    assert run.code["commit"] == commit  # the run record's git wins over the file's
    assert run.code["repo"] == "https://example.org/team/proj.git"
    assert (run.extra["os"], run.extra["python"]) == ("macOS-13.4-arm64-arm-64bit", "3.10.11")
    full = read_runs(lab)[0]
    assert (run.started, run.ended, run.params) == (full.started, full.ended, full.params)


def test_the_records_win_over_the_metadata_file(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    write_metadata(folder, {"host": "elsewhere", "program": "old.py", "email": "a@b.c"})
    (run,) = from_wandb.read(str(folder)).runs
    assert run.host == socket.gethostname()
    assert run.command == ("python", "train.py", "--epochs", "3")


def test_a_corrupt_metadata_file_under_the_records_is_left_out(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    (folder / "files" / "wandb-metadata.json").write_text('{"program": ')
    found = from_wandb.read(str(folder))
    (run,) = found.runs  # the records hold the run
    assert run.command == ("python", "train.py", "--epochs", "3")
    (skipped,) = found.skipped
    assert skipped.where == str(folder / "files" / "wandb-metadata.json")
    assert skipped.why.startswith("not readable JSON (") and skipped.why.endswith(": left out")


# -- notebooks and scripts that are not `python X` -------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "command", "program"),
    [
        (  # Jupyter, the notebook found (wandb-core: program, codePath, codePathLocal)
            {
                "program": "/home/u/proj/nb/analysis.ipynb",
                "codePath": "nb/analysis.ipynb",
                "codePathLocal": "nb/analysis.ipynb",
                "root": "/home/u/proj",
                "args": ["-f", "/home/u/.local/share/jupyter/runtime/kernel-1.json"],
            },
            ("nb/analysis.ipynb",),
            "nb/analysis.ipynb",
        ),
        (  # wandb 0.15 in Jupyter: an absolute program, no codePathLocal
            {"program": "/home/u/proj/explore.ipynb", "root": "/home/u/proj"},
            ("explore.ipynb",),
            "/home/u/proj/explore.ipynb",
        ),
        (  # Colab: the notebook's name only
            {
                "program": "Copy of train.ipynb",
                "colab": "https://colab.research.google.com/notebook#fileId=1abc",
                "root": "/content",
                "args": ["-f", "/root/.local/share/jupyter/runtime/kernel-2.json"],
            },
            ("Copy of train.ipynb",),
            "Copy of train.ipynb",
        ),
        ({"program": "<python with no main file>", "root": "/content"}, (), None),
        (  # a kernel whose notebook W&B did not find
            {
                "program": "/usr/lib/python3/dist-packages/ipykernel_launcher.py",
                "args": ["-f", "/root/.local/share/jupyter/runtime/kernel-3.json"],
            },
            (),
            None,
        ),
        (
            {"program": "-m trainer.main", "args": ["--fast"]},
            ("python", "-m", "trainer.main", "--fast"),
            "-m trainer.main",
        ),
    ],
)
def test_notebooks_and_modules_are_not_python_scripts(
    lab: Lab, tmp_path: Path, meta: dict[str, Any], command: tuple[str, ...], program: str | None
) -> None:
    folder = copy_run(lab, 1, tmp_path)
    record_file(folder).unlink()
    write_metadata(folder, meta)  # (no args key: W&B leaves it out when there were none)
    found = from_wandb.read(str(folder))
    assert found.skipped == []
    (run,) = found.runs
    assert run.command == command
    assert run.code.get("program") == program
    if "colab" in meta:
        assert run.extra["colab"] == meta["colab"]


def test_an_error_in_one_run_folder_skips_that_folder_alone(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    found_one = from_wandb._found

    def broken(facts: Any, folder: Path, source: str) -> Any:
        if folder == lab.folders[0]:
            raise RuntimeError("a layout nobody foresaw. It has\nmore lines")
        return found_one(facts, folder, source)

    monkeypatch.setattr(from_wandb, "_found", broken)
    found = from_wandb.read(str(lab.wandb_dir))
    assert [run.name for run in found.runs] == ["trial-1"]
    (skipped,) = found.skipped
    assert skipped.where == str(lab.folders[0])
    assert skipped.why == "cannot be read (RuntimeError: a layout nobody foresaw.)"


# -- the files/ folder alone (no wandb, or no record file) --------------------------------------


def synced_layout(folder: Path, lab: Lab) -> None:
    """Give a run folder the three files W&B writes when it syncs, with W&B's own writers:
    config.yaml by its config_util, wandb-metadata.json as wandb-core writes it (protojson of
    the environment record), wandb-summary.json as JSON."""
    from google.protobuf.json_format import MessageToJson
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.sdk.lib.config_util import save_config_file_from_dict

    files = folder / "files"
    save_config_file_from_dict(
        str(files / "config.yaml"),
        {
            "_wandb": {"value": {"cli_version": "0.31.0"}},
            "lr": {"desc": None, "value": 0.01},
            "opt": {"desc": None, "value": {"name": "adam", "betas": [0.9, 0.99]}},
        },
    )
    summary = {"loss": 0.25, "acc": 0.9, "_step": 299, "_timestamp": lab.after, "_runtime": 1.5}
    summary["sample"] = {"_type": "image-file", "path": "media/images/x.png", "size": 69}
    (files / "wandb-summary.json").write_text(json.dumps(summary))
    env = pb.EnvironmentRecord(
        program=str(lab.project / "train.py"),
        code_path="train.py",
        code_path_local="train.py",
        args=["--epochs", "3"],
        root=str(lab.project),
        host="gpu-box",
        username="bob",
        python="CPython 3.11.7",
        git=pb.GitRepoRecord(remote_url="https://example.org/x.git", commit="ab" * 20),
    )
    env.started_at.FromSeconds(int(lab.before))
    (files / "wandb-metadata.json").write_text(MessageToJson(env))


def test_fallback_reads_the_files_folder(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    found = from_wandb.read_files(folder, "wandb/")
    assert found.skipped == []
    (run,) = found.runs
    assert run.foreign_id == folder.name.rsplit("-", 1)[1]
    assert run.extra["history"] == from_wandb.SUMMARY_ONLY
    assert run.params == {"lr": 0.01, "opt.name": "adam", "opt.betas": [0.9, 0.99]}
    assert run.metrics == {"loss": [(299, lab.after, 0.25)], "acc": [(299, lab.after, 0.9)]}
    assert (run.status, run.exit_code) == ("interrupted", None)  # the exit is in .wandb only
    assert run.started == int(lab.before)
    assert run.ended == lab.after
    assert run.command == ("python", "train.py", "--epochs", "3")
    assert (run.host, run.user, run.cwd) == ("gpu-box", "bob", str(lab.project))
    assert run.code["commit"] == "ab" * 20
    assert run.code["repo"] == "https://example.org/x.git"
    assert [f.name for f in run.code["files"]] == ["train.py"]
    assert sorted(Path(f.name).suffix for f in run.files) == [".csv", ".png"]  # (not the 3)
    assert run.stdout is not None and run.stdout.endswith("output.log")
    assert (run.name, run.experiment, run.tags) == ("", "", ())  # only the records say


def test_fallback_on_an_offline_run_without_its_record_file(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 1, tmp_path)
    record_file(folder).unlink()
    (run,) = from_wandb.read(str(folder)).runs  # wandb is installed: read() says why
    assert run.extra["history"] == from_wandb.NO_RECORD_FILE
    assert run.params == {} and run.metrics == {}  # offline runs keep both in the records
    assert len(run.files) == 2 and run.stdout is not None
    assert run.started <= run.ended  # (the files' times)


def test_without_wandb_read_falls_back(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["wandb"] = None  # as if it were not installed
        from vestige.adopt import from_wandb
        found = from_wandb.read({str(tmp_path)!r})
        print(json.dumps([[r.extra["history"], r.params, r.status] for r in found.runs]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        [from_wandb.SUMMARY_ONLY, {"lr": 0.01, "opt.name": "adam", "opt.betas": [0.9, 0.99]},
         "interrupted"]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("config.yaml", "lr: {value: 0.1\nmodel: [", "not readable YAML"),
        ("config.yaml", "- just\n- a list\n", "not a mapping"),
        ("wandb-summary.json", '{"loss": 0.2', "not readable JSON"),
        ("wandb-summary.json", "[1, 2]", "a JSON list"),
        ("wandb-metadata.json", "\x00\x01", "not readable JSON"),
    ],
)
def test_fallback_skips_a_corrupt_file_naming_it(
    lab: Lab, tmp_path: Path, name: str, content: str, why: str
) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / name).write_text(content)
    found = from_wandb.read_files(folder, "wandb/")
    assert found.runs == []
    (skipped,) = found.skipped
    assert skipped.where == str(folder / "files" / name)
    assert why in skipped.why and "\n" not in skipped.why


def test_fallback_without_a_summary_adopts_the_rest(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / "wandb-summary.json").unlink()  # W&B never got to write it
    (run,) = from_wandb.read_files(folder, "wandb/").runs
    assert run.metrics == {}
    assert run.params["lr"] == 0.01
    assert run.status == "interrupted"


def test_records_win_over_a_corrupt_config_yaml(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    (folder / "files" / "config.yaml").write_text("lr: {value: [")
    found = from_wandb.read(str(folder))
    assert found.skipped == []
    (run,) = found.runs
    assert run.params == {"lr": 0.01, "model": "mlp", "opt.name": "adam"}
    assert not any(f.name.endswith("config.yaml") for f in run.files)


def test_fallback_with_a_script_started_without_arguments(lab: Lab, tmp_path: Path) -> None:
    from google.protobuf.json_format import MessageToJson
    from wandb.proto import wandb_internal_pb2 as pb

    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    env = pb.EnvironmentRecord(program=str(lab.project / "train.py"), code_path_local="train.py")
    (folder / "files" / "wandb-metadata.json").write_text(MessageToJson(env))  # (no "args")
    (run,) = from_wandb.read_files(folder, "wandb/").runs
    assert run.command == ("python", "train.py")


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        # wandb 0.25 left 690 bytes of something else (ML2026-Team04-03/Assignment02)
        (lambda data: bytes(b ^ 0x62 for b in data[:690]), "not a W&B record file"),
        (lambda data: data[:7], "holds no run record (W&B stopped before writing it)"),
    ],
)
def test_an_unreadable_record_file_falls_back_to_the_files_folder(
    lab: Lab, tmp_path: Path, damage: Callable[[bytes], bytes], why: str
) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    path = record_file(folder)
    path.write_bytes(damage(path.read_bytes()))
    found = from_wandb.read(str(tmp_path))
    assert found.skipped == []
    (run,) = found.runs
    assert run.extra["history"] == from_wandb.BAD_RECORD_FILE
    (warning,) = run.extra["warnings"]
    assert warning.startswith(f"{path}: {why}") and warning.endswith("; read files/ instead")
    assert run.params == {"lr": 0.01, "opt.name": "adam", "opt.betas": [0.9, 0.99]}
    assert run.metrics == {"loss": [(299, lab.after, 0.25)], "acc": [(299, lab.after, 0.9)]}
    assert (run.host, run.status) == ("gpu-box", "interrupted")
    assert run.stdout is not None and run.stdout.endswith("output.log")


def test_an_unreadable_record_file_and_a_corrupt_files_folder(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / "wandb-summary.json").write_text('{"loss": ')
    record_file(folder).write_bytes(bytes(690))
    found = from_wandb.read(str(folder))
    assert found.runs == []
    assert [s.where for s in found.skipped] == [
        str(record_file(folder)),
        str(folder / "files" / "wandb-summary.json"),
    ]


# -- times, when no record says them -------------------------------------------------------------


def cloned(folder: Path, lab: Lab) -> float:
    """Give every file of `folder` the time a `git clone` months later would: returns it."""
    later = lab.after + 200 * 86400
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (later, later))
    return later


def test_a_cloned_folder_without_a_summary_ends_at_its_log(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / "wandb-summary.json").unlink()
    cloned(folder, lab)
    (run,) = from_wandb.read_files(folder, "wandb/").runs
    assert run.started == int(lab.before)  # metadata startedAt
    # the last time wandb-core logged in logs/debug-internal.log, not the clone's
    assert run.ended is not None and run.started <= run.ended <= lab.after


def test_a_cloned_folder_with_only_a_start_has_no_end(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / "wandb-summary.json").unlink()
    shutil.rmtree(folder / "logs")
    cloned(folder, lab)
    (run,) = from_wandb.read_files(folder, "wandb/").runs
    assert (run.started, run.ended) == (int(lab.before), None)


def test_a_summary_runtime_gives_the_end(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    synced_layout(folder, lab)
    (folder / "files" / "wandb-summary.json").write_text('{"loss": 0.5, "_runtime": 42.5}')
    cloned(folder, lab)
    (run,) = from_wandb.read_files(folder, "wandb/").runs
    assert (run.started, run.ended) == (int(lab.before), int(lab.before) + 42.5)


def test_a_folder_with_no_time_in_it_falls_back_to_file_times(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 1, tmp_path)
    record_file(folder).unlink()
    shutil.rmtree(folder / "logs")
    later = cloned(folder, lab)
    (run,) = from_wandb.read(str(folder)).runs
    assert run.started == run.ended == later


# -- damaged and half-written runs ---------------------------------------------------------------


def test_a_record_file_cut_in_the_middle_gives_an_interrupted_run(lab: Lab, tmp_path: Path) -> None:
    full = read_runs(lab)[0]
    folder = copy_run(lab, 0, tmp_path)
    path = record_file(folder)
    data = path.read_bytes()
    # halfway, inside a history row's "loss" key: a cut at a record's end would be no cut
    path.write_bytes(data[: data.index(b"loss", len(data) // 2) + 2])
    found = from_wandb.read(str(folder))
    assert found.skipped == []
    (run,) = found.runs
    assert (run.status, run.exit_code) == ("interrupted", None)
    assert run.params == full.params and run.tags == full.tags and run.name == full.name
    loss = run.metrics["loss"]
    assert 0 < len(loss) < STEPS[0]
    assert loss == full.metrics["loss"][: len(loss)]
    assert run.started == full.started and run.ended is not None
    assert run.ended <= full.ended
    (warning,) = run.extra["warnings"]
    assert warning.startswith(f"{path}: cut off at byte ")


def test_a_damaged_byte_stops_the_reading_there(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    path = record_file(folder)
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    path.write_bytes(bytes(data))
    (run,) = from_wandb.read(str(folder)).runs
    assert run.status == "interrupted"
    assert 0 < len(run.metrics["loss"]) < STEPS[0]
    assert "damaged at byte" in run.extra["warnings"][0]


@pytest.mark.parametrize(
    ("keep", "why"),
    [
        (7, "holds no run record"),  # what a SIGKILLed run leaves: wandb-core flushed nothing
        (60, "holds no run record"),  # cut inside the first records
        (3, "not a W&B record file"),
    ],
)
def test_a_record_file_without_a_run_is_skipped(
    lab: Lab, tmp_path: Path, keep: int, why: str
) -> None:
    folder = copy_run(lab, 1, tmp_path)
    path = record_file(folder)
    path.write_bytes(path.read_bytes()[:keep])
    found = from_wandb.read(str(folder))
    assert found.runs == []
    (skipped,) = found.skipped
    assert skipped.where == str(path)
    assert why in skipped.why


def test_a_record_file_of_something_else_is_skipped(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 1, tmp_path)
    record_file(folder).write_bytes(b"SQLite format 3\x00" + bytes(100))
    (skipped,) = from_wandb.read(str(folder)).skipped
    assert skipped.where == str(record_file(folder))
    assert "not a W&B record file" in skipped.why


def test_a_saved_file_whose_link_is_dangling_is_skipped_alone(lab: Lab, tmp_path: Path) -> None:
    folder = copy_run(lab, 0, tmp_path)
    link = folder / "files" / "preds_0.csv"
    assert link.is_symlink()  # wandb.save links the user's file
    link.unlink()
    link.symlink_to(tmp_path / "gone.csv")
    found = from_wandb.read(str(folder))
    (run,) = found.runs
    assert [Path(f.name).suffix for f in run.files] == [".png"]
    (skipped,) = found.skipped
    assert skipped.where == str(link)
    assert "gone.csv" in skipped.why


def test_a_run_folder_with_nothing_in_it_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "wandb" / "run-20240101_120000-abc123"
    folder.mkdir(parents=True)
    found = from_wandb.read(str(tmp_path / "wandb"))
    assert found.runs == []
    (skipped,) = found.skipped
    assert skipped.where == str(folder)
    assert "nothing to adopt" in skipped.why


# -- bad sources --------------------------------------------------------------------------------


def test_a_folder_that_is_no_wandb_folder(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "run-later").mkdir()
    for source in (tmp_path, lab.project, lab.project / "train.py"):
        with pytest.raises(UsageError) as error:
            from_wandb.read(str(source))
        message = str(error.value)
        assert message.startswith(f"{source}: not a W&B folder")
        assert "\n" not in message
        assert error.value.exit_code == 2


def test_a_source_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder") as error:
        from_wandb.read(str(tmp_path / "wandb"))
    assert str(error.value).startswith(str(tmp_path / "wandb"))


# -- end to end: `vestige adopt wandb/` and the commands over adopted runs -----------------------


@pytest.fixture(scope="module")
def adopted(lab: Lab) -> Lab:
    """The W&B project adopted into its own store by the real CLI, after a dry run (whose
    report is left in `dry-run.txt` beside the project)."""
    Repo.open(lab.project, create=True).close()
    dry = vestige("adopt", "wandb/", "--dry-run", cwd=lab.project)
    assert dry.returncode == 0, dry.stderr
    (lab.project.parent / "dry-run.txt").write_bytes(dry.stdout)
    assert not list((lab.project / ".vestige" / "refs" / "runs").glob("*"))
    done = vestige("adopt", "wandb/", cwd=lab.project)
    assert done.returncode == 0, done.stderr
    return lab


def ls(lab: Lab, *where: str) -> list[dict[str, Any]]:
    """`vestige ls --json` in the project, newest first."""
    done = vestige("ls", "--json", *where, cwd=lab.project)
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def shown(lab: Lab, seq: int) -> dict[str, Any]:
    """`vestige show SEQ --json` in the project."""
    done = vestige("show", str(seq), "--json", cwd=lab.project)
    assert done.returncode == 0, done.stderr
    run: dict[str, Any] = json.loads(done.stdout)
    return run


def test_adopt_dry_run_says_what_it_would_do(adopted: Lab) -> None:
    said = (adopted.project.parent / "dry-run.txt").read_text()
    assert said.startswith("wandb/ (wandb): would adopt 2 runs, 4 files, "), said


def test_adopted_wandb_runs_are_listed(adopted: Lab) -> None:
    commit = git(adopted.project, "rev-parse", "HEAD").strip()
    runs = ls(adopted)
    assert [r["seq"] for r in runs] == [2, 1]
    assert {r["adopted"] for r in runs} == {"wandb"}
    assert [(r["status"], r["exit_code"]) for r in runs] == [("failed", 1), ("ok", 0)]
    assert [r["params"] for r in runs] == [
        {"lr": lr, "model": "mlp", "opt.name": "adam"} for lr in reversed(LRS)
    ]
    assert {r["git_commit"] for r in runs} == {commit}
    assert all(r["tags"] == ["baseline"] and r["cwd"] == "." for r in runs)
    assert [r["seq"] for r in ls(adopted, "--where", "params.lr < 0.05")] == [1]
    assert [r["seq"] for r in ls(adopted, "--where", "metrics.best_acc > 1")] == [2]


def test_show_an_adopted_wandb_run(adopted: Lab) -> None:
    run = shown(adopted, 1)
    folder = adopted.folders[0]
    assert run["adopted"]["tool"] == "wandb"
    assert run["adopted"]["id"] == folder.name.rsplit("-", 1)[1]
    assert (run["adopted"]["name"], run["adopted"]["experiment"]) == ("trial-0", "demo")
    assert (run["adopted"]["source"], run["adopted"]["user"]) == ("wandb/", "alice")
    assert run["adopted"]["extra"]["tags"] == ["two words"]
    assert run["command"] == ["python", "train.py", "--epochs", "3"]
    assert [n["text"] for n in run["notes"]] == ["try 0"]
    assert run["code"]["program"] == "train.py"
    assert run["code"]["repo"] == "https://example.org/team/proj.git"
    paths = sorted(o["path"] for o in run["outputs"])
    assert paths[0] == f"wandb/{folder.name}/files/media/images/{paths[0].rsplit('/', 1)[1]}"
    assert paths[1] == f"wandb/{folder.name}/files/preds_0.csv"
    log = vestige("log", "1", cwd=adopted.project)
    assert log.returncode == 0 and b"run 0 done" in log.stdout


def test_metrics_of_an_adopted_run_are_the_full_series(adopted: Lab) -> None:
    done = vestige("metrics", "1", "loss", "--json", cwd=adopted.project)
    assert done.returncode == 0, done.stderr
    loss = json.loads(done.stdout)["loss"]
    assert loss["step"] == list(range(STEPS[0]))
    assert loss["value"] == [1.0 / (s + 1) + LRS[0] for s in range(STEPS[0])]


def test_which_finds_an_adopted_image_copied_elsewhere(adopted: Lab, tmp_path: Path) -> None:
    (image,) = (adopted.folders[1] / "files" / "media" / "images").iterdir()
    copy = tmp_path / "figure.png"
    copy.write_bytes(image.read_bytes())
    which = vestige("which", str(copy), cwd=adopted.project)
    assert which.returncode == 0, which.stderr
    assert b"made by run #2" in which.stdout, which.stdout
    assert b"also made by" not in which.stdout  # (the two runs' images differ)


def test_adopting_again_adds_nothing(adopted: Lab) -> None:
    runs = adopted.project / ".vestige" / "refs" / "runs"
    before = {p.name: p.read_bytes() for p in runs.iterdir()}
    again = vestige("adopt", "wandb/", cwd=adopted.project)
    assert again.returncode == 0, again.stderr
    assert again.stdout == b"wandb/ (wandb): adopted 0 runs; 2 already adopted\n"
    assert {p.name: p.read_bytes() for p in runs.iterdir()} == before
    assert vestige("fsck", cwd=adopted.project).returncode == 0


def test_adopt_names_what_it_skipped_and_exits_1(adopted: Lab, tmp_path: Path) -> None:
    copy = tmp_path / "wandb"
    shutil.copytree(adopted.wandb_dir, copy, symlinks=True)
    path = record_file(copy / adopted.folders[1].name)
    path.write_bytes(path.read_bytes()[:7])  # what a SIGKILLed run leaves
    done = vestige("adopt", str(copy), "--dry-run", cwd=adopted.project)
    assert done.returncode == 1
    assert done.stderr.decode() == (
        f"skipped: {path}: holds no run record (W&B stopped before writing it): nothing to adopt\n"
    )
    # the other run is read, and the dry run sees it is in the store already
    assert done.stdout.endswith(b"would adopt 0 runs; 1 already adopted; 1 skipped\n"), done.stdout


def test_adopt_a_folder_that_is_no_wandb_folder(adopted: Lab, tmp_path: Path) -> None:
    (tmp_path / "run-later").mkdir()
    done = vestige("adopt", str(tmp_path), cwd=adopted.project)
    assert done.returncode == 2
    assert done.stderr.count(b"\n") == 1 and str(tmp_path).encode() in done.stderr
