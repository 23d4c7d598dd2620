"""`vestige ui` as a user and an attacker meet it: a real `vestige ui` process serving a
store made by real `vestige run`s, asked over real HTTP (http.client: paths are sent
exactly as written, `..` and `%2e%2e` included). The browser's view is
tests/test_ui_browser.py; the helpers here (the store, the server) are shared with it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import selectors
import subprocess
import sys
import textwrap
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from conftest import clean_environment, git, vestige

pytest.importorskip("starlette", reason="the ui extra is not installed: pip install -e '.[ui]'")
pytest.importorskip("uvicorn", reason="the ui extra is not installed: pip install -e '.[ui]'")

SECRET = "top secret outside the store"

#: A script like a researcher's: params, a figure (PNG), a table, metrics through the
#: API, coloured output, and two artefacts whose scripts must never run in the UI.
TRAIN = textwrap.dedent("""\
    import argparse, csv, json, sys
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import vestige

    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--model", default="vit")
    a = p.parse_args()
    for step in range(300):
        vestige.log(step=step, loss=1.0 / (1 + step * a.lr), acc=step / 300)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [a.lr, 2 * a.lr, 1])
    fig.savefig("out/curve.png")
    with open("out/table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "name"])
        for i in range(50):
            w.writerow([i, 1 / (i + 1), f"r{i}"])
    with open("out/info.json", "w") as f:
        json.dump({"model": a.model, "lr": a.lr}, f)
    with open("out/page.html", "w") as f:
        f.write("<html><body><script>document.cookie='pwned=html; path=/';"
                "try { parent.pwned = 'html' } catch (e) {}</script>report</body></html>")
    with open("out/pic.svg", "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
                "<script>document.cookie='pwned=svg; path=/';"
                "try { top.pwned = 'svg' } catch (e) {}</script>"
                '<rect width="40" height="40" fill="teal"/></svg>')
    with open("out/model.bin", "wb") as f:
        f.write(bytes(range(256)))
    print("\\x1b[31mred\\x1b[0m and \\x1b[1mbold\\x1b[0m <b>not html</b>")
    print("a warning", file=sys.stderr)
""")


@dataclass
class Lab:
    """A project with runs: #1 a plain run, #2 a sweep over lr (children #3..#5), #6 a
    run that reads a table the others wrote."""

    root: Path
    outside: Path
    ids: dict[int, str]

    @property
    def store(self) -> Path:
        return self.root / ".vestige"


def build_lab(base: Path) -> Lab:
    """The project and its runs, made by the real CLI."""
    root = base / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text(TRAIN)
    (root / "read.py").write_text("with open('out/table.csv') as f:\n"
                                  "    print(len(f.read().splitlines()), 'rows')\n")  # fmt: skip
    (root / "out").mkdir()
    (root / "out" / ".keep").write_text("")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "link").symlink_to(outside, target_is_directory=True)  # a way out of the tree
    git(root, "add", "train.py", "read.py", "out/.keep")
    git(root, "commit", "-qm", "start")
    for args in (("train.py", "--lr", "0.05"),
                 ("--each", "lr=0.1,0.2,0.3", "--", "train.py", "--lr", "{lr}"),
                 ("read.py",)):  # fmt: skip
        done = vestige("run", *args, cwd=root, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
    listing = json.loads(vestige("ls", "--json", cwd=root).stdout)
    assert [r["seq"] for r in listing] == [6, 5, 4, 3, 2, 1]
    return Lab(root, outside, {r["seq"]: r["id"] for r in listing})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("ui")
    clean_environment(mp, base)
    try:
        yield build_lab(base)
    finally:
        mp.undo()


class Server:
    """A `vestige ui` process; `url` is what it printed (with the token, if any)."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vestige", "ui", "--port", "0", *args],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.url = self._printed_url(timeout=60)
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("token")
        self.base = f"http://127.0.0.1:{self.port}"

    def _printed_url(self, timeout: float) -> str:
        """The URL line of the server's output (it listens before it prints it)."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        out = b""
        while b"serving at " not in out or not out.endswith(b"\n"):
            if not sel.select(timeout):
                self.stop()
                raise AssertionError(f"vestige ui printed no URL: {out!r}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"vestige ui exited: {out!r} {err}")
            out += chunk
        m = re.search(rb"serving at (\S+)", out)
        assert m, out
        return m.group(1).decode()

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:  # fmt: skip
        """(status, headers, body) of one request, the path sent byte for byte."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        return self.request(
            "GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[Server]:
    srv = Server(lab.root)
    try:
        yield srv
    finally:
        srv.stop()


