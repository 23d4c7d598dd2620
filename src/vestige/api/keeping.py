"""`vestige.keep`: turn an object or a path into stored bytes with a name.

Known kinds are recognised only when their library is already imported (`import vestige`
never imports numpy, pandas, matplotlib or torch): a matplotlib Figure (or Axes) becomes
PNG at its own dpi and SVG; a pandas DataFrame or Series parquet (CSV when no parquet
engine is installed); a numpy array .npy; a torch tensor .npy of its values; a PIL image
PNG; JSON-able values .json; bytes as they are; a str without a name, or one naming an
existing file or folder, is that path; a str with a name that is no path is text.
Anything else is refused with a TypeError naming the kind and the way out
(`allow_pickle=True`); pickles are never loaded back without it.

Serialising happens in the caller's process (the object lives there); the bytes go
straight into the store's objects (content-addressed, so a figure kept every epoch
unchanged costs nothing), and one `keep` event names them in the run's API journal.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path, PurePosixPath

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Figure formats `keep(fig, "name.pdf")` may ask for by the name's suffix.
FIGURE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


class Item:
    """What `prepare` made of the object: a name, a kind, and bytes or files to store."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.payloads: list[tuple[str, bytes]] = []  # (file name, bytes)
        self.paths: list[tuple[str, Path]] = []  # (file name, file on disk)
        self.source: str | None = None
        self.note: str | None = None


def check_name(name: Any) -> str:
    """An artefact name: a relative path without '..', usable as a file name."""
    if not isinstance(name, str):
        raise TypeError(f"vestige.keep: the name must be str, got {type(name).__name__}")
    clean = name.strip().strip("/")
    parts = PurePosixPath(clean).parts
    if not clean or name.startswith("/") or ".." in parts or any(c in clean for c in "\0\n\r\\"):
        raise ValueError(
            f"vestige.keep: {name!r} is not a usable name; use a relative name like 'loss-curve'"
        )
    return "/".join(parts)


def prepare(obj: Any, name: str | None, allow_pickle: bool = False) -> Item:
    """Serialise `obj` (or list the files of a path); raise TypeError/ValueError on misuse."""
    if name is not None:
        name = check_name(name)
    if isinstance(obj, os.PathLike) or (isinstance(obj, str) and (name is None or _is_path(obj))):
        return _path_item(obj, name)  # a str without a name is a path; with one, text
    kind = _kind(obj)
    if kind is None:
        if not allow_pickle:
            raise TypeError(
                f"vestige.keep: cannot keep a {_type_name(obj)} (not a figure, DataFrame, "
                "array, tensor, image, JSON-able value, bytes, str or path); convert it, or "
                "pass allow_pickle=True to keep it as a pickle"
            )
        kind = "pickle"
    if name is None:
        name = _default_name(obj, kind)
    item = Item(name, kind)
    _SERIALISE[kind](obj, item)
    return item


def _is_path(text: str) -> bool:
    return 0 < len(text) < 4096 and "\n" not in text and "\0" not in text and os.path.exists(text)


def _type_name(obj: Any) -> str:
    t = type(obj)
    mod = t.__module__
    return t.__qualname__ if mod in ("builtins", None) else f"{mod}.{t.__qualname__}"


def _kind(obj: Any) -> str | None:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(obj, str):
        return "text"
    mods = sys.modules
    mod = type(obj).__module__ or ""
    if "matplotlib.figure" in mods and mod.startswith("matplotlib"):
        from matplotlib.figure import Figure

        if isinstance(obj, Figure):
            return "figure"
        if isinstance(getattr(obj, "figure", None), Figure) and hasattr(obj, "plot"):
            return "figure"  # an Axes: keep its figure
    if "pandas" in mods:
        pd = mods["pandas"]
        if isinstance(obj, (pd.DataFrame, pd.Series)):
            return "dataframe"
    if "numpy" in mods:
        np = mods["numpy"]
        if isinstance(obj, np.ndarray):
            return "array"
        if isinstance(obj, np.generic):
            return "json"
    if "torch" in mods and isinstance(obj, mods["torch"].Tensor):
        return "tensor"
    if "PIL.Image" in mods and isinstance(obj, mods["PIL.Image"].Image):
        return "image"
    if _jsonable(obj):
        return "json"
    return None


