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
from conftest import git, module_environment, vestige

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
    with module_environment(tmp_path_factory, "ui") as base:
        yield build_lab(base)


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

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

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
    with Server(lab.root) as srv:
        yield srv


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
    # (the run page's script loads plotly once the page has loaded: data-plotly names it)
    src = re.search(rb'(?:<script src|data-plotly)="(/assets/plotly-[^"]+\.min\.js)"', page)
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
    assert seqs_on(server.get("/?" + urlencode({"q": "warmup too short"}))[2]) == []
    done = vestige("note", "4", "Warmup too short; see #5", cwd=lab.root)
    assert done.returncode == 0, done.stderr.decode()
    _s, _h, body = server.get("/?" + urlencode({"q": "warmup too short"}))
    assert seqs_on(body) == [4]  # a sweep's child: searched, every run is listed
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
            notes=({"t": t, "text": f"Loss diverged at step {seq}"},) if seq % 25 == 0 else (),
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


@pytest.mark.parametrize("sort", ["duration", "ended"])
@pytest.mark.parametrize("top_level", [True, False])
def test_sorting_by_a_run_column_walks_its_index(many: object, sort: str, top_level: bool
                                                 ) -> None:  # fmt: skip
    """The runs page sorted by duration or end time (sweeps folded or not) reads the
    column's index in order and stops at the page's end: no sort of every run (at
    100,000 runs: 106 ms, now under 1 ms). Checked on the statements page() runs."""
    runs = many.index.runs  # type: ignore[attr-defined]
    conn = runs.conn
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        rows, _ = runs.page(sort=sort, top_level=top_level, limit=10)
    finally:
        conn.set_trace_callback(None)
    assert len(rows) == 10
    first = next(s for s in statements if f"r.{sort} IS NOT NULL" in s)
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + first)]
    inner = [step for step in plan if f"runs_{sort}" in step]
    assert inner, plan  # the walk goes through runs_<column> ...
    # ... and the only sort left is of the page's own rows (the outer ORDER BY)
    assert sum("TEMP B-TREE" in step for step in plan) == 1, plan


def test_page_search_finds_notes(many: object) -> None:
    """q= searches notes too (the index's notes table), any case, with the command and
    tags: each run once however many of them match."""
    runs = many.index.runs  # type: ignore[attr-defined]
    noted = [s for s in range(300, 0, -1) if s % 25 == 0]
    assert [s for s, _v in all_pages(many, 5, search="DIVERGED")] == noted
    assert runs.count(search="diverged at step 1") == len([s for s in noted if str(s)[0] == "1"])
    assert runs.count(search="diverged", top_level=True) == len([s for s in noted if s % 50 < 40])
    # "step 100" is in #100's note; "--i=100" in #100's command; both: listed once
    assert [r["seq"] for r in runs.page(search="100", limit=50)[0]] == [100]


# -- the Compare page -------------------------------------------------------------------------

#: A script whose table changes with --scale: 1 and 1.5 differ, 1 and 1 + 1e-12 are close.
SCALED = textwrap.dedent("""\
    import argparse, csv
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    with open("out/scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["i", "score"])
        for i in range(5):
            w.writerow([i, a.scale * i])
""")


def compare_rows(body: bytes) -> list[tuple[str, bool, bool]]:
    """(name, differs, hidden) of each params/metrics row of a Compare page, in order."""
    found = re.findall(rb'<tr class="(differs|same) kind-\w+" data-name="([^"]+)"( hidden)?>', body)
    return [(name.decode(), kind == b"differs", bool(hidden)) for kind, name, hidden in found]


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server]]:
    """A project of four runs of SCALED: #1 scale 1; then the script changes; #2 scale 1.5,
    #3 scale 1 (the same table as #1), #4 scale 1 + 1e-12 (a close one); and its server."""
    with module_environment(tmp_path_factory, "ui-compare") as base:
        root = base / "proj"
        (root / "out").mkdir(parents=True)
        git(root, "init", "-q", "-b", "main")
        (root / "fit.py").write_text(SCALED)
        git(root, "add", "fit.py")
        git(root, "commit", "-qm", "start")
        for n, scale in enumerate(("1", "1.5", "1", "1.000000000001")):
            if n == 1:
                (root / "fit.py").write_text(SCALED + "# scores scaled by --scale\n")
            done = vestige("run", "fit.py", "--scale", scale, cwd=root, timeout=120)
            assert done.returncode == 0, done.stderr.decode()
        with Server(root) as srv:
            yield root, srv


