"""Debian's Chromium driven by Playwright for Python, with axe-core for accessibility.

Playwright's own browser download is not available here (and not wanted in CI): the
system browser is launched through `executable_path`. Screenshots go to
$CONSOLE_SCREENSHOTS (docs/console/ when it is set so) or a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

CHROMIUM = os.environ.get("DRAWER_AGENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WIDTHS = {"desktop": 1280, "tablet": 820}
HEIGHT = 900
# axe-core impacts that fail a page (minor and moderate are reported, not failed).
FAILING_IMPACTS = frozenset({"serious", "critical"})


def screenshot_dir() -> Path:
    """Where screenshots go: $CONSOLE_SCREENSHOTS, else a fresh temporary directory."""
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="drawer-console-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """The system Chromium, headless, with no background traffic of its own."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page whose JavaScript console errors and uncaught exceptions are collected."""

    page: Page
    errors: list[str] = field(default_factory=list)


async def watched_page(context: BrowserContext) -> Watched:
    """A new page that records every console error and page error."""
    page = await context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    return watched


async def serious_violations(page: Page) -> list[str]:
    """axe-core violations of serious or critical impact, one line each."""
    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in FAILING_IMPACTS
    ]


async def shoot(page: Page, directory: Path, name: str) -> list[Path]:
    """Full-page screenshots at each width (desktop, tablet); the paths written."""
    out = []
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": HEIGHT})
        path = directory / f"{name}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        out.append(path)
    return out
