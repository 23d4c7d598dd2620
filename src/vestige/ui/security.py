"""The UI's guard: who may ask (a token off loopback, the Host header on loopback) and
the headers every answer carries (a strict Content-Security-Policy on our own pages).

- With a token (`vestige ui --token`), a request shows it once as `?token=` (compared in
  constant time) and gets a cookie that carries a digest of it; every later request
  shows the cookie (or `Authorization: Bearer <token>`). Anything else is 401.
- Without one the server listens on loopback only, and a request whose Host is not a
  loopback name is refused: a web page cannot reach it by rebinding its own name to
  127.0.0.1 (DNS rebinding).
- A user's artefact is answered with its own policy (artefacts.py): a `sandbox` CSP;
  the policy below is for the pages of the UI, which run only our scripts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "vestige_ui"
#: Our own pages: scripts, styles, images and fetches from this origin only; frames only
#: of this origin (artefacts, themselves sandboxed); no plugin, no <base>, not framed.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; font-src 'self'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
#: The pages that draw charts: plotly.js adds <style> elements and style attributes as it
#: draws (a strict style-src leaves its plots unstyled: "Cannot addRelatedStyleRule,
#: probably due to strict CSP"); scripts stay our own.
CHART_CSP = PAGE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    # (not no-referrer: then a browser sends `Origin: null` with our own forms, and
    # state.Ui.form could not tell them from another site's)
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def cookie_value(token: str) -> str:
    """What the cookie holds: a digest of the token, not the token itself."""
    return hashlib.blake2b(token.encode(), digest_size=24, person=b"vestige-ui").hexdigest()


class Guard:
    """ASGI middleware: the access checks above, then the security headers."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token
        self.cookie = cookie_value(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # (none served: refused before any check is due)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refuse(scope, headers)
        if refusal is not None:
            await refusal(send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _v in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in have]
                if b"content-security-policy" not in have:
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                if b"x-frame-options" not in have:
                    extra.append((b"x-frame-options", b"DENY"))
                if b"cache-control" not in have:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refuse(
        self, scope: Scope, headers: dict[str, str]
    ) -> Callable[[Send], Awaitable[None]] | None:
        """None when the request may go on; else what to answer instead."""
        if self.token is None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in LOOPBACK_NAMES:
                why = f"this vestige ui answers loopback names only (Host: {host!r}); "
                return _answer(403, why + "start it with --host and --token to share it")
            return None
        assert self.cookie is not None
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no cookie
            cookies = SimpleCookie()
        held = cookies.get(COOKIE)
        if held is not None and hmac.compare_digest(held.value.encode(), self.cookie.encode()):
            return None
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and _same(auth[7:], self.token):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if given and _same(given[-1], self.token) and scope["method"] in ("GET", "HEAD"):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            where = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            return _redirect_with_cookie(where, self.cookie)
        return _answer(401, "this vestige ui needs its token: open the URL that `vestige ui` "
                       "printed (it ends in ?token=...)")  # fmt: skip


def _same(given: str, token: str) -> bool:
    """Constant-time comparison of a token given with the server's."""
    return hmac.compare_digest(given.encode(), token.encode())


def _answer(status: int, text: str) -> Callable[[Send], Awaitable[None]]:
    body = (text + "\n").encode()

    async def respond(send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()), *_HEADERS,
            (b"content-security-policy", b"default-src 'none'"),
            (b"cache-control", b"no-store")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return respond


def _redirect_with_cookie(location: str, value: str) -> Callable[[Send], Awaitable[None]]:
    """303 to the same URL without its token, the cookie set (HttpOnly, SameSite=Strict:
    never sent along with another site's request)."""
    cookie = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"

    async def respond(send: Send) -> None:
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1", "replace")),
            (b"set-cookie", cookie.encode()), (b"content-length", b"0"), *_HEADERS,
            (b"cache-control", b"no-store")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    return respond