def test_compare_table_differing_rows_first(lab: Lab, server: Server) -> None:
    status, headers, body = server.get("/compare?runs=1,3")
    assert status == 200, body[:300]
    rows = compare_rows(body)
    differs = [name for name, d, _h in rows if d]
    assert {"lr", "loss"} <= set(differs) and {"model", "acc"} <= {n for n, d, _h in rows if not d}
    assert [d for _n, d, _h in rows] == sorted((d for _n, d, _h in rows), reverse=True)
    assert all(hidden == (not d) for _n, d, hidden in rows)  # the same ones behind the toggle
    assert b'id="show-same"' in body
    assert f'href="/run/{lab.ids[1]}">#1</a>'.encode() in body
    # every form of reference the CLI takes, and the runs page's own `run=` fields
    for query in (f"runs=%231&runs={lab.ids[3][:10].lower()}", f"run={lab.ids[1]}&run={lab.ids[3]}",
                  "runs=1+3"):  # fmt: skip
        status, _h, other = server.get("/compare?" + query)
        assert status == 200 and compare_rows(other) == rows, query
    _s, _h, shown = server.get("/compare?runs=1,3&same=1")
    assert [(n, d) for n, d, _h in compare_rows(shown)] == [(n, d) for n, d, _h in rows]
    assert not any(hidden for _n, _d, hidden in compare_rows(shown))
    # charts: a page with charts, scripts our own only; the data comes after the page
    csp = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert not re.search(rb"<script(?![^>]*\bsrc=)", body) and not re.search(rb"\son[a-z]+=", body)
    assert b'class="chart" data-key="loss"' in body


def test_compare_bad_references_are_one_error(lab: Lab, server: Server) -> None:
    status, _h, body = server.get("/compare?runs=1,999,zzzzzz")
    assert status == 400
    errors = re.findall(rb'<p class="error" id="compare-error" role="alert">([^<]*)</p>', body)
    assert len(errors) == 1 and b"no run #999" in errors[0] and b"zzzzzz" in errors[0]
    assert b'value="1,999,zzzzzz"' in body  # the form keeps what was typed, to fix it
    for query, said in (("runs=1", b"at least 2 runs"), ("runs=3,%233", b"1 distinct run"),
                        ("runs=1,-99", b"fewer runs")):  # fmt: skip
        status, _h, body = server.get("/compare?" + query)
        assert status == 400 and said in body, (query, body[-600:])
    status, _h, body = server.get("/compare/metrics.json?runs=1,999")
    assert status == 400 and "no run #999" in json.loads(body)["error"]
    status, _h, body = server.get("/compare")  # no runs yet: the form
    assert status == 200 and b'id="compare-form"' in body and b"compare-error" not in body


def test_compare_metrics_a_series_per_run(lab: Lab, server: Server) -> None:
    status, _h, body = server.get("/compare/metrics.json?runs=1,3")
    assert status == 200
    keys = json.loads(body)["keys"]
    assert sorted(keys) == ["acc", "loss"]
    assert [(s["seq"], s["run"], s["count"]) for s in keys["loss"]] == [
        (1, lab.ids[1], 300), (3, lab.ids[3], 300)]  # fmt: skip
    assert keys["loss"][1]["y"][299] == pytest.approx(1 / (1 + 299 * 0.1))


