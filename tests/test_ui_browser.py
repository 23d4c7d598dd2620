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
from conftest import clean_environment
from test_ui import Lab, Server, build_lab

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
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("ui-browser")
    clean_environment(mp, base)
    try:
        yield build_lab(base)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[Server]:
    srv = Server(lab.root)
    try:
        yield srv
    finally:
        srv.stop()


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
