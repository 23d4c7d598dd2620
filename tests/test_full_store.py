"""Issue 20, item 11: a store whose disk fills up during a run. The program's output and
exit code are untouched; an output with no room in the store is recorded with its hash
(`kept: false`) and said on stderr; a log cut short is marked; how the command ended is
kept (the live directory's reserve), and the run is sealed with it once there is room.

The store is a small tmpfs in a private mount namespace (`unshare -m`: root, or a user
namespace); where that cannot be made the test is skipped, saying why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from blake3 import blake3
from conftest import git

pytestmark = pytest.mark.timeout(300)

BIG = """\
import os, sys
open("small.txt", "w").write("small\\n")
with open("big.bin", "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024))  # more than the store has room for
print("made big.bin")
sys.exit(5)
"""

LOUD = """\
import sys
for i in range(40000):  # ~2.9 MB of output: more than the log has room for
    print("line %06d " % i + "y" * 60)
open("done.txt", "w").write("done\\n")
sys.exit(4)
"""

STEPS = """\
set -u
S=$1; OUT=$2; V="$3 -m vestige"
mount -t tmpfs -o size=3M tmpfs "$S" || exit 97
export VESTIGE_DIR="$S/.vestige"
$V run true > /dev/null 2>&1
head -c 1000000 /dev/zero > "$S/filler"
$V run python big.py > "$OUT/big.out" 2> "$OUT/big.err"; echo $? > "$OUT/big.rc"
$V show @last --json > "$OUT/big.json" 2> "$OUT/big-show.err"
$V which big.bin > "$OUT/which.out" 2>&1
$V run python loud.py > "$OUT/loud.out" 2> "$OUT/loud.err"; echo $? > "$OUT/loud.rc"
$V ls --json > "$OUT/ls.json" 2> "$OUT/ls.err"
rm "$S/filler"; mount -o remount,size=32M "$S"
$V show @last --json > "$OUT/loud.json" 2> "$OUT/loud-show.err"
$V fsck > "$OUT/fsck.out" 2>&1; echo $? > "$OUT/fsck.rc"
"""


def test_a_full_store_keeps_the_record_true(project: Path, tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` here to mount a small tmpfs as the store")
    for name, text in (("big.py", BIG), ("loud.py", LOUD)):
        (project / name).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "programs")
    store, out = tmp_path / "store", tmp_path / "out"
    store.mkdir()
    out.mkdir()
    steps = ["unshare", "-m", "sh", "-c", STEPS, "sh", str(store), str(out), sys.executable]
    done = subprocess.run(steps, cwd=project, capture_output=True, timeout=240)
    if done.returncode == 97 or b"unshare failed" in done.stderr:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs "
                    f"CAP_SYS_ADMIN): {done.stderr.decode().strip()[:200]}")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()

    # an output with no room: the program untouched, the output recorded by its hash
    assert (out / "big.rc").read_text().strip() == "5"
    assert (out / "big.out").read_text() == "made big.bin\n"
    said = (out / "big.err").read_text()
    assert "output big.bin was not kept: no room in the store" in said, said
    run = json.loads((out / "big.json").read_text())
    assert (run["status"], run["exit_code"]) == ("failed", 5), run
    outputs = {o["path"]: o for o in run["outputs"]}
    big = outputs["big.bin"]
    assert big["kept"] is False and "no room in the store" in big["note"], big
    assert big["hash"] == blake3((project / "big.bin").read_bytes()).hexdigest()
    assert outputs["small.txt"]["kept"] is True
    assert "made by run #2" in (out / "which.out").read_text()

    # a log with no room: all the output still printed, the log marked as cut; how the
    # command ended waits in its live directory until there is room to seal it
    assert (out / "loud.rc").read_text().strip() == "4"
    printed = (out / "loud.out").read_bytes()
    assert printed.count(b"\n") == 40000 and printed.endswith(b"line 039999 " + b"y" * 60 + b"\n")
    assert "stdout log was cut after" in (out / "loud.err").read_text()
    assert "run #3 could not be sealed" in (out / "ls.err").read_text()
    run = json.loads((out / "loud.json").read_text())
    assert (run["status"], run["exit_code"]) == ("failed", 4), run
    assert any("stdout log cut after" in w for w in run["warnings"]), run["warnings"]
    assert any("could not be sealed when it ended" in w for w in run["warnings"])
    assert 0 < run["stdout"]["size"] < len(printed)
    assert "done.txt" in [o["path"] for o in run["outputs"]]
    assert (out / "fsck.rc").read_text().strip() == "0", (out / "fsck.out").read_text()
