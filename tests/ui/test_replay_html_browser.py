"""``replay --html``: one self-contained page that renders in Chromium with no request outside it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from querywatch.detector.cli import main
from querywatch.detector.simulate import generate_trace, write_jsonl

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("html")
    events, truth = generate_trace(5, benign=12, attackers=3, scale=0.4)
    write_jsonl(events, folder / "trace.jsonl")
    page = folder / "replay.html"
    code = main(
        [
            "replay",
            str(folder / "trace.jsonl"),
            "--report",
            str(folder / "r.json"),
            "--html",
            str(page),
            "--top",
            "6",
            "--quiet",
        ]
    )
    assert code == 0
    return page, truth


def test_the_page_is_self_contained_and_small(page_file: tuple[Path, dict[str, dict[str, str]]]) -> None:
    page, _truth = page_file
    text = page.read_text()
    assert page.stat().st_size < 5_000_000
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)  # nothing linked
    assert "default-src 'none'" in text  # and the page forbids fetching anything
    assert '"input"' not in text  # no raw inputs


def test_the_page_renders_its_charts_offline(
    page_file: tuple[Path, dict[str, dict[str, str]]], browser: Any
) -> None:
    page_path, truth = page_file
    context = browser.new_context()
    outside: list[str] = []

    def only_the_file(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_file)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_path.as_uri())
    page.wait_for_selector("body[data-rendered]", timeout=20_000)
    assert page.locator("#charts canvas").count() >= 6
    rows = page.locator("#clients tbody tr")
    attackers = {c for c, info in truth.items() if info["role"] == "attack"}
    top = {rows.nth(i).locator("td").first.inner_text() for i in range(len(attackers))}
    assert top == attackers  # the thieves lead the table
    assert errors == [] and outside == []
    context.close()
