"""`vestige ui` in a real browser: Debian's Chromium driven by Playwright (its own browser
builds are never downloaded: `executable_path`), over the store of tests/test_ui.py made
by real `vestige run`s. Every step waits for what it needs (a selector, a URL, the chart's
data), never for a fixed time; a screenshot of each page is kept under the test's temp
folder. Skipped, saying why, where Chromium or Playwright is missing (`make chromium`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import module_environment
from test_ui import CodeLab, Lab, Server, build_codelab, build_lab, start_live_run

CHROMIUM = (
    os.environ.get("VESTIGE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (`make chromium`, or apt-get install chromium)",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[dev]')")  # fmt: skip
pytest.importorskip("starlette", reason="the ui extra is not installed: pip install -e '.[ui]'")

#: As the machine's notes say: no sandbox (root), no GPU, and none of Chromium's own
#: network traffic (the machine has no internet; each refused connection is noise).
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]  # fmt: skip
WAIT_MS = 60_000  # a busy 2-core machine: generous, and only ever an upper bound


class Browser:
    """One page of Chromium, with every console error and page error it saw."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def unexpected_errors(self, base: str) -> list[str]:
        """Console errors but those saying a sandboxed artefact's script was blocked (that
        is the sandbox working, reported by Chromium as an error)."""
        blocked = re.compile(rf"Blocked script execution in '{re.escape(base)}/artefact/[^']+' "
                             r"because the document's frame is sandboxed")  # fmt: skip
        return [e for e in self.errors if not blocked.match(e)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with module_environment(tmp_path_factory, "ui-browser") as base:
        yield build_lab(base)


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[Server]:
    with Server(lab.root) as srv:
        yield srv


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(chromium: Any, tmp_path: Path) -> Iterator[Browser]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Browser(context.new_page(), shots)
    finally:
        context.close()


def until(page: Any, script: str) -> None:
    """Wait until `script` (a JS expression) is true in the page. Not page.wait_for_function:
    its polling compiles the predicate with eval, which the UI's CSP forbids (as it should);
    page.evaluate goes through the debugger protocol, which a page's CSP does not govern."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not page.evaluate(f"() => Boolean({script})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {script}")
        page.wait_for_timeout(50)  # (between two looks at the condition)


def go(page: Any, action: Any, *args: str) -> None:
    """Do what navigates (a click, a key) and wait until the new page has loaded."""
    with page.expect_navigation():
        action(*args)


def seqs(page: Any) -> list[int]:
    found = page.eval_on_selector_all(
        "#runs tbody tr[data-seq]", "rs => rs.map(r => r.dataset.seq)"
    )
    return [int(s) for s in found]


def test_runs_page_filter_sort_columns_and_sweep(
    lab: Lab, server: Server, browser: Browser
) -> None:
    page = browser.page
    page.goto(server.base + "/")
    page.wait_for_selector("#runs tbody tr[data-seq]")
    assert seqs(page) == [6, 2, 1]
    page.wait_for_selector("#count:has-text('3 runs')")
    assert page.inner_text("tr[data-seq='1'] .badge") == "ok"
    browser.shot("runs")

    # expand the sweep: its three children under it
    go(page, page.click, f"a[data-expand='{lab.ids[2]}']")
    page.wait_for_selector("tr.depth-1")
    assert seqs(page) == [6, 2, 3, 4, 5, 1]
    assert "open=" in page.url
    browser.shot("runs-sweep-open")

    # a valid filter
    page.goto(server.base + "/")
    page.fill("#where", "params.lr >= 0.2")
    go(page, page.press, "#where", "Enter")
    page.wait_for_url(re.compile(r"where=params\.lr"))
    page.wait_for_selector("#count:has-text('2 runs')")
    assert seqs(page) == [5, 4]
    browser.shot("runs-filtered")

    # an invalid one: shown inline, the bad part marked
    page.fill("#where", "params.lr >= 0.2 and and")
    go(page, page.press, "#where", "Enter")
    page.wait_for_selector("#where-error")
    assert page.inner_text("#where-error mark") == "and"
    assert "expected a field" in page.inner_text("#where-error")
    assert page.get_attribute("#where", "aria-invalid") == "true"
    assert seqs(page) == []
    browser.shot("runs-bad-where")

    # pick a metric column, then sort by it
    page.goto(server.base + "/?fold=0")
    page.click("#columns summary")
    page.check("input[name=col][value='metrics.loss']")
    go(page, page.click, "#apply-columns")
    page.wait_for_selector("th a[data-sort='metrics.loss']")
    assert "cols=metrics.loss" in page.url or "col=metrics.loss" in page.url
    go(page, page.click, "th a[data-sort='metrics.loss']")
    page.wait_for_url(re.compile(r"sort=metrics\.loss"))
    page.wait_for_selector("th a[data-sort='metrics.loss']:has-text('▼')")
    losses = page.eval_on_selector_all("#runs tbody tr[data-seq] td:last-child",
                                       "cells => cells.map(c => c.textContent.trim())")  # fmt: skip
    shown = [float(x) for x in losses if x]
    assert len(shown) == 4 and shown == sorted(shown, reverse=True)
    assert seqs(page)[-1] == 2  # the sweep's parent logged nothing: last
    # and by a run column
    go(page, page.click, "th a[data-sort='duration']")
    page.wait_for_url(re.compile(r"sort=duration"))
    assert sorted(seqs(page)) == [1, 2, 3, 4, 5, 6]  # fold=0 kept through every form and link
    browser.shot("runs-sorted")

    # select runs
    page.check("tr[data-seq='3'] input[name=run]")
    page.check("tr[data-seq='4'] input[name=run]")
    page.wait_for_selector("#selection:not([hidden])")
    assert page.inner_text("#selected-count") == "2"
    assert browser.unexpected_errors(server.base) == []


def test_run_page_chart_artefacts_and_a_note(lab: Lab, server: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(server.base + "/")
    go(page, page.click, "tr[data-seq='1'] td.command a")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[1]}$"))
    page.wait_for_selector("#run-title")
    assert "train.py --lr 0.05" in page.inner_text("#command")
    # the metric chart holds the series' points (plotly's own data on the element)
    until(page, "Array.from(document.querySelectorAll('.chart'))"
                           ".every(d => d.dataset.ready === '1')")  # fmt: skip
    chart = page.evaluate("""() => {
        const d = Array.from(document.querySelectorAll('.chart'))
            .find(e => e.dataset.key === 'loss').data[0];
        return {n: d.x.length, x0: d.x[0], y0: d.y[0], last: d.y[299]};
    }""")
    assert chart == {"n": 300, "x0": 0, "y0": 1.0, "last": pytest.approx(1 / (1 + 299 * 0.05))}
    # the image artefact, drawn
    until(page, "document.querySelector(\"img[alt='out/curve.png']\")?.naturalWidth > 0")
    # the CSV as a table of its first rows, with column types
    table = page.locator("figure[data-path='out/table.csv'] table.preview")
    assert table.locator("thead th").all_inner_texts()[:2] == ["epoch int", "loss float"]
    assert table.locator("tbody tr").count() == 20
    # coloured stdout
    assert page.locator("#stdout span.a-f1").inner_text() == "red"
    browser.shot("run")

    # the HTML and SVG artefacts, each with a script: framed, sandboxed, never run here
    until(page, "document.querySelectorAll('iframe[sandbox]').length === 2")
    for frame_url in ("out/page.html", "out/pic.svg"):
        frame = page.frame_locator(f"iframe[title='{frame_url}']")
        frame.locator("body, svg").first.wait_for(state="attached")
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("document.cookie") == ""
    assert not [c for c in page.context.cookies() if c["name"] == "pwned"]

    # open the image and the CSV themselves
    response = page.goto(server.base + f"/artefact/{lab.ids[1]}/out/curve.png")
    assert response is not None and response.ok
    assert response.headers["content-type"] == "image/png"
    until(page, "document.images.length === 1 && document.images[0].naturalWidth > 0")
    browser.shot("artefact-png")
    response = page.goto(server.base + f"/artefact/{lab.ids[1]}/out/table.csv")
    assert response is not None and response.ok
    assert page.inner_text("body").startswith("epoch,loss,name")
    browser.shot("artefact-csv")

    # add a note: a POST with the form's CSRF token, back to the run
    page.goto(server.base + f"/run/{lab.ids[4]}")
    page.fill("#note-text", "the loss plateaus after step 100")
    go(page, page.click, "#add-note")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[4]}#notes$"))
    page.wait_for_selector(".note-text:has-text('the loss plateaus after step 100')")
    page.fill("#tag-form input[name=add]", "keep")
    go(page, page.click, "#tag-form button")
    page.wait_for_selector("#tag-list .tag:has-text('keep')")
    browser.shot("run-noted")
    # the package list filters as one types
    page.click("#packages summary")
    page.fill("#package-filter", "blake3")
    until(page, "Array.from(document.querySelectorAll('#package-list tr'))"
                           ".filter(r => !r.hidden).length === 1")  # fmt: skip
    assert browser.unexpected_errors(server.base) == []
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_active_artefacts_opened_directly_are_downloads(lab: Lab, server: Server,
                                                         browser: Browser) -> None:  # fmt: skip
    """Opened as a page of its own, an HTML or SVG artefact is a download, not a page of
    the UI's origin; so no script of it runs there."""
    page = browser.page
    page.goto(server.base + "/")
    for name in ("page.html", "pic.svg"):
        with page.expect_download() as download:
            page.evaluate("url => { const a = document.createElement('a'); a.href = url;"
                          " document.body.appendChild(a); a.click(); }",
                          f"/artefact/{lab.ids[1]}/out/{name}")  # fmt: skip
        assert download.value.suggested_filename == name
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert not [c for c in page.context.cookies() if c["name"] == "pwned"]
    assert browser.unexpected_errors(server.base) == []


def test_compare_two_runs(lab: Lab, server: Server, browser: Browser) -> None:
    """Select two runs, press Compare: the table, both figures side by side, the overlay's
    slider, the pixel difference drawn by the server, a chart with a trace per run."""
    page = browser.page
    page.goto(server.base + "/?fold=0")
    page.wait_for_selector("#runs tbody tr[data-seq]")
    page.check("tr[data-seq='3'] input[name=run]")
    page.check("tr[data-seq='1'] input[name=run]")
    page.wait_for_selector("#compare-selected[aria-disabled='false']")
    go(page, page.click, "#compare-selected")
    page.wait_for_url(re.compile(r"/compare\?runs=1,3$"))
    assert page.inner_text("#compare-title") == "Compare #1, #3"
    # the differing rows first, the same ones behind the toggle
    visible = "Array.from(document.querySelectorAll('#compare-table tr[data-name]')).filter(r => !r.hidden).map(r => r.dataset.name)"  # noqa: E501
    assert page.evaluate(visible) == ["lr", "loss"]
    page.check("#show-same")
    assert page.evaluate(visible) == ["lr", "loss", "model", "acc"]
    assert page.url.endswith("same=1")  # the view stays a URL to share

    # both copies of the figure, side by side, drawn
    figure = "#figures .compare-figure[data-path='out/curve.png']"
    until(page, f"Array.from(document.querySelectorAll(\"{figure} .side-by-side img\"))"
                ".filter(i => i.naturalWidth > 0).length === 2")  # fmt: skip
    left, right = page.locator(f"{figure} .side-by-side img").all()
    box_l, box_r = left.bounding_box(), right.bounding_box()
    assert box_l and box_r and box_r["x"] >= box_l["x"] + box_l["width"]  # beside it
    assert abs(box_r["y"] - box_l["y"]) < 1  # on one line
    # the overlay: the slider sets how much of #3 shows, as opacity, then as a wipe
    over = f"{figure} figure.overlay img.over"
    slider = f"{figure} .overlay-slider"
    page.fill(slider, "20")
    until(page, f"getComputedStyle(document.querySelector(\"{over}\")).opacity === '0.2'")
    page.check(f"{figure} .overlay-mode[value=wipe]")
    page.fill(slider, "30")
    until(page, f"getComputedStyle(document.querySelector(\"{over}\")).clipPath"
                " === 'inset(0px 70% 0px 0px)'")  # fmt: skip
    assert page.evaluate(f'getComputedStyle(document.querySelector("{over}")).opacity') == "1"
    # the pixel difference: a PNG the server drew, as large as the figure
    until(page, f'document.querySelector("{figure} img.pixel-diff").naturalWidth > 0')
    sizes = page.evaluate(f"""() => [document.querySelector("{figure} img.pixel-diff"),
                                    document.querySelector("{figure} .side-by-side img")]
                                   .map(i => [i.naturalWidth, i.naturalHeight])""")  # fmt: skip
    assert sizes[0] == sizes[1]
    # filediff's verdicts, fetched after the page: the figure's, the tables'
    slot = f"{figure} .verdict-slot[data-verdict-seq='3']"
    until(page, f'document.querySelector("{slot}").dataset.verdict === "differs"')
    assert "of pixels changed" in page.inner_text(slot)
    table = "#tables .compare-table-file[data-path='out/table.csv'] .verdict-slot"
    until(page, f'document.querySelector("{table}").dataset.verdict === "identical"')
    # a chart per metric, a trace per run (plotly's own data on the element)
    until(page, "Array.from(document.querySelectorAll('#compare-charts .chart'))"
                ".every(d => d.dataset.ready === '1')")  # fmt: skip
    loss = page.evaluate("""() => document.querySelector("#compare-charts .chart[data-key='loss']")
                         .data.map(t => [t.name, t.x.length, t.y[299]])""")  # fmt: skip
    assert loss == [["#1", 300, pytest.approx(1 / (1 + 299 * 0.05))],
                    ["#3", 300, pytest.approx(1 / (1 + 299 * 0.1))]]  # fmt: skip
    page.locator(figure).scroll_into_view_if_needed()
    browser.shot("compare")
    assert browser.unexpected_errors(server.base) == []


def transform(page: Any) -> tuple[float, float, float]:
    """(x, y, scale) of the lineage graph's viewport."""
    text = page.get_attribute("#viewport", "transform")
    m = re.fullmatch(r"translate\(([-\d.]+) ([-\d.]+)\) scale\(([-\d.]+)\)", text or "")
    assert m, text
    x, y, s = (float(g) for g in m.groups())
    return x, y, s


def node_key(page: Any, label: str) -> str:
    """The data-key of the lineage node whose drawn label starts with `label`."""
    key = page.evaluate("""label => Array.from(document.querySelectorAll('#lineage a.node'))
        .find(a => a.querySelector('text').textContent.startsWith(label))?.dataset.key""",
                        label)  # fmt: skip
    assert key, f"no node {label!r}"
    return str(key)


def test_lineage_follow_zoom_and_pan(lab: Lab, server: Server, browser: Browser) -> None:
    """From a run to its lineage, to a file it wrote, to the run that read it; the wheel
    zooms about the pointer and a drag pans (the viewport's transform), a drag over a
    node does not open it."""
    page = browser.page
    page.goto(server.base + f"/run/{lab.ids[5]}")
    go(page, page.click, "#lineage-link")
    page.wait_for_url(re.compile(rf"/lineage\?run={lab.ids[5]}$"))
    page.wait_for_selector("#lineage a.node-centre")
    assert transform(page) == (0, 0, 1)
    centre = page.locator("#lineage a.node-centre rect").bounding_box()
    assert centre
    start = (centre["x"] + centre["width"] / 2, centre["y"] + centre["height"] / 2)
    page.mouse.move(*start)
    page.mouse.wheel(0, -300)
    until(page, "document.getElementById('viewport').getAttribute('transform') !== "
                "'translate(0.00 0.00) scale(1.0000)'")  # fmt: skip
    x0, y0, zoomed = transform(page)
    assert zoomed > 1 and (x0, y0) != (0, 0)  # about the pointer, not the corner
    under = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('a')?.dataset.key",
                          list(start))  # fmt: skip
    assert under == "r:" + lab.ids[5]  # the node under the pointer stayed there
    # a drag that starts on a node pans, and does not follow its link
    page.mouse.down()
    page.mouse.move(start[0] - 150, start[1] + 60, steps=6)
    page.mouse.up()
    x1, y1, scale = transform(page)
    assert scale == zoomed and x1 < x0 and y1 > y0
    assert re.search(rf"/lineage\?run={lab.ids[5]}$", page.url)
    browser.shot("lineage-zoomed")
    page.click("#lineage-reset")
    assert transform(page) == (0, 0, 1)
    browser.shot("lineage-run")

    # the table the run wrote: its own graph, with the run that read it
    go(page, page.click, f"#lineage a[data-key='{node_key(page, 'out/table.csv')}']")
    page.wait_for_url(re.compile(r"/lineage\?file=out%2Ftable\.csv&hash=[0-9a-f]{64}$"))
    assert page.get_attribute("#lineage a.node-centre", "data-kind") == "file"
    reader = node_key(page, "#6 ")
    assert reader == "r:" + lab.ids[6]
    browser.shot("lineage-file")
    go(page, page.click, f"#lineage a[data-key='{reader}']")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[6]}$"))
    assert "read.py" in page.inner_text("#command")
    assert browser.unexpected_errors(server.base) == []


