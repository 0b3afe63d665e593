"""The API's documentation page (Swagger UI at ``/docs``) from local files.

FastAPI's defaults load both from a CDN, so ``/docs`` is a blank page on a machine without
internet. The assets come from the ``fastapi-offline`` package instead (no ReDoc: its page
still fetches a logo from a CDN). The page and ``/openapi.json`` are public by decision:
they describe the API, never its data.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` for ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )
