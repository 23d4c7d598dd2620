"""Figures kept without asking: savefig targets linked to their figure, figures open at
exit and shown under a non-interactive backend kept as PNG + SVG (matplotlib Agg, real
subprocesses, the real CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import vestige

PLOT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
"""


def run_script(root: Path, code: str) -> dict:
    (root / "plot.py").write_text(PLOT + textwrap.dedent(code))
    done = vestige("run", "plot.py", cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(vestige("show", "@last", "--json", cwd=root).stdout)


def cat(root: Path, path: str) -> bytes:
    done = vestige("cat", "@last", path, cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_savefig_outputs_name_their_figure(project: Path) -> None:
    run = run_script(project, """
        import os
        os.makedirs("figs", exist_ok=True)
        fig, ax = plt.subplots(num="loss curve")
        ax.plot([3, 2, 1]); ax.set_title("training loss")
        fig.savefig("figs/loss.png")
        fig2 = plt.figure(); fig2.suptitle("accuracy"); fig2.gca().plot([1, 2])
        fig2.savefig("figs/acc", format="pdf")
        plt.close("all")
    """)  # fmt: skip
    outputs = {o["path"]: o for o in run["outputs"]}
    assert outputs["figs/loss.png"]["figure"] == 'figure 1 "loss curve"'
    assert outputs["figs/acc"]["figure"] == 'figure 2 "accuracy"'  # format= given: no suffix added
    assert run["artefacts"] == []  # closed before exit: nothing more to keep
    text = vestige("show", "@last", cwd=project).stdout.decode()
    assert "figs/loss.png" in text and '(figure 1 "loss curve")' in text


def test_open_figures_are_kept_at_exit_unless_already_saved(project: Path) -> None:
    run = run_script(project, """
        saved = plt.figure(num="saved"); saved.gca().plot([1, 2]); saved.savefig("saved.png")
        changed = plt.figure(num="changed"); changed.gca().plot([1]); changed.savefig("c.png")
        changed.gca().plot([2, 3])          # modified after its savefig
        fresh = plt.figure(dpi=40, figsize=(5, 2)); fresh.gca().plot([0, 1, 0])
        empty = plt.figure()                # nothing drawn: not kept
    """)  # fmt: skip
    kept = {a["name"]: a for a in run["artefacts"]}
    assert sorted(kept) == ["changed", "figure-3"]
    assert all(a["kind"] == "figure" and a["auto"] == "exit" for a in kept.values())
    assert sorted(f["path"] for f in kept["figure-3"]["files"]) == ["figure-3.png", "figure-3.svg"]
    png = cat(project, "figure-3.png")
    import struct

    assert png.startswith(b"\x89PNG")
    assert struct.unpack(">II", png[16:24]) == (200, 80)  # 5x2 inches at its own 40 dpi
    assert b"<svg" in cat(project, "figure-3.svg")


def test_show_under_agg_keeps_the_figures_once(project: Path) -> None:
    run = run_script(project, """
        fig = plt.figure(num="shown"); fig.gca().plot([1, 3, 2])
        plt.show()
    """)  # fmt: skip
    kept = [a for a in run["artefacts"] if a["name"] == "shown"]
    assert len(kept) == 1 and kept[0]["auto"] == "show"
    assert cat(project, "shown.png").startswith(b"\x89PNG")


def test_figures_switched_off_in_config(project: Path) -> None:
    (project / ".vestige").mkdir()
    (project / ".vestige" / "config.toml").write_text("[capture]\nfigures = false\n")
    run = run_script(project, """
        fig = plt.figure(num="x"); fig.gca().plot([1, 2]); fig.savefig("x.png")
        other = plt.figure(); other.gca().plot([1])
    """)  # fmt: skip
    assert run["artefacts"] == []
    assert [o.get("figure") for o in run["outputs"]] == [None]


def test_figures_in_a_plain_python_script(project: Path) -> None:
    (project / "plot.py").write_text(PLOT + textwrap.dedent("""
        import vestige
        vestige.log(loss=1.0)
        fig = plt.figure(num="curve"); fig.gca().plot([1, 2])
        fig.savefig("curve.png")
        late = plt.figure(num="late"); late.gca().plot([2, 1])
    """))  # fmt: skip
    done = subprocess.run([sys.executable, "plot.py"], cwd=project, capture_output=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    run = json.loads(vestige("show", "@last", "--json", cwd=project).stdout)
    assert [o["figure"] for o in run["outputs"] if o["path"] == "curve.png"] == ['figure 1 "curve"']
    assert [a["name"] for a in run["artefacts"]] == ["late"]


def test_a_figure_shown_again_after_a_change_gets_a_new_name(project: Path) -> None:
    run = run_script(project, """
        plt.plot([1, 2]); plt.show()        # the same figure, drawn on and shown three times
        plt.plot([2, 1]); plt.show()
        plt.show()                          # unchanged: not kept again
        plt.plot([0, 0]); plt.show()
    """)  # fmt: skip
    assert [a["name"] for a in run["artefacts"]] == ["figure-1", "figure-1-2", "figure-1-3"]
    assert cat(project, "figure-1-2.png") != cat(project, "figure-1.png")


def test_figures_shown_one_after_another_are_named_by_their_titles(project: Path) -> None:
    """Each new figure after plt.close() is pyplot's number 1 again: a title names it
    (issue 21, item 8), the suptitle first; without one it stays figure-N."""
    run = run_script(project, """
        plt.plot([1, 2]); plt.title("Loss (lr=0.1)"); plt.show(); plt.close()
        fig, axes = plt.subplots(1, 2); fig.suptitle("Accuracy by model")
        axes[0].set_title("left"); plt.show(); plt.close()
        plt.plot([2, 1]); plt.show(); plt.close()
    """)  # fmt: skip
    names = [a["name"] for a in run["artefacts"]]
    assert names == ["Loss-lr-0.1", "Accuracy-by-model", "figure-1"], names
    assert cat(project, "Accuracy-by-model.svg").startswith(b"<?xml")
