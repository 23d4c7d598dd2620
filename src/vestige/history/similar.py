"""`which --similar`: the kept images that look like a file, by perceptual hash.

A figure pasted into slides and screenshotted, resized or re-encoded as JPEG has other
bytes, so `which` cannot find it by BLAKE3. Every kept image gets a perceptual hash, and
a lookup ranks them by Hamming distance to the file's.

Nothing is hashed while runs are sealed (no cost at run time). The hashes are a
content-addressed cache, table `phash` of the index: keyed by the object's BLAKE3, so an
entry never goes stale; a lookup first hashes the kept images that have no entry yet. An
image that cannot be decoded gets an `error` entry and is not tried again.

The hash is imagehash's phash and dhash at hash_size 16, side by side (512 bits), chosen
by measurement on 257 matplotlib figures (ten kinds of plot with random data, sizes and
dpi, several of them the same script's look-alikes) against copies of each: resized to
30-70% and saved as JPEG, the figure stays within 38 bits; cropped 4 px on each side,
within 66; cut 7 px on one side, 117; framed 6 px, 134. Figures of another kind are at
least 82 bits apart, and 0.02% of those pairs are within SIMILAR_BITS = 128 (a quarter),
which keeps every resize, JPEG, 4-7 px crop and screenshot (99% of 6-10 px frames, 93%
of 12 px crops). phash alone (256 bits, within 64) separates kinds as well but ranks
the true figure first less often (crop on one side: 7 of 257 not first, against 3;
10 px frame: 12 against 7); dhash alone lets 0.7% of other-kind pairs within 64; phash
at its 64-bit default puts figures of other kinds 10 bits apart and a 7 px crop 16 bits
from its figure; whash put another figure first for half the figures framed by 6 px.
What these hashes see is greyscale and small: the same curve in another colour or line
style is within 5 bits.

Pillow and imagehash are an optional extra (`vestige[similar]`), imported here only.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import tempfile
import warnings
from pathlib import Path

from vestige.errors import CorruptObject, PathMissing, UsageError
from vestige.records import Factory, Record
from vestige.repo import Maker, dedupe

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from PIL.Image import Image

    from vestige.index.files import Files
    from vestige.repo import Repo

#: The hash stored in `phash.algo`; entries of another algo are computed again.
ALGO = "phash16+dhash16"
BITS = 512
#: At most this many differing bits is "similar" (a quarter: see the module docstring).
SIMILAR_BITS = 128
#: File names (lower case) of kept images; SVG and PDF need a renderer (below).
RASTER = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
VECTOR = (".svg", ".pdf")
#: Roles of `files` rows whose bytes the store keeps and that name images.
ROLES = ("output", "input", "artefact")
#: Entries written per transaction: an interrupted lookup keeps what it hashed.
BATCH = 64
#: JPEGs are decoded no smaller than this a side, not at full size: Pillow's draft mode
#: scales the DCT by 1/2 to 1/8 (a 12 MP photo hashes in 19 ms instead of 132), and the
#: hashes look at 64x64 pixels anyway.
DRAFT = 256
PDF_TIMEOUT_S = 60
INSTALL_HINT = "pip install 'vestige[similar]'"


class Match(Record):
    """A kept image near the file: its bytes' hash, the distance, the runs behind it."""

    hash: str
    distance: int
    made_by: list[Maker] = Factory(list)
    read_by: list[Maker] = Factory(list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "distance": self.distance,
            "made_by": [m.to_dict() for m in self.made_by],
            "read_by": [r.to_dict() for r in self.read_by],
        }


class Lookup(Record):
    """The answer to `which --similar FILE` (its JSON is documented in docs/cli.md)."""

    path: str
    hash: str  # FILE's BLAKE3
    compared: int  # kept images compared
    skipped: int  # kept images not compared: undecodable, or SVG/PDF without a renderer
    nearest: int | None  # the smallest distance, similar or not (None: nothing compared)
    matches: list[Match] = Factory(list)
    threshold: int = SIMILAR_BITS

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "hash": self.hash,
            "algo": ALGO,
            "bits": BITS,
            "threshold": self.threshold,
            "compared": self.compared,
            "skipped": self.skipped,
            "nearest": self.nearest,
            "matches": [m.to_dict() for m in self.matches],
        }


def similar(
    repo: Repo,
    path: Path,
    limit: int = 5,
    threshold: int = SIMILAR_BITS,
    progress: Callable[[int], None] | None = None,
) -> Lookup:
    """The kept images within `threshold` bits of the image at `path`, nearest first.

    Hashes the kept images the cache lacks first (`progress(n)` is told how many, when
    any). Raises PathMissing, or UsageError when `path` is not an image or the extra is
    not installed.
    """
    if not path.is_file():
        raise PathMissing(f"no such file: {path}")
    _require_extra()
    from vestige.store.hashing import hash_file

    digest = hash_file(path)
    try:
        query = int(perceptual_hash(path), 16)
    except ImageError as e:
        raise UsageError(f"{path}: not an image vestige can compare ({e})") from None
    kept = kept_images(repo)
    hashes = fill(repo, kept, progress)
    distances = sorted(
        ((int(h, 16) ^ query).bit_count(), d) for d, h in hashes.items() if h is not None
    )
    matches = []
    for distance, d in distances[:limit]:
        if distance > threshold:
            break
        makers = dedupe([Maker.from_row(r) for r in repo.index.files.makers_of(d)])
        readers = dedupe([Maker.from_row(r) for r in repo.index.files.readers_of(d)])
        matches.append(Match(d, distance, makers, readers))
    return Lookup(
        path=str(path),
        hash=digest,
        compared=len(distances),
        skipped=len(kept) - len(distances),
        nearest=distances[0][0] if distances else None,
        matches=matches,
        threshold=threshold,
    )


