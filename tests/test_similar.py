"""`vestige which --similar`: a figure re-encoded, resized, cropped or screenshotted still
finds the run that plotted it, through perceptual hashes cached in the index.

Real runs of real matplotlib scripts through the CLI. imagehash is a dev dependency:
this module fails (it does not skip) when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagehash  # noqa: F401  - a dev dependency: fail loudly, never skip
import pytest
from conftest import clean_environment, git, vestige
from PIL import Image, ImageDraw, ImageOps

from vestige.history import similar

PLOTTING = """\
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
x = np.linspace(0, 10, 300)
fig, ax = plt.subplots()
"""


def plotting(body: str) -> str:
    """A script that plots with matplotlib (Agg): the imports, a figure, then `body`."""
    return PLOTTING + body


PLOT = plotting("""\
ax.plot(x, np.sin(x))
ax.set_title("validation loss")
ax.set_xlabel("epoch")
fig.savefig("fig.png")
""")
#: Another kind of figure: the nearest it may be is farther than the threshold.
OTHER = plotting("""\
rng = np.random.default_rng(0)
ax.hist(rng.standard_normal(2000), bins=40, color="tab:orange")
ax.set_title("residuals")
fig.savefig("other.png")
""")
#: The same script in another run, the curve damped: similar (88 bits from fig.png,
#: measured), but farther than any copy of fig.png below.
LOOKALIKE = plotting("""\
ax.plot(x, np.sin(x) * np.exp(-x / 10))
ax.set_title("validation loss")
ax.set_xlabel("epoch")
fig.savefig("again.png")
""")
SLIDES = """\
with open("fig.png", "rb") as f:
    data = f.read()
with open("notes.txt", "w") as f:
    f.write(f"{len(data)} bytes of figure\\n")
"""
BROKEN = 'open("broken.png", "wb").write(b"not an image at all\\n" * 10)\n'

#: Bounds for copies of fig.png, from vestige/history/similar.py's measurements on 257 figures
#: (resized 30-70% as JPEG: within 38 bits; cropped 4 px: within 66). This figure, measured:
#: 7 (70% JPEG), 28 (crop 4 px), 47 (7 px on one side), 45 (the screenshot).
RESIZE_JPEG_MAX = 40
CROP_MAX = 80


class Lab:
    def __init__(self, root: Path, outside: Path) -> None:
        self.root = root
        self.outside = outside

    @property
    def index(self) -> Path:
        return self.root / ".vestige" / "index.sqlite"


def ok(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[bytes]:
    done = vestige(*args, cwd=cwd)
    assert done.returncode == code, (args, done.returncode, done.stderr.decode())
    assert "Traceback" not in done.stderr.decode()
    return done


def lookup(lab: Lab, path: Path, *options: str, code: int = 0) -> dict[str, Any]:
    """`which --similar PATH --json`, its keys checked against the documented shape."""
    done = ok("which", "--similar", str(path), "--json", *options, cwd=lab.root, code=code)
    data = json.loads(done.stdout)
    assert set(data) == JSON_KEYS
    for match in data["matches"]:
        assert set(match) == MATCH_KEYS
        for run in [*match["made_by"], *match["read_by"]]:
            assert set(run) == MAKER_KEYS
    return data


#: `which --similar --json` (docs/cli.md): changing these is a change of a documented format.
JSON_KEYS = {
    "path", "hash", "algo", "bits", "threshold", "compared", "skipped", "nearest", "matches",
}  # fmt: skip
MATCH_KEYS = {"hash", "distance", "made_by", "read_by"}
MAKER_KEYS = {"run_id", "seq", "path", "started", "command", "status", "confirmed", "kept"}


def new_project(base: Path, files: dict[str, str]) -> Path:
    root = base / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for name, text in files.items():
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Run 1 plots fig.png, 2 another kind of figure, 3 a look-alike of fig.png, 4 reads
    fig.png, 5 writes a .png that is no image."""
    base = tmp_path_factory.mktemp("similar")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        scripts = {
            "plot.py": PLOT,
            "other.py": OTHER,
            "lookalike.py": LOOKALIKE,
            "slides.py": SLIDES,
            "broken.py": BROKEN,
        }
        root = new_project(base, scripts)
        for script in scripts:
            ok("run", script, cwd=root)
        outside = base / "elsewhere"
        outside.mkdir()
        yield Lab(root, outside)


def resized_jpeg(src: Path, dst: Path, factor: float = 0.7) -> Path:
    with Image.open(src) as im:
        size = (round(im.width * factor), round(im.height * factor))
        im.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(dst, "JPEG", quality=75)
    return dst


