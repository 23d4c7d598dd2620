"""`vestige tag` and `vestige note`: annotations beside sealed (immutable) manifests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from conftest import vestige


def ok(*args: str, cwd: Path) -> str:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def ls(root: Path, *args: str) -> list[dict]:
    return json.loads(ok("ls", "--json", *args, cwd=root))


def manifest_bytes(root: Path, run_id: str) -> bytes:
    digest = (root / ".vestige" / "refs" / "runs" / run_id).read_text().strip()
    return (root / ".vestige" / "objects" / digest[:2] / digest[2:]).read_bytes()


def test_tag_untag_note_keep_the_manifest_and_survive_reindex(project: Path) -> None:
    (project / "s.py").write_text("import vestige\nvestige.tag('from-code')\n")
    ok("run", "s.py", cwd=project)
    ok("run", "s.py", cwd=project)
    run_id = ls(project)[1]["id"]
    sealed = manifest_bytes(project, run_id)
    assert ok("tag", "1", "baseline", "paper", cwd=project).strip() == (
        "run #1: from-code baseline paper"
    )  # fmt: skip
    assert ok("tag", "1", "--rm", "from-code", cwd=project).strip() == "run #1: baseline paper"
    assert ok("tag", "1", cwd=project).strip() == "run #1: baseline paper"
    ok("note", "1", "first thought", cwd=project)
    ok("note", "#1", "second; with ünïcode", cwd=project)
    assert manifest_bytes(project, run_id) == sealed  # the manifest never changes
    assert [r["tags"] for r in ls(project, "--where", "tag = baseline")] == [["baseline", "paper"]]
    assert ls(project, "--where", 'tag = "from-code"')[0]["seq"] == 2
    shown = json.loads(ok("show", "1", "--json", cwd=project))
    assert shown["tags"] == ["baseline", "paper"]
    assert [n["text"] for n in shown["notes"]] == ["first thought", "second; with ünïcode"]
    notes = ok("note", "1", cwd=project).splitlines()
    assert notes[0].endswith("first thought") and len(notes) == 2
    before = ok("ls", "--json", cwd=project)
    ok("reindex", cwd=project)
    assert ok("ls", "--json", cwd=project) == before
    assert ok("fsck", cwd=project)


def test_note_from_stdin_and_bad_input(project: Path) -> None:
    (project / "s.py").write_text("print(1)\n")
    ok("run", "s.py", cwd=project)
    done = vestige("note", "1", "-", cwd=project, input=b"from a pipe\n")
    assert done.returncode == 0
    assert ok("note", "1", cwd=project).strip().endswith("from a pipe")
    state = sorted(p.name for p in (project / ".vestige" / "objects").rglob("*"))
    for args, needle in (
        (["tag", "1", "two words"], "not a tag"),
        (["tag", "1", "a,b"], "not a tag"),
        (["tag", "1", "--rm", ""], "not a tag"),
        (["tag", "9", "x"], "no run #9"),
        (["note", "1", "   "], "empty"),
        (["note", "9", "x"], "no run #9"),
    ):
        done = vestige(*args, cwd=project)
        assert done.returncode == 2, args
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert sorted(p.name for p in (project / ".vestige" / "objects").rglob("*")) == state


def test_concurrent_tags_all_land(project: Path) -> None:
    (project / "s.py").write_text("print(1)\n")
    ok("run", "s.py", cwd=project)
    tags = [f"t{i}" for i in range(8)]
    threads = [threading.Thread(target=vestige, args=("tag", "1", t), kwargs={"cwd": project})
               for t in tags]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ls(project)[0]["tags"]) == tags


def test_tag_a_running_run(project: Path) -> None:
    (project / "s.py").write_text(textwrap.dedent("""
        import sys, vestige
        vestige.tag("early")
        print("ready", flush=True)
        sys.stdin.readline()
        vestige.tag("late")
    """))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "vestige", "run", "s.py"], cwd=project,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"ready\n"
    # The program starts while vestige writes the run's index row beside it (its speed
    # first: recording/runner.py), so "ready" does not mean `@last` names it yet: wait
    # for the row (the deadline only guards a hang).
    deadline = time.monotonic() + 60
    while not ls(project):
        assert time.monotonic() < deadline, "the running run never reached the index"
        time.sleep(0.02)
    ok("tag", "@last", "from-shell", cwd=project)
    proc.stdin.write(b"\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert ls(project)[0]["tags"] == ["early", "late", "from-shell"]


def test_shell_notes_are_redacted_and_fsck_checks_annotations(project: Path) -> None:
    (project / "s.py").write_text("print(1)\n")
    ok("run", "s.py", cwd=project)
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    ok("note", "1", f"pushed with {token}", cwd=project)
    ok("tag", "1", "x", cwd=project)
    text = ok("note", "1", cwd=project)
    assert token not in text and "<redacted:" in text
    assert token.encode() not in b"".join(
        p.read_bytes() for p in (project / ".vestige" / "objects").rglob("*") if p.is_file()
    )
    assert "X1" not in ok("fsck", cwd=project)  # no lock file left behind
    ref = next((project / ".vestige" / "refs" / "annotations").iterdir())
    ref.write_text("0" * 64 + "\n")
    done = vestige("fsck", cwd=project)
    assert done.returncode == 1 and b"A1: annotation ref" in done.stderr
