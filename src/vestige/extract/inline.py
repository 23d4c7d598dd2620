"""Figures a notebook only showed inline: what `vestige extract --artefact cell-N/output-K`
adds to the script so that it saves the figure as the inline backend rendered it.

In a kernel, matplotlib_inline shows a figure at `plt.show()`, `fig.show()`, `display(fig)`,
as the cell's value, and for every figure still open at the cell's end; each is rendered by
IPython's `print_figure`: `fig.canvas.print_figure(format, facecolor, edgecolor,
dpi=fig.dpi, bbox_inches="tight")` (twice the dpi for `retina`), plus the InlineBackend's
`print_figure_kwargs`. The recorded outputs of the cell say which of its figures the target
was (outputs whose text is `<Figure size ...>`, in order); the script routes the same ways
of showing through a stand-in (`_VestigeInline`) that counts the figures as they are shown
and saves the target's bytes, so nothing but the target file is written. Pure: no store.
"""

from __future__ import annotations

import ast
import re

from vestige.records import Record

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class InlineFigure(Record):
    """A figure the target cell showed inline: which one, and how the backend rendered it."""

    step: int  # 0-based step of the cell that showed it
    index: int  # 0-based, among the figures that cell showed, in the order shown
    path: str  # where the script saves it
    format: str  # png, jpeg or svg
    scale: int = 1  # 2 for the InlineBackend's `retina` PNGs
    options: str = "{}"  # InlineBackend.print_figure_kwargs beyond bbox_inches, as Python


_FIGURE_TEXT = "<Figure size "
_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "svg": "svg"}


def inline_figure(
    cells: Sequence[dict[str, Any]], step: int, name: str, sources: Sequence[str]
) -> InlineFigure | None:
    """The inline figure `name` (`cell-7/output-2`, with or without extension) that step
    `step` showed, or None when that output is not a matplotlib figure. `sources`: the
    history's cell sources, for the InlineBackend settings run before it."""
    outputs = cells[step].get("outputs") or ()
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    figures = 0
    for out in outputs:
        text = str(out.get("text") or "")
        files = [str(f) for f in out.get("files") or ()]
        is_figure = text.startswith(_FIGURE_TEXT)
        chosen = [f for f in files if f == name] or [
            f for f in files if f.rsplit(".", 1)[0] == stem
        ]
        if chosen:
            if not is_figure:
                return None
            chosen.sort(key=lambda f: (f != name, not f.endswith(".png")))
            ext = chosen[0].rsplit(".", 1)[-1].lower()
            if ext not in _FORMATS:
                return None
            scale, options = backend_settings(sources[:step])
            return InlineFigure(
                step=step,
                index=figures,
                path=chosen[0].replace("/", "-"),
                format=_FORMATS[ext],
                scale=scale if ext == "png" else 1,
                options=options,
            )
        figures += is_figure
    return None


_CONFIG = re.compile(
    r"^\s*%config\s+InlineBackend\.(figure_formats?|print_figure_kwargs)\s*=\s*(.+?)\s*$",
    re.MULTILINE,
)
_SET_FORMATS = re.compile(r"set_matplotlib_formats\(\s*(['\"])(\w+)\1")


