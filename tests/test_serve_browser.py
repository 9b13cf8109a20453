"""The web chat page in a real headless browser: Debian's chromium, driven by Playwright.

Type Spanish, see `spanish` answer; type French, see the handoff and `french` answer; reload,
and the conversation is still there; a new conversation starts empty.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO
from .serve_process import ServeProcess

pytestmark = pytest.mark.slow  # a server and a browser

CHROMIUM = "/usr/bin/chromium"
# The system browser, quietly: no sandbox (CI runs as root), nothing fetched from elsewhere.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    config = tmp_path / "languages.yaml"
    config.write_text((REPO / "configs" / "languages.yaml").read_text(encoding="utf-8"),
                      encoding="utf-8")
    with ServeProcess(config, env={**os.environ}) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                             headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready=true]")
            yield page
        finally:
            browser.close()


def _say(page: Any, text: str, replies: int) -> None:
    page.fill("#message", text)
    page.click("#send")
    page.wait_for_function(
        f"document.querySelectorAll('.reply[data-done=true]').length === {replies}")


def test_the_page_streams_replies_names_agents_shows_handoffs_and_survives_a_reload(
        page: Any) -> None:
    _say(page, "Hola, ¿cómo estás?", 1)
    _say(page, "Je veux apprendre le français.", 2)

    def shown() -> tuple[list[str], list[str], list[str]]:
        return (page.locator(".reply .agent").all_inner_texts(),
                page.locator(".handoff").all_inner_texts(),
                page.locator(".reply .text").all_inner_texts())

    agents, handoffs, texts = shown()
    assert agents == ["spanish", "french"]
    assert handoffs == ["handoff: triage → spanish", "handoff: spanish → french"]
    assert texts[0].startswith("[offline model] Soy spanish")
    assert "C'est le message n° 2" in texts[1]

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert shown() == (agents, handoffs, texts)
    assert page.locator(".user .text").all_inner_texts() == [
        "Hola, ¿cómo estás?", "Je veux apprendre le français."]

    page.click("#new")
    assert page.locator(".turn").count() == 0
    _say(page, "Bonjour, j'ai une question.", 1)
    assert page.locator(".reply .agent").all_inner_texts() == ["french"]
    assert "C'est le premier message de notre conversation." in \
        page.locator(".reply .text").inner_text()
