"""The dashboard ships as plain files: everything it loads is in the package, nothing is
fetched from another origin, and the server sends them with a strict CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from querywatch.detector.adapters.ui.mount import STATIC_DIR, mount_ui
from tests.ui.servers import serve

OWN_FILES = [p for p in STATIC_DIR.rglob("*") if p.is_file() and "vendor" not in p.parts]
JS_FILES = sorted((STATIC_DIR / "js").glob("*.js"))


def test_index_references_only_shipped_files() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs, "index.html references no file"
    for ref in refs:
        if ref.startswith("data:"):
            continue
        assert "://" not in ref and not ref.startswith("//"), ref
        assert (STATIC_DIR / ref).is_file(), f"index.html references missing {ref}"


@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: p.name)
def test_module_imports_resolve(path: Path) -> None:
    for target in re.findall(r'^import .* from "(.+)";$', path.read_text(), flags=re.M):
        assert target.startswith("./"), f"{path.name} imports {target} (not a shipped file)"
        assert (path.parent / target).is_file(), f"{path.name} imports missing {target}"


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: p.name)
def test_no_absolute_urls_in_own_files(path: Path) -> None:
    assert not re.search(r"https?://", path.read_text()), f"{path.name} refers to another origin"


def test_vendored_chart_library_has_its_licence() -> None:
    assert (STATIC_DIR / "vendor" / "uPlot.iife.min.js").stat().st_size > 10_000
    assert "MIT License" in (STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text()


@pytest.fixture(scope="module")
def ui_only_server() -> Iterator[str]:
    app = FastAPI()
    mount_ui(app)
    with serve(app) as base_url:
        yield base_url


def test_ui_redirects_to_trailing_slash(ui_only_server: str) -> None:
    response = httpx.get(f"{ui_only_server}/ui", follow_redirects=False)
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/ui/")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/ui/", "text/html"),
        ("/ui/js/app.js", "javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/vendor/uPlot.iife.min.js", "javascript"),
    ],
)
def test_files_are_served_with_csp(ui_only_server: str, path: str, content_type: str) -> None:
    response = httpx.get(f"{ui_only_server}{path}")
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_missing_file_is_404(ui_only_server: str) -> None:
    assert httpx.get(f"{ui_only_server}/ui/nope.js").status_code == 404
