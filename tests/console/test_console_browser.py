"""Smoke test in Debian's Chromium: every console page renders in French and English, axe-core
finds no serious or critical violation, no JavaScript error, screenshots at 1280 and 820 px.
The full seed-flow end-to-end against a running agent comes with the service wiring."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer

from agent.io.console import ConsoleOptions, make_console_app
from tests.console.browser import chromium, screenshot_dir, serious_violations, shoot, watched_page
from tests.console.conftest import TOKEN

HEADINGS = {
    "fr": {
        "login": "Connexion",
        "shop": "Boutique",
        "find": "Trouver les imprimantes",
        "link": "Associer une caisse",
        "journal": "Journal",
    },
    "en": {
        "login": "Log in",
        "shop": "Shop",
        "find": "Find printers",
        "link": "Link a till",
        "journal": "Journal",
    },
}


@pytest.fixture
async def served(shop):
    app = make_console_app(shop.backend, ConsoleOptions(TOKEN, loopback=True, shop_id="salon-42"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_every_page_renders_accessibly_without_js_errors(served, shop, lang):
    shots = screenshot_dir()
    async with chromium() as browser:
        context = await browser.new_context(
            locale=lang, extra_http_headers={"Accept-Language": lang}
        )
        w = await watched_page(context)
        page = w.page
        await page.goto(f"{served}/login")
        assert await page.get_attribute("html", "lang") == lang
        assert (await page.text_content("h1")).strip() == HEADINGS[lang]["login"]
        assert await serious_violations(page) == []
        await shoot(page, shots, f"login-{lang}")

        await page.fill("#secret", TOKEN)
        await page.click("button[type=submit].primary")
        await page.wait_for_url(re.compile(r".*/shop$"))
        for name in ("shop", "find", "link", "journal"):
            await page.goto(f"{served}/{name}")
            assert (await page.text_content("h1")).strip() == HEADINGS[lang][name], name
            assert await serious_violations(page) == [], name
            await shoot(page, shots, f"{name}-{lang}")
        assert w.errors == []
        await context.close()


async def test_the_checks_see_a_violation_and_a_script_error():
    """Negative controls: an unlabelled input and a thrown error are both reported."""
    async with chromium() as browser:
        context = await browser.new_context()
        w = await watched_page(context)
        await w.page.set_content(
            "<html><head><title>x</title></head><body><main><input type=text>"
            "<script>throw new Error('boom')</script></main></body></html>"
        )
        violations = await serious_violations(w.page)
        assert any(v.startswith("label") for v in violations), violations
        assert any("boom" in e for e in w.errors)
        await context.close()