def store_state(lab: Lab) -> dict[str, object]:
    """Every file of the store but SQLite's shared-memory and WAL files (readers touch
    those), and the index's rows of runs, tags, params, files and metrics."""
    import sqlite3

    files = {}
    for path in sorted(lab.store.rglob("*")):
        if path.is_file() and not path.name.startswith("index.sqlite"):
            files[str(path.relative_to(lab.store))] = path.read_bytes()
    conn = sqlite3.connect(f"file:{lab.store / 'index.sqlite'}?mode=ro", uri=True)
    try:
        rows = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("runs", "tags", "params", "files", "metrics")}  # fmt: skip
    finally:
        conn.close()
    return {"files": files, "rows": rows}


def notes_of(lab: Lab, seq: int) -> str:
    return vestige("note", str(seq), cwd=lab.root).stdout.decode()


def csrf_of(server: Server, run_id: str) -> str:
    status, _h, body = server.get(f"/run/{run_id}")
    assert status == 200
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert m, "the run page has no CSRF token in its forms"
    return m.group(1).decode()


# -- headers, pages --------------------------------------------------------------------------


def test_pages_carry_a_strict_policy(lab: Lab, server: Server) -> None:
    for path in ("/", f"/run/{lab.ids[1]}", f"/run/{lab.ids[2]}", "/?where=status%20%3D%20ok"):
        status, headers, body = server.get(path)
        assert status == 200, (path, body[:300])
        csp = headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'", csp  # no inline script, no other origin
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "http" not in csp  # no external origin anywhere
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert not re.search(rb"<script(?![^>]*\bsrc=)", body), "an inline <script> on a page"
        assert not re.search(rb"\son[a-z]+=", body), "an inline event handler on a page"
        assert b"https://" not in body and b"http://" not in body


def test_favicon_and_plotly_from_the_installed_package(server: Server, lab: Lab) -> None:
    status, headers, _ = server.get("/favicon.ico")
    assert status == 200 and headers["content-type"].startswith("image/svg+xml")
    _s, _h, page = server.get(f"/run/{lab.ids[1]}")
    src = re.search(rb'<script src="(/assets/plotly-[^"]+\.min\.js)"', page)
    assert src, "the run page of a run with metrics loads no plotly"
    status, headers, js = server.get(src.group(1).decode())
    from vestige.ui.fmt import plotly_js

    assert status == 200 and js == Path(plotly_js() or "").read_bytes()
    assert "immutable" in headers["cache-control"]


def test_run_page_shows_the_run(lab: Lab, server: Server) -> None:
    status, _h, body = server.get(f"/run/{lab.ids[1]}")
    text = body.decode()
    assert status == 200
    assert "train.py --lr 0.05" in text
    assert 'class="a-f1">red</span>' in text  # the ANSI colour, as a class
    assert "&lt;b&gt;not html&lt;/b&gt;" in text  # printed text is escaped
    assert "a warning" in text
    assert re.search(r"<th>epoch <span", text)  # the CSV as a table
    assert 'sandbox=""' in text and "out/page.html" in text
    assert f"/run/{lab.ids[1]}/metrics.json?key=loss" in text
    for ref in ("1", "#1", lab.ids[1][:8].lower()):
        assert server.get(f"/run/{quote(ref)}")[0] == 200
    status, _h, body = server.get("/run/999")
    assert status == 404 and b"no run #999" in body


