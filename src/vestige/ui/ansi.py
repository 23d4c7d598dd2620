"""Terminal output as HTML: SGR colour and style codes become spans with classes (the
page's CSP allows no inline style), every other escape sequence is dropped, the text is
escaped. 256-colour and true-colour codes map to the nearest of the 256 palette classes
of `palette_css()`."""

from __future__ import annotations

import html
import re

# CSI ... final byte, OSC ... BEL/ST, and lone two-byte escapes
_ESCAPES = re.compile(r"\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_BASIC = [
    "#000000",
    "#cd3131",
    "#0dbc79",
    "#c8a300",
    "#2472c8",
    "#bc3fbc",
    "#11a8cd",
    "#c8c8c8",
    "#666666",
    "#f14c4c",
    "#23d18b",
    "#e5c000",
    "#3b8eea",
    "#d670d6",
    "#29b8db",
    "#ffffff",
]


def _cube(n: int) -> str:
    levels = (0, 95, 135, 175, 215, 255)
    n -= 16
    return f"#{levels[n // 36]:02x}{levels[n // 6 % 6]:02x}{levels[n % 6]:02x}"


def palette() -> list[str]:
    """The 256 colours of xterm: 16 basic, a 6x6x6 cube, 24 greys."""
    greys = [f"#{8 + 10 * i:02x}{8 + 10 * i:02x}{8 + 10 * i:02x}" for i in range(24)]
    return [*_BASIC, *(_cube(n) for n in range(16, 232)), *greys]


def palette_css() -> str:
    """The classes `to_html` uses: a-fN / a-bN (colour N as foreground / background)."""
    rules = [".a-bold{font-weight:bold}.a-dim{opacity:.7}.a-it{font-style:italic}"
             ".a-ul{text-decoration:underline}"]  # fmt: skip
    for n, colour in enumerate(palette()):
        rules.append(f".a-f{n}{{color:{colour}}}.a-b{n}{{background:{colour}}}")
    return "\n".join(rules) + "\n"


def _nearest(r: int, g: int, b: int) -> int:
    """The palette colour (of the cube and greys) closest to an RGB value."""
    best, best_d = 16, 1 << 30
    for n, colour in enumerate(palette()[16:], start=16):
        cr, cg, cb = int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
        d = (cr - r) ** 2 + (cg - g) ** 2 + (cb - b) ** 2
        if d < best_d:
            best, best_d = n, d
    return best


class _Style:
    """The SGR state: colours and attributes."""

    def __init__(self) -> None:
        self.fg: int | None = None
        self.bg: int | None = None
        self.attrs: set[str] = set()

    def apply(self, params: str) -> None:
        codes = [int(c) if c.isdigit() else 0 for c in params.replace(":", ";").split(";")]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.fg, self.bg, self.attrs = None, None, set()
            elif c in (1, 2, 3, 4):
                self.attrs.add({1: "a-bold", 2: "a-dim", 3: "a-it", 4: "a-ul"}[c])
            elif c in (22, 23, 24):
                self.attrs -= {22: {"a-bold", "a-dim"}, 23: {"a-it"}, 24: {"a-ul"}}[c]
            elif 30 <= c <= 37 or 90 <= c <= 97:
                self.fg = c - 30 if c < 90 else c - 82
            elif 40 <= c <= 47 or 100 <= c <= 107:
                self.bg = c - 40 if c < 100 else c - 92
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                colour, used = _extended(codes[i + 1 :])
                if colour is not None:
                    if c == 38:
                        self.fg = colour
                    else:
                        self.bg = colour
                i += used
            i += 1

    def classes(self) -> str:
        out = sorted(self.attrs)
        if self.fg is not None:
            out.append(f"a-f{self.fg}")
        if self.bg is not None:
            out.append(f"a-b{self.bg}")
        return " ".join(out)


def _extended(rest: list[int]) -> tuple[int | None, int]:
    """38;5;N or 38;2;R;G;B after the 38/48: (palette colour, codes used)."""
    if rest[0] == 5 and len(rest) > 1:
        return max(0, min(255, rest[1])), 2
    if rest[0] == 2 and len(rest) > 3:
        return _nearest(*(max(0, min(255, v)) for v in rest[1:4])), 4
    return None, 1


def to_html(text: str) -> str:
    """`text` (with its escape sequences) as escaped HTML with spans for its styles."""
    style = _Style()
    out: list[str] = []
    pos = 0
    open_span = False
    for m in _ESCAPES.finditer(text):
        if m.start() > pos:
            out.append(html.escape(text[pos : m.start()]))
        pos = m.end()
        if m.group(2) != "m":
            continue  # cursor moves, erases, OSC titles: nothing to show
        style.apply(m.group(1) or "0")
        if open_span:
            out.append("</span>")
            open_span = False
        classes = style.classes()
        if classes:
            out.append(f'<span class="{classes}">')
            open_span = True
    out.append(html.escape(text[pos:]))
    if open_span:
        out.append("</span>")
    return "".join(out)
