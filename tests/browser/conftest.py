"""A real browser for the console's tests: Debian's chromium driven by Playwright, nothing downloaded.

Every page a test opens is watched for console errors and uncaught exceptions; a test fails on any.
Screenshots go to ``.artifacts/console/`` (kept after the run as the test's artefacts, never committed).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.integration.conftest import api, workers  # noqa: F401 - the API and worker fixtures, shared

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
#: A laptop's width and a phone's.
WIDTHS = {"wide": 1280, "narrow": 390}
#: The flags a headless chromium needs here: root (no sandbox), and no calls to outside services.
Scheme = Literal["light", "dark"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: `conveyor stack tools` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Tab:
    """A browser tab on the console, recording every console error and uncaught exception it sees."""

    context: BrowserContext
    page: Page
    base: str
    name: str
    errors: list[str] = field(default_factory=list)
    #: Status codes a test provokes on purpose (a form refused with 422): the browser logs their load.
    provoked: set[int] = field(default_factory=set)

    def record(self, text: str) -> None:
        if not any(f"status of {code} " in text for code in self.provoked):
            self.errors.append(text)

    async def open(self, path: str) -> Page:
        response = await self.page.goto(self.base + path)
        assert response is not None
        return self.page

    async def sign_in(self, token: str) -> None:
        await self.open("/ui/login")
        await self.page.fill("#token", token)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_url("**/ui/overview")

    async def shoot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}-{self.name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


class Tabs:
    """Opens tabs at a width and colour scheme; every tab's errors are checked when the test ends."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[Tab] = []

    async def open(self, base: str, width: str = "wide", scheme: Scheme = "light") -> Tab:
        context = await self.browser.new_context(viewport={"width": WIDTHS[width], "height": 900}, color_scheme=scheme)
        context.set_default_timeout(30_000)
        page = await context.new_page()
        tab = Tab(context, page, base, f"{width}-{scheme}")
        page.on("console", lambda message: tab.record(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
        self.opened.append(tab)
        return tab


@pytest.fixture
async def tabs(browser: Browser) -> AsyncIterator[Tabs]:
    opened = Tabs(browser)
    yield opened
    errors = {tab.name: tab.errors for tab in opened.opened if tab.errors}
    for tab in opened.opened:
        await tab.context.close()
    assert not errors, f"the console logged errors: {errors}"