def test_compare_pixel_difference_png(lab: Lab, server: Server) -> None:
    import numpy as np
    from PIL import Image

    from vestige.history.filediff import compare_bytes

    _s, _h, page = server.get("/compare?runs=1,3")
    figure = page.split(b'data-path="out/curve.png"', 1)[1].split(b'class="compare-figure"')[0]
    for seq in (1, 3):
        assert f'src="/artefact/{lab.ids[seq]}/out/curve.png"'.encode() in figure
    assert b'class="overlay-slider"' in figure
    # filediff's verdict comes after the page, from the URL the figure names
    verdicts = re.search(rb'data-verdicts="([^"]+)"', figure)
    assert verdicts and b'data-verdict-seq="3"' in figure
    status, _h, body = server.get(verdicts.group(1).decode().replace("&amp;", "&"))
    three = json.loads(body)["verdicts"]["3"]
    assert status == 200 and three["verdict"] == "differs" and three["kind"] == "image"
    assert "of pixels changed" in three["summary"] and "#1 → #3" in three["html"]
    query = urlencode({"a": lab.ids[1], "b": lab.ids[3], "path": "out/curve.png"})
    assert f'src="/compare/pixels.png?{query}"'.replace("&", "&amp;").encode() in figure
    status, headers, png = server.get(f"/compare/pixels.png?{query}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"
    a = server.get(f"/artefact/{lab.ids[1]}/out/curve.png")[2]
    b = server.get(f"/artefact/{lab.ids[3]}/out/curve.png")[2]
    import io

    with Image.open(io.BytesIO(png)) as im:
        drawn = im.convert("RGB")
    pixels = np.asarray(drawn)
    red = int((pixels[..., 0] != pixels[..., 1]).sum())  # the rest is grey context
    expected = compare_bytes("curve.png", a, b).details["pixels_changed"]
    assert drawn.size == Image.open(io.BytesIO(a)).size and 0 < red == expected
    same = urlencode({"a": lab.ids[1], "b": lab.ids[1], "path": "out/curve.png"})
    status, _h, png = server.get(f"/compare/pixels.png?{same}")
    with Image.open(io.BytesIO(png)) as im:
        grey = np.asarray(im.convert("RGB"))
        assert status == 200 and (grey == grey[..., :1]).all()  # no pixel changed: no red
    for bad in ({"a": lab.ids[1], "b": lab.ids[3], "path": "out/nope.png"},
                {"a": lab.ids[1], "b": lab.ids[3], "path": "../outside/secret.txt"},
                {"a": lab.ids[1], "b": lab.ids[3], "path": "out/table.csv"},
                {"a": "999", "b": lab.ids[3], "path": "out/curve.png"}):  # fmt: skip
        status, _h, body = server.get(f"/compare/pixels.png?{urlencode(bad)}")
        assert status == 404 and SECRET.encode() not in body, (bad, body)


def test_compare_tables_and_code(scaled: tuple[Path, Server]) -> None:
    _root, srv = scaled
    status, _h, body = srv.get("/compare?runs=1,2,3,4")
    assert status == 200, body[:300]
    table = body.split(b'class="compare-table-file" data-path="out/scores.csv"', 1)[1]
    assert re.findall(rb'data-verdict-seq="(\d)"', table.split(b"</div>\n</div>")[0]) == [
        b"2", b"3", b"4"]  # fmt: skip
    url = re.search(rb'data-verdicts="([^"]+)"', table)
    assert url
    status, _h, got = srv.get(url.group(1).decode().replace("&amp;", "&"))
    verdicts = json.loads(got)["verdicts"]
    assert status == 200
    assert {seq: v["verdict"] for seq, v in verdicts.items()} == {
        "2": "differs", "3": "identical", "4": "close"}  # fmt: skip
    numeric = verdicts["2"]["html"]
    assert re.search(r'class="num values-differ">4<', numeric)  # i = 1..4 (0 * 1.5 == 0)
    assert re.search(r'class="num max-abs">2<', numeric)  # 4 * 1.5 - 4 * 1
    query = urlencode({"runs": "1,2", "path": "out/nope.csv"})
    status, _h, got = srv.get(f"/compare/verdicts.json?{query}")
    assert status == 400 and "none of these runs made 'out/nope.csv'" in json.loads(got)["error"]
    # code: each run against #1, the change highlighted, a file at a time
    pair = body.split(b'class="code-pair"', 2)[1]
    assert b'data-path="fit.py"' in pair and b"status-modified" in pair
    assert re.search(rb'<span class="gi">\+# scores scaled by --scale', pair)
    assert b"no figure made at the same path" in body


def test_without_pillow_the_page_says_so(lab: Lab, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Pillow is a dev dependency: a server whose Python has none says so instead of
    drawing (a package `PIL` that fails to import stands first on its path)."""
    (tmp_path / "hide" / "PIL").mkdir(parents=True)
    (tmp_path / "hide" / "PIL" / "__init__.py").write_text("raise ImportError('hidden')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "hide"), *filter(None, [os.environ.get("PYTHONPATH")])]))  # fmt: skip
    srv = Server(lab.root)
    try:
        status, _h, body = srv.get("/compare?runs=1,3")
        assert status == 200
        assert b'id="pillow-missing">Pillow is not installed (pip install pillow)' in body
        assert b"pixels.png" not in body and b'class="overlay-slider"' in body
        query = urlencode({"a": lab.ids[1], "b": lab.ids[3], "path": "out/curve.png"})
        status, _h, body = srv.get(f"/compare/pixels.png?{query}")
        assert status == 501 and body.startswith(b"Pillow is not installed")
    finally:
        srv.stop()


# -- lineage, lookup, debt ------------------------------------------------------------------


@dataclass
class Chain:
    """A project of two runs in a chain, made stale: #1 make.py reads src.txt and writes
    data.csv; #2 use.py reads data.csv and writes result.txt; then src.txt changed."""

    root: Path
    ids: dict[int, str]


MAKE = textwrap.dedent("""\
    nums = open("src.txt").read().split()
    with open("data.csv", "w") as f:
        f.write("n\\n" + "\\n".join(nums) + "\\n")
""")
USE = textwrap.dedent("""\
    rows = open("data.csv").read().split()[1:]
    with open("result.txt", "w") as f:
        f.write(str(sum(int(r) for r in rows)) + "\\n")
""")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with module_environment(tmp_path_factory, "chain") as base:
        root = base / "proj"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "src.txt").write_text("1 2 3\n")
        (root / "make.py").write_text(MAKE)
        (root / "use.py").write_text(USE)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
        for script in ("make.py", "use.py"):
            done = vestige("run", script, cwd=root)
            assert done.returncode == 0, done.stderr.decode()
        (root / "src.txt").write_text("1 2 3 4\n")  # now #1, and so #2, are stale
        listing = json.loads(vestige("ls", "--json", cwd=root).stdout)
        yield Chain(root, {r["seq"]: r["id"] for r in listing})


@pytest.fixture(scope="module")
def chain_server(chain: Chain) -> Iterator[Server]:
    with Server(chain.root) as srv:
        yield srv


def nodes_of(body: bytes) -> dict[str, dict[str, str]]:
    """{label: {class, href, x}} of the nodes of a lineage page's SVG."""
    found = {}
    for m in re.finditer(rb'<a class="(node [^"]+)" href="([^"]+)"[^>]*>.*?<rect x="([\d.]+)"'
                         rb".*?<text [^>]+>([^<]+)</text>", body, re.S):  # fmt: skip
        cls, href, x, label = (g.decode() for g in m.groups())
        found[label.replace("&#34;", '"')] = {"class": cls, "href": href.replace("&amp;", "&"),
                                              "x": x}  # fmt: skip
    return found


def error_of(body: bytes) -> str:
    m = re.search(rb'<p class="error" id="(?:error|lookup-error)"[^>]*>([^<]+)</p>', body)
    assert m, body[-600:]
    return m.group(1).decode()


def test_lineage_of_a_run_upstream_downstream_and_stale(chain: Chain,
                                                        chain_server: Server) -> None:  # fmt: skip
    """`/lineage?run=2`: src.txt -> #1 -> data.csv -> #2 -> result.txt, left to right, the
    runs `vestige stale` names (and the files they made) marked, each node a link."""
    status, headers, body = chain_server.get("/lineage?run=2")
    assert status == 200, body[-500:]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert not re.search(rb"<script(?![^>]*\bsrc=)", body) and not re.search(rb"\son[a-z]+=", body)
    nodes = nodes_of(body)
    order = ["src.txt", "#1 make.py", "data.csv", "#2 use.py", "result.txt"]
    assert sorted(nodes) == sorted(order)
    assert sorted(order, key=lambda k: float(nodes[k]["x"])) == order  # layered, left to right
    stale = {k for k, n in nodes.items() if "node-stale" in n["class"]}
    assert stale == {"#1 make.py", "data.csv", "#2 use.py", "result.txt"}
    assert "node-centre" in nodes["#2 use.py"]["class"]
    assert nodes["#1 make.py"]["href"] == f"/run/{chain.ids[1]}"
    assert nodes["data.csv"]["href"].startswith("/lineage?file=data.csv&hash=")
    assert b"input src.txt changed" in body  # the reasons, as `vestige stale` gives them
    # the run page links to it
    _s, _h, page = chain_server.get(f"/run/{chain.ids[2]}")
    assert f'href="/lineage?run={chain.ids[2]}" id="lineage-link"'.encode() in page


def test_lineage_of_a_file(chain: Chain, chain_server: Server, lab: Lab, server: Server) -> None:
    status, _h, body = chain_server.get("/lineage?file=result.txt")  # the bytes there now
    assert status == 200
    nodes = nodes_of(body)
    assert "node-centre" in nodes["result.txt"]["class"]
    assert set(nodes) == {"src.txt", "#1 make.py", "data.csv", "#2 use.py", "result.txt"}
    # a file's node leads to its own graph: the table of the lab, read by #6
    table = json.loads(vestige("which", "out/table.csv", "--json", cwd=lab.root).stdout)
    status, _h, body = server.get("/lineage?" + urlencode({"file": "out/table.csv",
                                                          "hash": table["hash"]}))  # fmt: skip
    assert status == 200
    nodes = nodes_of(body)
    reader = next(k for k in nodes if k.startswith("#6 "))
    assert nodes[reader]["href"] == f"/run/{lab.ids[6]}"
    assert float(nodes[reader]["x"]) > float(nodes["out/table.csv"]["x"])
    maker = next(k for k in nodes if k.startswith("#5 "))  # the producer #6 is given
    assert float(nodes[maker]["x"]) < float(nodes["out/table.csv"]["x"])


@pytest.mark.parametrize(("query", "message"), [
    ("run=", "give one of ?run=REF"),
    ("run=1&file=read.py", "give one of ?run=REF"),
    ("run=999", "no run #999"),
    ("file=../outside/secret.txt", "is not a file's path"),
    ("file=%2Fetc%2F..%2Fetc%2Fpasswd", "is not a file's path"),
    ("file=link/secret.txt", "no file link/secret.txt in the project"),  # a symlink out
    ("file=out/table.csv&hash=nothex", "is not a BLAKE3 hash"),
    ("file=nothing/here.txt", "no file nothing/here.txt in the project"),
])  # fmt: skip
def test_lineage_bad_input_is_one_clear_400(server: Server, query: str, message: str) -> None:
    status, _h, body = server.get(f"/lineage?{query}")
    assert status == 400, body[-300:]
    assert message in error_of(body).replace("&#39;", "'")
    assert SECRET.encode() not in body


def test_lineage_layout_layers_cycles_and_order() -> None:
    """Longest-path layers (an edge that closes a cycle left out), barycentre order."""
    from vestige.ui.lineage import layers, order

    edges = [("a", "r1"), ("r1", "b"), ("b", "r2"), ("a", "r2"), ("r2", "c"), ("c", "r2")]
    layer = layers(["a", "r1", "b", "r2", "c"], edges)
    assert layer == {"a": 0, "r1": 1, "b": 2, "r2": 3, "c": 4}
    # two chains drawn crossed at first are untangled: x1 beside y1's partner
    edges = [("p", "x2"), ("q", "x1"), ("x1", "y1"), ("x2", "y2")]
    rows = order(layers(["p", "q", "x1", "x2", "y1", "y2"], edges), edges)
    assert [rows[0].index("p"), rows[0].index("q")] == [rows[1].index("x2"),
                                                        rows[1].index("x1")]  # fmt: skip


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser sends it, and its content type."""
    boundary = "----vestigetest7MA4YWxkTrZu0gW"
    out = b""
    for k, v in fields.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                f"{v}\r\n").encode()  # fmt: skip
    for k, (name, data) in files.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def lookup_token(server: Server) -> str:
    status, _h, body = server.get("/lookup")
    assert status == 200
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert m
    return m.group(1).decode()


def test_lookup_names_the_run_that_made_the_bytes(lab: Lab, server: Server) -> None:
    """The exact bytes (`which`), then a resized copy (`which --similar`); the upload is
    compared, never kept."""
    token = lookup_token(server)
    before = store_state(lab)
    png = (lab.root / "out" / "curve.png").read_bytes()  # the sweep's last child made it
    body, ctype = multipart({"csrf": token}, {"file": ("fig 3.png", png)})
    status, _h, page = server.request("POST", "/lookup", body, {"Content-Type": ctype})
    assert status == 200, page[-400:]
    makers = page.split(b'id="lookup-makers"', 1)[1].split(b"</table>", 1)[0]
    assert re.findall(rb'href="/run/([^"]+)" class="maker"', makers) == [lab.ids[5].encode()]
    assert b"fig 3.png" in page
    # a screenshot of it: other bytes, the same look
    pytest.importorskip("imagehash", reason="the similar extra is not installed")
    import io

    from PIL import Image

    shot = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").resize((320, 240)).save(shot, "JPEG")
    body, ctype = multipart({"csrf": token}, {"file": ("shot.jpg", shot.getvalue())})
    status, _h, page = server.request("POST", "/lookup", body, {"Content-Type": ctype})
    assert status == 200
    assert b"No recorded run made these exact bytes" in page
    similar = page.split(b'id="lookup-similar"', 1)[1]
    first = similar.split(b"</figure>", 1)[0]
    assert f'href="/run/{lab.ids[5]}" class="maker"'.encode() in first
    assert re.search(rb'<img src="/artefact/[^"]+/out/curve\.png"', first)
    after = store_state(lab)
    assert after["files"] == before["files"] and after["rows"] == before["rows"]


def test_lookup_refuses_without_the_token_or_over_the_cap(lab: Lab, server: Server) -> None:
    from vestige.ui.lookup import MAX_UPLOAD

    before = store_state(lab)
    token = lookup_token(server)
    body, ctype = multipart({}, {"file": ("a.png", b"x")})
    assert server.request("POST", "/lookup", body, {"Content-Type": ctype})[0] == 403
    body, ctype = multipart({"csrf": "x" * 43}, {"file": ("a.png", b"x")})
    assert server.request("POST", "/lookup", body, {"Content-Type": ctype})[0] == 403
    body, ctype = multipart({"csrf": token}, {"file": ("a.png", b"x")})
    other = {"Content-Type": ctype, "Origin": "http://evil.example"}
    assert server.request("POST", "/lookup", body, other)[0] == 403
    # over the cap: one clear line, nothing looked up
    body, ctype = multipart({"csrf": token}, {"file": ("big.bin", b"\0" * (MAX_UPLOAD + 1))})
    status, _h, page = server.request("POST", "/lookup", body, {"Content-Type": ctype})
    assert status == 413 and "the file is larger than 16.0 MiB" in error_of(page)
    # not a form, no file
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _h, page = server.request("POST", "/lookup", b"csrf=" + token.encode(), urlencoded)
    assert status == 400 and "multipart/form-data" in error_of(page)
    body, ctype = multipart({"csrf": token}, {})
    status, _h, page = server.request("POST", "/lookup", body, {"Content-Type": ctype})
    assert status == 400 and "no file was sent" in error_of(page)
    assert server.get("/lookup?file=x")[0] == 200  # a GET only shows the form
    assert store_state(lab) == before


def test_debt_ledger_detail_and_code(lab: Lab, server: Server) -> None:
    status, _h, body = server.get("/debt")
    assert status == 200
    rows = dict(re.findall(rb'<tr data-unit="([^"]+)" data-verdict="([^"]+)"', body))
    cli = json.loads(vestige("debt", "--json", cwd=lab.root).stdout)
    assert rows == {u["unit"].encode(): u["verdict"].encode() for u in cli["units"]}
    assert b"train.py" in rows
    assert b'href="/debt?unit=train.py"' in body and b'href="/debt/code?unit=train.py"' in body
    status, _h, body = server.get("/debt?unit=train.py")
    assert status == 200
    assert b'id="unit-title"><code>train.py</code>' in body
    facts = body.split(b'id="unit-facts"', 1)[1].split(b"</table>", 1)[0]
    assert re.search(rb"<th>runs</th><td>4 in the window", facts)  # #1 and the 3 children
    assert b'id="reasons"' in body and b"few runs" in body
    status, _h, body = server.get("/debt/code?unit=train.py")
    assert status == 200 and b'class="hl"' in body and b"argparse" in body
    assert server.get("/debt?verdict=fine%20sloppy")[0] == 200
    for query, message in (("unit=nope.py", "no run used 'nope.py' as code"),
                           ("since=yesterday-ish", "bad since"),
                           ("verdict=great", "is not one of consolidate"),
                           ("unit=", "unit= is empty")):  # fmt: skip
        status, _h, body = server.get(f"/debt?{query}")
        assert status == 400 and message in error_of(body).replace("&#39;", "'"), query
    status, _h, body = server.get("/debt/code?unit=..%2F..%2Fetc%2Fpasswd")
    assert status == 400 and b"root:" not in body


def test_lineage_lookup_and_debt_pages_change_nothing(lab: Lab, server: Server) -> None:
    before = store_state(lab)
    for path in ("/lineage", f"/lineage?run={lab.ids[5]}", "/lineage?file=out/table.csv",
                 "/lookup", "/debt", "/debt?unit=read.py", "/debt/code?unit=read.py"):  # fmt: skip
        status, headers, body = server.get(path)
        assert status == 200, (path, body[-300:])
        assert "script-src 'self'" in headers["content-security-policy"]
        assert not re.search(rb"<script(?![^>]*\bsrc=)", body), path
        assert b"https://" not in body and b"http://" not in body, path
    assert store_state(lab) == before


# -- the run page, whole: code, notebook cells, extract, parquet, zoom, live (issue 16) ------

#: A script that imports a module of the project and logs a long series (zooming in).
FIT = textwrap.dedent("""\
    import vestige
    from pkg import util

    for step in range(5000):
        vestige.log(step=step, loss=util.curve(step))
    print("fitted", util.NAME)
""")
#: A running run the test steers: it prints, logs and writes, says so with a file, waits
#: for the file `go`, then logs and prints once more and ends.
LIVE = textwrap.dedent("""\
    import os, sys, time
    import vestige

    print("first line", flush=True)
    for step in range(5):
        vestige.log(step=step, loss=1.0 / (step + 1))
    vestige.flush()
    with open("out/live.txt", "w") as f:
        f.write("written while running")
    open("started", "w").close()
    while not os.path.exists("go"):
        time.sleep(0.05)
    for step in range(5, 40):
        vestige.log(step=step, loss=1.0 / (step + 1))
    vestige.flush()
    print("second line", flush=True)
    while not os.path.exists("end"):
        time.sleep(0.05)
    print("last line", flush=True)
""")
NOTEBOOK_CELLS = [
    "import matplotlib.pyplot as plt\nimport pandas as pd\nxs = [1, 2, 3]",
    "print('hello from a cell')\nlen(xs)",
    "fig, ax = plt.subplots(figsize=(3, 2), dpi=60)\nax.plot(xs, xs)\nplt.show()",
    "pd.DataFrame({'n': xs, 'name': ['a', 'b', 'c'], 'w': [0.5, 1.5, 2.5]})"
    ".to_parquet('out/table.parquet')",
    "1 / 0",
]


@dataclass
class CodeLab:
    """A project with #1 fit.py, #2 fit.py again after an edit, #3 a notebook run (a
    figure, a parquet table, a failing cell last); and a server over it."""

    root: Path
    ids: dict[int, str]


def build_codelab(base: Path) -> CodeLab:
    """The project and its runs, made by the real CLI."""
    nbformat = pytest.importorskip("nbformat")
    root = base / "codeproj"
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / "out").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "deep" / "__init__.py").write_text("")
    (root / "pkg" / "util.py").write_text("NAME = 'curve'\n\n\ndef curve(step):\n"
                                          "    return 1.0 / (1 + step)\n")  # fmt: skip
    (root / "fit.py").write_text(FIT)
    (root / "live.py").write_text(LIVE)
    (root / "out" / ".keep").write_text("")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell(s) for s in NOTEBOOK_CELLS]
    nbformat.write(nb, str(root / "book.ipynb"))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    for args in (("fit.py",), None, ("fit.py",), ("book.ipynb", "--allow-errors")):
        if args is None:  # an edit between the two runs of fit.py
            (root / "fit.py").write_text(FIT.replace('print("fitted"', 'print("fitted again"'))
            continue
        done = vestige("run", *args, cwd=root, timeout=300)
        assert done.returncode in (0, 1), done.stderr.decode()
    listing = json.loads(vestige("ls", "--json", cwd=root).stdout)
    assert [r["seq"] for r in listing] == [3, 2, 1]
    return CodeLab(root, {r["seq"]: r["id"] for r in listing})


@pytest.fixture(scope="module")
def codelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CodeLab, Server]]:
    with module_environment(tmp_path_factory, "ui-code") as base:
        made = build_codelab(base)
        with Server(made.root) as srv:
            yield made, srv


def test_run_page_shows_the_code_tree_and_its_files(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    status, _h, body = srv.get(f"/run/{lab.ids[2]}")
    assert status == 200
    code = body.split(b'<section id="code">', 1)[1].split(b"</section>", 1)[0]
    # folders fold (<details>), files link to their page; the script it ran is named
    assert re.search(rb"<details><summary>pkg/</summary>.*<details><summary>deep/</summary>",
                     code, re.S)  # fmt: skip
    assert f'href="/run/{lab.ids[2]}/code/pkg/util.py"'.encode() in code
    assert b"ran <code>fit.py</code>" in code
    status, _h, page = srv.get(f"/run/{lab.ids[2]}/code/pkg/util.py")
    assert status == 200
    view = page.split(b'id="code-view">', 1)[1].split(b"</div>", 1)[0]
    assert b'<span class="k">def</span>' in view and b"curve" in view  # Pygments' classes
    # the folder of the file shown is open, the file marked
    assert re.search(rb"<details open><summary>pkg/</summary>", page)
    assert b'aria-current="page">util.py</a>' in page
    for bad in ("pkg/nope.py", "pkg/../fit.py", "pkg/%2e%2e/fit.py", "/etc/passwd",
                "etc/passwd?abs=1"):  # fmt: skip
        status, _h, page = srv.get(f"/run/{lab.ids[2]}/code/{bad}")
        assert status == 404, bad
        assert b"holds no file" in page, bad


def test_diff_to_the_previous_run_of_the_same_script(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    status, _h, body = srv.get(f"/run/{lab.ids[2]}/diff")
    assert status == 200
    assert f'<a href="/run/{lab.ids[1]}">run #1</a> → <a href="/run/{lab.ids[2]}">run #2</a>'\
        .encode() in body  # fmt: skip
    assert b"the previous run of <code>fit.py</code>" in body
    assert b'data-path="fit.py"' in body and b'data-path="pkg/util.py"' not in body
    assert b'<span class="gd">-print("fitted", util.NAME)</span>' in body
    assert b'<span class="gi">+print("fitted again", util.NAME)</span>' in body
    # the first run of a script has none before it; any other run can be named
    status, _h, body = srv.get(f"/run/{lab.ids[1]}/diff")
    assert status == 200 and b"No run of <code>fit.py</code> before run #1" in body
    status, _h, body = srv.get(f"/run/{lab.ids[1]}/diff?against=2")
    assert status == 200 and b'<span class="gd">-print("fitted again"' in body
    status, _h, body = srv.get(f"/run/{lab.ids[1]}/diff?against=99")
    assert status == 404 and b"no run #99" in body


def test_notebook_run_shows_its_cells_in_order(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    status, _h, body = srv.get(f"/run/{lab.ids[3]}")
    assert status == 200
    cells = body.split(b'<section id="cells">', 1)[1].split(b"</section>", 1)[0]
    assert b"5 run of book.ipynb, 1 failed" in cells
    assert re.findall(rb'data-step="(\d+)"', cells) == [b"1", b"2", b"3", b"4", b"5"]
    assert b"hello from a cell" in cells and b'<pre class="cell-text">3</pre>' in cells
    # the figure the cell showed, drawn from the kept artefact, with its extract link
    figure = f'src="/artefact/{lab.ids[3]}/cell-3/output-1.png"'.encode()
    assert figure in cells
    assert f'href="/run/{lab.ids[3]}/extract?artefact=cell-3%2Foutput-1"'.encode() in cells
    # the failing cell: its error and traceback
    last = cells.split(b'id="cell-5"', 1)[1]
    assert b"cell cell-error" in cells and b"<strong>ZeroDivisionError</strong>" in last
    assert b"division by zero" in last
    status, _h, image = srv.get(f"/artefact/{lab.ids[3]}/cell-3/output-1.png")
    assert status == 200 and image.startswith(b"\x89PNG")


def test_extract_gives_the_script_of_a_figure(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    status, _h, body = srv.get(f"/run/{lab.ids[3]}/extract?artefact=cell-3%2Foutput-1")
    assert status == 200
    assert b"2 of 5 cells kept (steps 1, 3)" in body
    script = body.split(b'id="extract-script">', 1)[1]
    assert b"subplots" in script and b"hello from a cell" not in script
    link = re.search(rb'href="([^"]+)" id="extract-download"', body)
    assert link is not None
    status, headers, text = srv.get(link.group(1).decode().replace("&amp;", "&"))
    assert status == 200 and headers["content-disposition"].startswith("attachment")
    assert text.startswith(b"# Extracted by vestige from run #3") and b"plt.subplots" in text
    # what vestige extract would refuse is a 400 that says why
    for query, says in (("artefact=nope", b"has no artefact &#39;nope&#39;"),
                        ("cell=x", b"is not a cell number"),
                        ("cell=99", b"there is no cell 99"),
                        ("", b"give exactly one target")):  # fmt: skip
        status, _h, body = srv.get(f"/run/{lab.ids[3]}/extract?{query}")
        assert status == 400, query
        assert says in body, (query, body)


def test_parquet_artefacts_as_tables(codelab: tuple[CodeLab, Server]) -> None:
    pytest.importorskip("pyarrow")
    lab, srv = codelab
    _status, _h, body = srv.get(f"/run/{lab.ids[3]}")
    item = body.split(b'data-path="out/table.parquet"', 1)[1].split(b"</figure>", 1)[0]
    heads = re.findall(rb'<th>([^<]+) <span class="type">([^<]+)</span></th>', item)
    assert heads == [(b"n", b"int64"), (b"name", b"string"), (b"w", b"double")] or heads == [
        (b"n", b"int64"), (b"name", b"large_string"), (b"w", b"double")]  # fmt: skip
    rows = re.findall(rb"<tr>((?:<td>[^<]*</td>)+)</tr>", item)
    assert rows[0] == b"<td>1</td><td>a</td><td>0.5</td>" and len(rows) == 3


def test_zooming_fetches_the_range_at_full_resolution(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    base = f"/run/{lab.ids[1]}/metrics.json?key=loss"
    status, _h, body = srv.get(base)
    whole = json.loads(body)
    assert status == 200 and whole["count"] == 5000 and whole["shown"] <= 2000
    status, _h, body = srv.get(base + "&start=1200.5&end=2400")
    part = json.loads(body)
    assert status == 200 and part["method"] == "all points"
    assert part["x"] == list(range(1201, 2401))  # every point of the range, none else
    assert part["y"][0] == pytest.approx(1 / 1202) and part["total"] == 5000
    status, _h, body = srv.get(base + "&start=-10&end=4500")  # wider than 2,000: downsampled
    wide = json.loads(body)
    assert wide["count"] == 4501 and wide["shown"] <= 2000 and wide["x"][-1] == 4500
    status, _h, body = srv.get(base + "&end=2")  # one bound
    assert json.loads(body)["x"] == [0, 1, 2]
    status, _h, body = srv.get(base + "&start=abc")
    assert status == 400 and b"is not a number" in body


class Events:
    """A server-sent event stream read over http.client, one event at a time."""

    def __init__(self, srv: Server, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.headers["content-type"].startswith("text/event-stream")

    def next(self) -> tuple[str, object] | None:
        """(name, data) of the next event, or None when the stream ended."""
        name, data = "message", []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if data:
                    return name, json.loads("\n".join(data))
                continue
            field, _, value = text.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    def close(self) -> None:
        self.conn.close()


def until_true(check: object, what: str, timeout: float = 120) -> None:
    """Wait until `check()` is true (what the test waits for, never a set time: the
    deadline only bounds a hang)."""
    import time

    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_live_run(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `vestige run live.py` that has printed, logged and written, and now waits for
    the file `go`; (its process, its run id once the index lists it as running)."""
    for name in ("started", "go", "end"):
        (root / name).unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "vestige", "run", "live.py"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    until_true(lambda: (root / "started").exists(), "the run to start")
    found: list[str] = []

    def running() -> bool:
        rows = json.loads(vestige("ls", "--json", cwd=root).stdout)
        found[:] = [r["id"] for r in rows if r["status"] == "running"]
        return bool(found)

    until_true(running, "the index to list the run as running")
    return proc, found[0]


