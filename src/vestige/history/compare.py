"""Several runs side by side, each against the first (the UI's Compare page).

`compare(repo, refs)` gathers it all: the runs named by references as the CLI takes them
(`42`, `@last`, `-1`, an id prefix), their params and last metric values (`diff.compare_runs`,
as `vestige compare`), each run's code against the first run's (`diff.code_changes`, as
`vestige diff`), and the figures and tables the runs made at one path; `compare_shared`
compares each run's copy of one of them with the first copy (`diff.compare_file`:
filediff's verdicts), apart, since it reads and parses their bytes. `pixel_diff`
draws where two kept images differ, as a PNG (Pillow, imported only there).
"""

from __future__ import annotations

import io
import re

from vestige.errors import FileNotInRun, NotKept, UsageError, VestigeError
from vestige.history.diff import code_changes, compare_file, compare_runs, kept_files
from vestige.history.filediff import kind_of

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo

#: Runs one comparison may hold (each adds a column, a code diff and a copy of each figure).
MAX_RUNS = 50
#: Shared figures, and shared tables, compared on one page; the others are listed.
MAX_SHARED = 24
#: Files compared by content up to this size (by hash beyond): a page is made while a
#: person waits; `vestige diff` compares up to 64 MiB.
PAGE_COMPARE_MAX_SIZE = 16 * 1024 * 1024
#: No pixel difference for an image larger than this (4096 x 4096): its pixels are held
#: in memory, 4 bytes each, in several copies.
MAX_PIXELS = 4096 * 4096
#: The kinds of file (filediff.kind_of) shown as tables.
TABLE_KINDS = ("csv", "parquet", "json", "npy", "npz")
PILLOW_MISSING = "Pillow is not installed (pip install pillow): no pixel difference is drawn"


def parse_refs(texts: Sequence[str]) -> list[str]:
    """Run references from the URL's values: each may hold several, split at commas
    and white space (`12,15,@last`)."""
    return [ref for text in texts for ref in re.split(r"[,\s]+", text) if ref]


def resolve_runs(repo: Repo, refs: Sequence[str]) -> list[Run]:
    """The runs `refs` name, in that order, each once. Every bad reference is named in
    one UsageError (so a person fixes them all at once); fewer than 2 runs is one too."""
    ids: list[str] = []
    bad = []
    for ref in refs:
        try:
            ids.append(repo.resolve(ref))
        except VestigeError as e:
            bad.append(e.message)
    if bad:
        raise UsageError("; ".join(bad))
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2:
        named = f"{len(ids)} distinct run" + ("s" if len(ids) != 1 else "")
        raise UsageError(f"compare needs at least 2 runs; {named} named: give e.g. runs=12,15")
    if len(ids) > MAX_RUNS:
        raise UsageError(f"compare takes at most {MAX_RUNS} runs at once; {len(ids)} named")
    return [repo.run(i) for i in ids]


def compare(repo: Repo, refs: Sequence[str]) -> dict[str, Any]:
    """{"runs": [Run], "table": compare_runs' table, "code": code_against_first,
    "figures": ..., "tables": ... (shared_files), "more_figures", "more_tables"}; the
    shared files' contents are compared apart, a path at a time (compare_shared)."""
    runs = resolve_runs(repo, refs)
    figures, more_figures = shared_files(runs, ("image",))
    tables, more_tables = shared_files(runs, TABLE_KINDS)
    return {
        "runs": runs,
        "table": compare_runs(repo, [r.id for r in runs]),
        "code": code_against_first(repo, runs),
        "figures": figures,
        "more_figures": more_figures,
        "tables": tables,
        "more_tables": more_tables,
    }