def cropped(src: Path, dst: Path, left: int, top: int, right: int, bottom: int) -> Path:
    with Image.open(src) as im:
        im.crop((left, top, im.width - right, im.height - bottom)).save(dst)
    return dst


def screenshot(src: Path, dst: Path) -> Path:
    """As a slide shows it, grabbed: scaled up 125%, a few pixels cut, a grey frame, JPEG."""
    with Image.open(src) as im:
        big = im.convert("RGB").resize((im.width * 5 // 4, im.height * 5 // 4))
        shot = big.crop((5, 9, big.width - 2, big.height - 3))
        ImageOps.expand(shot, 3, fill=(240, 240, 240)).save(dst, "JPEG", quality=85)
    return dst


def unrelated(dst: Path) -> Path:
    """A drawing that is no plot: shapes on a dark gradient."""
    im = Image.linear_gradient("L").resize((500, 400)).convert("RGB")
    draw = ImageDraw.Draw(im)
    draw.ellipse((60, 50, 260, 250), fill=(250, 200, 30))
    draw.rectangle((300, 180, 470, 380), fill=(20, 120, 220))
    draw.polygon([(40, 380), (200, 280), (260, 390)], fill=(200, 30, 60))
    im.save(dst)
    return dst


def distance(a: Path, b: Path) -> int:
    return (int(similar.perceptual_hash(a), 16) ^ int(similar.perceptual_hash(b), 16)).bit_count()


def maker_seqs(match: dict[str, Any], key: str = "made_by") -> list[int]:
    return [m["seq"] for m in match[key]]


# -- finding the run -------------------------------------------------------------------------


def test_resized_jpeg_copy_finds_the_plot_run(lab: Lab) -> None:
    """The issue's case: fig.png resized to 70% and saved as JPEG, outside the project."""
    copy = resized_jpeg(lab.root / "fig.png", lab.outside / "slide.jpg")
    data = lookup(lab, copy)
    assert data["path"] == str(copy)
    assert data["algo"] == similar.ALGO and data["bits"] == similar.BITS
    assert data["threshold"] == similar.SIMILAR_BITS
    assert data["compared"] == 3  # images, not files: fig.png (made by 1, read by 4), ...
    assert data["skipped"] == 1  # ... other.png, again.png; broken.png is no image
    matches = data["matches"]
    assert isinstance(matches, list)
    first = matches[0]
    assert maker_seqs(first) == [1]
    assert maker_seqs(first, "read_by") == [4]
    assert first["made_by"][0]["path"] == "fig.png"
    assert "plot.py" in first["made_by"][0]["command"]
    assert first["distance"] <= RESIZE_JPEG_MAX
    assert data["nearest"] == first["distance"]
    # the look-alike of run 3 is similar too, but farther; the other kind of figure is not
    assert [maker_seqs(m) for m in matches] == [[1], [3]]
    assert first["distance"] < matches[1]["distance"] <= similar.SIMILAR_BITS
    assert distance(copy, lab.root / "other.png") > similar.SIMILAR_BITS


def test_text_output(lab: Lab) -> None:
    copy = resized_jpeg(lab.root / "fig.png", lab.outside / "slide-text.jpg")
    lines = ok("which", "--similar", str(copy), cwd=lab.root).stdout.decode().splitlines()
    scale = f"distance = differing bits of 512, similar up to {similar.SIMILAR_BITS}"
    assert lines[0] == f"{copy}: 2 kept images look like it (3 compared; {scale})"
    assert lines[1].startswith("distance ") and ": made by run #1 (" in lines[1]
    assert lines[2].split() == ["as", "fig.png"]
    assert "plot.py" in lines[3]
    assert lines[4].split() == ["status", "ok"]
    assert lines[5].split() == ["read", "by", "#4"]
    assert lines[6].startswith("distance ") and ": made by run #3 (" in lines[6]
    assert lines[-1].startswith("1 kept image not compared")


def test_limit(lab: Lab) -> None:
    copy = resized_jpeg(lab.root / "fig.png", lab.outside / "slide-limit.jpg")
    data = lookup(lab, copy, "--limit", "1")
    assert [maker_seqs(m) for m in data["matches"]] == [[1]]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("crop-4px.png", lambda src, dst: cropped(src, dst, 4, 4, 4, 4)),
        ("crop-7px-one-side.png", lambda src, dst: cropped(src, dst, 7, 3, 0, 5)),
        ("screenshot.jpg", screenshot),
    ],
    ids=["crop-4px", "crop-uneven", "screenshot"],
)
def test_cropped_or_screenshotted_copy_is_found(lab: Lab, name: str, make: object) -> None:
    copy = make(lab.root / "fig.png", lab.outside / name)
    matches = lookup(lab, copy)["matches"]
    assert maker_seqs(matches[0]) == [1]
    assert matches[0]["distance"] <= CROP_MAX


