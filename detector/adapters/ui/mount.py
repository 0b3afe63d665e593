"""Serve the dashboard's static files at ``/ui`` from the installed package.

The files ship inside the wheel (``detector/ui/static``), so the dashboard works right
after ``pip install`` with no Node toolchain. A strict Content-Security-Policy lets the page
load nothing but its own files and talk to nothing but its own origin: a CDN reference
slipped in by mistake fails loudly in the browser instead of leaking analysts' traffic.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

#: Where the dashboard's files live inside the installed package.
STATIC_DIR = Path(__file__).resolve().parent / "static"

#: URL path the dashboard is served under.
UI_PATH = "/ui"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DashboardFiles(StaticFiles):
    """StaticFiles that adds the security headers and asks browsers to revalidate.

    Revalidation (``no-cache`` with the ETag StaticFiles already sends) means an upgraded
    package is picked up on the next page load, at the price of a cheap 304 per file.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_ui(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui/`` (``/ui`` redirects there), with its ``/v1/ui/config``.

    >>> app = FastAPI()
    >>> mount_ui(app)
    >>> app.url_path_for("ui", path="/index.html"), "/v1/ui/config" in app.openapi()["paths"]
    ('/ui/index.html', True)
    """
    from querywatch.detector.adapters.api.routes.ui import router

    app.include_router(router)
    app.mount(UI_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="ui")
