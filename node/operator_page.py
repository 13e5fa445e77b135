"""The operator page at ``/ui/`` (ADR 0038): static files served by the API's own app.

Every node and every gateway serves the same files from node/ui_static/: an HTML page, its
script and style, the helpers it shares with the household page (pagekit.js), and the vendored
chart library (uPlot, MIT, with its LICENSE). There is no build step and no second server. Each
file is a route of the contract's table (gridchain.api.routes.UI_ROUTES, so /openapi.json lists
it), read once when the app is built and served from memory, so a request can never reach
another file. The page reads only the public API on the same origin and stays live over
/v1/events.

The answers carry a Content-Security-Policy that allows scripts, styles and connections to the
same origin only: the page needs nothing else, and an injected script could reach nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gridchain.api.routes import UI_ROUTES

STATIC_DIR = Path(__file__).resolve().parent / "ui_static"
#: Where each route's file is under STATIC_DIR, by route name.
FILES: dict[str, str] = {
    "ui_page": "index.html",
    "ui_script": "operator.js",
    "ui_kit_script": "pagekit.js",
    "ui_style": "operator.css",
    "ui_chart_script": "vendor/uplot/uPlot.iife.min.js",
    "ui_chart_style": "vendor/uplot/uPlot.min.css",
    "ui_chart_license": "vendor/uplot/LICENSE",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def load_files(root: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every file of the page by URL path, read now: a missing file fails the app's start,
    not a request."""
    if {r.name for r in UI_ROUTES} != set(FILES):
        raise RuntimeError("the operator page's routes and files differ")
    return {
        route.path: StaticFile((root / FILES[route.name]).read_bytes(), route.content_type)
        for route in UI_ROUTES
    }


_FILES_KEY = web.AppKey("operator_page_files", dict[str, StaticFile])


def install(app: web.Application) -> None:
    """Load the page's files into ``app`` (its routes bind :func:`serve`)."""
    app[_FILES_KEY] = load_files()


async def serve(request: web.Request) -> web.Response:
    """One file of the page (the handler of every route of UI_ROUTES)."""
    found = request.app[_FILES_KEY][request.path]
    response = web.Response(body=found.body, content_type=found.content_type, charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


#: The handler of each of the page's routes, by route name.
HANDLERS = {route.name: serve for route in UI_ROUTES}