def test_inputs_and_outputs_link_to_their_runs(lab: Lab, server: Server) -> None:
    """One hop of lineage each way: the input's maker, the output's readers."""
    _s, _h, body = server.get(f"/run/{lab.ids[6]}")
    inputs = body.split(b'id="inputs"', 1)[1].split(b"</table>", 1)[0]
    assert b"out/table.csv" in inputs
    assert f'href="/run/{lab.ids[5]}" class="maker">#5<'.encode() in inputs  # the latest maker
    _s, _h, body = server.get(f"/run/{lab.ids[5]}")
    outputs = body.split(b'id="outputs"', 1)[1].split(b"</table>", 1)[0]
    assert f'href="/run/{lab.ids[6]}" class="reader">#6<'.encode() in outputs


def test_metric_series_json_is_downsampled(lab: Lab, server: Server) -> None:
    status, _h, body = server.get(f"/run/{lab.ids[1]}/metrics.json?key=loss")
    data = json.loads(body)
    assert status == 200 and data["count"] == 300 and data["shown"] == 300
    assert data["x"][:3] == [0, 1, 2] and data["y"][0] == 1.0
    assert server.get(f"/run/{lab.ids[1]}/metrics.json?key=nope")[0] == 404


# -- artefacts ------------------------------------------------------------------------------


def test_artefact_bytes_through_the_manifest(lab: Lab, server: Server) -> None:
    rid = lab.ids[1]
    status, headers, body = server.get(f"/artefact/{rid}/out/table.csv")
    assert status == 200
    assert body.startswith(b"epoch,loss,name\r\n0,1.0,r0")
    assert headers["content-type"] == "text/plain; charset=utf-8"  # shown, not saved
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox")
    assert headers["content-disposition"].startswith("inline")
    status, headers, _ = server.get(f"/artefact/{rid}/out/table.csv?download=1")
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''table.csv"
    status, headers, body = server.get(f"/artefact/{rid}/out/curve.png")
    assert status == 200 and body.startswith(b"\x89PNG") and headers["content-type"] == "image/png"
    status, headers, body = server.get(f"/artefact/{rid}/out/model.bin")
    assert status == 200 and body == bytes(range(256))
    assert headers["content-disposition"].startswith("attachment")
    assert headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("path", [
    "/artefact/{id}/../../outside/secret.txt",
    "/artefact/{id}/out/../../outside/secret.txt",
    "/artefact/{id}/%2e%2e/%2e%2e/outside/secret.txt",
    "/artefact/{id}/out/%2E%2E/train.py",
    "/artefact/{id}/out%2f..%2f..%2foutside%2fsecret.txt",
    "/artefact/{id}/..%2f..%2foutside%2fsecret.txt",
    "/artefact/{id}//{outside}/secret.txt",
    "/artefact/{id}/{outside_rel}/secret.txt?abs=1",
    "/artefact/{id}/%2F{outside_rel}%2Fsecret.txt",
    "/artefact/{id}/link/secret.txt",
    "/artefact/{id}/./out/table.csv",
    "/artefact/{id}/out//table.csv",
    "/artefact/{id}/.vestige/index.sqlite",
    "/artefact/{id}/train.py",
    "/artefact/../../outside/secret.txt",
    "/artefact/%2e%2e/link/secret.txt",
])  # fmt: skip
def test_artefact_paths_reach_nothing_else(lab: Lab, server: Server, path: str) -> None:
    """`..`, encoded dots and slashes, absolute paths and a symbolic link out of the tree
    reach nothing: a path is looked up in the run's manifest, never on disk."""
    outside = str(lab.outside)
    url = path.format(id=lab.ids[1], outside=outside.lstrip("/"),
                      outside_rel=quote(outside.lstrip("/")))  # fmt: skip
    status, _headers, body = server.get(url)
    assert status == 404, (url, status, body[:200])
    assert SECRET.encode() not in body


def test_active_artefacts_only_sandboxed(lab: Lab, server: Server) -> None:
    """HTML and SVG: a download when opened directly, inline only to a frame, always
    under a `sandbox` CSP (no script, an origin of their own)."""
    for name in ("page.html", "pic.svg"):
        url = f"/artefact/{lab.ids[1]}/out/{name}"
        status, headers, _ = server.get(url)
        assert status == 200 and headers["content-disposition"].startswith("attachment")
        assert headers["content-type"] == "application/octet-stream"
        status, headers, body = server.get(url, sec_fetch_dest="iframe")
        assert status == 200 and headers["content-disposition"].startswith("inline")
        assert b"<script>" in body
        csp = headers["content-security-policy"]
        assert csp.split(";")[0].strip() == "sandbox" and "script-src" not in csp
        assert headers["x-content-type-options"] == "nosniff"