def test_the_same_bytes_are_at_distance_zero(lab: Lab) -> None:
    data = lookup(lab, lab.root / "fig.png")
    first = data["matches"][0]
    assert first["distance"] == 0 and first["hash"] == data["hash"]
    out = ok("which", "--similar", "fig.png", cwd=lab.root).stdout.decode()
    assert out.splitlines()[1].startswith("distance 0 (the same bytes): made by run #1")


def test_an_unrelated_image_matches_nothing(lab: Lab) -> None:
    stranger = unrelated(lab.outside / "stranger.png")
    data = lookup(lab, stranger, code=1)
    assert data["matches"] == []
    assert data["nearest"] > similar.SIMILAR_BITS
    done = ok("which", "--similar", str(stranger), cwd=lab.root, code=1)
    assert done.stdout.decode().startswith(f"{stranger}: no kept image looks like it (3 compared;")


def test_the_exact_lookup_is_unchanged(lab: Lab) -> None:
    """Without --similar, a resized copy has other bytes: no run made them."""
    copy = resized_jpeg(lab.root / "fig.png", lab.outside / "exact.jpg")
    done = ok("which", str(copy), cwd=lab.root, code=1)
    assert "no recorded run made these bytes" in done.stdout.decode()


# -- the cache -------------------------------------------------------------------------------


def phash_rows(index: Path) -> dict[str, tuple[str | None, str | None]]:
    conn = sqlite3.connect(index)
    try:
        rows = conn.execute("SELECT hash, phash, algo, error FROM phash").fetchall()
    finally:
        conn.close()
    assert all(algo == similar.ALGO for _h, _p, algo, _e in rows)
    return {h: (p, e) for h, p, _algo, e in rows}


def test_the_cache_is_filled_once(project: Path, tmp_path: Path) -> None:
    """Hashes are computed at the first lookup, not at run time, and then only read: an
    entry changed by hand is what the next lookup uses, and a failed image is not retried."""
    (project / "plot.py").write_text(PLOT)
    (project / "broken.py").write_text(BROKEN)
    ok("run", "plot.py", cwd=project)
    ok("run", "broken.py", cwd=project)
    index = project / ".vestige" / "index.sqlite"
    assert phash_rows(index) == {}  # sealing hashed nothing
    copy = resized_jpeg(project / "fig.png", tmp_path / "copy.jpg")
    lab = Lab(project, tmp_path)
    first = lookup(lab, copy)
    rows = phash_rows(index)
    assert len(rows) == 2
    fig = first["matches"][0]["hash"]
    broken = next(h for h in rows if h != fig)
    assert rows[fig][0] is not None and rows[fig][1] is None
    assert len(rows[fig][0]) == similar.BITS // 4
    assert rows[broken][0] is None and rows[broken][1]

    # the cached hash of fig.png is now its bitwise complement: the lookup must trust it
    inverted = f"{int(rows[fig][0], 16) ^ ((1 << similar.BITS) - 1):0{similar.BITS // 4}x}"
    conn = sqlite3.connect(index)
    with conn:
        conn.execute("UPDATE phash SET phash = ? WHERE hash = ?", (inverted, fig))
        conn.execute("UPDATE phash SET error = 'marked' WHERE hash = ?", (broken,))
    conn.close()
    second = lookup(lab, copy, code=1)
    assert second["matches"] == []
    assert second["nearest"] == similar.BITS - first["matches"][0]["distance"]
    assert phash_rows(index)[broken] == (None, "marked")


def test_reindex_keeps_lookups_working(project: Path, tmp_path: Path) -> None:
    (project / "plot.py").write_text(PLOT)
    ok("run", "plot.py", cwd=project)
    copy = resized_jpeg(project / "fig.png", tmp_path / "copy.jpg")
    lab = Lab(project, tmp_path)
    before = lookup(lab, copy)
    ok("reindex", cwd=project)
    assert lookup(lab, copy) == before