def test_a_running_run_streams_its_progress(codelab: tuple[CodeLab, Server]) -> None:
    lab, srv = codelab
    proc, run_id = start_live_run(lab.root)
    try:
        # the runs table and the run page say it is running
        _status, _h, body = srv.get("/?fold=0")
        row = body.split(f'data-run="{run_id}"'.encode(), 1)[1].split(b"</tr>", 1)[0]
        assert b"badge-running" in row
        status, headers, page = srv.get(f"/run/{run_id}")
        assert status == 200 and b'id="live"' in page
        assert "'unsafe-inline'" in headers["content-security-policy"]  # plotly's styles
        stream = Events(srv, f"/run/{run_id}/events")
        seen: dict[str, list[object]] = {}
        while not ({"metric", "log", "outputs"} <= set(seen)):
            got = stream.next()
            assert got is not None, f"the stream ended early: {seen}"
            seen.setdefault(got[0], []).append(got[1])
        metric = seen["metric"][-1]
        assert isinstance(metric, dict) and metric["key"] == "loss" and metric["x"][:2] == [0, 1]
        assert any("first line" in str(d) for d in seen["log"])
        assert any("live.txt" in str(d) for d in seen["outputs"])
        # it goes on: the chart grows, a new line comes
        (lab.root / "go").write_text("")
        grown, line = False, False
        while not (grown and line):
            got = stream.next()
            assert got is not None
            grown = grown or (got[0] == "metric" and got[1]["count"] == 40)  # type: ignore[index]
            line = line or (got[0] == "log" and "second line" in got[1]["html"])  # type: ignore[index]
        # the run ends: one last event, and the stream ends with it
        (lab.root / "end").write_text("")
        assert proc.wait(timeout=120) == 0
        names = []
        while (got := stream.next()) is not None:
            names.append(got)
        assert names[-1] == ("end", {"status": "ok"})
        stream.close()
    finally:
        (lab.root / "go").write_text("")
        (lab.root / "end").write_text("")
        proc.wait(timeout=120)
    # a sealed run's stream ends at once
    stream = Events(srv, f"/run/{run_id}/events")
    assert stream.next() == ("end", {"status": "ok"}) and stream.next() is None
    stream.close()
    status, _h, page = srv.get(f"/run/{run_id}")
    assert b'id="live"' not in page and b"last line" in page


def test_the_server_stops_with_a_live_stream_open(codelab: tuple[CodeLab, Server]) -> None:
    """uvicorn waits for every open response before it exits: a browser left on a running
    run's page must not keep `vestige ui` from stopping (SIGTERM, as Ctrl-C)."""
    lab, _srv = codelab
    srv = Server(lab.root)
    proc, run_id = start_live_run(lab.root)
    try:
        stream = Events(srv, f"/run/{run_id}/events")
        assert stream.next() is not None  # the stream is open and sending
        srv.proc.terminate()
        assert srv.proc.wait(timeout=60) in (0, -15)  # (a hang: the timeout fails the test)
        while stream.next() is not None:  # and the stream ended, not cut
            pass
        stream.close()
    finally:
        srv.stop()
        (lab.root / "go").write_text("")
        (lab.root / "end").write_text("")
        proc.wait(timeout=120)
