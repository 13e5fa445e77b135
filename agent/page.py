"""The household page at ``/`` (ADR 0042): static files served by the agent's own aiohttp app.

As the operator page (ADR 0038): an HTML page, one plain script and one style sheet from
agent/ui_static/, no build step, no second server, read once when the app is built (a missing
file fails the start, not a request) and served from memory by a table of fixed paths, so no
request can reach another file. The display helpers (node/ui_static/pagekit.js) and the chart
library, the operator page's vendored uPlot (node/ui_static/vendor/uplot, with its LICENSE and
VERSION), are the operator page's files: one copy in the project, read as data, not imported.

The page talks only to the agent on the same origin; the Content-Security-Policy allows nothing
else, so an injected script could reach neither the node nor another site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "ui_static"
#: The operator page's files: its helpers and vendored chart library (one copy for both pages).
NODE_STATIC_DIR = Path(__file__).resolve().parent.parent / "node" / "ui_static"
UPLOT_DIR = NODE_STATIC_DIR / "vendor" / "uplot"

#: URL path -> (file, content type).
FILES: dict[str, tuple[Path, str]] = {
    "/": (STATIC_DIR / "index.html", "text/html"),
    "/household.js": (STATIC_DIR / "household.js", "text/javascript"),
    "/pagekit.js": (NODE_STATIC_DIR / "pagekit.js", "text/javascript"),
    "/household.css": (STATIC_DIR / "household.css", "text/css"),
    "/uplot.min.js": (UPLOT_DIR / "uPlot.iife.min.js", "text/javascript"),
    "/uplot.min.css": (UPLOT_DIR / "uPlot.min.css", "text/css"),
    "/uplot-LICENSE.txt": (UPLOT_DIR / "LICENSE", "text/plain"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def load_files() -> dict[str, StaticFile]:
    """Every file of the page by URL path, read now."""
    return {path: StaticFile(file.read_bytes(), kind) for path, (file, kind) in FILES.items()}


_FILES_KEY = web.AppKey("household_page_files", dict[str, StaticFile])


async def serve(request: web.Request) -> web.Response:
    found = request.app[_FILES_KEY][request.path]
    response = web.Response(body=found.body, content_type=found.content_type, charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


def install(app: web.Application) -> None:
    """Load the page's files into ``app`` and bind a GET route for each."""
    app[_FILES_KEY] = load_files()
    for path in FILES:
        app.router.add_get(path, serve)
