"""/docs renders in Chromium with every request outside the API blocked (no CDN)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.server import ApiServer

pytestmark = pytest.mark.browser


def _offline_page(browser: Any, server: ApiServer) -> tuple[Any, list[str]]:
    """A page whose requests anywhere but the API fail, and the list of those it tried."""
    context = browser.new_context()
    outside: list[str] = []

    def only_the_api(route: Any) -> None:
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_api)
    return context.new_page(), outside


def test_swagger_ui_renders_without_network(dashboard: ApiServer, browser: Any) -> None:
    page, outside = _offline_page(browser, dashboard)
    page.goto(f"{dashboard.base_url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)  # operations listed: the spec loaded
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/clients" in p for p in paths)
    assert outside == []


def test_the_docs_and_the_openapi_document_are_public(dashboard: ApiServer) -> None:
    for path in ("/docs", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        assert httpx.get(f"{dashboard.base_url}{path}", timeout=10).status_code == 200, path
    assert httpx.get(f"{dashboard.base_url}/redoc", timeout=10).status_code == 404
    assert httpx.get(f"{dashboard.base_url}/v1/clients", timeout=10).status_code == 401