def _jsonable(obj: Any, depth: int = 0) -> bool:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return True
    if depth > 100:
        return False
    if isinstance(obj, (list, tuple)):
        return all(_jsonable(x, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _jsonable(v, depth + 1) for k, v in obj.items())
    return "numpy" in sys.modules and isinstance(obj, sys.modules["numpy"].generic)


def _default_name(obj: Any, kind: str) -> str:
    if kind == "figure":
        fig = _figure_of(obj)
        label = fig.get_label() if hasattr(fig, "get_label") else ""
        if label:
            return check_name(label.replace(" ", "-"))
        number = getattr(fig, "number", None)
        return f"figure-{number}" if number is not None else "figure"
    raise ValueError(f"vestige.keep: give this {_type_name(obj)} a name, e.g. keep(obj, 'scores')")


def _figure_of(obj: Any) -> Any:
    from matplotlib.figure import Figure

    return obj if isinstance(obj, Figure) else obj.figure


def _split(name: str, known: tuple[str, ...]) -> tuple[str, str | None]:
    """('loss', 'pdf') for 'loss.pdf' when pdf is a known suffix, else (name, None)."""
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and suffix.lower() in known:
        return stem, suffix.lower()
    return name, None


def _figure(obj: Any, item: Item) -> None:
    fig = _figure_of(obj)
    stem, fmt = _split(item.name, FIGURE_FORMATS)
    formats = [fmt] if fmt else ["png", "svg"]
    for f in formats:
        buf = io.BytesIO()
        save = getattr(type(fig).savefig, "__wrapped__", None) or type(fig).savefig
        save(fig, buf, format=f, dpi="figure")  # the unwrapped savefig: no savefig event
        item.payloads.append((f"{stem}.{f}", buf.getvalue()))
    shim = sys.modules.get("_vestige_shim")
    if shim is not None and hasattr(shim, "mark_kept"):
        shim.mark_kept(fig)  # kept now: not again at exit unless it changes


def _dataframe(obj: Any, item: Item) -> None:
    stem, fmt = _split(item.name, ("parquet", "csv"))
    frame = obj.to_frame() if hasattr(obj, "to_frame") and obj.ndim == 1 else obj
    if fmt != "csv" and _has_parquet():
        buf = io.BytesIO()
        try:
            frame.to_parquet(buf)
            item.payloads.append((f"{stem}.parquet", buf.getvalue()))
            return
        except Exception as e:  # mixed object columns and the like
            item.note = f"parquet failed ({type(e).__name__}: {e}); kept as CSV"
    elif fmt != "csv":
        item.note = "kept as CSV: no parquet engine (pyarrow) is installed"
    item.payloads.append((f"{stem}.csv", frame.to_csv().encode("utf-8")))


def _has_parquet() -> bool:
    from importlib.util import find_spec

    for name in ("pyarrow", "fastparquet"):
        try:
            if find_spec(name) is not None:
                return True
        except (ImportError, ValueError):  # ValueError: blocked with sys.modules[name] = None
            continue
    return False


def _array(obj: Any, item: Item) -> None:
    np = sys.modules["numpy"]
    if obj.dtype.hasobject:
        raise TypeError(
            "vestige.keep: an array of Python objects can only be kept as a pickle; "
            "pass allow_pickle=True or convert it to a numeric dtype"
        )
    stem, _ = _split(item.name, ("npy",))
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=False)
    item.payloads.append((f"{stem}.npy", buf.getvalue()))