# -- what may change the store ----------------------------------------------------------------


def test_get_changes_nothing(lab: Lab, server: Server) -> None:
    before = store_state(lab)
    rid = lab.ids[1]
    for path in ("/", "/?sort=metrics.loss&cols=metrics.loss,params.lr", f"/run/{rid}",
                 f"/run/{rid}/log/stdout", f"/run/{rid}/metrics.json?key=acc",
                 f"/artefact/{rid}/out/table.csv", f"/run/{rid}/note?text=sneaky",
                 f"/run/{rid}/tags?add=sneaky", "/runs/count?where=tag%20%3D%20x"):  # fmt: skip
        status, _h, _b = server.get(path)
        assert status in (200, 405), (path, status)
    assert server.get(f"/run/{rid}/note?text=sneaky")[0] == 405
    assert server.get(f"/run/{rid}/tags?add=sneaky")[0] == 405
    assert store_state(lab) == before


def test_post_without_the_csrf_token_is_refused(lab: Lab, server: Server) -> None:
    rid = lab.ids[3]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    before = store_state(lab)
    for body in (urlencode({"text": "no token"}), urlencode({"text": "bad", "csrf": "x" * 43})):
        status, _h, _b = server.request("POST", f"/run/{rid}/note", body.encode(), form)
        assert status == 403
    token = csrf_of(server, rid)
    other_site = {**form, "Origin": "http://evil.example"}
    body = urlencode({"text": "from elsewhere", "csrf": token}).encode()
    assert server.request("POST", f"/run/{rid}/note", body, other_site)[0] == 403
    assert store_state(lab) == before
    assert "has no notes" in notes_of(lab, 3)
    # with the token, the note goes through the library (as `vestige note` does)
    body = urlencode({"text": "lr too high?", "csrf": token}).encode()
    status, headers, _ = server.request("POST", f"/run/{rid}/note", body, form)
    assert status == 303 and headers["location"] == f"/run/{rid}#notes"
    assert "lr too high?" in notes_of(lab, 3)
    body = urlencode({"add": "baseline paper", "csrf": token}).encode()
    assert server.request("POST", f"/run/{rid}/tags", body, form)[0] == 303
    listed = json.loads(vestige("ls", "--json", "--where", "tag = paper", cwd=lab.root).stdout)
    assert [r["seq"] for r in listed] == [3]
    body = urlencode({"add": "not,a tag", "csrf": token}).encode()
    assert server.request("POST", f"/run/{rid}/tags", body, form)[0] == 400


def test_a_foreign_host_name_is_refused_on_loopback(server: Server) -> None:
    """DNS rebinding: a page of another site that renamed itself to 127.0.0.1."""
    assert server.get("/", host="evil.example")[0] == 403
    assert server.get("/", host=f"localhost:{server.port}")[0] == 200


# -- the command ---------------------------------------------------------------------------


def test_another_host_needs_a_token(lab: Lab) -> None:
    done = vestige("ui", "--host", "0.0.0.0", cwd=lab.root)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1 and "--token" in done.stderr.decode()
    assert done.stdout == b""


def test_the_token_then_a_cookie(lab: Lab) -> None:
    srv = Server(lab.root, "--host", "0.0.0.0", "--token", "auto")
    try:
        assert srv.token and len(srv.token) >= 16
        assert srv.get("/")[0] == 401
        assert srv.get(f"/run/{lab.ids[1]}")[0] == 401
        assert srv.get(f"/artefact/{lab.ids[1]}/out/table.csv")[0] == 401
        assert srv.get("/?token=" + "x" * len(srv.token))[0] == 401
        assert srv.get("/", cookie="vestige_ui=guess")[0] == 401
        status, headers, _ = srv.get(f"/run/{lab.ids[1]}?token={srv.token}&x=1")
        assert status == 303 and headers["location"] == f"/run/{lab.ids[1]}?x=1"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and srv.token not in cookie
        value = cookie.split(";", 1)[0]
        status, _h, body = srv.get(f"/run/{lab.ids[1]}", cookie=value)
        assert status == 200 and b"train.py" in body
        assert srv.get("/", authorization=f"Bearer {srv.token}")[0] == 200
        # any Host is fine once the token is shown: it is meant to be reached by name
        assert srv.get("/", cookie=value, host="lab-machine:8725")[0] == 200
    finally:
        srv.stop()


