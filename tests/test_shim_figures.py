"""The shim's matplotlib capture (savefig events, figures kept at show and at exit), in
real Python subprocesses of this venv with the real matplotlib on the Agg backend. As in
tests/test_shim.py the runner is not involved: each test builds the child's environment
(PYTHONPATH=<shim>, VESTIGE_*) itself and reads the raw journal lines back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "src" / "vestige" / "shim"
WARNING = "vestige: capture disabled in this process:"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def mpl_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One matplotlib config/cache dir for the module: the font cache is built once."""
    return tmp_path_factory.mktemp("mplconfig")


@dataclass
class Box:
    root: Path
    live: Path
    mpl_config: Path

    def env(self, *, capture: bool = True, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        env["MPLBACKEND"] = "Agg"
        env["MPLCONFIGDIR"] = str(self.mpl_config)
        env["PYTHONPATH"] = str(SHIM)
        if capture:
            env.update(
                VESTIGE_RUN_ID="run-test",
                VESTIGE_LIVE=str(self.live),
                VESTIGE_ROOT=str(self.root),
                VESTIGE_STORE=str(self.root / ".vestige"),
                VESTIGE_SHIM=str(SHIM),
            )
        env.update(extra)
        return env

    def run(self, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        (self.root / "main.py").write_text(textwrap.dedent(text))
        return subprocess.run(
            [sys.executable, "main.py"],
            cwd=self.root,
            env=self.env() if env is None else env,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )

    def lines(self) -> list[dict[str, object]]:
        events = self.live / "events"
        if not events.exists():
            return []
        return [
            json.loads(line)
            for journal in sorted(events.iterdir())
            for line in journal.read_text().splitlines()
        ]

    def events(self, kind: str) -> list[dict[str, object]]:
        return [e for e in self.lines() if e["e"] == kind]


@pytest.fixture
def box(tmp_path: Path, mpl_config: Path) -> Box:
    root = tmp_path / "proj"
    live = root / ".vestige" / "live" / "run-test"
    live.mkdir(parents=True)
    return Box(root=root, live=live, mpl_config=mpl_config)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert WARNING not in done.stderr, done.stderr
    return done.stdout


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def kept(box: Box, event: dict[str, object]) -> tuple[bytes, str]:
    """The PNG bytes and SVG text of a figure event, after checking they are valid."""
    pid = event["pid"]
    files = event["files"]
    assert isinstance(files, list) and len(files) == 2
    png_name, svg_name = files
    assert png_name.startswith(f"{pid}-") and png_name.endswith(".png")
    assert svg_name == png_name[: -len(".png")] + ".svg"
    png = (box.live / "figures" / png_name).read_bytes()
    svg = (box.live / "figures" / svg_name).read_text()
    assert png.startswith(PNG_SIGNATURE)
    assert "<svg" in svg
    return png, svg


# ---------------------------------------------------------------------------- savefig


def test_savefig_records_absolute_path_and_the_figure(box: Box) -> None:
    out = ok(
        box.run(
            """
            import os, pathlib
            import matplotlib.pyplot as plt

            os.mkdir("plots")
            fig, ax = plt.subplots(num="loss curve")
            ax.plot([3, 2, 1])
            ax.set_title("training loss")
            fig.savefig("plots/loss.png")

            fig2, (a, b) = plt.subplots(1, 2)
            b.set_title("right panel")
            fig2.suptitle("overview")
            plt.savefig(pathlib.Path("plots") / "overview.pdf", format="pdf")

            fig3, ax3 = plt.subplots()
            ax3.set_title("left", loc="left")
            fig3.savefig("plots/left.svg")
            print(fig.number, fig2.number, fig3.number)
            """
        )
    )
    assert out.split() == ["1", "2", "3"]
    plots = box.root / "plots"
    loss, overview, left = box.events("savefig")
    assert loss["path"] == str(plots / "loss.png")
    assert loss["format"] is None
    assert loss["figure"] == {"num": 1, "label": "loss curve", "title": "training loss"}
    assert overview["path"] == str(plots / "overview.pdf")
    assert overview["format"] == "pdf"
    assert overview["figure"] == {"num": 2, "label": "", "title": "overview"}  # suptitle first
    assert left["figure"] == {"num": 3, "label": "", "title": "left"}
    for event in (loss, overview, left):
        assert Path(str(event["path"])).is_file()
        assert isinstance(event["t"], float)
        assert event["pid"] == box.events("hello")[0]["pid"]


def test_savefig_path_is_the_file_matplotlib_wrote(box: Box) -> None:
    ok(
        box.run(
            """
            import matplotlib
            import matplotlib.pyplot as plt
            from matplotlib.figure import Figure

            fig, ax = plt.subplots()
            ax.plot([1, 2])
            fig.savefig("curve")                      # no extension: + ".png"
            fig.savefig("dotted.")                    # trailing dot: "dotted.png"
            fig.savefig("raw", format="pdf")          # a format given: the name as is
            fig.savefig(b"bytes_name")                # bytes: never extended
            matplotlib.rcParams["savefig.format"] = "svg"
            fig.savefig("vector")                     # rcParams["savefig.format"]
            lone = Figure()                           # not managed by pyplot
            lone.add_subplot().plot([1])
            lone.savefig("lone")
            """
        )
    )
    root = box.root
    events = box.events("savefig")
    expected = ["curve.png", "dotted.png", "raw", "bytes_name", "vector.svg", "lone.svg"]
    assert [e["path"] for e in events] == [str(root / name) for name in expected]
    assert [e["format"] for e in events] == [None, None, "pdf", None, None, None]
    for name in expected:
        assert (root / name).is_file(), name
    assert not (root / "curve").exists()
    assert not (root / "raw.pdf").exists()
    assert events[-1]["figure"] == {"num": None, "label": "", "title": ""}


def test_savefig_to_file_objects(box: Box) -> None:
    ok(
        box.run(
            """
            import io
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots()
            ax.plot([1, 2])
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            assert buf.getvalue().startswith(b"\\x89PNG")
            with open("handle.png", "wb") as fh:
                fig.savefig(fh)
            """
        )
    )
    memory, handle = box.events("savefig")
    assert memory["path"] is None
    assert memory["format"] == "png"
    assert handle["path"] == str(box.root / "handle.png")
    assert handle["format"] is None


# ---------------------------------------------------------------------------- keeping


def test_open_figure_is_kept_at_exit_as_png_and_svg(box: Box) -> None:
    ok(
        box.run(
            """
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(4, 3), dpi=50, num="scores")
            ax.bar(["a", "b"], [1, 2])
            ax.set_title("scores by group")
            plt.figure()          # empty: not kept
            """
        )
    )
    (event,) = box.events("figure")
    assert event["why"] == "exit"
    assert event["figure"] == {"num": 1, "label": "scores", "title": "scores by group"}
    png, svg = kept(box, event)
    assert png_size(png) == (200, 150)  # the figure's own dpi: 4x3 in at 50 dpi
    assert "scores by group" in svg  # matplotlib's SVG names each text in a comment
    assert box.events("savefig") == []
    assert sorted(p.name for p in (box.live / "figures").iterdir()) == sorted(event["files"])
    # the figure event comes before the process's modules/exit events
    kinds = [e["e"] for e in box.lines()]
    assert kinds.index("figure") < kinds.index("modules") < kinds.index("exit")


def test_saved_figure_is_kept_again_only_when_changed(box: Box) -> None:
    ok(
        box.run(
            """
            import matplotlib.pyplot as plt

            same, ax1 = plt.subplots(num="same")
            ax1.plot([1, 2])
            same.savefig("same.png")
            same.canvas.draw()            # a redraw is no change
            changed, ax2 = plt.subplots(num="changed")
            ax2.plot([1, 2])
            changed.savefig("changed.png")
            ax2.plot([2, 1])              # modified after savefig
            memory, ax3 = plt.subplots(num="memory")
            ax3.plot([1, 2])
            import io
            memory.savefig(io.BytesIO())  # not a file of the run: still kept at exit
            """
        )
    )
    assert len(box.events("savefig")) == 3
    figures = box.events("figure")
    assert [e["figure"]["label"] for e in figures] == ["changed", "memory"]  # type: ignore[index]
    assert all(e["why"] == "exit" for e in figures)
    for event in figures:
        kept(box, event)


def test_show_keeps_open_figures_under_agg(box: Box) -> None:
    out = ok(
        box.run(
            """
            import matplotlib
            import matplotlib.pyplot as plt

            first, ax1 = plt.subplots(num="first")
            ax1.plot([1, 2])
            second, ax2 = plt.subplots(num="second")
            ax2.plot([2, 1])
            plt.show()                    # non-interactive backend: nothing on screen
            ax2.set_title("later")        # changed after show: kept again at exit
            print(matplotlib.get_backend())
            """
        )
    )
    assert out.strip().lower() == "agg"
    figures = box.events("figure")
    summary = [(e["why"], e["figure"]["label"]) for e in figures]  # type: ignore[index]
    assert summary == [("show", "first"), ("show", "second"), ("exit", "second")]
    assert figures[2]["figure"]["title"] == "later"  # type: ignore[index]
    names = [name for e in figures for name in e["files"]]  # type: ignore[union-attr]
    assert len(set(names)) == 6
    for event in figures:
        kept(box, event)


def test_figures_switched_off(box: Box) -> None:
    out = ok(
        box.run(
            """
            import matplotlib.pyplot as plt
            from matplotlib.figure import Figure

            fig, ax = plt.subplots()
            ax.plot([1, 2])
            fig.savefig("off.png")
            plt.show()
            plt.subplots()[1].plot([1])
            print(hasattr(Figure.savefig, "__wrapped__"), hasattr(plt.show, "__wrapped__"))
            """,
            env=box.env(VESTIGE_FIGURES="0"),
        )
    )
    assert out.split() == ["False", "False"]
    assert box.events("savefig") == box.events("figure") == []
    assert not (box.live / "figures").exists()
    assert str(box.root / "off.png") in {e.get("path") for e in box.events("open")}
    assert box.events("exit")  # the rest of capture is on


def test_matplotlib_imported_before_the_shim_is_patched(box: Box) -> None:
    env = box.env(capture=False)
    env.pop("PYTHONPATH")  # nothing at start-up: the shim comes later, as the in-process API
    live, root = str(box.live), str(box.root)
    out = ok(
        box.run(
            f"""
            import os, sys
            import matplotlib.pyplot as plt
            from matplotlib.figure import Figure

            assert "_vestige_shim" not in sys.modules
            before = Figure.savefig
            os.environ.update(VESTIGE_RUN_ID="run-test", VESTIGE_LIVE={live!r},
                              VESTIGE_ROOT={root!r})
            sys.path.insert(0, {str(SHIM)!r})
            import _vestige_shim

            print(Figure.savefig is not before, Figure.savefig.__wrapped__ is before)
            fig, ax = plt.subplots(num="late")
            ax.plot([1, 2])
            fig.savefig("late.png")
            other, ax2 = plt.subplots(num="open")
            ax2.plot([2, 1])
            """,
            env=env,
        )
    )
    assert out.split() == ["True", "True"]
    (save,) = box.events("savefig")
    assert save["path"] == str(box.root / "late.png")
    (figure,) = box.events("figure")
    assert (figure["why"], figure["figure"]["label"]) == ("exit", "open")  # type: ignore[index]
    kept(box, figure)


# ---------------------------------------------------------------------------- robustness


def test_savefig_errors_are_the_programs(box: Box) -> None:
    script = """
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([1, 2])
        for bad in ("no/such/dir/x.png", "x.unknownformat"):
            try:
                fig.savefig(bad)
            except Exception as exc:
                print(type(exc).__name__, getattr(exc, "errno", None))
        fig.savefig("good.png")
        """
    with_shim = box.run(script)
    without = box.run(script, env=box.env(capture=False) | {"PYTHONPATH": ""})
    assert ok(with_shim) == ok(without)
    assert with_shim.stdout.splitlines() == ["FileNotFoundError 2", "ValueError None"]
    assert with_shim.stderr == without.stderr
    (save,) = box.events("savefig")  # the failed saves are not recorded; capture goes on
    assert save["path"] == str(box.root / "good.png")
    assert box.events("exit")


def test_rendering_failure_at_exit_disables_capture_quietly(box: Box) -> None:
    done = box.run(
        """
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.set_title(r"$\\frac{$")    # bad mathtext: fails only when drawn
        print("done")
        """
    )
    assert done.returncode == 0
    assert done.stdout == "done\n"
    assert done.stderr.startswith(WARNING)
    assert len(done.stderr.splitlines()) == 1
    assert box.events("figure") == []
    assert box.events("modules") and box.events("exit")  # still written before stopping


def test_unwritable_figures_dir_disables_capture_at_show(box: Box) -> None:
    (box.live / "figures").write_text("not a directory")
    done = box.run(
        """
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([1, 2])
        plt.show()
        fig.savefig("after.png")
        print("still running")
        """
    )
    assert (done.returncode, done.stdout) == (0, "still running\n")
    assert done.stderr.startswith(WARNING) and len(done.stderr.splitlines()) == 1
    assert (box.root / "after.png").is_file()
    assert box.events("figure") == box.events("savefig") == []


def test_forked_children_do_not_keep_the_parents_figures(box: Box) -> None:
    out = ok(
        box.run(
            """
            import multiprocessing as mp, os, sys
            import matplotlib.pyplot as plt

            def work(i):
                with open("part-%d.txt" % i, "w") as f:
                    f.write(str(os.getpid()))

            if __name__ == "__main__":
                fig, ax = plt.subplots(num="parent")
                ax.plot([1, 2])               # open, never saved, when the children fork
                ctx = mp.get_context("fork")
                procs = [ctx.Process(target=work, args=(i,)) for i in range(2)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join()
                child = os.fork()             # a child that leaves through atexit
                if child == 0:
                    open("forked.txt", "w").close()
                    sys.exit(0)
                os.waitpid(child, 0)
                print(os.getpid(), child)
            """
        )
    )
    parent, forked = map(int, out.split())
    workers = {int((box.root / f"part-{i}.txt").read_text()) for i in range(2)}
    lines = box.lines()
    # every child journaled (its write) and exited, none kept or saved a figure
    for pid in {*workers, forked}:
        mine = [e for e in lines if e["pid"] == pid]
        assert any(e["e"] == "open" and e["mode"] == "w" for e in mine), pid
        assert any(e["e"] == "exit" for e in mine), pid
        assert not any(e["e"] in ("figure", "savefig") for e in mine), pid
    (figure,) = box.events("figure")
    assert (figure["pid"], figure["why"], figure["figure"]["label"]) == (  # type: ignore[index]
        parent,
        "exit",
        "parent",
    )
    assert sorted(p.name for p in (box.live / "figures").iterdir()) == sorted(figure["files"])