def kept_images(repo: Repo) -> dict[str, str]:
    """{object hash: a file name} of every kept file whose name is an image's."""
    return repo.index.files.kept_named(ROLES, (*RASTER, *VECTOR))


def fill(
    repo: Repo, kept: dict[str, str], progress: Callable[[int], None] | None = None
) -> dict[str, str | None]:
    """{object hash: perceptual hash (hex) or None when it failed} for the kept images,
    hashing and caching those without an entry. Returns only the ones with an entry
    (an SVG without cairosvg, a PDF without pdftoppm, a missing object have none)."""
    files = repo.index.files
    known: dict[str, str | None] = {}
    for digest, cached in files.phashes(ALGO):
        if digest in kept:
            known[digest] = cached
    todo = [d for d, name in kept.items() if d not in known and _renderable(name)]
    if todo and progress is not None:
        progress(len(todo))
    rows: list[tuple[str, str | None, str, str | None]] = []
    for digest in todo:
        try:
            data = repo.store.objects.read_bytes(digest, verify=True)
        except CorruptObject:
            continue  # fsck's business; tried again once the store is repaired
        value: str | None = None
        error: str | None = None
        try:
            value = perceptual_hash(repo.store.objects.path(digest), data, kept[digest])
        except ImageError as e:
            error = str(e) or type(e).__name__
        known[digest] = value
        rows.append((digest, value, ALGO, error))
        if len(rows) >= BATCH:
            _write(files, rows)
    _write(files, rows)
    return known


def _write(files: Files, rows: list[tuple[str, str | None, str, str | None]]) -> None:
    """Cache the entries (then forget them); a failure costs only hashing them again."""
    if not rows:
        return
    try:
        files.put_phashes(rows)
    except sqlite3.Error:
        pass
    rows.clear()


# -- hashing --------------------------------------------------------------------------------


class ImageError(Exception):
    """Bytes that could not be decoded (or rendered) as an image; the message says why."""


def _why(e: BaseException) -> str:
    """One short line for an error message (CLI errors are one line)."""
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _require_extra() -> None:
    try:
        import imagehash  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"which --similar needs Pillow and imagehash ({e.name} is missing): {INSTALL_HINT}"
        ) from None


def perceptual_hash(path: Path, data: bytes | None = None, name: str | None = None) -> str:
    """The ALGO hash of an image file (hex, BITS/4 digits). `data` are its bytes if read
    already; `name` its file name if `path` has none (an object of the store).

    PNG, JPEG, GIF, BMP, TIFF, WebP (the first frame) through Pillow; SVG through cairosvg
    and PDF (the first page) through poppler's pdftoppm, when installed. Raises
    ImageError for anything else.
    """
    import imagehash

    if data is None:
        data = path.read_bytes()
    image = _flatten(_decode(path, data, (name or path.name).lower()))
    return f"{imagehash.phash(image, hash_size=16)}{imagehash.dhash(image, hash_size=16)}"


def _decode(path: Path, data: bytes, name: str) -> Image:
    from PIL import Image, ImageOps, UnidentifiedImageError

    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return _decode(path, _render_pdf(path), "page.png")
    if name.endswith(".svg") or head.startswith(b"<svg") or _xml_with_svg(head):
        return _decode(path, _render_svg(data), "drawing.png")
    with warnings.catch_warnings():  # DecompressionBombWarning, palette transparency notes
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
            image.draft("L", (DRAFT, DRAFT))  # JPEG only (others ignore it)
            image.load()
            return ImageOps.exif_transpose(image)
        except UnidentifiedImageError:
            raise ImageError("Pillow does not know its format") from None
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, ...
            raise ImageError(_why(e)) from None


def _xml_with_svg(head: bytes) -> bool:
    return head.startswith(b"<?xml") and b"<svg" in head


def _flatten(image: Image) -> Image:
    """Greyscale, transparency over white (as on a slide), deep images scaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        import numpy as np

        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        image = white
    return image.convert("L")


def _renderable(name: str) -> bool:
    lower = name.lower()
    if lower.endswith(".svg"):
        return _has_cairosvg()
    if lower.endswith(".pdf"):
        return shutil.which("pdftoppm") is not None
    return True


def _has_cairosvg() -> bool:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):  # OSError: the cairo library itself is missing
        return False
    return True


def _render_svg(data: bytes) -> bytes:
    if not _has_cairosvg():
        raise ImageError("an SVG, and rendering one needs cairosvg: pip install cairosvg")
    import cairosvg

    try:
        png: bytes = cairosvg.svg2png(bytestring=data)
    except Exception as e:  # cairosvg raises whatever its XML and CSS parsers raise
        raise ImageError(f"SVG: {_why(e)}") from None
    return png


def _render_pdf(path: Path) -> bytes:
    """The first page as PNG, 1024 px on its long side."""
    program = shutil.which("pdftoppm")
    if program is None:
        raise ImageError("a PDF, and rendering one needs poppler's pdftoppm")
    with tempfile.TemporaryDirectory(prefix="vestige-pdf-") as tmp:
        out = Path(tmp) / "page"
        try:
            done = subprocess.run(
                [program, "-f", "1", "-l", "1", "-singlefile", "-png", "-scale-to", "1024",
                 str(path), str(out)],
                capture_output=True, timeout=PDF_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ImageError(f"PDF: pdftoppm: {_why(e)}") from None
        page = out.with_suffix(".png")
        if done.returncode != 0 or not page.is_file():
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise ImageError(
                f"PDF: pdftoppm exited {done.returncode}: {why[0][:200] if why else ''}"
            )
        return page.read_bytes()
