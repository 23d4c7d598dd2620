"""What every request of the UI shares: the store, a Repo per server thread, the
templates, the access token and the CSRF token."""

from __future__ import annotations

import hmac
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from vestige.remote.lazy import install
from vestige.repo import Repo
from vestige.ui import fmt

#: A form body larger than this is refused (notes and tags are short).
MAX_FORM_BYTES = 64 * 1024


class Ui:
    """The app's state: reached from a request as `request.app.state.ui`."""

    def __init__(self, store: str | Path, root: str | Path, token: str | None = None) -> None:
        self.store = str(store)
        self.root = str(root)
        #: the access token (None: loopback only, no token asked)
        self.token = token
        #: the CSRF token every form carries, new at each start of the server
        self.csrf = secrets.token_urlsafe(32)
        self._local = threading.local()
        self._repos: list[Repo] = []
        self._lock = threading.Lock()
        self.templates = Environment(
            loader=PackageLoader("vestige.ui", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(fmt.FILTERS)
        self.templates.globals.update(csrf=self.csrf, plotly_url=fmt.PLOTLY_URL)

    def repo(self) -> Repo:
        """This thread's Repo (SQLite connections are not shared between threads), opened
        on first use; recovery of crashed runs is the CLI's, done once at start."""
        repo = getattr(self._local, "repo", None)
        if repo is None:
            repo = Repo.open_at(self.store, self.root)
            install(repo)  # (objects `pull --metadata-only` left remote: fetched as read)
            self._local.repo = repo
            with self._lock:
                self._repos.append(repo)
        return repo

    def close(self) -> None:
        """Close every thread's Repo (at the server's shutdown)."""
        with self._lock:
            repos, self._repos = self._repos, []
        for repo in repos:
            repo.close()

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page from its template; `request` is there for URLs and the current query."""
        html = self.templates.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status)

    async def form(self, request: Request) -> dict[str, str]:
        """A POSTed urlencoded form, its CSRF token checked (in constant time) and its
        Origin, when the browser sends one, this server's; else PermissionError."""
        same_site(request)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise PermissionError("the form is too large")
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not hmac.compare_digest(fields.get("csrf", "").encode(), self.csrf.encode()):
            raise PermissionError("the form's CSRF token is missing or stale; reload the page")
        return fields


def same_site(request: Request) -> None:
    """PermissionError unless a form was sent from this server's own page (its Origin,
    when the browser sends one, and Sec-Fetch-Site): every POST checks it."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise PermissionError("the form was sent from another site")
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        raise PermissionError("the form was sent from another site")