def code_against_first(repo: Repo, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Each run's code snapshot against the first run's: [{"base", "run", "code"}] with
    `code` the section `vestige diff` shows (changed files, each with its unified diff)."""
    return [{"base": runs[0], "run": r, "code": code_changes(repo, runs[0], r)} for r in runs[1:]]


def shared_files(
    runs: Sequence[Run], kinds: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the first MAX_SHARED, the paths beyond them) of the files of these kinds that at
    least two of the runs made (outputs and artefacts, matched by path), each {"path",
    "kind", "base" (the index of the first run that has it), "files" ((size, hash, kept)
    or None, per run)}. Nothing is read: `compare_shared` compares one path's copies."""
    per_run = [kept_files(r) for r in runs]
    counts: dict[str, int] = {}
    for files in per_run:
        for path in files:
            counts[path] = counts.get(path, 0) + 1
    paths = sorted(p for p, n in counts.items() if n >= 2 and kind_of(p) in kinds)
    out = []
    for path in paths[:MAX_SHARED]:
        files = [f.get(path) for f in per_run]
        base = next(i for i, f in enumerate(files) if f is not None)
        out.append({"path": path, "kind": kind_of(path), "base": base, "files": files})
    return out, paths[MAX_SHARED:]


def compare_shared(
    repo: Repo, runs: Sequence[Run], path: str
) -> tuple[int, list[dict[str, Any] | None]]:
    """(base, diffs): the index of the first run that made `path`, and each run's copy
    against that first copy (filediff's verdict, as `vestige diff` gives it: a FileDiff
    dict), None for the base and for the runs without it.
    Apart from the page: parsing 10 runs' tables or decoding their images takes longer
    than the rest of the page (~15 ms a pair for a 640x480 PNG or a 1,000-row CSV)."""
    files = [kept_files(r).get(path) for r in runs]
    if all(f is None for f in files):
        raise FileNotInRun(f"none of these runs made {path!r}")
    base = next(i for i, f in enumerate(files) if f is not None)
    return base, [
        None
        if i == base or f is None
        else compare_file(repo, path, files[base], f, PAGE_COMPARE_MAX_SIZE).to_dict()
        for i, f in enumerate(files)
    ]


def pillow_missing() -> str | None:
    """Why no pixel difference can be drawn here, or None when it can."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return PILLOW_MISSING
    return None


def pixel_diff(repo: Repo, a: Run, b: Run, path: str) -> bytes:
    """A PNG of where run b's copy of image `path` differs from run a's (`draw_pixel_diff`)."""
    if pillow_missing():
        raise UsageError(PILLOW_MISSING)
    return draw_pixel_diff(_kept_bytes(repo, a, path), _kept_bytes(repo, b, path))


def _kept_bytes(repo: Repo, run: Run, path: str) -> bytes:
    """The bytes run kept at `path` (an output or artefact file), checked against its hash."""
    found = kept_files(run).get(path)
    if found is None:
        raise FileNotInRun(f"run #{run.seq} made no file {path!r}")
    size, digest, kept = found
    if not kept or not digest or not repo.store.objects.available(digest):
        raise NotKept(f"{path}: run #{run.seq} kept no copy of it")
    if size > PAGE_COMPARE_MAX_SIZE:
        raise UsageError(f"{path}: {size} bytes in run #{run.seq}, too large to draw")
    return repo.store.objects.read_bytes(digest, verify=True)


def draw_pixel_diff(a: bytes, b: bytes) -> bytes:
    """Where image b differs from image a: a's picture faded to light grey for context,
    each pixel that differs in any channel (alpha included) in red, stronger the larger
    the difference; images of two sizes are laid at the top left, and what only one
    covers counts as changed. The first frame of an animation. UsageError for bytes
    Pillow cannot read and for images over MAX_PIXELS."""
    from PIL import Image, ImageChops

    pictures = []
    for data in (a, b):
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise UsageError(
                        f"the image is {im.width}x{im.height}: too large to draw "
                        f"its pixel difference (over {MAX_PIXELS:,} pixels)"
                    )
                pictures.append(im.convert("RGBA"))  # (loads the first frame only)
        except UsageError:
            raise
        except Exception as e:  # any decoder's error on any bytes: said, never a crash
            raise UsageError(f"not an image Pillow can read ({type(e).__name__})") from None
    ia, ib = pictures
    size = (max(ia.width, ib.width), max(ia.height, ib.height))
    pa, pb = (_padded(im, size) for im in (ia, ib))
    bands = ImageChops.difference(pa, pb).split()
    change = bands[0]
    for band in bands[1:]:
        change = ImageChops.lighter(change, band)
    if ia.size != ib.size:
        alone = Image.new("L", size, 255)
        alone.paste(0, (0, 0, min(ia.width, ib.width), min(ia.height, ib.height)))
        change = ImageChops.lighter(change, alone)
    white = Image.new("RGBA", size, (255, 255, 255, 255))
    context = Image.alpha_composite(white, pa).convert("L").point(lambda v: 205 + v * 50 // 255)
    strength = change.point(lambda v: 0 if v == 0 else 140 + v * 115 // 255)
    red = Image.new("RGB", size, (214, 0, 48))
    out = Image.composite(red, context.convert("RGB"), strength)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def _padded(im: Any, size: tuple[int, int]) -> Any:
    """`im` on a transparent canvas of `size`, at the top left."""
    if im.size == size:
        return im
    from PIL import Image

    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(im, (0, 0))
    return canvas
