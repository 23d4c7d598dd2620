"""The UI's Starlette app: the pages' routes, our static files, plotly's own script
from the installed package, the favicon, and the guard (security.py) around it all.

A page is a module with a `routes` list; PAGES below is where it is added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from vestige.ui import ansi, artefacts, compare, debt, fmt, lineage, lookup, run, runs
from vestige.ui.security import Guard
from vestige.ui.state import Ui

#: Each page's routes, in the order they are matched.
PAGES: list[list[BaseRoute]] = [runs.routes, run.routes, artefacts.routes, compare.routes]
PAGES += [lineage.routes, lookup.routes, debt.routes]
STATIC = Path(__file__).parent / "static"
#: Long-lived caching for what never changes under its URL.
FOREVER = "public, max-age=31536000, immutable"


def create_app(store: str | Path, root: str | Path, token: str | None = None) -> Starlette:
    """The UI over the store at `store` (project root `root`); with `token`, every
    request must show it (security.Guard), else it answers loopback names only."""
    ui = Ui(store, root, token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        ui.close()

    generated = {"/assets/pygments.css": artefacts.pygments_css(),
                 "/assets/ansi.css": ansi.palette_css()}  # fmt: skip

    def stylesheet(request: Request) -> Response:
        return Response(generated[request.url.path], media_type="text/css",
                        headers={"cache-control": "public, max-age=3600"})  # fmt: skip

    def plotly(request: Request) -> Response:
        path = fmt.plotly_js()
        if path is None:
            return Response("plotly is not installed: pip install 'vestige[ui]'\n", 404)
        return FileResponse(path, media_type="text/javascript",
                            headers={"cache-control": FOREVER})  # fmt: skip

    def favicon(request: Request) -> Response:
        # (cross-origin: an artefact opened as a page of its own is sandboxed, an origin
        # of its own, and asks for the icon too; a refusal is a console error)
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers={
            "cache-control": "public, max-age=86400",
            "cross-origin-resource-policy": "cross-origin"})  # fmt: skip

    routes: list[BaseRoute] = [route for page in PAGES for route in page]
    routes += [
        Route(fmt.PLOTLY_URL, plotly),
        *(Route(path, stylesheet) for path in generated),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(Guard, token=token)])
    app.state.ui = ui
    return app