def test_a_port_taken_is_one_error_line(lab: Lab) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = vestige("ui", "--port", str(port), cwd=lab.root)
    assert done.returncode == 2 and done.stdout == b""
    err = done.stderr.decode()
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1


def test_without_the_ui_extra_it_says_how_to_get_it(lab: Lab) -> None:
    code = ("import sys; sys.modules['starlette'] = None; from vestige.cli import main;"
            " sys.exit(main(['ui']))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=lab.root, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "error: vestige ui needs starlette: pip install 'vestige[ui]'\n"


def test_the_cli_starts_without_the_ui_libraries(lab: Lab) -> None:
    for args in (["--help"], ["ls", "--json"], ["ui", "--help"]):
        argv = [sys.executable, "-X", "importtime", "-m", "vestige", *args]
        done = subprocess.run(argv, cwd=lab.root, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-500:]
        lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
        loaded = {line.rsplit("|", 1)[1].strip() for line in lines}
        assert "vestige.cli._app" in loaded
        tops = {name.split(".")[0] for name in loaded}
        assert not tops & {"starlette", "uvicorn", "jinja2", "plotly", "tsdownsample"}, args
        assert not {n for n in loaded if n.startswith("vestige.ui")}, args


# -- the runs page over HTTP --------------------------------------------------------------------


def seqs_on(body: bytes) -> list[int]:
    return [int(s) for s in re.findall(rb'data-seq="(\d+)"', body)]


def test_runs_page_folds_sweeps_and_pages_by_keyset(lab: Lab, server: Server) -> None:
    _s, _h, body = server.get("/")
    assert seqs_on(body) == [6, 2, 1]  # the sweep's children folded into #2
    assert b'data-expand="' + lab.ids[2].encode() + b'"' in body
    _s, _h, body = server.get(f"/?open={lab.ids[2]}")
    assert seqs_on(body) == [6, 2, 3, 4, 5, 1]
    seen, url = [], "/?fold=0&n=2"
    while url:
        _s, _h, body = server.get(url)
        seen += seqs_on(body)
        m = re.search(rb'href="([^"]+)" id="next-page"', body)
        url = m.group(1).decode().replace("&amp;", "&") if m else ""
        assert "offset" not in url
    assert seen == [6, 5, 4, 3, 2, 1]


def test_runs_page_filter_sort_and_columns(lab: Lab, server: Server) -> None:
    _s, _h, body = server.get("/?" + urlencode({"where": "params.lr >= 0.2"}))
    assert seqs_on(body) == [5, 4]
    _s, _h, body = server.get("/?" + urlencode({"sort": "metrics.loss", "dir": "asc",
                                                "cols": "metrics.loss,params.lr"}))  # fmt: skip
    assert seqs_on(body)[:4] == [5, 4, 3, 1]  # lowest last loss first; #2 has none: last
    assert b">loss" in body and b">lr" in body
    _s, _h, body = server.get("/?" + urlencode({"q": "--lr 0.3"}))
    assert seqs_on(body) == [5]
    status, _h, body = server.get("/runs/count?" + urlencode({"where": "params.lr < 1"}))
    assert status == 200 and json.loads(body) == {"count": 4}


def test_a_bad_where_is_shown_inline_with_its_place(server: Server) -> None:
    status, _h, body = server.get("/?" + urlencode({"where": "params.lr < 0.1 and and"}))
    assert status == 200
    m = re.search(rb'<code class="where-text">(.*?)<mark>(.*?)</mark>(.*?)</code>', body)
    assert m and m.group(1) == b"params.lr &lt; 0.1 and " and m.group(2) == b"and"
    assert b"expected a field, found &#39;and&#39;" in body
    assert seqs_on(body) == []


# -- pieces -----------------------------------------------------------------------------------


def test_minmax_keeps_every_extreme() -> None:
    from vestige.ui.charts import minmax

    values = [0.0] * 100_000
    values[12_345], values[67_890] = 9.0, -9.0
    kept = minmax(values, 2000)
    assert len(kept) <= 2000 and 12_345 in kept and 67_890 in kept
    assert kept == sorted(kept) and kept[0] == 0 and kept[-1] == 99_999
    assert minmax([1.0, 2.0], 2000) == [0, 1]


@pytest.mark.parametrize("lttb", [True, False])
def test_a_million_points_become_at_most_two_thousand(lttb: bool, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:  # fmt: skip
    from vestige.store.metrics import Series
    from vestige.ui import charts

    if not lttb:  # tsdownsample missing: the plain reducer
        monkeypatch.setitem(sys.modules, "tsdownsample", None)
    else:
        pytest.importorskip("tsdownsample")
    n = 1_000_000
    steps = array("d", range(n))
    values = array("d", (float(i % 1000) for i in range(n)))
    values[500_000] = 1e6
    values[10] = float("nan")
    out = charts.series_json(Series("loss", steps, array("d", [0.0]) * n, values))
    assert out["count"] == n and out["shown"] <= 2000 and len(out["x"]) == out["shown"]
    assert 1e6 in out["y"]  # the spike survives
    assert ("MinMaxLTTB" in out["method"]) == lttb


def test_big_logs_are_paged_at_line_ends() -> None:
    from vestige.ui.run import LOG_PAGE, log_pages

    data = b"".join(b"line %06d\n" % i for i in range(60_000))
    pages = log_pages(data)
    assert len(pages) > 1 and pages[0][0] == 0 and pages[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pages))
    assert all(data[end - 1 : end] == b"\n" and end - start <= LOG_PAGE for start, end in pages)
    assert log_pages(b"") == [(0, 0)]


def test_ansi_to_html() -> None:
    from vestige.ui.ansi import to_html

    assert to_html("\x1b[1;31mA\x1b[0m<&>") == '<span class="a-bold a-f1">A</span>&lt;&amp;&gt;'
    assert to_html("\x1b[38;5;208mx\x1b[39m\x1b[2Ky") == '<span class="a-f208">x</span>y'
    assert to_html("\x1b]0;title\x07plain") == "plain"


# -- the query behind the runs page (index.runs.page) -----------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An index of 300 runs made through the library: ties (lr has 3 values), params
    that are numbers, text or missing, a metric some runs lack, NaN, sweeps."""
    from vestige.ids import new_run_id
    from vestige.records import Run
    from vestige.repo import Repo

    root = tmp_path_factory.mktemp("many") / "proj"
    root.mkdir()
    git(root, "init", "-q")
    repo = Repo.open(root, create=True)
    runs = []
    for seq in range(1, 301):
        t = 1_780_000_000.0 + seq
        params: dict[str, object] = {"i": seq, "lr": (0.1, 0.01, 0.001)[seq % 3]}
        if seq % 4:
            params["mixed"] = seq % 7 if seq % 2 else f"m{seq % 5}"
        keys = {} if seq % 5 == 0 else {"loss": {"count": 1, "last": (seq * 37 % 101) / 100,
                                                  "min": 0.0, "max": 1.0}}  # fmt: skip
        if seq == 17:
            keys = {"loss": {"count": 1, "last": "nan", "min": None, "max": None}}
        runs.append(Run(
            id=new_run_id(int(t * 1000)), seq=seq, status="ok" if seq % 6 else "failed",
            command=["python", "train.py", f"--i={seq}"], cwd=".", root=str(root), started=t,
            ended=None if seq % 11 == 0 else t + seq % 13, duration=None if seq % 11 == 0
            else float(seq % 13), exit_code=0, params=params, metrics={"keys": keys},
            tags=("best",) if seq % 10 == 0 else (),
            parent=None if seq % 50 < 40 else "PARENT",
        ))  # fmt: skip
    repo.index.record.runs(runs)
    try:
        yield repo
    finally:
        repo.close()


def all_pages(repo: object, limit: int, **kw: object) -> list[tuple[int, object]]:
    """(seq, sort value) of every run, page after page."""
    out: list[tuple[int, object]] = []
    cursor = None
    while True:
        rows, cursor = repo.index.runs.page(after=cursor, limit=limit, **kw)  # type: ignore[attr-defined]
        assert len(rows) <= limit
        out += [(r["seq"], r["sort_value"]) for r in rows]
        if cursor is None:
            return out


@pytest.mark.parametrize("sort", ["seq", "started", "ended", "duration", "status", "exit_code",
                                  "command", "metric:loss", "param:lr", "param:mixed",
                                  "param:none"])  # fmt: skip
@pytest.mark.parametrize("desc", [True, False])
@pytest.mark.parametrize("where", [None, "params.i > 40 and tag != best", "params.i = 77"])
def test_pages_list_every_run_once_in_order(many: object, sort: str, desc: bool,
                                            where: str | None, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:  # fmt: skip
    """Page after page (7 rows each), every matching run comes exactly once, in the order
    asked (numbers, then text, then runs without a value); gathering through the filter
    gives the very same pages as walking an index."""
    from vestige.index import runs as index_runs
    from vestige.index.where import compile_where

    kind, _, key = sort.partition(":")
    kw: dict[str, object] = {"sort": kind, "key": key or None, "desc": desc,
                             "where": compile_where(where) if where else None}  # fmt: skip
    monkeypatch.setattr(index_runs, "WALK_S", 100.0)
    walked = all_pages(many, 7, **kw)
    monkeypatch.setattr(index_runs, "WALK_S", -1.0)  # every walk interrupted at once
    monkeypatch.setattr(index_runs, "WALK_TICK", 1)
    gathered = []
    real = index_runs.Runs._walk_or_gather

    def spy(self: object, walk: str | None, gather: str | None, args: list[object]) -> object:
        rows, by_filter = real(self, walk, gather, args)  # type: ignore[arg-type]
        gathered.append(by_filter)
        return rows, by_filter

    monkeypatch.setattr(index_runs.Runs, "_walk_or_gather", spy)
    assert all_pages(many, 7, **kw) == walked
    assert all(gathered) == (where is not None)
    expected = {r["seq"] for r in many.index.runs.rows(kw["where"])}  # type: ignore[attr-defined]
    seqs = [s for s, _v in walked]
    assert len(seqs) == len(set(seqs)) and set(seqs) == expected
    values = [v for _s, v in walked]
    if kind == "seq":
        assert seqs == sorted(seqs, reverse=desc)
        return
    groups = [
        [v for v in values if isinstance(v, int | float)],
        [v for v in values if isinstance(v, str)],
        [v for v in values if v is None],
    ]
    assert values == [v for g in groups for v in g]  # numbers, then text, then none
    for group in groups[:2]:
        assert group == sorted(group, reverse=desc)  # type: ignore[type-var]
    lacking = [s for s, v in walked if v is None]
    assert lacking == sorted(lacking, reverse=desc)


def test_page_search_top_level_and_count(many: object) -> None:
    runs = many.index.runs  # type: ignore[attr-defined]
    rows, _ = runs.page(search="--i=7", limit=500)
    assert sorted(r["seq"] for r in rows) == [s for s in range(1, 301) if str(s).startswith("7")]
    assert [r["seq"] for r in runs.page(search="BES", limit=3)[0]] == [300, 290, 280]
    assert runs.page(search="100%", limit=5)[0] == []  # % and _ are literal
    top = all_pages(many, 50, top_level=True)
    assert len(top) == runs.count(top_level=True) == 300 - 60
    assert runs.count(search="best") == 30
    assert runs.children_counts([]) == {}
    metrics, params = runs.keys_of([r["id"] for r in runs.page(limit=20)[0]])
    assert metrics == ["loss"] and params == ["i", "lr", "mixed"]