def _tensor(obj: Any, item: Item) -> None:
    item.kind = "array"
    _array(obj.detach().cpu().numpy(), item)


def _image(obj: Any, item: Item) -> None:
    stem, _ = _split(item.name, ("png",))
    buf = io.BytesIO()
    obj.save(buf, format="PNG")
    item.payloads.append((f"{stem}.png", buf.getvalue()))


def _json(obj: Any, item: Item) -> None:
    import json

    stem, _ = _split(item.name, ("json",))
    data = json.dumps(obj, indent=2, sort_keys=True, default=_scalar, allow_nan=True)
    item.payloads.append((f"{stem}.json", (data + "\n").encode("utf-8")))


def _scalar(value: Any) -> Any:
    return value.item()  # numpy scalars (the only non-JSON type _jsonable lets through)


def _bytes(obj: Any, item: Item) -> None:
    item.payloads.append((item.name, bytes(obj)))


def _text(obj: Any, item: Item) -> None:
    name = item.name if "." in item.name.rsplit("/", 1)[-1] else item.name + ".txt"
    item.payloads.append((name, obj.encode("utf-8", "surrogateescape")))


def _pickle(obj: Any, item: Item) -> None:
    import pickle

    stem, _ = _split(item.name, ("pkl", "pickle"))
    item.payloads.append((f"{stem}.pkl", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)))


_SERIALISE = {
    "figure": _figure,
    "dataframe": _dataframe,
    "array": _array,
    "tensor": _tensor,
    "image": _image,
    "json": _json,
    "bytes": _bytes,
    "text": _text,
    "pickle": _pickle,
}


def _path_item(obj: Any, name: str | None) -> Item:
    path = Path(os.fsdecode(os.fspath(obj))).absolute()
    if not path.exists():
        raise FileNotFoundError(
            f"vestige.keep: no such file or folder: {path} (to keep text, give it a name)"
        )
    if name is None:
        name = check_name(path.name or "root")
    if path.is_dir():
        item = Item(name, "folder")
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d != ".vestige")
            for f in sorted(filenames):
                full = Path(dirpath) / f
                if full.is_file():
                    rel = full.relative_to(path).as_posix()
                    item.paths.append((f"{name}/{rel}", full))
    else:
        item = Item(name, "file")
        item.paths.append((name, path))
    item.source = str(path)
    return item


def store(item: Item, live: str) -> dict[str, Any]:
    """Put the item's bytes into the store that holds `live`; return the journal record."""
    from vestige.capture.redact import is_secret_file
    from vestige.store.objects import ObjectStore

    objects = ObjectStore(Path(live).parent.parent)
    files: list[dict[str, Any]] = []
    for fname, data in item.payloads:
        files.append({"path": fname, "hash": objects.put_bytes(data), "size": len(data)})
    for fname, full in item.paths:
        if is_secret_file(full.name):
            note = "not kept: the name looks like a credentials file"
            size = full.stat().st_size
            files.append({"path": fname, "hash": None, "size": size, "kept": False, "note": note})
            continue
        digest, size = objects.put_file(full)
        files.append({"path": fname, "hash": digest, "size": size})
    record: dict[str, Any] = {"name": item.name, "kind": item.kind, "files": files}
    if item.source:
        record["source"] = item.source
    if item.note:
        record["note"] = item.note
    return record


def stage(data: bytes, name: str, live: str) -> dict[str, Any]:
    """Write bytes vestige made itself into the live directory's staged/ folder for the
    seal to store (recording/seal.py); return the journal record naming them."""
    from vestige.store.live import STAGED

    folder = Path(live) / STAGED
    folder.mkdir(exist_ok=True)
    fname = f"{os.getpid()}-{len(os.listdir(folder))}-{name.replace('/', '_')}"
    tmp = folder / f".{fname}.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / fname)
    file = {"path": name, "staged": f"{STAGED}/{fname}", "size": len(data)}
    return {"name": name, "kind": "bytes", "files": [file]}