def test_a_store_without_images(project: Path, tmp_path: Path) -> None:
    (project / "w.py").write_text('open("out.txt", "w").write("no figure\\n")\n')
    ok("run", "w.py", cwd=project)
    picture = unrelated(tmp_path / "picture.png")
    done = ok("which", "--similar", str(picture), cwd=project, code=1)
    assert done.stdout.decode() == f"{picture}: the store keeps no image to compare it with\n"
    data = lookup(Lab(project, tmp_path), picture, code=1)
    assert (data["compared"], data["skipped"], data["nearest"], data["matches"]) == (0, 0, None, [])


# -- SVG and PDF: optional renderers -------------------------------------------------------

VECTORS = plotting("""\
ax.plot(x, np.sin(x))
ax.set_title("validation loss")
fig.savefig("fig.png")
fig.savefig("fig.svg")
fig.savefig("fig.pdf")
""")


def has_cairosvg() -> bool:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def test_svg_and_pdf_without_a_renderer_wait_for_one(project: Path, tmp_path: Path) -> None:
    """Without cairosvg and pdftoppm they are counted as not compared, and get no cache
    entry: once a renderer is installed, the next lookup hashes them."""
    (project / "vectors.py").write_text(VECTORS)
    ok("run", "vectors.py", cwd=project)
    picture = unrelated(tmp_path / "picture.png")
    code = (
        "import sys; sys.modules['cairosvg'] = None\n"
        "from vestige.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", code, "which", "--similar", str(picture), "--json"]
    bare = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no pdftoppm
    done = subprocess.run(argv, cwd=project, env=bare, capture_output=True, check=False)
    assert done.returncode == 1, done.stderr.decode()
    data = json.loads(done.stdout)
    assert (data["compared"], data["skipped"], data["matches"]) == (1, 2, [])  # fig.png only
    assert len(phash_rows(project / ".vestige" / "index.sqlite")) == 1


@pytest.mark.skipif(
    not (has_cairosvg() and shutil.which("pdftoppm")),
    reason="optional renderers: cairosvg and poppler's pdftoppm",
)
def test_svg_and_pdf_are_rendered_when_a_renderer_is_installed(
    project: Path, tmp_path: Path
) -> None:
    (project / "vectors.py").write_text(VECTORS)
    ok("run", "vectors.py", cwd=project)
    copy = resized_jpeg(project / "fig.png", tmp_path / "copy.jpg")
    data = lookup(Lab(project, tmp_path), copy)
    paths = sorted(m["made_by"][0]["path"] for m in data["matches"])
    assert paths == ["fig.pdf", "fig.png", "fig.svg"]


# -- bad input -------------------------------------------------------------------------------


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err, err
    assert done.returncode == 2, (done.returncode, err)
    assert done.stdout == b""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["which", "--similar", "missing.png"], "no such file: missing.png"),
        (["which", "--similar", "plot.py"], "plot.py: not an image"),
        (["which", "--similar", "broken.png"], "broken.png: not an image"),
        (["which", "--limit", "3", "fig.png"], "--limit goes with --similar"),
        (["which", "--similar", "fig.png", "--limit", "0"], "--limit"),
    ],
    ids=["missing", "text-file", "png-that-is-not", "limit-without-similar", "limit-zero"],
)
def test_bad_input_is_one_error_line(lab: Lab, args: list[str], needle: str) -> None:
    before = phash_rows(lab.index)
    line = one_error_line(vestige(*args, cwd=lab.root))
    assert needle in line
    assert phash_rows(lab.index) == before


def test_without_the_extra_it_says_what_to_install(lab: Lab) -> None:
    """imagehash not importable (None in sys.modules): one line naming the extra, exit 2."""
    code = (
        "import sys; sys.modules['imagehash'] = None\n"
        "from vestige.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", code, "which", "--similar", "fig.png"]
    done = subprocess.run(argv, cwd=lab.root, capture_output=True, check=False)
    line = one_error_line(done)
    assert "pip install 'vestige[similar]'" in line
    assert "imagehash" in line


def test_docs_json_example_has_the_real_keys() -> None:
    """docs/cli.md's `which --similar --json` example has exactly the keys printed."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    m = re.search(r"<!-- json: which-similar -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert m, "docs/cli.md lacks the example marked '<!-- json: which-similar -->'"
    example = json.loads(m.group(1))
    assert set(example) == JSON_KEYS
    assert example["matches"]
    for match in example["matches"]:
        assert set(match) == MATCH_KEYS
        assert all(set(r) == MAKER_KEYS for r in [*match["made_by"], *match["read_by"]])