def test_lookup_a_chosen_and_a_dropped_file(lab: Lab, server: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(server.base + "/lookup")
    page.set_input_files("#lookup-file", str(lab.root / "out" / "curve.png"))
    go(page, page.click, "#lookup-submit")
    page.wait_for_selector("#lookup-makers")
    browser.shot("lookup-chosen")
    go(page, page.click, "#lookup-makers a.maker")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[5]}$"))  # the run that made the figure

    # dropped on the box: sent at once, with the form's token
    page.goto(server.base + "/lookup")
    data = list((lab.root / "out" / "table.csv").read_bytes())
    with page.expect_navigation():
        page.evaluate("""bytes => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], "table.csv", {type: "text/csv"}));
            document.getElementById("drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", data)  # fmt: skip
    page.wait_for_selector("#lookup-makers")
    makers = page.eval_on_selector_all("#lookup-makers a.maker", "as => as.map(a => a.textContent)")
    assert makers == ["#1", "#3", "#4", "#5"]  # the same table, each run once, first maker first
    browser.shot("lookup-dropped")
    go(page, page.click, "#lookup-makers a.maker")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[1]}$"))
    assert browser.unexpected_errors(server.base) == []


def test_debt_ledger_unit_and_code(lab: Lab, server: Server, browser: Browser) -> None:
    page = browser.page
    page.goto(server.base + "/")
    go(page, page.click, "header nav a[href='/debt']")
    page.wait_for_selector("#ledger tr[data-unit='train.py']")
    assert page.inner_text("#ledger tr[data-unit='train.py'] .verdict") == "fine sloppy"
    browser.shot("debt")
    go(page, page.click, "#ledger tr[data-unit='train.py'] td.unit a")
    page.wait_for_selector("#unit-title")
    assert "few runs" in page.inner_text("#reasons")
    browser.shot("debt-unit")
    go(page, page.click, "a.code-link")
    page.wait_for_selector("#code .hl")
    assert "import argparse" in page.inner_text("#code")
    browser.shot("debt-code")
    assert browser.unexpected_errors(server.base) == []


# -- the run page, whole: code, notebook cells, zoom, live (issue 16) ---------------------------


@pytest.fixture(scope="module")
def codelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CodeLab, Server]]:
    with module_environment(tmp_path_factory, "ui-browser-code") as base:
        made = build_codelab(base)
        with Server(made.root) as srv:
            yield made, srv


def test_code_tree_file_and_diff(codelab: tuple[CodeLab, Server], browser: Browser) -> None:
    lab, srv = codelab
    page = browser.page
    page.goto(srv.base + f"/run/{lab.ids[2]}")
    link = page.locator("#code a[data-path='pkg/util.py']")
    assert not link.is_visible()  # folders start folded
    page.click("#code summary:has-text('pkg/')")
    go(page, link.click)
    page.wait_for_url(re.compile(rf"/run/{lab.ids[2]}/code/pkg/util\.py$"))
    assert page.inner_text("#code-path") == "pkg/util.py"
    assert page.locator("#code-view .hl span.k", has_text="def").count() == 1  # highlighted
    assert page.locator("#code-tree li.current a").inner_text() == "util.py"
    browser.shot("run-code-file")
    go(page, page.click, "text=changes since the previous run")
    page.wait_for_url(re.compile(rf"/run/{lab.ids[2]}/diff$"))
    assert page.inner_text("#changed-files") == "modified fit.py"
    removed = page.locator(".diff-view .gd").all_inner_texts()
    added = page.locator(".diff-view .gi").all_inner_texts()
    assert '-print("fitted", util.NAME)' in removed
    assert '+print("fitted again", util.NAME)' in added
    browser.shot("run-code-diff")
    assert browser.unexpected_errors(srv.base) == []


def test_notebook_cells_and_extract(codelab: tuple[CodeLab, Server], browser: Browser) -> None:
    lab, srv = codelab
    page = browser.page
    page.goto(srv.base + f"/run/{lab.ids[3]}")
    steps = page.eval_on_selector_all("#cells article.cell", "cs => cs.map(c => c.dataset.step)")
    assert steps == ["1", "2", "3", "4", "5"]
    assert "hello from a cell" in page.inner_text("#cell-2 .cell-stdout")
    until(page, "document.querySelector('#cell-3 .cell-figure img').naturalWidth > 0")
    assert "ZeroDivisionError" in page.inner_text("#cell-5 .cell-error")
    # the parquet table the notebook wrote, with its column types
    table = page.locator("figure[data-path='out/table.parquet'] table.preview")
    assert table.locator("thead th").all_inner_texts()[0] == "n int64"
    assert table.locator("tbody tr").count() == 3
    page.locator("#cell-3").scroll_into_view_if_needed()
    browser.shot("run-notebook-cells")
    go(page, page.click, "#cell-3 .cell-figure a.extract")
    page.wait_for_url(re.compile(r"/extract\?artefact=cell-3"))
    assert "2 of 5 cells kept" in page.inner_text("#extract-summary")
    assert "plt.subplots" in page.inner_text("#extract-script")
    browser.shot("run-extract")
    assert browser.unexpected_errors(srv.base) == []


def test_zooming_a_chart_shows_every_point_of_the_range(
    codelab: tuple[CodeLab, Server], browser: Browser
) -> None:
    lab, srv = codelab
    page = browser.page
    page.goto(srv.base + f"/run/{lab.ids[1]}")
    chart = "document.querySelector(\".chart[data-key='loss']\")"
    until(page, f"{chart}.dataset.ready === '1'")
    assert page.evaluate(f"{chart}.data[0].x.length") <= 2000
    # a zoom as the mouse makes one: plotly's relayout of the x range
    page.evaluate(f"window.Plotly.relayout({chart}, {{'xaxis.range': [1000, 1500]}})")
    until(page, f"{chart}.dataset.zoom === '1000,1500'")
    xs = page.evaluate(f"{chart}.data[0].x")
    assert xs == list(range(1000, 1501))
    assert "501 points in steps 1,000..1,500 of 5,000" in page.inner_text("#metrics .chart-note")
    browser.shot("run-chart-zoomed")
    page.evaluate(f"window.Plotly.relayout({chart}, {{'xaxis.autorange': true}})")
    until(page, f"!{chart}.dataset.zoom && {chart}.data[0].x.length <= 2000")
    assert browser.unexpected_errors(srv.base) == []


def test_a_live_run_page_grows(codelab: tuple[CodeLab, Server], browser: Browser) -> None:
    lab, srv = codelab
    proc, run_id = start_live_run(lab.root)
    try:
        page = browser.page
        page.goto(srv.base + f"/run/{run_id}")
        page.wait_for_selector("#live:not([hidden])")
        chart = "document.querySelector(\".chart[data-key='loss']\")"
        until(page, f"{chart} && {chart}.dataset.ready === '1' && {chart}.data[0].x.length === 5")
        until(page, "document.querySelector('#live-files li[data-path=\"out/live.txt\"]')")
        assert "first line" in page.inner_text("#stdout")
        browser.shot("run-live")
        (lab.root / "go").write_text("")
        until(page, f"{chart}.data[0].x.length === 40")  # the chart grew by itself
        until(page, "document.querySelector('#stdout').textContent.includes('second line')")
        browser.shot("run-live-grown")
        # the run ends: the page reloads once, as the sealed run's page
        with page.expect_navigation():
            (lab.root / "end").write_text("")
        page.wait_for_selector("#run-title .badge-ok")
        assert page.locator("#live").count() == 0
        assert "last line" in page.inner_text("#stdout")
        assert browser.unexpected_errors(srv.base) == []
    finally:
        (lab.root / "go").write_text("")
        (lab.root / "end").write_text("")
        proc.wait(timeout=120)


#: Where test_demo_store_pages saves the README's screenshots: only when asked
#: (`VESTIGE_SCREENSHOTS=docs/img`), so the suite never rewrites tracked files. Read at
#: import: the clean_env fixture takes every VESTIGE_ variable out of a test's environment.
README_SHOTS = os.environ.get("VESTIGE_SCREENSHOTS")
README_SHOTS_DIR = Path(README_SHOTS).resolve() if README_SHOTS else None
DEMO = Path(__file__).resolve().parent.parent / "examples" / "anscombe"


def test_demo_store_pages(tmp_path: Path, browser: Browser) -> None:
    """The demo's analysis (examples/demo.sh's runs, note and tag) in the browser: the runs
    page with its sweep folded and a param column, and a run page with its figure drawn.
    With VESTIGE_SCREENSHOTS set, both pages are saved there for the README
    (ui-runs.png, ui-run.png)."""
    from conftest import git, vestige

    root = tmp_path / "project"
    shutil.copytree(DEMO, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first look")
    (root / ".gitignore").write_text("out/\npaper/\n")
    analyze = root / "analyze.py"
    steps: list[tuple[str, ...]] = [
        # (`analyze.py`, not `python analyze.py` as the demo: the suite's Python has matplotlib)
        ("run", "analyze.py", "--dataset", "I"),
        ("run", "--each", "dataset=II,III,IV", "-j", "2", "--", "analyze.py", "--dataset",
         "{dataset}"),
        ("run", "bash", "-c", "cat out/summary_*.csv | sort -u > out/all_summaries.csv"),
    ]  # fmt: skip
    for args in steps:
        done = vestige(*args, cwd=root, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
    analyze.write_text(analyze.read_text().replace('color="tab:red"', 'color="tab:green"'))
    for args in (("run", "analyze.py", "--dataset", "III"), ("tag", "1", "first-look"),
                 ("note", "1", "dataset I: the linear fit is fine here")):  # fmt: skip
        done = vestige(*args, cwd=root, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
    srv = Server(root)
    try:
        page = browser.page
        page.goto(srv.base + "/?cols=params.dataset")
        page.wait_for_selector("#runs tbody tr[data-seq]")
        assert seqs(page) == [7, 6, 2, 1]  # the sweep's three runs folded into #2
        page.wait_for_selector("#count:has-text('4 runs')")
        assert page.inner_text("tr[data-seq='1'] .badge") == "ok"
        browser.shot("demo-runs")
        if README_SHOTS_DIR is not None:
            README_SHOTS_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(README_SHOTS_DIR / "ui-runs.png"))
        go(page, page.click, "tr[data-seq='7'] td.command a")
        page.wait_for_selector("#run-title")
        until(page, "document.querySelector(\"img[alt='out/fit_III.png']\")?.naturalWidth > 0")
        browser.shot("demo-run")
        if README_SHOTS_DIR is not None:  # (the gallery at the top: the figure in view)
            page.evaluate("document.querySelector('#gallery').scrollIntoView()")
            page.screenshot(path=str(README_SHOTS_DIR / "ui-run.png"))
        assert browser.unexpected_errors(srv.base) == []
    finally:
        srv.stop()