def backend_settings(sources: Sequence[str]) -> tuple[int, str]:
    """(dpi scale, extra print_figure kwargs as Python) from the `%config InlineBackend...`
    and `set_matplotlib_formats(...)` lines the session ran (the last ones win)."""
    scale, options = 1, "{}"
    for source in sources:
        for match in _CONFIG.finditer(source):
            key, value = match.groups()
            try:
                literal = ast.literal_eval(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if key == "print_figure_kwargs" and isinstance(literal, dict):
                options = repr(literal)  # in place of the default {"bbox_inches": "tight"}
            elif key != "print_figure_kwargs":
                formats = {literal} if isinstance(literal, str) else set(literal or ())
                scale = 2 if "retina" in formats or "png2x" in formats else 1
        for match in _SET_FORMATS.finditer(source):
            scale = 2 if match.group(2) in ("retina", "png2x") else 1
    return scale, options


_HELPER = '''
class _VestigeInline:
    """The notebook's inline backend while cell [{count}] ran: it showed a figure at
    plt.show(), fig.show(), display(fig), as the cell's value and at the cell's end, each
    rendered by IPython's print_figure. The target is the figure it showed {nth}: saved
    to {path!r} as it was rendered then."""

    def __init__(self, want, path, fmt, scale, options):
        self.want, self.path, self.fmt, self.scale = want, path, fmt, scale
        self.options = options
        self.shown = 0

    def start(self):
        """Show figures the ways the inline backend did, for the cell's code."""
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        self.plt, self.figure_class = plt, Figure

        def show(*args, **kwargs):  # a function: pyplot sets its __signature__
            self.show()

        plt.show = show
        Figure.show = lambda fig, *args, **kwargs: self.render(fig)
        shown_before = globals().get("display")

        def display(*objects, **options):
            for obj in objects:
                if isinstance(obj, Figure):
                    self.render(obj)
                elif shown_before is not None:
                    shown_before(obj, **options)
                else:
                    print(obj)

        globals()["display"] = display
        for name in ("IPython.display", "IPython.core.display_functions"):
            if name in sys.modules:
                sys.modules[name].display = display

    def render(self, fig):
        """One figure shown: IPython's print_figure of it, saved if it is the target."""
        if self.shown == self.want and (fig.axes or fig.lines):
            import io

            kwargs = {{"format": self.fmt, "facecolor": fig.get_facecolor(),
                      "edgecolor": fig.get_edgecolor(), "dpi": fig.dpi * self.scale,
                      "bbox_inches": "tight", **self.options}}
            data = io.BytesIO()
            fig.canvas.print_figure(data, **kwargs)
            with open(self.path, "wb") as out:
                out.write(data.getvalue())
        self.shown += 1

    def show(self):
        """plt.show() and the cell's end: every open figure shown, then all closed."""
        from matplotlib._pylab_helpers import Gcf

        for manager in Gcf.get_all_fig_managers():
            self.render(manager.canvas.figure)
        self.plt.close("all")

    def value(self, value):
        """The cell's value: shown when it is a figure."""
        if isinstance(value, self.figure_class):
            self.render(value)
        return value

    def end(self):
        """The cell's end: the figures still open are shown; say if the target was not."""
        self.show()
        if self.shown <= self.want:
            print(f"vestige: the cell showed {{self.shown}} figure(s) this time, not the one "
                  f"saved as {{self.path}}", file=sys.stderr)


_vestige_inline = _VestigeInline({index}, {path!r}, {fmt!r}, {scale}, {options})
'''


def helper(figure: InlineFigure, count: str) -> str:
    """The script's stand-in for the inline backend, set to save `figure`."""
    nth = _ordinal(figure.index + 1)
    return _HELPER.format(
        count=count,
        nth=nth,
        path=figure.path,
        index=figure.index,
        fmt=figure.format,
        scale=figure.scale,
        options=figure.options,
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def show_value(code: str, source: str) -> str:
    """The cell's code with its last expression passed to `_vestige_inline.value(...)`: IPython
    showed a cell's value (a figure too) unless the cell ended with `;`."""
    if source.rstrip().endswith(";"):
        return code
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    last = tree.body[-1]
    lines = code.splitlines(keepends=True)
    start = sum(len(line) for line in lines[: last.lineno - 1]) + _chars(
        lines[last.lineno - 1], last.col_offset
    )
    end_line = last.end_lineno or last.lineno
    end = sum(len(line) for line in lines[: end_line - 1]) + _chars(
        lines[end_line - 1], last.end_col_offset or 0
    )
    return f"{code[:start]}_vestige_inline.value({code[start:end]}){code[end:]}"


def _chars(line: str, byte_col: int) -> int:
    """A character offset from ast's UTF-8 byte column."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))
